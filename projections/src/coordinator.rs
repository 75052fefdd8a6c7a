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
//! - `S` ‖ scope → two counts (u64 BE each): the live keys, and how many of them have a
//!   time to live (a scope with no live key is not listed).
//! - `I` ‖ machine:project ‖ 0 ‖ instance → postcard(`Claim`): who holds a coordinator
//!   instance (`claude_1`, …), from `instance.claimed` / `instance.released` on
//!   `instances/<machine>:<project>`.
//!
//! A value written with a time to live expires at its event's log time plus the TTL. The
//! projection keeps that instant with the key; whether it has passed is decided by whoever
//! reads, against the time they read at — so expiry needs no writer, and a rebuild decides
//! it exactly as before.
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
    /// When the current value expires (µs since the epoch), if it was written with a TTL.
    pub expires_us: Option<u64>,
}

impl KeyState {
    /// Whether the key holds a value at `now_us`: set, not deleted, and not expired.
    pub fn live_at(&self, now_us: u64) -> bool {
        self.live && self.expires_us.is_none_or(|expires| expires > now_us)
    }
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
        2 // 2: keys keep their expiry; scopes count the keys with one
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
                let expires_us = write.ttl_us.map(|ttl| event.header.ts_us.saturating_add(ttl));
                write_key(state, scope, &write.key, event.seq(), write.value.is_some(), expires_us)?;
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
                    write_key(state, scope, &key, event.seq(), false, None)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Records a new version of `key`: set (`live`, expiring at `expires_us` if given) or
/// deleted.
fn write_key(
    state: &mut ProjectionState<'_>,
    scope: &str,
    key: &str,
    seq: u64,
    live: bool,
    expires_us: Option<u64>,
) -> std::result::Result<(), ApplyError> {
    let stored = key_key(scope, key);
    let previous = match state.get(&stored)? {
        Some(bytes) => Some(postcard::from_bytes::<KeyState>(&bytes)?),
        None => None,
    };
    if previous.is_none() && !live {
        return Ok(()); // deleting what never was: nothing to record
    }
    let version = previous.map_or(1, |previous| previous.version + 1);
    let current = KeyState { version, seq, live, expires_us: expires_us.filter(|_| live) };
    state.insert(stored, postcard::to_stdvec(&current)?);
    state.insert(history_key(scope, key, version), seq.to_be_bytes().to_vec());
    let counted = |key: Option<KeyState>| match key {
        Some(key) if key.live => (1, u64::from(key.expires_us.is_some())),
        _ => (0, 0),
    };
    let (was, is) = (counted(previous), counted(Some(current)));
    if was != is {
        let counter = scope_key(scope);
        let (live_keys, with_ttl) = match state.get(&counter)? {
            Some(bytes) => scope_counts(&bytes)?,
            None => (0, 0),
        };
        let live_keys = (live_keys + is.0).saturating_sub(was.0);
        let with_ttl = (with_ttl + is.1).saturating_sub(was.1);
        if live_keys == 0 {
            state.remove(counter);
        } else {
            state.insert(counter, [live_keys.to_be_bytes(), with_ttl.to_be_bytes()].concat());
        }
    }
    Ok(())
}

/// A scope's counts: its live keys, and how many of them have a TTL.
fn scope_counts(bytes: &[u8]) -> std::result::Result<(u64, u64), std::array::TryFromSliceError> {
    let (live_keys, with_ttl) = bytes.split_at(bytes.len().min(8));
    Ok((u64::from_be_bytes(live_keys.try_into()?), u64::from_be_bytes(with_ttl.try_into()?)))
}

impl Coordinator {
    fn view(log: &Log) -> Result<cclog_engine::ProjectionView> {
        log.projection(NAME).ok_or(Error::NotOpen(NAME))
    }

    /// A key's current state, if it was ever written.
    pub fn key(log: &Log, scope: &str, key: &str) -> Result<Option<KeyState>> {
        Self::view(log)?.get(&key_key(scope, key))?.map(|bytes| decode(&bytes)).transpose()
    }

    /// The keys of a scope that hold a value at `now_us`, in order.
    pub fn keys(log: &Log, scope: &str, now_us: u64) -> Result<Vec<String>> {
        let prefix = scope_keys_prefix(scope);
        let mut keys = Vec::new();
        for item in Self::view(log)?.scan_prefix(&prefix) {
            let (stored, bytes) = item?;
            if decode::<KeyState>(&bytes)?.live_at(now_us) {
                keys.push(String::from_utf8_lossy(&stored[prefix.len()..]).into_owned());
            }
        }
        Ok(keys)
    }

    /// Every scope with a key that holds a value at `now_us`, in order. Only a scope whose
    /// every live key has a TTL needs its keys read.
    pub fn scopes(log: &Log, now_us: u64) -> Result<Vec<String>> {
        let mut scopes = Vec::new();
        for item in Self::view(log)?.scan_prefix(b"S") {
            let (stored, bytes) = item?;
            let scope = String::from_utf8_lossy(&stored[1..]).into_owned();
            let (live_keys, with_ttl) =
                scope_counts(&bytes).map_err(|_| Error::Damaged { projection: NAME, detail: "scope counts".into() })?;
            if live_keys > with_ttl || !Self::keys(log, &scope, now_us)?.is_empty() {
                scopes.push(scope);
            }
        }
        Ok(scopes)
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
