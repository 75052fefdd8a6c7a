//! The records a fold touches, each decoded once and stored once per `apply_all`: an
//! import chunk of thousands of lines of one file updates one file record and one session
//! record, not thousands.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use cclog_engine::{ApplyError, ProjectionState};
use serde::{Deserialize, Serialize};

use super::keys::{load, store};
use super::records::{DayUsage, FileState, RunRecord, SessionRecord};
use super::transcript::store_segment;

/// Decoded records of one key kind, each stored back once when a fold is done.
pub(super) struct Cached<T> {
    records: HashMap<Vec<u8>, T>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached { records: HashMap::new() }
    }
}

impl<T: Serialize + for<'de> Deserialize<'de>> Cached<T> {
    /// The record under `key`, read from the state the first time.
    pub(super) fn get(
        &mut self,
        state: &ProjectionState<'_>,
        key: Vec<u8>,
    ) -> std::result::Result<Option<&mut T>, ApplyError> {
        Ok(match self.records.entry(key) {
            Entry::Occupied(cached) => Some(cached.into_mut()),
            Entry::Vacant(vacant) => match load::<T>(state.get(vacant.key())?)? {
                Some(record) => Some(vacant.insert(record)),
                None => None,
            },
        })
    }

    /// The record under `key`, or `new()` when there is none.
    pub(super) fn get_or(
        &mut self,
        state: &ProjectionState<'_>,
        key: Vec<u8>,
        new: impl FnOnce() -> T,
    ) -> std::result::Result<&mut T, ApplyError> {
        Ok(match self.records.entry(key) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(vacant) => {
                let record = load::<T>(state.get(vacant.key())?)?.unwrap_or_else(new);
                vacant.insert(record)
            }
        })
    }

    pub(super) fn put(&mut self, key: Vec<u8>, record: T) {
        self.records.insert(key, record);
    }

    pub(super) fn store_all(self, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        self.records.into_iter().try_for_each(|(key, record)| store(state, key, &record))
    }
}

/// The file, session and run records a fold touches. Every event of a file updates its
/// file and session record, and every message of a run its run record; while events are
/// folded these records are read and written only through here, so each is decoded once
/// and encoded once per `apply_all` and the fold sees what it would one event at a time.
/// Everything touched is stored: a record is only fetched to be updated.
#[derive(Default)]
pub(super) struct Records {
    pub(super) files: Cached<FileState>,
    pub(super) sessions: Cached<SessionRecord>,
    pub(super) runs: Cached<RunRecord>,
    /// Usage rows by day (`D` and `P` keys).
    pub(super) days: Cached<DayUsage>,
}

/// A session record for `id` with nothing folded into it yet.
pub(super) fn new_session(id: &str) -> impl FnOnce() -> SessionRecord + '_ {
    move || SessionRecord { id: id.to_string(), ..Default::default() }
}

impl Records {
    pub(super) fn store_all(self, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        for file in self.files.records.values() {
            store_segment(state, file)?;
        }
        self.files.store_all(state)?;
        self.sessions.store_all(state)?;
        self.days.store_all(state)?;
        self.runs.store_all(state)
    }
}
