//! The messages people page through: a run's recorded SDK messages, and a session's —
//! the messages of every run of it numbered across them, or, for a session cclog only
//! imported, its transcript entries. Both stop at the log's durable head: the archive's
//! indexes are updated with a write, a moment before the fsync that makes its events
//! readable, so the newest entries may not be readable yet; they are the next page's.

use cclog_engine::{Event, Log};

use crate::archive::{Archive, RunRecord, SessionRecord};
use crate::{lineage, Error, Result};

/// One message of a page: its position, the event it is, and — for a transcript entry
/// copied through a fork pointer — the entry's bytes as the session has them (the event is
/// the original's, whose bytes differ in `sessionId`).
#[derive(Debug, Clone)]
pub struct PagedMessage {
    pub index: u64,
    pub event: Event,
    pub rebuilt: Option<Vec<u8>>,
}

impl PagedMessage {
    /// The message's bytes as its session or run has them.
    pub fn bytes(&self) -> &[u8] {
        self.rebuilt.as_deref().unwrap_or(&self.event.payload)
    }
}

/// Every run (or only the active ones), newest first.
pub fn runs_newest_first(log: &Log, active_only: bool) -> Result<Vec<RunRecord>> {
    let mut runs = Archive::runs(log)?;
    runs.retain(|run| !active_only || run.is_active());
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_us));
    Ok(runs)
}

/// The run's messages from index `from` on, at most `limit`, up to the durable head.
pub fn run_messages(log: &Log, run: &str, from: u64, limit: usize) -> Result<Vec<PagedMessage>> {
    let durable = log.len();
    let mut messages = Vec::new();
    for (index, seq) in Archive::run_message_seqs(log, run, from, limit)? {
        if seq >= durable {
            break;
        }
        let event = log.get(seq)?.ok_or_else(|| {
            Error::Engine(cclog_engine::Error::Corruption {
                at: Some(seq),
                detail: "an indexed run message is missing".into(),
            })
        })?;
        messages.push(PagedMessage { index, event, rebuilt: None });
    }
    Ok(messages)
}

/// The session's messages from index `first` on, at most `limit`: its runs' messages
/// numbered across them, oldest run first; a session with no runs answers with its
/// transcript entries.
pub fn session_messages(log: &Log, session: &SessionRecord, first: u64, limit: usize) -> Result<Vec<PagedMessage>> {
    let mut messages = Vec::new();
    if session.runs.is_empty() {
        let durable = log.len();
        let entries = lineage::session_entries(log, session)?;
        for (index, entry) in (0u64..).zip(entries).skip_while(|(index, _)| *index < first) {
            if messages.len() >= limit || entry.line.seq >= durable {
                break;
            }
            let Some(event) = log.get(entry.line.seq)? else { continue };
            let rebuilt = entry.line.copied.then_some(entry.line.bytes);
            messages.push(PagedMessage { index, event, rebuilt });
        }
        return Ok(messages);
    }
    let mut offset = 0u64;
    for run in &session.runs {
        let Some(record) = Archive::run(log, run)? else { continue };
        let end = offset + record.messages;
        if end > first && messages.len() < limit {
            let from = first.saturating_sub(offset);
            for mut message in run_messages(log, run, from, limit - messages.len())? {
                message.index += offset;
                messages.push(message);
            }
        }
        offset = end;
    }
    Ok(messages)
}

/// The runs of a session that the archive knows, oldest first.
pub fn session_runs(log: &Log, session: &SessionRecord) -> Result<Vec<RunRecord>> {
    let mut runs = Vec::new();
    for run in &session.runs {
        if let Some(record) = Archive::run(log, run)? {
            runs.push(record);
        }
    }
    Ok(runs)
}

/// The sessions forked directly from `session`.
pub fn session_forks(log: &Log, session: &SessionRecord) -> Result<Vec<SessionRecord>> {
    Ok(Archive::sessions(log)?
        .into_iter()
        .filter(|other| other.parent.as_deref() == Some(session.id.as_str()))
        .collect())
}

/// Every session, most recently active first.
pub fn sessions_recent_first(log: &Log) -> Result<Vec<SessionRecord>> {
    let mut sessions = Archive::sessions(log)?;
    sessions.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.id.cmp(&b.id)));
    Ok(sessions)
}
