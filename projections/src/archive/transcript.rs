//! The fold of a transcript file's events: its revisions, lines and copies (and the
//! segments that say where they are), checkpoints, deletion and subagent metadata, into the
//! file's, its session's and each entry's records.

use cclog_engine::{ApplyError, Event, ProjectionState};
use serde::Deserialize;

use super::cache::{new_session, Cached, Records};
use super::keys::{day_keys, entry_key, file_key, key, load, segment_key, session_key, store};
use super::records::{CompactId, DayUsage, EntryRecord, FileState, MessageUsage, Segment, SessionRecord};
use crate::entry::{self, EntryFacts, Parsed, Usage};
use crate::events::{self, CopyRun, Deleted, Revision};
use crate::pricing;

/// Places `count` lines from the event at `seq` at the end of the file's current revision:
/// a line right after a run of lines (in position and in seq) extends the run; anything
/// else starts a new segment, and the one before it is stored as it stands.
fn place_lines(
    state: &mut ProjectionState<'_>,
    file: &mut FileState,
    seq: u64,
    count: u64,
    copied: bool,
) -> std::result::Result<(), ApplyError> {
    let position = file.lines;
    if let Some(segment) = &mut file.segment {
        if !copied && !segment.copied && segment.seq + segment.count == seq && segment.start + segment.count == position
        {
            segment.count += count;
            return Ok(());
        }
    }
    store_segment(state, file)?;
    file.segment = Some(Segment { start: position, seq, count, copied });
    Ok(())
}

/// Stores the file's open segment under its key; the file keeps it (it may grow).
pub(super) fn store_segment(state: &mut ProjectionState<'_>, file: &FileState) -> std::result::Result<(), ApplyError> {
    match &file.segment {
        Some(segment) => store(state, segment_key(&file.path, file.revision, segment.start), segment),
        None => Ok(()),
    }
}

pub(super) fn apply_transcript(
    path: &str,
    event: &Event,
    state: &mut ProjectionState<'_>,
    records: &mut Records,
) -> std::result::Result<(), ApplyError> {
    let fkey = file_key(path);
    if event.kind() == events::KIND_REVISION {
        let revision: Revision = events::decode(events::KIND_REVISION, &event.payload)?;
        let session =
            records.sessions.get_or(state, session_key(&revision.file.session), new_session(&revision.file.session))?;
        if session.project.is_empty() {
            session.project = revision.file.project.clone();
        }
        if !session.files.iter().any(|file| file == path) {
            if revision.file.agent.is_none() {
                session.files.insert(0, path.to_string());
            } else {
                session.files.push(path.to_string());
            }
        }
        if let Some(agent) = &revision.file.agent {
            session.subagents.entry(agent.clone()).or_default().path = Some(path.to_string());
        }
        // The revision this one replaces keeps its last segment; its lines stop counting,
        // since a session's entries are its files' current lines (the new revision's
        // copies of them count again as they come).
        if let Some(replaced) = records.files.get(state, fkey.clone())? {
            store_segment(state, replaced)?;
            session.entries = session.entries.saturating_sub(replaced.lines);
        }
        let file = FileState {
            path: path.to_string(),
            file: revision.file,
            revision: revision.revision,
            revision_seq: event.seq(),
            lines: 0,
            last_checkpoint: None,
            partial: false,
            deleted: false,
            malformed: 0,
            unknown_types: 0,
            agent_meta_hash: None,
            segment: None,
            partial_seq: None,
        };
        records.files.put(fkey, file);
        return Ok(());
    }
    let folded = [
        events::KIND_LINE,
        events::KIND_COPY,
        events::KIND_PARTIAL,
        events::KIND_CHECKPOINT,
        events::KIND_DELETED,
        events::KIND_AGENT_META,
    ];
    if !folded.contains(&event.kind()) {
        return Ok(());
    }
    let Some(file) = records.files.get(state, fkey)? else {
        // Lines before any revision cannot come from cclog's importer; nothing to fold.
        return Ok(());
    };
    let session = records.sessions.get_or(state, session_key(&file.file.session), new_session(&file.file.session))?;
    let days = &mut records.days;
    match event.kind() {
        events::KIND_LINE => {
            place_lines(state, file, event.seq(), 1, false)?;
            file.lines += 1;
            file.partial = false;
            file.partial_seq = None;
            session.entries += 1;
            session.own_entries += 1;
            fold_line(event, file, session, state, days)?;
        }
        events::KIND_COPY => {
            let copy: CopyRun = events::decode(events::KIND_COPY, &event.payload)?;
            place_lines(state, file, event.seq(), copy.count, true)?;
            file.lines += copy.count;
            file.partial = false;
            file.partial_seq = None;
            session.entries += copy.count;
            // The parent is the session the first foreign copy came from; the fork point is
            // the last entry copied from it.
            if copy.source_session != session.id && file.file.agent.is_none() {
                let leaf = load::<EntryRecord>(state.get(&entry_key(&copy.leaf))?)?;
                adopt_parent(session, &copy.source_session, &copy.leaf, leaf.and_then(|record| record.seq));
            }
        }
        events::KIND_PARTIAL => {
            file.partial = true;
            file.partial_seq = Some(event.seq());
        }
        events::KIND_CHECKPOINT => {
            file.last_checkpoint = Some(events::decode(events::KIND_CHECKPOINT, &event.payload)?)
        }
        events::KIND_DELETED => {
            let _: Deleted = events::decode(events::KIND_DELETED, &event.payload)?;
            file.deleted = true;
        }
        events::KIND_AGENT_META => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct AgentMeta {
                tool_use_id: Option<String>,
            }
            file.agent_meta_hash = Some(cclog_engine::payload_hash(&event.payload).0);
            if let (Some(agent), Ok(meta)) = (&file.file.agent, serde_json::from_slice::<AgentMeta>(&event.payload)) {
                if meta.tool_use_id.is_some() {
                    session.subagents.entry(agent.clone()).or_default().tool_use_id = meta.tool_use_id;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Records that `session` shares entries with `parent` up to `uuid`: the parent is the
/// session the first shared entry came from, and the fork point the last entry shared
/// with it.
fn adopt_parent(session: &mut SessionRecord, parent: &str, uuid: &str, seq: Option<u64>) {
    if session.parent.as_deref().is_none_or(|known| known == parent) {
        session.parent = Some(parent.to_string());
        session.fork_point = Some(uuid.to_string());
        session.fork_seq = seq;
    }
}

/// Widens the session's first and last activity to `at` (RFC 3339, as Claude Code writes
/// it: UTC, milliseconds, `Z`).
pub(super) fn note_time(session: &mut SessionRecord, at: &str) {
    if session.first_at.as_deref().is_none_or(|first| at < first) {
        session.first_at = Some(at.to_string());
    }
    if session.last_at.as_deref().is_none_or(|last| at > last) {
        session.last_at = Some(at.to_string());
    }
}

/// Folds one stored transcript line into its file, its session and the uuid index.
fn fold_line(
    event: &Event,
    file: &mut FileState,
    session: &mut SessionRecord,
    state: &mut ProjectionState<'_>,
    days: &mut Cached<DayUsage>,
) -> std::result::Result<(), ApplyError> {
    let facts = match entry::parse(&event.payload) {
        Parsed::Entry(facts) => facts,
        Parsed::Malformed(_) => {
            file.malformed += 1;
            session.malformed += 1;
            return Ok(());
        }
    };
    if !facts.is_known_type() {
        file.unknown_types += 1;
        session.unknown_types += 1;
    }
    for field in &facts.drifted {
        *session.drifted_fields.entry((*field).to_string()).or_default() += 1;
    }
    // An entry this session already holds, stored again because a rewrite changed its line,
    // is not counted again.
    let mut seen_here = false;
    if let Some(uuid) = facts.uuid.as_deref() {
        let ukey = entry_key(uuid);
        let mut record = load::<EntryRecord>(state.get(&ukey)?)?.unwrap_or_default();
        match record.seq {
            None => {
                record.seq = Some(event.seq());
                record.parent = facts.chain_parent().map(CompactId::new);
                record.session = CompactId::new(&session.id);
                store(state, ukey, &record)?;
            }
            // An entry of another session written again, re-serialised (1.0.x `--resume`
            // rewrote what it copied): this session continues that one.
            Some(seq) if !record.session.is(&session.id) && file.file.agent.is_none() => {
                adopt_parent(session, &record.session.to_string(), uuid, Some(seq));
            }
            Some(_) => seen_here = record.session.is(&session.id),
        }
    }
    fold_facts(&facts, !seen_here, session, state, days)
}

/// Folds an entry's facts into its session; `counted`: whether it adds to the session's
/// user and assistant counts (not for an entry the session already holds).
fn fold_facts(
    facts: &EntryFacts<'_>,
    counted: bool,
    session: &mut SessionRecord,
    state: &mut ProjectionState<'_>,
    days: &mut Cached<DayUsage>,
) -> std::result::Result<(), ApplyError> {
    if let Some(at) = facts.timestamp.as_deref() {
        note_time(session, at);
    }
    if session.cwd.is_none() {
        session.cwd = facts.cwd.as_deref().map(str::to_string);
    }
    let titled =
        [(3, "custom-title", &facts.custom_title), (2, "ai-title", &facts.ai_title), (1, "summary", &facts.summary)];
    for (rank, source, title) in titled {
        if let Some(title) = title.as_deref().filter(|title| !title.trim().is_empty()) {
            if rank >= session.title_rank {
                session.title = Some(title.to_string());
                session.title_rank = rank;
                session.title_source = Some(source.to_string());
            }
            break;
        }
    }
    if session.title.is_none() {
        if let Some(prompt) = facts.first_line_of_prompt() {
            session.title = Some(prompt);
            session.title_source = Some("first-prompt".to_string());
        }
    }
    match facts.kind.as_deref() {
        Some("user") if counted => session.user_entries += 1,
        Some("assistant") if counted => session.assistant_entries += 1,
        _ => {}
    }
    if let Some(agent) = facts.tool_use_result.as_ref().and_then(|result| result.agent_id.as_deref()) {
        let tool_use_id = facts.message.as_ref().and_then(|message| first_tool_use_id(message.content));
        let link = session.subagents.entry(agent.to_string()).or_default();
        if tool_use_id.is_some() {
            link.tool_use_id = tool_use_id;
        }
    }
    fold_usage(facts, session, state, days)
}

/// Adds an API message's usage to the session that stored it first and to the day rows of
/// its quarter hour, each message id counted once: a later snapshot of it replaces the
/// earlier, and a copy of it in another session (a resumed transcript written again) is
/// not counted there.
fn fold_usage(
    facts: &EntryFacts<'_>,
    session: &mut SessionRecord,
    state: &mut ProjectionState<'_>,
    days: &mut Cached<DayUsage>,
) -> std::result::Result<(), ApplyError> {
    let Some(message) = &facts.message else { return Ok(()) };
    let (Some(id), Some(model), Some(reported)) = (message.id.as_deref(), message.model.as_deref(), message.usage)
    else {
        return Ok(());
    };
    if model.starts_with('<') {
        // `<synthetic>` messages are written by Claude Code itself, not billed.
        return Ok(());
    }
    let model = pricing::billed_model(model, reported.fast);
    let usage = Usage::of_request(&reported);
    let at_ms = facts.timestamp.as_deref().and_then(epoch_ms);
    let mkey = key(b'M', &[id.as_bytes()]);
    if let Some(previous) = load::<MessageUsage>(state.get(&mkey)?)? {
        if previous.session != session.id {
            return Ok(());
        }
        if let Some(bucket) = session.usage_by_model.get_mut(&previous.model) {
            bucket.subtract(&previous.usage);
        }
        if let Some(at) = previous.at_ms {
            for day_key in day_keys(&previous.project, at, &previous.model) {
                if let Some(row) = days.get(state, day_key)? {
                    let quarter = row.quarter_mut(at);
                    quarter.requests = quarter.requests.saturating_sub(1);
                    quarter.usage.subtract(&previous.usage);
                }
            }
        }
    }
    session.models.insert(model.clone());
    session.usage_by_model.entry(model.clone()).or_default().add(&usage);
    if let Some(at) = at_ms {
        for day_key in day_keys(&session.project, at, &model) {
            let quarter = days.get_or(state, day_key, DayUsage::default)?.quarter_mut(at);
            quarter.requests += 1;
            quarter.usage.add(&usage);
            quarter.first_ms = quarter.first_ms.min(at);
            quarter.last_ms = quarter.last_ms.max(at);
        }
    }
    let project = session.project.clone();
    store(state, mkey, &MessageUsage { session: session.id.clone(), project, model, usage, at_ms })
}

/// An entry's RFC 3339 time as ms since the epoch.
pub(crate) fn epoch_ms(at: &str) -> Option<i64> {
    at.parse::<jiff::Timestamp>().ok().map(|timestamp| timestamp.as_millisecond())
}

fn first_tool_use_id(content: Option<&serde_json::value::RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct Block {
        tool_use_id: Option<String>,
    }
    let blocks: Vec<Block> = serde_json::from_str(content?.get()).ok()?;
    blocks.into_iter().find_map(|block| block.tool_use_id)
}
