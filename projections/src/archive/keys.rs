//! The archive's keyspaces (listed in the module docs) and how a record is read from and
//! written to the fold's state.

use cclog_engine::{ApplyError, ProjectionState};
use serde::{Deserialize, Serialize};

pub(super) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = vec![prefix];
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

pub(super) fn load<T: for<'de> Deserialize<'de>>(bytes: Option<Vec<u8>>) -> std::result::Result<Option<T>, ApplyError> {
    Ok(bytes.map(|bytes| postcard::from_bytes(&bytes)).transpose()?)
}

pub(super) fn store<T: Serialize>(
    state: &mut ProjectionState<'_>,
    key: Vec<u8>,
    value: &T,
) -> std::result::Result<(), ApplyError> {
    state.insert(key, postcard::to_stdvec(value)?);
    Ok(())
}

pub(super) fn file_key(path: &str) -> Vec<u8> {
    key(b'F', &[path.as_bytes()])
}

pub(super) fn session_key(session: &str) -> Vec<u8> {
    key(b'S', &[session.as_bytes()])
}

/// `u` ‖ the uuid's 16 bytes, or `U` ‖ an id that is not a UUID as written.
pub(super) fn entry_key(uuid: &str) -> Vec<u8> {
    match super::records::CompactId::new(uuid) {
        super::records::CompactId::Uuid(bytes) => [&b"u"[..], &bytes].concat(),
        super::records::CompactId::Text(text) => key(b'U', &[text.as_bytes()]),
    }
}

pub(super) fn segment_key(path: &str, revision: u32, start: u64) -> Vec<u8> {
    let mut key = segment_prefix(path, revision);
    key.extend_from_slice(&start.to_be_bytes());
    key
}

pub(super) fn segment_prefix(path: &str, revision: u32) -> Vec<u8> {
    key(b'L', &[path.as_bytes(), &revision.to_be_bytes()])
}

pub(super) const RUN_KEY: u8 = b'R';

pub(super) fn run_key(run: &str) -> Vec<u8> {
    key(RUN_KEY, &[run.as_bytes()])
}

/// `Q` ‖ run ‖ 0 ‖ message index (big-endian) → the message's seq.
pub(super) fn run_message_key(run: &str, index: u64) -> Vec<u8> {
    key(b'Q', &[run.as_bytes(), &index.to_be_bytes()])
}

/// The day rows an API message at `at_ms` adds to: `D` ‖ UTC day (days since the epoch,
/// u32 BE) ‖ model for all projects, and `P` ‖ project ‖ 0 ‖ day ‖ model for its own.
pub(super) fn day_keys(project: &str, at_ms: i64, model: &str) -> [Vec<u8>; 2] {
    let day = utc_day(at_ms).to_be_bytes();
    [key(b'D', &[&day, model.as_bytes()]), key(b'P', &[project.as_bytes(), &day, model.as_bytes()])]
}

/// Days since the epoch of the UTC day holding `at_ms` (0 for times before 1970).
pub(super) fn utc_day(at_ms: i64) -> u32 {
    u32::try_from(at_ms.div_euclid(super::records::DAY_MS)).unwrap_or(0)
}

/// The first key of `D` rows (no project) or of a project's `P` rows on `day` or later.
pub(super) fn day_rows_from(project: Option<&str>, day: u32) -> (Vec<u8>, Vec<u8>) {
    match project {
        None => (vec![b'D'], key(b'D', &[&day.to_be_bytes()])),
        Some(project) => {
            let prefix = key(b'P', &[project.as_bytes(), b""]);
            let mut start = prefix.clone();
            start.extend_from_slice(&day.to_be_bytes());
            (prefix, start)
        }
    }
}
