//! The projection framework. A projection is a pure fold over the log into a keyspace of
//! its own (`'P' ‖ name ‖ 0x00 ‖ generation ‖ key` in the log tree). The writer applies
//! every projection to every event and writes the result in the same sled batch that stores
//! the event, so read models can never disagree with the log after a crash. Each projection
//! has a version and a cursor (the last seq folded in); a changed version, or a missing
//! projection, is rebuilt on open by folding the whole log into a fresh generation and
//! swapping it in.
//!
//! A projection names its *point keys* (`Projection::is_point_key`): keys read one at a
//! time, never scanned, that arrive in no order. Those are kept in sorted runs
//! (`point_runs`) rather than one sled key each; everything else is a key of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::point_runs::{PointWrite, Runs, SharedRuns, RESERVED};
use crate::store::{meta_key, projection_name_prefix, projection_prefix, Store};
use crate::{Error, Event, Result};

/// What a projection's fold may fail with. The events that caused it are not written.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

/// A read model folded from the log.
///
/// # Invariants
/// `apply` is deterministic: the same events in the same order give the same state, so that
/// a rebuild reproduces the incremental state exactly. It must accept every event, including
/// kinds it does not know (it ignores those).
pub trait Projection: Send + Sync + 'static {
    /// Unique, stable name; it names the projection's keyspace. No '/' and no control
    /// characters.
    fn name(&self) -> &str;
    /// Bump it when the fold or its encoding changes: the projection is rebuilt on open.
    fn version(&self) -> u32;
    /// Folds one event into the state.
    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError>;

    /// Folds consecutive events, in order: the events of one append while live, a chunk of
    /// the log while rebuilding. A projection whose events keep updating the same records
    /// overrides it to decode each record once and store it once for the lot.
    ///
    /// # Invariants
    /// It leaves exactly the state that `apply` on each event in turn leaves, whatever
    /// the events and however the log is cut into calls (rebuilds check this).
    fn apply_all(&self, events: &[Event], state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        events.iter().try_for_each(|event| self.apply(event, state))
    }

    /// Whether `key` is a point key: read only by [`ProjectionState::get`] and
    /// [`ProjectionView::get`], never scanned, and written in no particular order (an id's
    /// record). Point keys are stored in sorted runs, a group's writes at a time, instead
    /// of one store key each (`point_runs`); `scan_prefix` does not see them. The answer
    /// for a key never changes within a version.
    fn is_point_key(&self, _key: &[u8]) -> bool {
        false
    }
}

type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

fn prefixed(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(prefix.len() + key.len());
    full.extend_from_slice(prefix);
    full.extend_from_slice(key);
    full
}

/// A projection's view of its own keys during a fold: reads see the writes of earlier
/// events not yet committed; writes are collected and committed with the events.
pub struct ProjectionState<'a> {
    tree: &'a sled::Tree,
    prefix: &'a [u8],
    projection: &'a dyn Projection,
    runs: &'a Runs,
    committed: &'a Overlay,
    pending: &'a mut Overlay,
}

impl ProjectionState<'_> {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.pending.get(key).or_else(|| self.committed.get(key)) {
            return Ok(value.clone());
        }
        if self.projection.is_point_key(key) {
            return Ok(self.runs.get(self.tree, self.prefix, key)?.flatten());
        }
        Ok(self.tree.get(prefixed(self.prefix, key))?.map(|value| value.to_vec()))
    }

    /// Stores `value` under `key`, which must not start with `0xFF` (sorted runs keep their
    /// pages there).
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let key = key.into();
        debug_assert!(key.first() != Some(&RESERVED), "projection keys starting with 0xFF are reserved");
        self.pending.insert(key, Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), None);
    }

    /// Every key and value under `prefix`, in key order, as the fold sees them now.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for item in self.tree.scan_prefix(prefixed(self.prefix, prefix)) {
            let (key, value) = item?;
            merged.insert(key[self.prefix.len()..].to_vec(), Some(value.to_vec()));
        }
        for overlay in [self.committed, &*self.pending] {
            for (key, value) in overlay.range(prefix.to_vec()..).take_while(|(key, _)| key.starts_with(prefix)) {
                merged.insert(key.clone(), value.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(key, value)| value.map(|value| (key, value))).collect())
    }
}

/// Stored under `'M' ‖ "projection/" ‖ name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectionMeta {
    pub version: u32,
    pub generation: u64,
    /// Last seq folded in; `None` while the log is empty.
    pub cursor: Option<u64>,
}

pub(crate) fn projection_meta_key(name: &str) -> Vec<u8> {
    meta_key(format!("projection/{name}").as_bytes())
}

/// Read access to a projection's current state.
#[derive(Clone)]
pub struct ProjectionView {
    tree: sled::Tree,
    keyspace: Keyspace,
}

impl ProjectionView {
    pub(crate) fn new(tree: sled::Tree, keyspace: Keyspace) -> Self {
        ProjectionView { tree, keyspace }
    }

    /// The value of a key, a point key or not.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.keyspace.projection.is_point_key(key) {
            return crate::point_runs::read(&self.keyspace.runs, &self.tree, &self.keyspace.prefix, key);
        }
        Ok(self.tree.get(prefixed(&self.keyspace.prefix, key))?.map(|value| value.to_vec()))
    }

    /// Every key under `prefix` with its value, in key order (point keys are not scanned).
    pub fn scan_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        let strip = self.keyspace.prefix.len();
        self.tree
            .scan_prefix(prefixed(&self.keyspace.prefix, prefix))
            .map(move |item| item.map(|(key, value)| (key[strip..].to_vec(), value.to_vec())).map_err(Error::from))
    }

    /// The keys under `prefix` from `start` (inclusive, a key under `prefix`) on, in key order.
    pub fn scan_from(&self, prefix: &[u8], start: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        let strip = self.keyspace.prefix.len();
        let whole = prefixed(&self.keyspace.prefix, prefix);
        self.tree
            .range(prefixed(&self.keyspace.prefix, start)..)
            .take_while(move |item| item.as_ref().map_or(true, |(key, _)| key.starts_with(&whole)))
            .map(move |item| item.map(|(key, value)| (key[strip..].to_vec(), value.to_vec())).map_err(Error::from))
    }

    /// The last key under `prefix` that is at or before `key` (a key under `prefix`), with
    /// its value: what a positional index answers "which segment holds position N" with.
    pub fn last_at_or_before(&self, prefix: &[u8], key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let strip = self.keyspace.prefix.len();
        let whole = prefixed(&self.keyspace.prefix, prefix);
        match self.tree.range(whole.clone()..=prefixed(&self.keyspace.prefix, key)).next_back() {
            Some(item) => {
                let (found, value) = item?;
                Ok(found.starts_with(&whole).then(|| (found[strip..].to_vec(), value.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Every key and value, point keys too, in key order: what a projection holds, however
    /// its point keys are cut into runs. Point keys are read from the runs as they were when
    /// it started; a merge meanwhile may end it with an error, so it is for a quiet log
    /// (tests, tools).
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        let runs = self.keyspace.runs.read().map(|runs| runs.clone()).unwrap_or_default();
        let points = runs.entries(&self.tree, &self.keyspace.prefix).collect::<Vec<_>>();
        merge_sorted(plain_entries(&self.tree, &self.keyspace.prefix), points.into_iter())
    }
}

/// A keyspace's keys that are not point keys, with their values, in key order.
fn plain_entries(tree: &sled::Tree, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
    let strip = prefix.len();
    tree.range(prefix.to_vec()..prefixed(prefix, &[RESERVED]))
        .map(move |item| item.map(|(key, value)| (key[strip..].to_vec(), value.to_vec())).map_err(Error::from))
}

/// Two sequences sorted by key, as one; an error ends it.
fn merge_sorted(
    left: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    right: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
    let (mut left, mut right) = (left.peekable(), right.peekable());
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some(Ok((left_key, _))), Some(Ok((right_key, _)))) if right_key < left_key => right.next(),
        (Some(_), _) => left.next(),
        (None, _) => right.next(),
    })
}

/// Where a projection's current state is: its keyspace prefix and its sorted runs (and the
/// projection, which says which keys are in those).
#[derive(Clone)]
pub(crate) struct Keyspace {
    pub prefix: Vec<u8>,
    pub runs: SharedRuns,
    pub projection: Arc<dyn Projection>,
}

/// The current keyspace of every projection, shared between the writer and readers.
pub(crate) type ProjectionPrefixes = Arc<RwLock<HashMap<String, Keyspace>>>;

/// What a rebuild found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub projection: String,
    pub version: u32,
    pub events: u64,
    /// Whether the rebuilt state equals the state it replaced.
    pub equal_to_previous: bool,
}

/// One registered projection with its live keyspace and pending writes.
pub(crate) struct ProjectionSlot {
    pub projection: Arc<dyn Projection>,
    pub meta: ProjectionMeta,
    pub prefix: Vec<u8>,
    /// Its sorted runs as the writer sees them, and as readers do.
    runs: Runs,
    shared_runs: SharedRuns,
    /// The runs once the group being written is applied.
    staged_runs: Option<Runs>,
    /// Writes of the requests accepted so far in the current commit group.
    pub committed: Overlay,
    /// Writes of the request being staged.
    pub pending: Overlay,
}

impl ProjectionSlot {
    fn new(store: &Store, projection: Arc<dyn Projection>, meta: ProjectionMeta) -> Result<Self> {
        let prefix = projection_prefix(projection.name(), meta.generation);
        let runs = Runs::load(&store.log, &prefix)?;
        Ok(ProjectionSlot {
            projection,
            meta,
            prefix,
            shared_runs: Arc::new(RwLock::new(runs.clone())),
            runs,
            staged_runs: None,
            committed: Overlay::new(),
            pending: Overlay::new(),
        })
    }

    /// Where readers find this slot's state.
    pub fn keyspace(&self) -> Keyspace {
        Keyspace {
            prefix: self.prefix.clone(),
            runs: Arc::clone(&self.shared_runs),
            projection: Arc::clone(&self.projection),
        }
    }

    /// Bytes that merging runs could add to the next group's writes.
    pub fn merge_bytes(&self) -> u64 {
        self.runs.merge_bytes_after_next()
    }

    /// Folds one append request's events into its pending writes.
    pub fn apply_all(&mut self, tree: &sled::Tree, events: &[Event]) -> Result<()> {
        let mut state = ProjectionState {
            tree,
            prefix: &self.prefix,
            projection: &*self.projection,
            runs: &self.runs,
            committed: &self.committed,
            pending: &mut self.pending,
        };
        self.projection
            .apply_all(events, &mut state)
            .map_err(|error| Error::Projection { name: self.projection.name().to_string(), detail: error.to_string() })
    }

    /// The staged request was accepted: its writes join the group.
    pub fn accept_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.committed.extend(pending);
    }

    pub fn reject_pending(&mut self) {
        self.pending.clear();
    }

    /// Moves the group's writes into the commit batch, its point keys as a sorted run;
    /// [`ProjectionSlot::applied`] says the batch is in the tree.
    pub fn drain_into(&mut self, tree: &sled::Tree, batch: &mut sled::Batch) -> Result<()> {
        let overlay = std::mem::take(&mut self.committed);
        self.staged_runs = Some(drain_overlay(tree, &*self.projection, &self.prefix, &self.runs, overlay, batch)?);
        Ok(())
    }

    /// The group's batch is applied: its runs are the runs, for the writer and readers.
    pub fn applied(&mut self) {
        if let Some(runs) = self.staged_runs.take() {
            self.set_runs(runs);
        }
    }

    /// The runs now stored, for the writer and readers alike.
    fn set_runs(&mut self, runs: Runs) {
        if let Ok(mut shared) = self.shared_runs.write() {
            *shared = runs.clone();
        }
        self.runs = runs;
    }
}

/// Puts an overlay's writes into `batch`, and its point keys into a new sorted run;
/// returns the runs as they are once `batch` is applied.
fn drain_overlay(
    tree: &sled::Tree,
    projection: &dyn Projection,
    prefix: &[u8],
    runs: &Runs,
    overlay: Overlay,
    batch: &mut sled::Batch,
) -> Result<Runs> {
    let mut points: Vec<PointWrite> = Vec::new();
    for (key, value) in overlay {
        if projection.is_point_key(&key) {
            points.push((key, value));
            continue;
        }
        match value {
            Some(value) => batch.insert(prefixed(prefix, &key), value),
            None => batch.remove(prefixed(prefix, &key)),
        }
    }
    runs.write(tree, prefix, points, batch)
}

/// Opens every projection, rebuilding or catching up those that are behind the log.
pub(crate) fn open_projections(
    store: &Store,
    projections: Vec<Arc<dyn Projection>>,
    head_seq: Option<u64>,
) -> Result<Vec<ProjectionSlot>> {
    let mut names = std::collections::HashSet::new();
    let mut slots = Vec::with_capacity(projections.len());
    for projection in projections {
        let name = projection.name().to_string();
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) || !names.insert(name.clone()) {
            return Err(Error::Projection {
                name,
                detail: "names must be unique, non-empty, without '/' or control characters".into(),
            });
        }
        let stored = match store.log.get(projection_meta_key(&name))? {
            Some(bytes) => Some(postcard::from_bytes::<ProjectionMeta>(&bytes).map_err(|error| Error::Corruption {
                at: None,
                detail: format!("projection {name} metadata: {error}"),
            })?),
            None => None,
        };
        let slot = match stored {
            Some(meta) if meta.version == projection.version() => {
                let mut slot = ProjectionSlot::new(store, projection, meta)?;
                catch_up(store, &mut slot, head_seq)?;
                slot
            }
            _ => rebuild_slot(store, projection, stored, head_seq)?.0,
        };
        drop_stray_generations(store, &name, slot.meta.generation)?;
        slots.push(slot);
    }
    Ok(slots)
}

/// Folds the events after the slot's cursor (there are none unless a bug left it behind)
/// and records the new cursor.
fn catch_up(store: &Store, slot: &mut ProjectionSlot, head_seq: Option<u64>) -> Result<()> {
    let Some(head) = head_seq else { return Ok(()) };
    let from = match slot.meta.cursor {
        Some(cursor) if cursor >= head => return Ok(()),
        Some(cursor) => cursor + 1,
        None => 0,
    };
    let (_, runs) = fold_range(store, &slot.projection, &slot.prefix, slot.runs.clone(), from, head)?;
    slot.set_runs(runs);
    slot.meta.cursor = Some(head);
    store.log.insert(projection_meta_key(slot.projection.name()), encode_meta(&slot.meta)?)?;
    Ok(())
}

pub(crate) fn encode_meta(meta: &ProjectionMeta) -> Result<Vec<u8>> {
    postcard::to_stdvec(meta).map_err(|error| Error::Storage(format!("projection metadata: {error}")))
}

/// How many events a rebuild folds before writing its buffered state.
const REBUILD_CHUNK: u64 = 16_384;
/// How many events a rebuild hands `apply_all` at a time.
const FOLD_CHUNK: usize = 1024;

/// Folds events `from..=to` into the keyspace at `prefix` whose sorted runs are `runs`, in
/// chunks. Returns how many events it folded and the runs after them.
fn fold_range(
    store: &Store,
    projection: &Arc<dyn Projection>,
    prefix: &[u8],
    mut runs: Runs,
    from: u64,
    to: u64,
) -> Result<(u64, Runs)> {
    let empty = Overlay::new();
    let mut pending = Overlay::new();
    let mut folded = 0u64;
    let mut unwritten = 0u64;
    let mut chunk = Vec::with_capacity(FOLD_CHUNK);
    let mut events = store.events_between(from, to + 1).peekable();
    while events.peek().is_some() {
        chunk.clear();
        for event in events.by_ref().take(FOLD_CHUNK) {
            chunk.push(event?);
        }
        let mut state = ProjectionState {
            tree: &store.log,
            prefix,
            projection: &**projection,
            runs: &runs,
            committed: &empty,
            pending: &mut pending,
        };
        projection.apply_all(&chunk, &mut state).map_err(|error| Error::Projection {
            name: projection.name().to_string(),
            detail: format!("at seqs {}..: {error}", chunk.first().map_or(from, Event::seq)),
        })?;
        folded += chunk.len() as u64;
        unwritten += chunk.len() as u64;
        if unwritten >= REBUILD_CHUNK {
            runs = write_overlay(store, &**projection, prefix, &runs, &mut pending)?;
            unwritten = 0;
        }
    }
    runs = write_overlay(store, &**projection, prefix, &runs, &mut pending)?;
    Ok((folded, runs))
}

fn write_overlay(
    store: &Store,
    projection: &dyn Projection,
    prefix: &[u8],
    runs: &Runs,
    pending: &mut Overlay,
) -> Result<Runs> {
    let mut batch = sled::Batch::default();
    let runs = drain_overlay(&store.log, projection, prefix, runs, std::mem::take(pending), &mut batch)?;
    store.log.apply_batch(batch)?;
    Ok(runs)
}

/// Folds the whole log into a fresh generation, swaps it in and removes the old one.
/// Returns the new slot and whether the new state equals the old.
pub(crate) fn rebuild_slot(
    store: &Store,
    projection: Arc<dyn Projection>,
    previous: Option<ProjectionMeta>,
    head_seq: Option<u64>,
) -> Result<(ProjectionSlot, RebuildReport)> {
    let name = projection.name().to_string();
    let generation = previous.map_or(0, |meta| meta.generation + 1);
    let fresh = projection_prefix(&name, generation);
    // A generation left half-built by a crash is thrown away, never trusted.
    remove_prefix(store, &fresh)?;
    let events = match head_seq {
        Some(head) => fold_range(store, &projection, &fresh, Runs::default(), 0, head)?.0,
        None => 0,
    };
    let equal_to_previous = match previous {
        Some(old) => states_equal(store, &projection_prefix(&name, old.generation), &fresh)?,
        None => store.log.scan_prefix(&fresh).next().is_none(),
    };
    let meta = ProjectionMeta { version: projection.version(), generation, cursor: head_seq };
    store.log.insert(projection_meta_key(&name), encode_meta(&meta)?)?;
    if let Some(old) = previous {
        remove_prefix(store, &projection_prefix(&name, old.generation))?;
    }
    let report = RebuildReport { projection: name, version: meta.version, events, equal_to_previous };
    Ok((ProjectionSlot::new(store, projection, meta)?, report))
}

/// Whether two keyspaces hold the same state: the same keys and values, point keys
/// compared by what their runs hold, however those are cut into runs.
fn states_equal(store: &Store, left: &[u8], right: &[u8]) -> Result<bool> {
    let (left_runs, right_runs) = (Runs::load(&store.log, left)?, Runs::load(&store.log, right)?);
    let left_items = plain_entries(&store.log, left).chain(left_runs.entries(&store.log, left));
    let right_items = plain_entries(&store.log, right).chain(right_runs.entries(&store.log, right));
    sequences_equal(left_items, right_items)
}

fn sequences_equal(
    mut left: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    mut right: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
) -> Result<bool> {
    loop {
        match (left.next().transpose()?, right.next().transpose()?) {
            (None, None) => return Ok(true),
            (Some(left), Some(right)) if left == right => continue,
            _ => return Ok(false),
        }
    }
}

fn remove_prefix(store: &Store, prefix: &[u8]) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut count: u64 = 0;
    for item in store.log.scan_prefix(prefix) {
        let (key, _) = item?;
        batch.remove(key);
        count += 1;
        if count.is_multiple_of(REBUILD_CHUNK) {
            store.log.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    store.log.apply_batch(batch)?;
    Ok(())
}

/// Removes every generation of `name` but `current`, jumping from one generation to the
/// next so that the current state is not scanned.
fn drop_stray_generations(store: &Store, name: &str, current: u64) -> Result<()> {
    let name_prefix = projection_name_prefix(name);
    let mut from = name_prefix.clone();
    loop {
        let Some(item) = store.log.range(from..).next() else { return Ok(()) };
        let (key, _) = item?;
        if !key.starts_with(&name_prefix) {
            return Ok(());
        }
        let Some(generation) = key.get(name_prefix.len()..name_prefix.len() + 8).and_then(crate::store::be_u64) else {
            return Err(Error::Corruption { at: None, detail: format!("projection {name} has a damaged key") });
        };
        if generation != current {
            remove_prefix(store, &projection_prefix(name, generation))?;
        }
        match generation.checked_add(1) {
            Some(next) => from = projection_prefix(name, next),
            None => return Ok(()),
        }
    }
}
