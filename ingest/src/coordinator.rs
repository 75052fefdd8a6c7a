//! The session coordinator's key-value store on the log: validates a write, checks its
//! expected version, and appends it as an event (see [`cclog_projections::coordinator`]);
//! reads a value as it is, as it was at a time or log position, or with its whole history.
//!
//! Writes are serialised across the process (one check-and-append at a time), so a
//! compare-and-set is exact however many clients race: the process that owns the log is the
//! only writer, and `cclog mcp` and `cclog kv` forward to it while `cclog serve` runs.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cclog_engine::{Event, Log, NewEvent};
use cclog_projections::coordinator::{Claim, Coordinator, KeyState};
use cclog_projections::events;
use cclog_projections::events::coordinator::{
    instances_stream, scope_stream, Imported, InstanceChange, KeyWrite, ScopeDelete, Writer, KIND_INSTANCE_CLAIMED,
    KIND_INSTANCE_RELEASED, KIND_KV_DELETE, KIND_KV_SET, KIND_SCOPE_DELETE,
};
use serde_json::Value;

use crate::{Error, Result};

/// The longest scope or key, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The largest value, as JSON text.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// The longest time to live: 365 days.
pub const MAX_TTL_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
/// The shortest time to live: a millisecond.
pub const MIN_TTL_SECONDS: f64 = 0.001;

/// How long a value lives after its write: a millisecond to 365 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(Duration);

impl Ttl {
    /// A TTL of `seconds`, refused outside the limits with a message that names them.
    pub fn seconds(seconds: f64) -> Result<Ttl> {
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&seconds) {
            return Err(Error::InvalidKv(format!(
                "a TTL of {seconds} seconds is out of range: give {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} seconds (365 days)"
            )));
        }
        Ok(Ttl(Duration::from_secs_f64(seconds)))
    }

    /// A TTL of `duration`, within the same limits.
    pub fn new(duration: Duration) -> Result<Ttl> {
        Ttl::seconds(duration.as_secs_f64())
    }

    fn micros(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX).max(1)
    }
}

/// Now, in µs since the epoch: the instant reads decide expiry at.
pub fn now_us() -> u64 {
    micros_since_epoch(SystemTime::now())
}

fn micros_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// One check-and-append at a time in this process.
static WRITES: Mutex<()> = Mutex::new(());

/// One version of a key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Version {
    pub version: u64,
    /// `None`: this version is the key's deletion.
    pub value: Option<Value>,
    pub writer: Writer,
    /// When it was written (RFC 3339, µs).
    pub at: String,
    pub at_us: u64,
    /// Its position in the log.
    pub seq: u64,
    /// For a value imported from another store: where from, and the times it kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<Box<Imported>>,
    /// For a value written with a TTL: when it expires (RFC 3339, µs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_us: Option<u64>,
    /// In a history: the value expired before the key was next written (or before now).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// What a store did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Written {
        version: u64,
        seq: u64,
        /// For a write with a TTL: when the value expires (RFC 3339, µs).
        expires_at: Option<String>,
    },
    /// The expected version was not the current one; nothing was written.
    Conflict { current: Option<Version> },
}

/// Why a watched key counts as changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeReason {
    /// A new value was stored.
    Written,
    /// The key (or its whole scope) was deleted.
    Deleted,
    /// Its value's time to live ran out.
    Expired,
}

impl ChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::Written => "written",
            ChangeReason::Deleted => "deleted",
            ChangeReason::Expired => "expired",
        }
    }
}

/// A watched key as a waiter finds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Watched {
    /// Changed: why, and the version that changed it (the deletion, or the lapsed value).
    Changed { reason: ChangeReason, version: Version },
    /// Not yet; the value the waiter saw expires at `expires_us`, if it has a TTL.
    Unchanged { expires_us: Option<u64> },
}

/// What one event of a scope recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordedChange {
    pub scope: String,
    /// `None` for a scope deletion.
    pub key: Option<String>,
    pub change: RecordedKind,
    /// The version it made (0 for a scope deletion, which makes one per key), its writer,
    /// time and log position; the value for a set.
    #[serde(flatten)]
    pub version: Version,
}

/// What kind of write an event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedKind {
    Set,
    Delete,
    ScopeDelete,
}

/// A point in the past to read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Everything up to and including this log position.
    Seq(u64),
    /// Everything written at or before this time.
    Time(SystemTime),
}

impl AsOf {
    /// A log position (digits) or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<AsOf> {
        if let Ok(seq) = text.parse::<u64>() {
            return Ok(AsOf::Seq(seq));
        }
        humantime::parse_rfc3339_weak(text).map(AsOf::Time).map_err(|_| {
            Error::InvalidKv(format!(
                "as_of {text:?}: give a log position (a number) or a time like 2026-11-21T10:00:00Z"
            ))
        })
    }
}

/// Checks a scope or key name.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidKv(format!("the {what} is empty; give a name such as \"progress\"")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidKv(format!("the {what} is {} bytes; the most is {MAX_NAME_LEN}", name.len())));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidKv(format!("the {what} {name:?} holds a control character; use printable text")));
    }
    Ok(())
}

/// A glob over scope names (`*`, `?`, `[...]`).
pub fn scope_pattern(pattern: &str) -> Result<glob::Pattern> {
    glob::Pattern::new(pattern).map_err(|error| {
        Error::InvalidKv(format!("the pattern {pattern:?} is not a glob ({error}); use * and ? such as \"task-*\""))
    })
}

/// The key-value store over `log`.
pub struct KvStore<'a> {
    log: &'a Log,
}

impl<'a> KvStore<'a> {
    pub fn new(log: &'a Log) -> KvStore<'a> {
        KvStore { log }
    }

    /// Sets `key` in `scope` to `value`, living for `ttl` if given; with `expected_version`,
    /// only if that is the key's current version (0: the key must not exist, or has
    /// expired).
    pub fn store(
        &self,
        scope: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        ttl: Option<Ttl>,
        writer: &Writer,
    ) -> Result<Stored> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        let text = value_text(value)?;
        let _one_at_a_time = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(expected) = expected_version {
            let current = live(Coordinator::key(self.log, scope, key)?, now_us());
            if current.map_or(0, |state| state.version) != expected {
                return Ok(Stored::Conflict {
                    current: current.map(|state| self.version(state.version, state.seq)).transpose()?,
                });
            }
        }
        let write = KeyWrite {
            key: key.to_string(),
            value: Some(text),
            writer: writer.clone(),
            imported: None,
            ttl_us: ttl.map(Ttl::micros),
        };
        let seq = self.append(scope, KIND_KV_SET, write.encode()?)?;
        let state = Coordinator::key(self.log, scope, key)?;
        let version = state.map_or(1, |state| state.version);
        let expires_at = state.and_then(|state| state.expires_us).map(rfc3339_micros);
        Ok(Stored::Written { version, seq, expires_at })
    }

    /// Sets `key` in `scope` to `value` brought in from another store, unless that is its
    /// value already (so that importing a store again adds nothing); whether it was written.
    pub fn import(&self, scope: &str, key: &str, value: &Value, imported: Imported, writer: &Writer) -> Result<bool> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        let text = value_text(value)?;
        let _one_at_a_time = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = live(Coordinator::key(self.log, scope, key)?, now_us()) {
            if self.version(current.version, current.seq)?.value.as_ref() == Some(value) {
                return Ok(false);
            }
        }
        let write = KeyWrite {
            key: key.to_string(),
            value: Some(text),
            writer: writer.clone(),
            imported: Some(imported),
            ttl_us: None,
        };
        self.append(scope, KIND_KV_SET, write.encode()?)?;
        Ok(true)
    }

    /// The current value of `key`, or its value as of a point in the past; `None` when it
    /// did not exist then, or had expired.
    pub fn retrieve(&self, scope: &str, key: &str, as_of: Option<AsOf>) -> Result<Option<Version>> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        let Some(as_of) = as_of else {
            return live(Coordinator::key(self.log, scope, key)?, now_us())
                .map(|state| self.version(state.version, state.seq))
                .transpose();
        };
        // Expiry as of then: at that time, or at the time of the event at that position.
        let then_us = match as_of {
            AsOf::Time(time) => micros_since_epoch(time),
            AsOf::Seq(position) => self.log.get(position)?.map_or_else(now_us, |event| event.header.ts_us),
        };
        let mut found = None;
        for (version, seq) in Coordinator::versions(self.log, scope, key)?.into_iter().rev() {
            if let AsOf::Seq(position) = as_of {
                if seq > position {
                    continue;
                }
            }
            let candidate = self.version(version, seq)?;
            if candidate.at_us > then_us {
                continue;
            }
            found = Some(candidate);
            break;
        }
        Ok(found.filter(|version| version.value.is_some() && version.expires_at_us.is_none_or(|at| at > then_us)))
    }

    /// Deletes `key`; its version, or `None` if it did not exist.
    pub fn delete(&self, scope: &str, key: &str, writer: &Writer) -> Result<Option<u64>> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        let _one_at_a_time = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        if live(Coordinator::key(self.log, scope, key)?, now_us()).is_none() {
            return Ok(None);
        }
        let write =
            KeyWrite { key: key.to_string(), value: None, writer: writer.clone(), imported: None, ttl_us: None };
        self.append(scope, KIND_KV_DELETE, write.encode()?)?;
        Ok(Coordinator::key(self.log, scope, key)?.map(|state| state.version))
    }

    /// Deletes every key of `scope`; how many there were.
    pub fn delete_scope(&self, scope: &str, writer: &Writer) -> Result<usize> {
        check_name("scope", scope)?;
        let _one_at_a_time = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = Coordinator::keys(self.log, scope, now_us())?.len();
        if keys > 0 {
            self.append(scope, KIND_SCOPE_DELETE, events::encode(&ScopeDelete { writer: writer.clone() })?)?;
        }
        Ok(keys)
    }

    /// The keys of `scope` that hold a value (not deleted, not expired).
    pub fn keys(&self, scope: &str) -> Result<Vec<String>> {
        check_name("scope", scope)?;
        Ok(Coordinator::keys(self.log, scope, now_us())?)
    }

    /// Scopes with keys that hold a value, optionally only those matching a glob.
    pub fn scopes(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let pattern = pattern.map(scope_pattern).transpose()?;
        let mut scopes = Coordinator::scopes(self.log, now_us())?;
        scopes.retain(|scope| pattern.as_ref().is_none_or(|pattern| pattern.matches(scope)));
        Ok(scopes)
    }

    /// Every version of `key`, oldest first: each value (or deletion), who wrote it, when,
    /// where in the log, and whether it expired before the next.
    pub fn history(&self, scope: &str, key: &str) -> Result<Vec<Version>> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        let mut history = Coordinator::versions(self.log, scope, key)?
            .into_iter()
            .map(|(version, seq)| self.version(version, seq))
            .collect::<Result<Vec<Version>>>()?;
        let now = now_us();
        let next_writes: Vec<u64> = history.iter().skip(1).map(|next| next.at_us).chain([now]).collect();
        for (version, next_write) in history.iter_mut().zip(next_writes) {
            version.expired = version.expires_at_us.is_some_and(|expires| expires <= next_write);
        }
        Ok(history)
    }

    /// Whether `key` changed since version `after_version` at `now_us`: a version above it
    /// (written, or deleted), or — when `expiry_counts` — that very version lapsing. A waiter
    /// that did not see the value live (it asked for "the next change" of an expired key)
    /// passes `expiry_counts: false`, so only a new write wakes it.
    pub fn watched(
        &self,
        scope: &str,
        key: &str,
        after_version: u64,
        expiry_counts: bool,
        now_us: u64,
    ) -> Result<Watched> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        let Some(state) = Coordinator::key(self.log, scope, key)? else {
            return Ok(Watched::Unchanged { expires_us: None });
        };
        let reason = if state.version > after_version {
            match (state.live, state.live_at(now_us)) {
                (false, _) => ChangeReason::Deleted,
                (true, false) => ChangeReason::Expired,
                (true, true) => ChangeReason::Written,
            }
        } else if state.version == after_version && expiry_counts && state.live && !state.live_at(now_us) {
            ChangeReason::Expired
        } else {
            let pending = state.version == after_version && expiry_counts && state.live;
            return Ok(Watched::Unchanged { expires_us: state.expires_us.filter(|_| pending) });
        };
        Ok(Watched::Changed { reason, version: self.version(state.version, state.seq)? })
    }

    /// Where a waiter for "the next change" of `key` starts: its version now (0: never
    /// written), and whether its lapsing counts (only if it holds a value now).
    pub fn watch_from(&self, scope: &str, key: &str, now_us: u64) -> Result<(u64, bool)> {
        check_name("scope", scope)?;
        check_name("key", key)?;
        Ok(Coordinator::key(self.log, scope, key)?.map_or((0, false), |state| (state.version, state.live_at(now_us))))
    }

    /// What a `kv.set`, `kv.delete` or `scope.delete` event of `scope` recorded; `None` for
    /// an event of another kind.
    pub fn recorded_change(&self, scope: &str, event: &Event) -> Result<Option<RecordedChange>> {
        let (key, change) = match event.kind() {
            KIND_KV_SET => (Some(KeyWrite::decode(&event.payload)?.key), RecordedKind::Set),
            KIND_KV_DELETE => (Some(KeyWrite::decode(&event.payload)?.key), RecordedKind::Delete),
            KIND_SCOPE_DELETE => (None, RecordedKind::ScopeDelete),
            _ => return Ok(None),
        };
        let number = match &key {
            Some(key) => Coordinator::versions(self.log, scope, key)?
                .into_iter()
                .rev()
                .find(|(_, seq)| *seq == event.seq())
                .map_or(0, |(version, _)| version),
            None => 0,
        };
        let version = version_of(number, event)?;
        Ok(Some(RecordedChange { scope: scope.to_string(), key, change, version }))
    }

    fn append(&self, scope: &str, kind: &str, payload: Vec<u8>) -> Result<u64> {
        let appended = self.log.append_blocking(vec![NewEvent::new(scope_stream(scope), kind, payload)])?;
        appended
            .first()
            .map(|appended| appended.seq)
            .ok_or_else(|| Error::InvalidKv("the log acknowledged no event".into()))
    }

    /// Version `version` of a key, written by the event at `seq`.
    fn version(&self, version: u64, seq: u64) -> Result<Version> {
        version_of(version, &self.durable_event(seq)?)
    }

    /// The event at `seq`, waiting briefly if the projection is a moment ahead of the
    /// durable head (it is updated with the write, just before the fsync).
    fn durable_event(&self, seq: u64) -> Result<Event> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(event) = self.log.get(seq)? {
                return Ok(event);
            }
            if std::time::Instant::now() > deadline {
                return Err(cclog_engine::Error::Corruption {
                    at: Some(seq),
                    detail: "a key-value version's event did not become durable".into(),
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A value as the JSON text a write stores, refused past [`MAX_VALUE_LEN`].
fn value_text(value: &Value) -> Result<String> {
    let text = serde_json::to_string(value).map_err(|error| Error::InvalidKv(error.to_string()))?;
    if text.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidKv(format!(
            "the value is {} bytes of JSON; the most is {MAX_VALUE_LEN} (1 MiB)",
            text.len()
        )));
    }
    Ok(text)
}

/// µs since the epoch as RFC 3339 with µs.
fn rfc3339_micros(us: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(us)).to_string()
}

/// The key's state if it holds a value at `now_us`.
fn live(state: Option<KeyState>, now_us: u64) -> Option<KeyState> {
    state.filter(|state| state.live_at(now_us))
}

/// The version a `kv.set`, `kv.delete` or `scope.delete` event wrote.
fn version_of(version: u64, event: &Event) -> Result<Version> {
    let (value, writer, imported, ttl_us) = match event.kind() {
        KIND_SCOPE_DELETE => (None, events::decode::<ScopeDelete>("scope delete", &event.payload)?.writer, None, None),
        _ => {
            let write = KeyWrite::decode(&event.payload)?;
            let value = write
                .value
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|error| Error::InvalidKv(format!("a stored value is not JSON: {error}")))?;
            (value, write.writer, write.imported.map(Box::new), write.ttl_us)
        }
    };
    let expires_at_us = ttl_us.map(|ttl| event.header.ts_us.saturating_add(ttl));
    Ok(Version {
        version,
        value,
        writer,
        at: rfc3339_micros(event.header.ts_us),
        at_us: event.header.ts_us,
        seq: event.seq(),
        imported,
        expires_at: expires_at_us.map(rfc3339_micros),
        expires_at_us,
        expired: false,
    })
}

/// Until when each held instance is leased, by `machine:project:instance`: its holder's
/// last tool call plus the holder's own lease. Kept in memory by the process that owns the
/// log; after a restart an instance's lease runs from its claim, for the lease of whoever
/// asks.
static LEASED_UNTIL: Mutex<BTreeMap<String, SystemTime>> = Mutex::new(BTreeMap::new());

/// An instance that was signed on, and who else is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SignedOn {
    pub instance: String,
    /// The other held instances, with their holders.
    pub others: Vec<(String, String)>,
}

/// Coordinator instances (`claude_1`, `claude_2`, …) of one machine and project: claimed by
/// one holder at a time, reclaimable once the holder has been silent for its lease.
pub struct Instances<'a> {
    log: &'a Log,
    machine_project: String,
    /// The lease of the caller: how long its instance stays its own after each call.
    lease: Duration,
}

impl<'a> Instances<'a> {
    pub fn new(log: &'a Log, machine: &str, project: &str, lease: Duration) -> Instances<'a> {
        Instances { log, machine_project: format!("{machine}:{project}"), lease }
    }

    fn lease_key(&self, instance: &str) -> String {
        format!("{}:{instance}", self.machine_project)
    }

    /// Renews `instance`'s lease: it stays its holder's for this caller's lease from now.
    pub fn touch(&self, instance: &str) {
        LEASED_UNTIL
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.lease_key(instance), SystemTime::now() + self.lease);
    }

    /// Claims `requested`, or the first free `claude_N`, for `holder`. A held instance is
    /// free again once its holder has been silent for the holder's lease; an instance
    /// `holder` holds already is simply kept.
    pub fn sign_on(&self, requested: Option<&str>, holder: &str) -> Result<SignedOn> {
        if let Some(requested) = requested {
            check_name("session_id", requested)?;
        }
        let _one_at_a_time = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        let claims: BTreeMap<String, Claim> =
            Coordinator::claims(self.log, &self.machine_project)?.into_iter().collect();
        let now = SystemTime::now();
        let leased_until = LEASED_UNTIL.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let held_by_other = |instance: &str| {
            claims.get(instance).is_some_and(|claim| {
                let until = leased_until
                    .get(&self.lease_key(instance))
                    .copied()
                    .unwrap_or(UNIX_EPOCH + Duration::from_micros(claim.since_us) + self.lease);
                claim.holder != holder && now < until
            })
        };
        let instance = match requested {
            Some(requested) if held_by_other(requested) => {
                return Err(Error::InvalidKv(format!(
                    "{requested} is held by {}; sign on without session_id to get a free instance",
                    claims.get(requested).map_or("someone", |claim| claim.holder.as_str())
                )));
            }
            Some(requested) => requested.to_string(),
            None => (1..).map(|n| format!("claude_{n}")).find(|name| !held_by_other(name)).unwrap_or_default(),
        };
        let change = InstanceChange { instance: instance.clone(), holder: holder.to_string() };
        self.log.append_blocking(vec![NewEvent::new(
            instances_stream(&self.machine_project),
            KIND_INSTANCE_CLAIMED,
            events::encode(&change)?,
        )])?;
        drop(leased_until);
        self.touch(&instance);
        let others = claims
            .into_iter()
            .filter(|(name, _)| *name != instance)
            .map(|(name, claim)| (name, claim.holder))
            .collect();
        Ok(SignedOn { instance, others })
    }

    /// Releases `instance`; whether it was held.
    pub fn sign_off(&self, instance: &str) -> Result<bool> {
        check_name("session_id", instance)?;
        let _one_at_a_time = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        let held = Coordinator::claims(self.log, &self.machine_project)?.iter().any(|(name, _)| name == instance);
        if held {
            let change = InstanceChange { instance: instance.to_string(), holder: String::new() };
            self.log.append_blocking(vec![NewEvent::new(
                instances_stream(&self.machine_project),
                KIND_INSTANCE_RELEASED,
                events::encode(&change)?,
            )])?;
        }
        LEASED_UNTIL.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.lease_key(instance));
        Ok(held)
    }

    /// The held instances and their holders.
    pub fn held(&self) -> Result<Vec<(String, Claim)>> {
        Ok(Coordinator::claims(self.log, &self.machine_project)?)
    }
}

/// Who a coordinator is: the machine and project its scopes are prefixed with, and how
/// long a silent holder keeps its instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub machine: String,
    pub project: String,
    #[serde(skip)]
    pub lease: Duration,
}

/// How long a silent holder keeps its instance by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);
/// The longest lease a caller may ask for: 30 days.
pub const MAX_LEASE_SECONDS: u64 = 30 * 24 * 3600;

impl Identity {
    /// This machine (its hostname) and the project of `dir` (its git origin's `owner/repo`,
    /// else its name), with the default lease.
    pub fn detect(dir: &std::path::Path) -> Identity {
        Identity { machine: detect_machine(), project: detect_project(dir), lease: DEFAULT_LEASE }
    }

    /// `machine:project:`, the prefix of every scope.
    pub fn prefix(&self) -> String {
        format!("{}:{}:", self.machine, self.project)
    }

    /// `scope` with this identity's `machine:project:` prefix, once the name is valid.
    pub fn full_scope(&self, scope: &str) -> Result<String> {
        check_name("scope", scope)?;
        Ok(format!("{}{scope}", self.prefix()))
    }
}

/// This machine's name: its hostname, else `localhost`.
pub fn detect_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The project `dir` belongs to: `owner/repo` from its git `origin` remote (https or ssh),
/// else the directory's name.
pub fn detect_project(dir: &std::path::Path) -> String {
    let remote = dir.ancestors().find_map(|ancestor| {
        let config = std::fs::read_to_string(ancestor.join(".git").join("config")).ok()?;
        origin_url(&config)
    });
    remote
        .as_deref()
        .and_then(owner_repo)
        .or_else(|| dir.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "default".into())
}

/// The `url` of `[remote "origin"]` in a git config file.
fn origin_url(config: &str) -> Option<String> {
    let mut in_origin = false;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
        } else if in_origin {
            if let Some((name, value)) = line.split_once('=') {
                if name.trim() == "url" {
                    return Some(value.trim().to_string());
                }
            }
        }
    }
    None
}

/// `owner/repo` from `https://host/owner/repo(.git)`, `git@host:owner/repo(.git)` or
/// `ssh://git@host/owner/repo(.git)`.
pub fn owner_repo(url: &str) -> Option<String> {
    let path =
        if let Some((_, rest)) = url.split_once("://") { rest.split_once('/')?.1 } else { url.split_once(':')?.1 };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplit('/');
    let repo = parts.next().filter(|repo| !repo.is_empty())?;
    let owner = parts.next().filter(|owner| !owner.is_empty())?;
    Some(format!("{owner}/{repo}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_repo_from_https_and_ssh_remotes() {
        for url in [
            "https://github.com/acme/widgets.git",
            "https://github.com/acme/widgets",
            "git@github.com:acme/widgets.git",
            "ssh://git@github.com/acme/widgets.git",
            "https://gitlab.example.com/group/acme/widgets.git/",
        ] {
            assert_eq!(owner_repo(url).as_deref(), Some("acme/widgets"), "{url}");
        }
        assert_eq!(owner_repo("widgets"), None);
        let config = "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://x/y/z\n[remote \"origin\"]\n\turl = git@github.com:acme/widgets.git\n";
        assert_eq!(origin_url(config).as_deref(), Some("git@github.com:acme/widgets.git"));
    }
}
