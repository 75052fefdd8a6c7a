//! The fold of a run's events — started, each message, its session, ended — into the run's
//! record, its message index, and the session it belongs to. A session learns from its
//! runs what its transcript would tell — directory, times, messages, usage, parent — so
//! that a session whose transcript cclog never sees (another `HOME`, a container,
//! `--no-archive`) is complete; when the transcript is archived too, both fold into the
//! one session record, and its counts and usage are the transcript's.

use cclog_engine::{ApplyError, Event, ProjectionState};
use serde::Deserialize;

use super::cache::{new_session, Records};
use super::keys::{entry_key, load, run_key, run_message_key, session_key, store};
use super::records::{EntryRecord, RunRecord, SessionRecord};
use super::transcript::note_time;
use crate::entry::{self, EntryFacts, Parsed, ReportedUsage, Usage};
use crate::events::{self, RunEnded, RunSession, RunStarted, RunStatus};

/// The `uuid` of a stream-json message, which the same entry carries in the transcript.
pub(super) fn message_uuid(payload: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        uuid: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Message<'_>>(payload).ok().and_then(|message| message.uuid)
}

/// What the `result` message says: its `result` text, and the run's usage — per model
/// (`model_usage_since_last_result`, newer releases) or in all (`usage`). Not `modelUsage`:
/// newer releases carry a resumed session's earlier usage in it.
struct ResultFacts {
    text: Option<String>,
    usage_by_model: Vec<(Option<String>, Usage)>,
}

fn result_message(payload: &[u8]) -> Option<ResultFacts> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ModelUsage {
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
        #[serde(default)]
        cache_creation_input_tokens: u64,
        #[serde(default)]
        cache_read_input_tokens: u64,
    }
    #[derive(Deserialize)]
    struct ResultMessage {
        #[serde(rename = "type")]
        kind: Option<String>,
        result: Option<serde_json::Value>,
        usage: Option<serde_json::Value>,
        model_usage_since_last_result: Option<std::collections::BTreeMap<String, ModelUsage>>,
    }
    let message = serde_json::from_slice::<ResultMessage>(payload).ok()?;
    if message.kind.as_deref() != Some("result") {
        return None;
    }
    let usage_by_model =
        match (message.model_usage_since_last_result.filter(|models| !models.is_empty()), message.usage) {
            (Some(models), _) => models
                .into_iter()
                .map(|(model, usage)| {
                    let usage = ReportedUsage {
                        input_tokens: usage.input_tokens,
                        output_tokens: usage.output_tokens,
                        cache_creation_input_tokens: usage.cache_creation_input_tokens,
                        cache_read_input_tokens: usage.cache_read_input_tokens,
                        ..Default::default()
                    };
                    (Some(model), Usage::of_requests(&usage))
                })
                .collect(),
            (None, Some(usage)) => {
                ReportedUsage::from_json(&usage).map(|usage| (None, Usage::of_requests(&usage))).into_iter().collect()
            }
            (None, None) => Vec::new(),
        };
    Some(ResultFacts { text: message.result.and_then(|result| result.as_str().map(str::to_string)), usage_by_model })
}

/// The usage a `result` message reports, per model where it names them.
pub(super) fn result_usage(payload: &[u8]) -> Vec<(Option<String>, Usage)> {
    result_message(payload).map(|result| result.usage_by_model).unwrap_or_default()
}

/// The name Claude Code gives the project directory of `cwd`: every character that is not
/// an ASCII letter or digit becomes `-`.
fn project_dir_name(cwd: &str) -> String {
    cwd.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Claude Code's timestamp form (UTC, milliseconds, `Z`) of µs since the epoch.
fn transcript_time(us: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_millis(time).to_string()
}

pub(super) fn apply_run(
    run: &str,
    event: &Event,
    state: &mut ProjectionState<'_>,
    records: &mut Records,
) -> std::result::Result<(), ApplyError> {
    let rkey = run_key(run);
    if event.kind() == events::KIND_RUN_STARTED {
        let started = RunStarted::decode(&event.payload)?;
        let record = RunRecord {
            id: started.run,
            source: started.source,
            mode: started.mode,
            status: RunStatus::Running,
            first_seq: event.seq(),
            cwd: started.cwd,
            prompt: started.prompt,
            resumed: started.resume,
            fork: started.fork,
            started_us: event.header.ts_us,
            ..Default::default()
        };
        records.runs.put(rkey, record);
        return Ok(());
    }
    let Some(record) = records.runs.get(state, rkey)? else { return Ok(()) };
    match event.kind() {
        events::KIND_RUN_MESSAGE => {
            store(state, run_message_key(run, record.messages), &event.seq())?;
            record.messages += 1;
            // One look into the message: its kind, uuid, directory and model.
            let facts = match entry::parse(&event.payload) {
                Parsed::Entry(facts) => Some(facts),
                Parsed::Malformed(_) => None,
            };
            let facts = facts.as_deref();
            if let Some(facts) = facts {
                count_message(record, facts);
            }
            let result = facts
                .filter(|facts| facts.kind.as_deref() == Some("result"))
                .and_then(|_| result_message(&event.payload));
            if let Some(result) = &result {
                record.result_seq = Some(event.seq());
                record.result = result.text.clone();
            }
            // A line whose other fields do not read as expected still links by its uuid.
            let uuid = match facts {
                Some(facts) => facts.uuid.clone(),
                None => message_uuid(&event.payload),
            };
            if let Some(uuid) = uuid {
                let ukey = entry_key(&uuid);
                let mut entry = load::<EntryRecord>(state.get(&ukey)?)?.unwrap_or_default();
                if entry.message_seq.is_none() {
                    entry.message_seq = Some(event.seq());
                    store(state, ukey, &entry)?;
                }
            }
            let due = event.header.ts_us >= record.pushed_us.saturating_add(PUSH_INTERVAL_US);
            if let Some(id) = record.session.clone().filter(|_| due || result.is_some()) {
                let session = records.sessions.get_or(state, session_key(&id), new_session(&id))?;
                push_to_session(record, session, event.header.ts_us);
                for (model, usage) in result.map(|result| result.usage_by_model).unwrap_or_default() {
                    // Older results total the run's usage: it was the run's model's.
                    let model = model.or_else(|| record.model.clone()).unwrap_or_else(|| "unknown".into());
                    session.recorded.usage_by_model.entry(model).or_default().add(&usage);
                }
            }
        }
        events::KIND_RUN_SESSION => {
            let named: RunSession = events::decode(events::KIND_RUN_SESSION, &event.payload)?;
            let session = records.sessions.get_or(state, session_key(&named.session), new_session(&named.session))?;
            if !session.runs.contains(&record.id) {
                session.runs.push(record.id.clone());
            }
            if let Some(cwd) = &record.cwd {
                if session.cwd.is_none() {
                    session.cwd = Some(cwd.clone());
                }
                if session.project.is_empty() {
                    session.project = project_dir_name(cwd);
                }
            }
            // A run that branched a new session off another: that one is its parent (the
            // transcript, once archived, adds the fork point).
            if let Some(parent) = record.parent_session().filter(|parent| *parent != named.session) {
                if session.parent.is_none() {
                    session.parent = Some(parent.to_string());
                }
            }
            // The messages before the one that named the session (its `system/init`).
            push_to_session(record, session, event.header.ts_us);
            record.session = Some(named.session);
        }
        events::KIND_RUN_ENDED => {
            let ended: RunEnded = events::decode(events::KIND_RUN_ENDED, &event.payload)?;
            record.status = RunStatus::from_recorded(&ended.status);
            record.result_type = ended.result_type;
            record.duration_ms = ended.duration_ms;
            record.detail = ended.detail;
            record.ended_us = Some(event.header.ts_us);
            if let Some(id) = record.session.clone() {
                let session = records.sessions.get_or(state, session_key(&id), new_session(&id))?;
                push_to_session(record, session, event.header.ts_us);
            }
        }
        _ => {}
    }
    Ok(())
}

/// How often, at most, a run's counts reach its session's record while the run goes on (in
/// the run's own time, so that a rebuild pushes at the same events): the session record
/// (which lists every run of a session) is not rewritten for each message.
const PUSH_INTERVAL_US: u64 = 1_000_000;

/// Counts a message a run recorded, by kind; notes its directory (a captured run learns it
/// from its init message) and an assistant message's model.
fn count_message(record: &mut RunRecord, facts: &EntryFacts<'_>) {
    match facts.kind.as_deref() {
        Some("user") => record.user_messages += 1,
        Some("assistant") => record.assistant_messages += 1,
        _ => {}
    }
    if record.cwd.is_none() {
        record.cwd = facts.cwd.as_deref().map(str::to_string);
    }
    let model = facts.message.as_ref().and_then(|message| message.model.as_deref());
    if let Some(model) = model.filter(|model| !model.starts_with('<')) {
        if record.model.as_deref() != Some(model) {
            record.model = Some(model.to_string());
        }
        if !record.models.contains(model) {
            record.models.insert(model.to_string());
        }
    }
}

/// Adds to the session what the run recorded since the last push — messages by kind, its
/// models, the time — so that a session whose transcript is not archived is complete.
fn push_to_session(record: &mut RunRecord, session: &mut SessionRecord, at_us: u64) {
    let now = record.counts();
    session.recorded.counts.add(&now.since(&record.pushed));
    for model in &record.models {
        if !session.models.contains(model) {
            session.models.insert(model.clone());
        }
    }
    note_time(session, &transcript_time(at_us));
    record.pushed = now;
    record.pushed_us = at_us;
}
