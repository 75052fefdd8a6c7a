//! The fold of a run's events — started, each message, its session, ended — into the run's
//! record, its message index, and the session it belongs to.

use cclog_engine::{ApplyError, Event, ProjectionState};
use serde::Deserialize;

use super::cache::{new_session, Records};
use super::keys::{entry_key, key, load, run_message_key, session_key, store};
use super::records::{EntryRecord, RunRecord};
use crate::events::{self, RunEnded, RunSession, RunStarted};

/// The `uuid` of a stream-json message, which the same entry carries in the transcript.
pub(super) fn message_uuid(payload: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        uuid: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Message<'_>>(payload).ok().and_then(|message| message.uuid)
}

/// The `result` text of a stream-json `result` message.
fn result_text(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ResultMessage {
        #[serde(rename = "type")]
        kind: Option<String>,
        result: Option<String>,
    }
    serde_json::from_slice::<ResultMessage>(payload)
        .ok()
        .filter(|message| message.kind.as_deref() == Some("result"))
        .and_then(|message| message.result)
}

pub(super) fn apply_run(
    run: &str,
    event: &Event,
    state: &mut ProjectionState<'_>,
    records: &mut Records,
) -> std::result::Result<(), ApplyError> {
    let rkey = key(b'R', &[run.as_bytes()]);
    if event.kind() == events::KIND_RUN_STARTED {
        let started: RunStarted = events::decode(events::KIND_RUN_STARTED, &event.payload)?;
        let record = RunRecord {
            id: started.run,
            source: started.source,
            status: "running".into(),
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
            if let Some(result) = result_text(&event.payload) {
                record.result = Some(result);
            }
            if let Some(uuid) = message_uuid(&event.payload) {
                let ukey = entry_key(&uuid);
                let mut entry = load::<EntryRecord>(state.get(&ukey)?)?.unwrap_or_default();
                if entry.message_seq.is_none() {
                    entry.message_seq = Some(event.seq());
                    store(state, ukey, &entry)?;
                }
            }
        }
        events::KIND_RUN_SESSION => {
            let named: RunSession = events::decode(events::KIND_RUN_SESSION, &event.payload)?;
            let session = records.sessions.get_or(state, session_key(&named.session), new_session(&named.session))?;
            if !session.runs.contains(&record.id) {
                session.runs.push(record.id.clone());
            }
            record.session = Some(named.session);
        }
        events::KIND_RUN_ENDED => {
            let ended: RunEnded = events::decode(events::KIND_RUN_ENDED, &event.payload)?;
            record.status = ended.status;
            record.result_type = ended.result_type;
            record.duration_ms = ended.duration_ms;
            record.detail = ended.detail;
            record.ended_us = Some(event.header.ts_us);
        }
        _ => {}
    }
    Ok(())
}
