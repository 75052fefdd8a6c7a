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
//! and a decoder for the old one (`run.started` is at format 2; everything else at 1).

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
