//! The domain's event vocabulary: for each domain, its stream names, its kinds and the
//! typed payloads that say what happened. Raw external bytes (a transcript line, a
//! stream-json line) are payloads as they came; everything cclog says about them is a typed
//! payload here.
//!
//! # Layout
//! - [`transcript`]: `transcript/<absolute path>` — a transcript file's revisions, lines,
//!   copies, checkpoints and deletion.
//! - [`run`]: `run/<id>` — a Claude Code run's start, messages, session and end.
//! - [`coordinator`]: `scope/<scope>` (key-value writes) and `instances/<machine>:<project>`
//!   (instance claims) — the session coordinator.
//! - [`plan`]: `plan/<id>` — a plan's creation, its session's changes, each task's steps,
//!   its end and resumes.
//! - [`team`]: `team/<name>` — a team's creation, containers, tmux session, agent sessions,
//!   resumes, stops, health findings, exports and removal.
//!
//! Encoding format: a typed payload is one format byte ([`PAYLOAD_FORMAT`]) followed by the
//! postcard encoding of the struct. A new field means a new format byte for that payload
//! and a decoder for the old one (`run.started` and the coordinator's `kv.set`/`kv.delete`
//! are at format 2; everything else at 1).

pub mod coordinator;
pub mod plan;
pub mod run;
pub mod team;
pub mod transcript;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use run::*;
pub use transcript::*;

use crate::{Error, Result};

/// The format byte in front of every typed payload.
pub const PAYLOAD_FORMAT: u8 = 1;

/// Encodes a typed payload.
pub fn encode<T: Serialize>(payload: &T) -> Result<Vec<u8>> {
    encode_as(PAYLOAD_FORMAT, payload)
}

/// Encodes a typed payload behind `format`, for a payload whose layout has changed.
fn encode_as<T: Serialize>(format: u8, payload: &T) -> Result<Vec<u8>> {
    let mut bytes = vec![format];
    postcard::to_io(payload, &mut bytes)
        .map_err(|error| Error::Payload { kind: std::any::type_name::<T>(), detail: error.to_string() })?;
    Ok(bytes)
}

/// Decodes a typed payload written by [`encode`].
pub fn decode<T: DeserializeOwned>(kind: &'static str, bytes: &[u8]) -> Result<T> {
    decode_as(PAYLOAD_FORMAT, kind, bytes)
}

/// Decodes a typed payload written by [`encode_as`] with `expected`.
fn decode_as<T: DeserializeOwned>(expected: u8, kind: &'static str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((format, body)) if *format == expected => {
            postcard::from_bytes(body).map_err(|error| Error::Payload { kind, detail: error.to_string() })
        }
        Some((format, _)) => Err(Error::Payload { kind, detail: format!("unknown payload format {format}") }),
        None => Err(Error::Payload { kind, detail: "empty payload".into() }),
    }
}

/// The typed payload of the event at `seq`, which must be a `kind` event (the creation of
/// `owner`, whose record names it).
pub(crate) fn decode_at<T: DeserializeOwned>(
    log: &cclog_engine::Log,
    seq: u64,
    kind: &'static str,
    owner: &str,
) -> Result<T> {
    let event = log.get(seq)?.ok_or_else(|| Error::Inconsistent {
        seq,
        detail: format!("{owner} names a {kind} event that is not in the log"),
    })?;
    if event.kind() != kind {
        return Err(Error::Inconsistent { seq, detail: format!("{owner}'s {kind} event is a {}", event.kind()) });
    }
    decode(kind, &event.payload)
}

/// A typed payload as JSON, for people and scripts reading the log (`cclog log`, `GET
/// /api/events`, a team export): `None` for a kind whose payload is bytes as they came (a
/// transcript line, a run message) or that this vocabulary does not know; for a payload
/// that does not decode, `{"undecodable": why}`.
pub fn payload_json(kind: &str, payload: &[u8]) -> Option<serde_json::Value> {
    fn as_json<T: DeserializeOwned + Serialize>(decoded: Result<T>) -> serde_json::Value {
        match decoded {
            Ok(value) => serde_json::to_value(value)
                .unwrap_or_else(|error| serde_json::json!({ "undecodable": error.to_string() })),
            Err(error) => serde_json::json!({ "undecodable": error.to_string() }),
        }
    }
    fn typed<T: DeserializeOwned + Serialize>(kind: &'static str, payload: &[u8]) -> serde_json::Value {
        as_json(decode::<T>(kind, payload))
    }
    Some(match kind {
        KIND_REVISION => typed::<Revision>(KIND_REVISION, payload),
        KIND_COPY => typed::<CopyRun>(KIND_COPY, payload),
        KIND_CHECKPOINT => typed::<Checkpoint>(KIND_CHECKPOINT, payload),
        KIND_DELETED => typed::<Deleted>(KIND_DELETED, payload),
        KIND_RUN_STARTED => as_json(RunStarted::decode(payload)),
        KIND_RUN_SESSION => typed::<RunSession>(KIND_RUN_SESSION, payload),
        KIND_RUN_ENDED => typed::<RunEnded>(KIND_RUN_ENDED, payload),
        coordinator::KIND_KV_SET | coordinator::KIND_KV_DELETE => as_json(coordinator::KeyWrite::decode(payload)),
        coordinator::KIND_SCOPE_DELETE => typed::<coordinator::ScopeDelete>(coordinator::KIND_SCOPE_DELETE, payload),
        coordinator::KIND_INSTANCE_CLAIMED => {
            typed::<coordinator::InstanceChange>(coordinator::KIND_INSTANCE_CLAIMED, payload)
        }
        coordinator::KIND_INSTANCE_RELEASED => {
            typed::<coordinator::InstanceChange>(coordinator::KIND_INSTANCE_RELEASED, payload)
        }
        plan::KIND_CREATED => typed::<plan::PlanSpec>(plan::KIND_CREATED, payload),
        plan::KIND_SESSION => typed::<plan::SessionChange>(plan::KIND_SESSION, payload),
        plan::KIND_TASK => typed::<plan::TaskChange>(plan::KIND_TASK, payload),
        plan::KIND_ENDED => typed::<plan::PlanEnd>(plan::KIND_ENDED, payload),
        plan::KIND_RESUMED => typed::<plan::Resumed>(plan::KIND_RESUMED, payload),
        team::KIND_CREATED => typed::<team::TeamSpec>(team::KIND_CREATED, payload),
        team::KIND_CONTAINER => typed::<team::ContainerChange>(team::KIND_CONTAINER, payload),
        team::KIND_TMUX => typed::<team::TmuxChange>(team::KIND_TMUX, payload),
        team::KIND_AGENT_SESSION => typed::<team::AgentSession>(team::KIND_AGENT_SESSION, payload),
        team::KIND_AGENT_DROPPED => typed::<team::AgentDropped>(team::KIND_AGENT_DROPPED, payload),
        team::KIND_HEALTH => typed::<team::HealthFindings>(team::KIND_HEALTH, payload),
        team::KIND_EXPORTED => typed::<team::Exported>(team::KIND_EXPORTED, payload),
        team::KIND_RESUMED => typed::<team::Note>(team::KIND_RESUMED, payload),
        team::KIND_STOPPED => typed::<team::Note>(team::KIND_STOPPED, payload),
        team::KIND_REMOVED => typed::<team::Note>(team::KIND_REMOVED, payload),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_payloads_read_as_json_and_raw_ones_are_left_alone() {
        let checkpoint = Checkpoint { offset: 10, lines: 2, digest: [7; 32], partial: 0, modified_ns: 5 };
        let decoded = payload_json(KIND_CHECKPOINT, &encode(&checkpoint).unwrap()).unwrap();
        assert_eq!((decoded["offset"].as_u64(), decoded["lines"].as_u64()), (Some(10), Some(2)));
        let note = team::Note { note: Some("after a reboot".into()) };
        assert_eq!(payload_json(team::KIND_RESUMED, &encode(&note).unwrap()).unwrap()["note"], "after a reboot");
        assert_eq!(payload_json(KIND_LINE, br#"{"type":"user"}"#), None, "a transcript line is its own bytes");
        assert_eq!(payload_json("someone.else", b"\x01"), None);
        let damaged = payload_json(KIND_CHECKPOINT, b"\x09garbage").unwrap();
        assert!(damaged["undecodable"].as_str().unwrap().contains("unknown payload format 9"), "{damaged}");
    }
}
