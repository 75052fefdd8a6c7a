//! The messages people page through: a run's recorded SDK messages, and a session's —
//! the messages of every run of it numbered across them, or, for a session cclog only
//! imported, its transcript entries. Both stop at the log's durable head: the archive's
//! indexes are updated with a write, a moment before the fsync that makes its events
//! readable, so the newest entries may not be readable yet; they are the next page's.

use cclog_engine::{Event, Log};

use crate::archive::{Archive, RunRecord, SessionRecord};
use crate::{replay, Error, Result};

/// One message of a page: its position, the event it is, the run that recorded it (none for
/// a transcript entry), and — for a transcript entry copied through a fork pointer — the
/// entry's bytes as the session has them (the event is the copy; its bytes are rebuilt from
/// the original, stored at `origin`).
#[derive(Debug, Clone)]
pub struct PagedMessage {
    pub index: u64,
    pub event: Event,
    pub run: Option<String>,
    pub rebuilt: Option<Vec<u8>>,
    /// The event that stores the message's bytes: unique among a page's messages and the
    /// same wherever an entry is shared, so it serves as the message's id.
    pub origin: u64,
}

impl PagedMessage {
    /// The message's bytes as its session or run has them.
    pub fn bytes(&self) -> &[u8] {
        self.rebuilt.as_deref().unwrap_or(&self.event.payload)
    }
}

/// A run as the surfaces show it: its record and its `result` message, byte for byte.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub record: RunRecord,
    pub result_message: Option<Vec<u8>>,
}

impl RunDetail {
    /// The run's record with its result message read from the log (none until durable).
    pub fn of(log: &Log, record: RunRecord) -> Result<RunDetail> {
        let result_message = match record.result_seq.filter(|seq| *seq < log.len()) {
            Some(seq) => log.get(seq)?.map(|event| event.payload),
            None => None,
        };
        Ok(RunDetail { record, result_message })
    }
}

/// The run whose id is `id` or starts with it.
pub fn run_detail(log: &Log, id: &str) -> Result<RunDetail> {
    RunDetail::of(log, Archive::run_by_prefix(log, id)?)
}

/// The runs with these ids that the archive knows, in that order.
pub fn run_details(log: &Log, ids: &[String]) -> Result<Vec<RunDetail>> {
    let mut runs = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(record) = Archive::run(log, id)? {
            runs.push(RunDetail::of(log, record)?);
        }
    }
    Ok(runs)
}

/// Every run (or only the active ones), newest first.
pub fn runs_newest_first(log: &Log, active_only: bool) -> Result<Vec<RunDetail>> {
    let mut runs = Archive::runs(log)?;
    runs.retain(|run| !active_only || run.is_active());
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_us));
    runs.into_iter().map(|record| RunDetail::of(log, record)).collect()
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
        messages.push(PagedMessage { index, origin: event.seq(), event, run: Some(run.to_string()), rebuilt: None });
    }
    Ok(messages)
}

/// The session's messages from index `first` on, at most `limit`: its runs' messages
/// numbered across them, oldest run first; a session with no runs answers with the lines of
/// its transcript.
pub fn session_messages(log: &Log, session: &SessionRecord, first: u64, limit: usize) -> Result<Vec<PagedMessage>> {
    if session.runs.is_empty() {
        return transcript_lines(log, session, first, limit);
    }
    let mut messages = Vec::new();
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

/// Lines `first..` of the session's main transcript (its current revision), at most
/// `limit`, up to the durable head. The archive's segments say which events hold them, so
/// a page reads its own lines and no others; a line of a fork's shared prefix is rebuilt
/// through the copy's pointer.
pub fn transcript_lines(log: &Log, session: &SessionRecord, first: u64, limit: usize) -> Result<Vec<PagedMessage>> {
    let mut messages = Vec::new();
    let Some(path) = session.main_file() else { return Ok(messages) };
    let Some(file) = Archive::file(log, path)? else { return Ok(messages) };
    let durable = log.len();
    let read = |seq: u64| -> Result<Event> {
        log.get(seq)?.ok_or_else(|| Error::Inconsistent { seq, detail: "an indexed transcript line is missing".into() })
    };
    let mut position = first;
    while position < file.lines && messages.len() < limit {
        let segment = Archive::segment_at(log, &file, position)?.ok_or_else(|| Error::Inconsistent {
            seq: file.revision_seq,
            detail: format!("no segment holds line {position} of {}", file.path),
        })?;
        if segment.copied {
            if segment.seq >= durable {
                return Ok(messages);
            }
            let copy = read(segment.seq)?;
            let skip = position - segment.start;
            let mut index = segment.start;
            replay::lines_of_event(log, &copy, |line| {
                if index >= segment.start + skip && messages.len() < limit {
                    messages.push(PagedMessage {
                        index,
                        event: copy.clone(),
                        run: None,
                        rebuilt: Some(line.bytes),
                        origin: line.origin,
                    });
                }
                index += 1;
                Ok(())
            })?;
        } else {
            for offset in position - segment.start..segment.count {
                let seq = segment.seq + offset;
                if seq >= durable || messages.len() >= limit {
                    return Ok(messages);
                }
                messages.push(PagedMessage {
                    index: segment.start + offset,
                    event: read(seq)?,
                    run: None,
                    rebuilt: None,
                    origin: seq,
                });
            }
        }
        position = segment.start + segment.count;
    }
    // An unterminated last line comes after every complete one.
    if let Some(seq) = file.partial_seq.filter(|seq| *seq < durable) {
        if first <= file.lines && messages.len() < limit {
            messages.push(PagedMessage { index: file.lines, event: read(seq)?, run: None, rebuilt: None, origin: seq });
        }
    }
    Ok(messages)
}

/// The runs of a session that the archive knows, oldest first.
pub fn session_runs(log: &Log, session: &SessionRecord) -> Result<Vec<RunDetail>> {
    run_details(log, &session.runs)
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
