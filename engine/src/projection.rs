//! The projection framework. A projection is a pure fold over the log into sled trees of
//! its own (`projection/<name>/<generation>`). The writer applies every projection to every
//! event inside the same sled transaction that stores the event, so read models can never
//! disagree with the log after a crash. Each projection has a version and a cursor (the
//! last seq folded in); a changed version, or a missing projection, is rebuilt on open by
//! folding the whole log into a fresh generation and swapping it in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::store::Store;
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
    /// Unique, stable name; it names the projection's trees.
    fn name(&self) -> &str;
    /// Bump it when the fold or its encoding changes: the projection is rebuilt on open.
    fn version(&self) -> u32;
    /// Folds one event into the state.
    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError>;
}

type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A projection's view of its own keys during a fold: reads see the writes of earlier
/// events not yet committed; writes are collected and committed with the events.
pub struct ProjectionState<'a> {
    tree: &'a sled::Tree,
    committed: &'a Overlay,
    pending: &'a mut Overlay,
}

impl ProjectionState<'_> {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.pending.get(key).or_else(|| self.committed.get(key)) {
            return Ok(value.clone());
        }
        Ok(self.tree.get(key)?.map(|value| value.to_vec()))
    }

    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), None);
    }

    /// Every key and value under `prefix`, in key order, as the fold sees them now.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for item in self.tree.scan_prefix(prefix) {
            let (key, value) = item?;
            merged.insert(key.to_vec(), Some(value.to_vec()));
        }
        for overlay in [self.committed, &*self.pending] {
            for (key, value) in overlay.range(prefix.to_vec()..).take_while(|(key, _)| key.starts_with(prefix)) {
                merged.insert(key.clone(), value.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(key, value)| value.map(|value| (key, value))).collect())
    }
}

/// Stored in `meta` under `projection/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectionMeta {
    pub version: u32,
    pub generation: u64,
    /// Last seq folded in; `None` while the log is empty.
    pub cursor: Option<u64>,
}

pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    format!("projection/{name}").into_bytes()
}

fn tree_name(name: &str, generation: u64) -> String {
    format!("projection/{name}/{generation}")
}

/// Read access to a projection's current trees.
#[derive(Clone)]
pub struct ProjectionView {
    tree: sled::Tree,
}

impl ProjectionView {
    pub(crate) fn new(tree: sled::Tree) -> Self {
        ProjectionView { tree }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|value| value.to_vec()))
    }

    pub fn scan_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        self.tree.scan_prefix(prefix).map(|item| {
            item.map(|(key, value)| (key.to_vec(), value.to_vec())).map_err(Error::from)
        })
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        self.scan_prefix(&[])
    }
}

/// The current tree of every projection, shared between the writer and readers.
pub(crate) type ProjectionTrees = Arc<RwLock<HashMap<String, sled::Tree>>>;

/// What a rebuild found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub projection: String,
    pub version: u32,
    pub events: u64,
    /// Whether the rebuilt state equals the state it replaced.
    pub equal_to_previous: bool,
}

/// One registered projection with its live tree and pending writes.
pub(crate) struct ProjectionSlot {
    pub projection: Arc<dyn Projection>,
    pub meta: ProjectionMeta,
    pub tree: sled::Tree,
    /// Writes of the requests accepted so far in the current commit group.
    pub committed: Overlay,
    /// Writes of the request being staged.
    pub pending: Overlay,
}

impl ProjectionSlot {
    pub fn apply(&mut self, event: &Event) -> Result<()> {
        let mut state = ProjectionState { tree: &self.tree, committed: &self.committed, pending: &mut self.pending };
        self.projection.apply(event, &mut state).map_err(|error| Error::Projection {
            name: self.projection.name().to_string(),
            detail: error.to_string(),
        })
    }

    /// The staged request was accepted: its writes join the group.
    pub fn accept_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.committed.extend(pending);
    }

    pub fn reject_pending(&mut self) {
        self.pending.clear();
    }

    pub fn take_batch(&mut self) -> sled::Batch {
        overlay_to_batch(std::mem::take(&mut self.committed))
    }
}

fn overlay_to_batch(overlay: Overlay) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in overlay {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
    }
    batch
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
        if name.is_empty() || name.contains('/') || !names.insert(name.clone()) {
            return Err(Error::Projection { name, detail: "names must be unique, non-empty and free of '/'".into() });
        }
        let stored = match store.meta.get(meta_key(&name))? {
            Some(bytes) => Some(postcard::from_bytes::<ProjectionMeta>(&bytes).map_err(|error| {
                Error::Corruption { at: None, detail: format!("projection {name} metadata: {error}") }
            })?),
            None => None,
        };
        let slot = match stored {
            Some(meta) if meta.version == projection.version() => {
                let tree = store.db.open_tree(tree_name(&name, meta.generation))?;
                let mut slot = ProjectionSlot { projection, meta, tree, committed: Overlay::new(), pending: Overlay::new() };
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

/// Folds the events after the slot's cursor (there are none unless a crash or a bug left it
/// behind) and records the new cursor.
fn catch_up(store: &Store, slot: &mut ProjectionSlot, head_seq: Option<u64>) -> Result<()> {
    let Some(head) = head_seq else { return Ok(()) };
    let from = match slot.meta.cursor {
        Some(cursor) if cursor >= head => return Ok(()),
        Some(cursor) => cursor + 1,
        None => 0,
    };
    fold_range(store, &slot.projection, &slot.tree, from, head)?;
    slot.meta.cursor = Some(head);
    store.meta.insert(meta_key(slot.projection.name()), encode_meta(&slot.meta)?)?;
    Ok(())
}

pub(crate) fn encode_meta(meta: &ProjectionMeta) -> Result<Vec<u8>> {
    postcard::to_stdvec(meta).map_err(|error| Error::Storage(format!("projection metadata: {error}")))
}

/// How many events a rebuild folds before writing its buffered state to the tree.
const REBUILD_CHUNK: u64 = 16_384;

/// Folds events `from..=to` into `tree` with the projection, in chunks.
fn fold_range(store: &Store, projection: &Arc<dyn Projection>, tree: &sled::Tree, from: u64, to: u64) -> Result<u64> {
    let empty = Overlay::new();
    let mut pending = Overlay::new();
    let mut folded = 0u64;
    for event in store.events_between(from, to + 1) {
        let event = event?;
        let mut state = ProjectionState { tree, committed: &empty, pending: &mut pending };
        projection.apply(&event, &mut state).map_err(|error| Error::Projection {
            name: projection.name().to_string(),
            detail: format!("at seq {}: {error}", event.seq()),
        })?;
        folded += 1;
        if folded % REBUILD_CHUNK == 0 {
            tree.apply_batch(overlay_to_batch(std::mem::take(&mut pending)))?;
        }
    }
    tree.apply_batch(overlay_to_batch(pending))?;
    Ok(folded)
}

/// Folds the whole log into a fresh generation, swaps it in and drops the old one. Returns
/// the new slot and whether the new state equals the old.
pub(crate) fn rebuild_slot(
    store: &Store,
    projection: Arc<dyn Projection>,
    previous: Option<ProjectionMeta>,
    head_seq: Option<u64>,
) -> Result<(ProjectionSlot, RebuildReport)> {
    let name = projection.name().to_string();
    let generation = previous.map_or(0, |meta| meta.generation + 1);
    let fresh_name = tree_name(&name, generation);
    // A generation left half-built by a crash is thrown away, never trusted.
    store.db.drop_tree(&fresh_name)?;
    let tree = store.db.open_tree(&fresh_name)?;
    let events = match head_seq {
        Some(head) => fold_range(store, &projection, &tree, 0, head)?,
        None => 0,
    };
    let equal_to_previous = match previous {
        Some(old) => trees_equal(&store.db.open_tree(tree_name(&name, old.generation))?, &tree)?,
        None => tree.is_empty(),
    };
    let meta = ProjectionMeta { version: projection.version(), generation, cursor: head_seq };
    store.meta.insert(meta_key(&name), encode_meta(&meta)?)?;
    if let Some(old) = previous {
        store.db.drop_tree(tree_name(&name, old.generation))?;
    }
    let report = RebuildReport { projection: name, version: meta.version, events, equal_to_previous };
    Ok((ProjectionSlot { projection, meta, tree, committed: Overlay::new(), pending: Overlay::new() }, report))
}

fn trees_equal(left: &sled::Tree, right: &sled::Tree) -> Result<bool> {
    let mut left = left.iter();
    let mut right = right.iter();
    loop {
        match (left.next().transpose()?, right.next().transpose()?) {
            (None, None) => return Ok(true),
            (Some(a), Some(b)) if a == b => continue,
            _ => return Ok(false),
        }
    }
}

fn drop_stray_generations(store: &Store, name: &str, current: u64) -> Result<()> {
    let prefix = format!("projection/{name}/");
    let keep = tree_name(name, current);
    for tree in store.db.tree_names() {
        let tree = String::from_utf8_lossy(&tree).into_owned();
        if tree.starts_with(&prefix) && tree != keep {
            store.db.drop_tree(tree.as_bytes())?;
        }
    }
    Ok(())
}
