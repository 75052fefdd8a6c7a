//! The session coordinator's key-values: every write is an event on `scope/<scope>` (a value
//! set, a key deleted, a whole scope deleted), and the `coordinator` projection folds them
//! into each key's current version and the positions of all its versions — so a value can
//! be read as it is, as it was at any time or log position, and with its whole history.
//!
//! Versions count a key's writes: the first value is version 1, and every later set or
//! delete adds one, so a deleted key that is set again continues its count. A scope deletion
//! is one event that deletes every live key of the scope.
//!
//! Keys (NUL separates names; scopes and keys never hold control characters):
//! - `K` ‖ scope ‖ 0 ‖ key → postcard(`KeyState`): the current version and its event.
//! - `H` ‖ scope ‖ 0 ‖ key ‖ 0 ‖ version (u64 BE) → the seq of that version's event.
//! - `S` ‖ scope → the number of live keys (a scope with none is not listed).
//! - `I` ‖ machine:project ‖ 0 ‖ instance → postcard(`Claim`): who holds a coordinator
//!   instance (`claude_1`, …), from `instance.claimed` / `instance.released` on
//!   `instances/<machine>:<project>`.
//!
//! Like every read model here it stores positions and counts; the values stay in the events.

use cclog_engine::{ApplyError, Event, Log, Projection, ProjectionState};
use serde::{Deserialize, Serialize};

use crate::events;
use crate::events::coordinator::{
    InstanceChange, KeyWrite, KIND_INSTANCE_CLAIMED, KIND_INSTANCE_RELEASED, KIND_KV_DELETE, KIND_KV_SET,
    KIND_SCOPE_DELETE,
};
use crate::{Error, Result};

const NAME: &str = "coordinator";

/// A held instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub holder: String,
    /// When it was claimed (µs since the epoch) and by which event.
    pub since_us: u64,
    pub seq: u64,
}

/// A key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    pub version: u64,
    /// The event of the current version.
    pub seq: u64,
    /// False once deleted (until set again).
    pub live: bool,
}

/// The `coordinator` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Coordinator;

fn key_key(scope: &str, key: &str) -> Vec<u8> {
    [b"K", scope.as_bytes(), b"\0", key.as_bytes()].concat()
}

fn scope_keys_prefix(scope: &str) -> Vec<u8> {
    [b"K", scope.as_bytes(), b"\0"].concat()
}

fn history_prefix(scope: &str, key: &str) -> Vec<u8> {
    [b"H", scope.as_bytes(), b"\0", key.as_bytes(), b"\0"].concat()
}

fn history_key(scope: &str, key: &str, version: u64) -> Vec<u8> {
    [history_prefix(scope, key), version.to_be_bytes().to_vec()].concat()
}

fn instance_key(machine_project: &str, instance: &str) -> Vec<u8> {
    [b"I", machine_project.as_bytes(), b"\0", instance.as_bytes()].concat()
}

fn scope_key(scope: &str) -> Vec<u8> {
    [b"S", scope.as_bytes()].concat()
}

impl Projection for Coordinator {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        if let Some(machine_project) = event.stream().strip_prefix("instances/") {
            let change: InstanceChange = events::decode("instance change", &event.payload)?;
            let stored = instance_key(machine_project, &change.instance);
            match event.kind() {
                KIND_INSTANCE_CLAIMED => {
                    let claim = Claim { holder: change.holder, since_us: event.header.ts_us, seq: event.seq() };
                    state.insert(stored, postcard::to_stdvec(&claim)?);
                }
                KIND_INSTANCE_RELEASED => state.remove(stored),
                _ => {}
            }
            return Ok(());
        }
        let Some(scope) = event.stream().strip_prefix("scope/") else { return Ok(()) };
        match event.kind() {
            KIND_KV_SET | KIND_KV_DELETE => {
                let write = KeyWrite::decode(&event.payload)?;
                write_key(state, scope, &write.key, event.seq(), write.value.is_some())?;
            }
            KIND_SCOPE_DELETE => {
                let mut live = Vec::new();
                let prefix = scope_keys_prefix(scope);
                for (stored, bytes) in state.scan_prefix(&prefix)? {
                    let current: KeyState = postcard::from_bytes(&bytes)?;
                    if current.live {
                        live.push(String::from_utf8_lossy(&stored[prefix.len()..]).into_owned());
                    }
                }
                for key in live {
                    write_key(state, scope, &key, event.seq(), false)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Records a new version of `key`: set (`live`) or deleted.
fn write_key(
    state: &mut ProjectionState<'_>,
    scope: &str,
    key: &str,
    seq: u64,
    live: bool,
) -> std::result::Result<(), ApplyError> {
    let stored = key_key(scope, key);
    let previous = match state.get(&stored)? {
        Some(bytes) => Some(postcard::from_bytes::<KeyState>(&bytes)?),
        None => None,
    };
    let was_live = previous.is_some_and(|previous| previous.live);
    if previous.is_none() && !live {
        return Ok(()); // deleting what never was: nothing to record
    }
    let version = previous.map_or(1, |previous| previous.version + 1);
    state.insert(stored, postcard::to_stdvec(&KeyState { version, seq, live })?);
    state.insert(history_key(scope, key, version), seq.to_be_bytes().to_vec());
    if was_live != live {
        let counter = scope_key(scope);
        let count = match state.get(&counter)? {
            Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into()?),
            None => 0,
        };
        let count = if live { count + 1 } else { count.saturating_sub(1) };
        if count == 0 {
            state.remove(counter);
        } else {
            state.insert(counter, count.to_be_bytes().to_vec());
        }
    }
    Ok(())
}

impl Coordinator {
    fn view(log: &Log) -> Result<cclog_engine::ProjectionView> {
        log.projection(NAME).ok_or(Error::NotOpen(NAME))
    }

    /// A key's current state, if it was ever written.
    pub fn key(log: &Log, scope: &str, key: &str) -> Result<Option<KeyState>> {
        Self::view(log)?.get(&key_key(scope, key))?.map(|bytes| decode(&bytes)).transpose()
    }

    /// The live keys of a scope, in order.
    pub fn keys(log: &Log, scope: &str) -> Result<Vec<String>> {
        let prefix = scope_keys_prefix(scope);
        let mut keys = Vec::new();
        for item in Self::view(log)?.scan_prefix(&prefix) {
            let (stored, bytes) = item?;
            if decode::<KeyState>(&bytes)?.live {
                keys.push(String::from_utf8_lossy(&stored[prefix.len()..]).into_owned());
            }
        }
        Ok(keys)
    }

    /// Every scope with a live key, in order.
    pub fn scopes(log: &Log) -> Result<Vec<String>> {
        Self::view(log)?
            .scan_prefix(b"S")
            .map(|item| item.map(|(stored, _)| String::from_utf8_lossy(&stored[1..]).into_owned()).map_err(Into::into))
            .collect()
    }

    /// The held instances of a machine and project, by name.
    pub fn claims(log: &Log, machine_project: &str) -> Result<Vec<(String, Claim)>> {
        let prefix = [b"I", machine_project.as_bytes(), b"\0"].concat();
        Self::view(log)?
            .scan_prefix(&prefix)
            .map(|item| {
                let (stored, bytes) = item?;
                Ok((String::from_utf8_lossy(&stored[prefix.len()..]).into_owned(), decode(&bytes)?))
            })
            .collect()
    }

    /// `(version, seq)` of every version of a key, oldest first.
    pub fn versions(log: &Log, scope: &str, key: &str) -> Result<Vec<(u64, u64)>> {
        let prefix = history_prefix(scope, key);
        Self::view(log)?
            .scan_prefix(&prefix)
            .map(|item| {
                let (stored, bytes) = item?;
                let version = stored[prefix.len()..].try_into().map(u64::from_be_bytes);
                let seq = bytes.as_slice().try_into().map(u64::from_be_bytes);
                match (version, seq) {
                    (Ok(version), Ok(seq)) => Ok((version, seq)),
                    _ => Err(Error::Damaged { projection: NAME, detail: "history entry".into() }),
                }
            })
            .collect()
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|error| Error::Damaged { projection: NAME, detail: error.to_string() })
}
