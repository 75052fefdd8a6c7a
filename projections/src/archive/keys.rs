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

pub(super) fn entry_key(uuid: &str) -> Vec<u8> {
    key(b'U', &[uuid.as_bytes()])
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
