//! Sorted runs: how a projection's *point keys* are stored. A point key is read one at a
//! time and never scanned, and point keys arrive in no order — an entry's uuid, an API
//! message's id. Stored one sled key each, every commit group would touch a page of sled's
//! tree per key, all over the tree, and sled rewrites a page every few changes: on an import
//! those keys were most of the writer's time and most of the disk (docs/format.md, "Point
//! keys"). So a group's point-key writes become one *run* instead — its keys sorted, in
//! pages, under a run id that only grows, so that runs are written where the keyspace ends —
//! and runs are merged as they pile up, the way a log-structured merge tree does:
//!
//! - Every group that writes point keys adds one run at level 0. A run that would be a
//!   level's [`RUNS_PER_LEVEL`]th is merged with the level's runs into one run a level up
//!   instead (which may fill that level in turn: all of them are merged at once).
//!   A level only fills while every level below it is empty, so run ids order runs from
//!   oldest to newest and a key's newest run is the first that holds it.
//! - A run is a header (`0xFF 0x00 ‖ run id`: level, entries, bytes, a blocked Bloom filter)
//!   and pages (`0xFF 0x01 ‖ run id ‖ the page's first key`), each up to [`PAGE_BYTES`] of
//!   sorted entries with an offset table, so a lookup reads one page and binary-searches it
//!   in place. A removed key is a tombstone until a merge reaches the oldest run.
//! - A lookup asks each run, newest first, whose filter may hold the key: about one page
//!   read for a key that exists and almost none (0.2% of a page read per run) for one that
//!   does not.
//! - A merge writes its pages outside the group's batch, under a run id no header names
//!   yet, so that the group's batch holds only the new header and the removal of the runs
//!   it replaces: a crash before that batch leaves pages no header names, and loading the
//!   runs removes them before any id is given out again.
//!
//! The projection keyspace reserves keys starting with `0xFF` for this.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The first byte of every key sorted runs store in a projection's keyspace; a
/// projection's own keys never start with it.
pub(crate) const RESERVED: u8 = 0xFF;
const HEADER: u8 = 0x00;
const PAGE: u8 = 0x01;

/// A level holds one run fewer than this; the run that would fill it is merged with them
/// into one a level up. 16 measured less written than 8 on the import benchmark, and as fast.
pub(crate) const RUNS_PER_LEVEL: usize = 16;
/// A page is sealed once its entries reach this many bytes.
const PAGE_BYTES: usize = 16 * 1024;
/// Bloom filter bits per key: a lookup of an absent key asks up to a few dozen runs, so
/// each must rarely say yes (about 0.2%, against 1–2% at 10 bits).
const BLOOM_BITS_PER_KEY: usize = 16;
/// Bits set per key, all in one 512-bit block (one cache line).
const BLOOM_PROBES: u32 = 10;
const BLOOM_BLOCK_BYTES: usize = 64;
/// The header's format byte.
const HEADER_FORMAT: u8 = 1;

/// A key and its value, or `None` for a removed key.
pub(crate) type PointWrite = (Vec<u8>, Option<Vec<u8>>);

/// What a run's header says about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunHeader {
    format: u8,
    level: u8,
    entries: u64,
    /// The bytes of its pages.
    bytes: u64,
    bloom: Vec<u8>,
}

/// One run, as its header describes it.
#[derive(Debug)]
pub(crate) struct RunInfo {
    id: u64,
    level: u8,
    entries: u64,
    bytes: u64,
    bloom: Bloom,
}

/// A projection's runs, newest first. Runs never change once written, so a list can be
/// shared with readers and replaced whole.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    newest_first: Arc<[Arc<RunInfo>]>,
}

/// The runs readers see: replaced by the writer once a group's batch is applied.
pub(crate) type SharedRuns = Arc<RwLock<Runs>>;

/// What one lookup in the runs found.
enum Found {
    /// The key's newest entry: its value, or `None` for a tombstone.
    Entry(Option<Vec<u8>>),
    Absent,
    /// A run of the list was merged away meanwhile (only a reader can see that).
    RunGone,
}

/// `prefix` ‖ `0xFF` ‖ `part` (a header or a page) ‖ run id.
fn run_key(prefix: &[u8], part: u8, run: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 10);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&[RESERVED, part]);
    key.extend_from_slice(&run.to_be_bytes());
    key
}

fn header_key(prefix: &[u8], run: u64) -> Vec<u8> {
    run_key(prefix, HEADER, run)
}

fn page_prefix(prefix: &[u8], run: u64) -> Vec<u8> {
    run_key(prefix, PAGE, run)
}

fn page_key(prefix: &[u8], run: u64, first: &[u8]) -> Vec<u8> {
    let mut key = page_prefix(prefix, run);
    key.extend_from_slice(first);
    key
}

fn all_pages(prefix: &[u8]) -> Vec<u8> {
    [prefix, &[RESERVED, PAGE]].concat()
}

fn damaged(detail: impl std::fmt::Display) -> Error {
    Error::Corruption { at: None, detail: format!("a projection's sorted run: {detail}") }
}

impl Runs {
    /// The runs stored under a projection keyspace `prefix`. Pages no header names (a
    /// merge that a crash or a failed write interrupted) are removed first, so that their
    /// run id can be given out again.
    pub(crate) fn load(tree: &sled::Tree, prefix: &[u8]) -> Result<Runs> {
        let mut runs = Vec::new();
        let header_prefix = [prefix, &[RESERVED, HEADER]].concat();
        for item in tree.scan_prefix(&header_prefix) {
            let (key, value) = item?;
            let id = key
                .get(header_prefix.len()..)
                .and_then(crate::store::be_u64)
                .ok_or_else(|| damaged("a header key is damaged"))?;
            let header: RunHeader = postcard::from_bytes(&value).map_err(damaged)?;
            if header.format != HEADER_FORMAT {
                return Err(damaged(format!("run {id} has header format {}", header.format)));
            }
            let bloom = Bloom::from_bytes(header.bloom).ok_or_else(|| damaged(format!("run {id}'s filter")))?;
            runs.push(Arc::new(RunInfo {
                id,
                level: header.level,
                entries: header.entries,
                bytes: header.bytes,
                bloom,
            }));
        }
        runs.reverse();
        let newest = runs.first().map(|run| run.id);
        let orphans_from = page_prefix(prefix, newest.map_or(0, |id| id + 1));
        let pages = all_pages(prefix);
        let mut batch = sled::Batch::default();
        let mut orphans = 0usize;
        for item in
            tree.range(orphans_from..).take_while(|item| item.as_ref().map_or(true, |(key, _)| key.starts_with(&pages)))
        {
            batch.remove(item?.0);
            orphans += 1;
        }
        if orphans > 0 {
            tree.apply_batch(batch)?;
        }
        Ok(Runs { newest_first: runs.into() })
    }

    /// How many runs there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.newest_first.len()
    }

    /// The newest entry of `key` in any run: its value, `None` for a tombstone, or no entry
    /// at all (`Ok(None)`). For the writer, which is the only one to change the runs.
    pub(crate) fn get(&self, tree: &sled::Tree, prefix: &[u8], key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        match self.find(tree, prefix, key)? {
            Found::Entry(value) => Ok(Some(value)),
            Found::Absent => Ok(None),
            Found::RunGone => Err(damaged("a run the writer listed has no header")),
        }
    }

    fn find(&self, tree: &sled::Tree, prefix: &[u8], key: &[u8]) -> Result<Found> {
        if self.newest_first.is_empty() {
            return Ok(Found::Absent);
        }
        let hash = key_hash(key);
        for run in self.newest_first.iter() {
            if !run.bloom.may_contain(hash) {
                continue;
            }
            let pages = page_prefix(prefix, run.id);
            let page = tree.range(pages.clone()..=page_key(prefix, run.id, key)).next_back().transpose()?;
            match page {
                Some((page_key, page)) if page_key.starts_with(&pages) => {
                    if let Some(entry) = Page::new(&page)?.find(key)? {
                        return Ok(Found::Entry(entry.map(<[u8]>::to_vec)));
                    }
                }
                // No page starts at or before the key: it is smaller than the run's first
                // key, unless the run is gone.
                _ => {
                    if tree.get(header_key(prefix, run.id))?.is_none() {
                        return Ok(Found::RunGone);
                    }
                }
            }
        }
        Ok(Found::Absent)
    }

    /// How many of the newest runs the next run is merged with: every run of the levels
    /// it fills, level 0 up (0: none; the next run is a run of its own at level 0), and the
    /// level the merged run goes to.
    fn merge_plan(&self) -> (usize, u8) {
        let mut merged = 0usize;
        let mut level = 0u8;
        loop {
            let at_level = self.newest_first[merged..].iter().take_while(|run| run.level == level).count();
            // The incoming run (or the merge of the levels below) adds one.
            if at_level + 1 < RUNS_PER_LEVEL {
                return (merged, level);
            }
            merged += at_level;
            level = level.saturating_add(1);
        }
    }

    /// Bytes a merge that the next run triggers would write, besides the run's own: what
    /// the space check adds to a group's needs.
    pub(crate) fn merge_bytes_after_next(&self) -> u64 {
        let (merged, _) = self.merge_plan();
        self.newest_first[..merged].iter().map(|run| run.bytes).sum()
    }

    /// Writes `writes` (sorted by key, each key once) as a new run, merged with the runs of
    /// every level it fills. The new header and the removal of merged runs go into
    /// `batch`, and so do the pages of a run of its own; a merged run's pages are written
    /// to the tree at once, under an id no header names until `batch` is applied. Returns
    /// the runs as they are once `batch` is applied.
    pub(crate) fn write(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
        writes: Vec<PointWrite>,
        batch: &mut sled::Batch,
    ) -> Result<Runs> {
        if writes.is_empty() {
            return Ok(self.clone());
        }
        let id = self.newest_first.first().map_or(0, |run| run.id + 1);
        let (merged, level) = self.merge_plan();
        // A tombstone says something only while an older run may hold its key.
        let keep_tombstones = merged < self.newest_first.len();
        let run = if merged == 0 {
            let mut sink = RunSink::new(prefix, id, 0, writes.len() as u64);
            for (key, value) in writes.iter().filter(|(_, value)| value.is_some() || keep_tombstones) {
                sink.push(key, value.as_deref(), |key, page| {
                    batch.insert(key, page);
                    Ok(())
                })?;
            }
            sink.finish(|key, page| {
                batch.insert(key, page);
                Ok(())
            })?
        } else {
            let at_most = writes.len() as u64 + self.newest_first[..merged].iter().map(|run| run.entries).sum::<u64>();
            let mut cursors = vec![RunCursor::of_writes(writes)];
            for (index, run) in self.newest_first[..merged].iter().enumerate() {
                cursors.push(RunCursor::new(tree, prefix, run.id, index + 1));
            }
            let mut sink = RunSink::new(prefix, id, level, at_most);
            for item in MergedEntries::new(cursors, keep_tombstones) {
                let (key, value) = item?;
                sink.push(&key, value.as_deref(), |key, page| {
                    #[cfg(feature = "failpoints")]
                    fail::fail_point!("runs.merge", |argument| Err(crate::group_commit::injected(
                        "runs.merge",
                        argument
                    )));
                    tree.insert(key, page)?;
                    Ok(())
                })?;
            }
            let run = sink.finish(|key, page| {
                tree.insert(key, page)?;
                Ok(())
            })?;
            for gone in &self.newest_first[..merged] {
                remove_run(tree, prefix, gone, batch)?;
            }
            run
        };
        let mut runs: Vec<Arc<RunInfo>> = Vec::with_capacity(self.newest_first.len() + 1 - merged);
        if let Some(run) = run {
            batch.insert(header_key(prefix, run.id), run.header()?);
            runs.push(Arc::new(run));
        }
        runs.extend(self.newest_first[merged..].iter().cloned());
        Ok(Runs { newest_first: runs.into() })
    }

    /// Every key with its newest value, in key order, tombstones left out: the logical
    /// content, which two runs of the same writes share however they were cut into groups.
    pub(crate) fn entries(&self, tree: &sled::Tree, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        let cursors: Vec<RunCursor> = self
            .newest_first
            .iter()
            .enumerate()
            .map(|(rank, run)| RunCursor::new(tree, prefix, run.id, rank))
            .collect();
        MergedEntries::new(cursors, false).filter_map(|item| match item {
            Ok((key, Some(value))) => Some(Ok((key, value))),
            Ok((_, None)) => None,
            Err(error) => Some(Err(error)),
        })
    }
}

/// Looks `key` up in the runs readers see, again from a fresh list when the writer merged
/// one away meanwhile.
pub(crate) fn read(shared: &SharedRuns, tree: &sled::Tree, prefix: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
    loop {
        let runs = shared.read().map_err(|_| Error::Storage("the run list's lock is poisoned".into()))?.clone();
        match runs.find(tree, prefix, key)? {
            Found::Entry(value) => return Ok(value),
            Found::Absent => return Ok(None),
            Found::RunGone => continue,
        }
    }
}

fn remove_run(tree: &sled::Tree, prefix: &[u8], run: &RunInfo, batch: &mut sled::Batch) -> Result<()> {
    batch.remove(header_key(prefix, run.id));
    for item in tree.scan_prefix(page_prefix(prefix, run.id)) {
        batch.remove(item?.0);
    }
    Ok(())
}

/// Builds one run's pages and filter from entries in key order.
struct RunSink {
    prefix: Vec<u8>,
    id: u64,
    level: u8,
    /// Sized for the most entries the run can have (a merge drops older copies of a key).
    bloom: Bloom,
    entries: u64,
    bytes: u64,
    page: PageBuilder,
}

impl RunSink {
    fn new(prefix: &[u8], id: u64, level: u8, at_most: u64) -> Self {
        let bloom = Bloom::for_keys(usize::try_from(at_most).unwrap_or(usize::MAX));
        RunSink { prefix: prefix.to_vec(), id, level, bloom, entries: 0, bytes: 0, page: PageBuilder::default() }
    }

    fn push(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        mut put: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.page.push(key, value)?;
        self.bloom.insert(key_hash(key));
        self.entries += 1;
        if self.page.len() >= PAGE_BYTES {
            self.seal(&mut put)?;
        }
        Ok(())
    }

    fn seal(&mut self, put: &mut impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>) -> Result<()> {
        if let Some((first, page)) = std::mem::take(&mut self.page).finish() {
            self.bytes += page.len() as u64;
            put(page_key(&self.prefix, self.id, &first), page)?;
        }
        Ok(())
    }

    /// The run, or `None` when nothing was pushed.
    fn finish(mut self, mut put: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>) -> Result<Option<RunInfo>> {
        self.seal(&mut put)?;
        if self.entries == 0 {
            return Ok(None);
        }
        Ok(Some(RunInfo {
            id: self.id,
            level: self.level,
            entries: self.entries,
            bytes: self.bytes,
            bloom: self.bloom,
        }))
    }
}

impl RunInfo {
    fn header(&self) -> Result<Vec<u8>> {
        let header = RunHeader {
            format: HEADER_FORMAT,
            level: self.level,
            entries: self.entries,
            bytes: self.bytes,
            bloom: self.bloom.bytes.clone(),
        };
        postcard::to_stdvec(&header).map_err(|error| Error::Storage(format!("a run header: {error}")))
    }
}

/// One page: `count` (u32 LE) ‖ `count` offsets (u32 LE, from the end of the table) ‖
/// entries, each `key length` (u16 LE) ‖ key ‖ `1` ‖ value length (u32 LE) ‖ value, or
/// key ‖ `0` for a tombstone.
#[derive(Default)]
struct PageBuilder {
    first: Option<Vec<u8>>,
    offsets: Vec<u32>,
    body: Vec<u8>,
}

impl PageBuilder {
    fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let key_len = u16::try_from(key.len()).map_err(|_| Error::Storage("a point key over 64 KiB".into()))?;
        let offset = u32::try_from(self.body.len()).map_err(|_| Error::Storage("a page over 4 GiB".into()))?;
        self.offsets.push(offset);
        if self.first.is_none() {
            self.first = Some(key.to_vec());
        }
        self.body.extend_from_slice(&key_len.to_le_bytes());
        self.body.extend_from_slice(key);
        match value {
            Some(value) => {
                let value_len =
                    u32::try_from(value.len()).map_err(|_| Error::Storage("a point value over 4 GiB".into()))?;
                self.body.push(1);
                self.body.extend_from_slice(&value_len.to_le_bytes());
                self.body.extend_from_slice(value);
            }
            None => self.body.push(0),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.body.len() + 4 * self.offsets.len()
    }

    fn finish(self) -> Option<(Vec<u8>, Vec<u8>)> {
        let first = self.first?;
        let mut page = Vec::with_capacity(4 + 4 * self.offsets.len() + self.body.len());
        page.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        for offset in &self.offsets {
            page.extend_from_slice(&offset.to_le_bytes());
        }
        page.extend_from_slice(&self.body);
        Some((first, page))
    }
}

/// A stored page, read in place.
struct Page<'a> {
    count: usize,
    table: &'a [u8],
    body: &'a [u8],
}

/// An entry read from a page: its key and its value (`None`: a tombstone).
type PageEntry<'a> = (&'a [u8], Option<&'a [u8]>);

impl<'a> Page<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self> {
        let count = bytes.get(..4).map(|count| u32::from_le_bytes([count[0], count[1], count[2], count[3]]));
        let count = count.ok_or_else(|| damaged("a page is shorter than its count"))? as usize;
        let table_end = count.checked_mul(4).and_then(|len| len.checked_add(4)).filter(|end| *end <= bytes.len());
        let table_end = table_end.ok_or_else(|| damaged("a page is shorter than its offsets"))?;
        Ok(Page { count, table: &bytes[4..table_end], body: &bytes[table_end..] })
    }

    fn entry(&self, index: usize) -> Result<PageEntry<'a>> {
        let at = &self.table[index * 4..index * 4 + 4];
        let offset = u32::from_le_bytes([at[0], at[1], at[2], at[3]]) as usize;
        let read = |from: usize, len: usize| self.body.get(from..from.checked_add(len)?);
        let short = || damaged("a page entry runs past its page");
        let key_len = read(offset, 2).ok_or_else(short)?;
        let key_len = u16::from_le_bytes([key_len[0], key_len[1]]) as usize;
        let key = read(offset + 2, key_len).ok_or_else(short)?;
        let flag_at = offset + 2 + key_len;
        match read(flag_at, 1).ok_or_else(short)?[0] {
            0 => Ok((key, None)),
            1 => {
                let len = read(flag_at + 1, 4).ok_or_else(short)?;
                let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
                Ok((key, Some(read(flag_at + 5, len).ok_or_else(short)?)))
            }
            other => Err(damaged(format!("a page entry has flag {other}"))),
        }
    }

    /// The entry of `key` (its value or `None` for a tombstone), if the page has one.
    fn find(&self, key: &[u8]) -> Result<Option<Option<&'a [u8]>>> {
        let (mut low, mut high) = (0usize, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            let (found, value) = self.entry(middle)?;
            match found.cmp(key) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Ok(Some(value)),
            }
        }
        Ok(None)
    }
}

/// Reads one run's entries in key order, a page at a time.
struct RunCursor {
    /// The run's pages; `None` for writes held in memory.
    pages: Option<sled::Iter>,
    page: Vec<PointWrite>,
    next: usize,
    /// 0 for the newest run: on equal keys the lowest rank wins.
    rank: usize,
}

impl RunCursor {
    fn new(tree: &sled::Tree, prefix: &[u8], run: u64, rank: usize) -> Self {
        RunCursor { pages: Some(tree.scan_prefix(page_prefix(prefix, run))), page: Vec::new(), next: 0, rank }
    }

    /// A group's writes, not stored yet, as the newest run.
    fn of_writes(writes: Vec<PointWrite>) -> Self {
        RunCursor { pages: None, page: writes, next: 0, rank: 0 }
    }

    fn next_entry(&mut self) -> Result<Option<PointWrite>> {
        while self.next == self.page.len() {
            let Some(item) = self.pages.as_mut().and_then(Iterator::next) else { return Ok(None) };
            let (_, bytes) = item?;
            let page = Page::new(&bytes)?;
            self.page = (0..page.count)
                .map(|index| page.entry(index).map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec))))
                .collect::<Result<_>>()?;
            self.next = 0;
        }
        let entry = std::mem::take(&mut self.page[self.next]);
        self.next += 1;
        Ok(Some(entry))
    }
}

/// The head entry of one cursor in the merge heap: smallest key first, then newest run.
struct Head {
    entry: PointWrite,
    rank: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: reverse both orders.
        other.entry.0.cmp(&self.entry.0).then(other.rank.cmp(&self.rank))
    }
}

/// Merges runs' cursors into each key's newest entry, in key order.
struct MergedEntries {
    cursors: Vec<RunCursor>,
    heap: BinaryHeap<Head>,
    started: bool,
    keep_tombstones: bool,
}

impl MergedEntries {
    fn new(cursors: Vec<RunCursor>, keep_tombstones: bool) -> Self {
        MergedEntries { cursors, heap: BinaryHeap::new(), started: false, keep_tombstones }
    }

    fn advance(&mut self, index: usize) -> Result<()> {
        if let Some(entry) = self.cursors[index].next_entry()? {
            self.heap.push(Head { entry, rank: self.cursors[index].rank });
        }
        Ok(())
    }

    fn next_entry(&mut self) -> Result<Option<PointWrite>> {
        if !self.started {
            self.started = true;
            for index in 0..self.cursors.len() {
                self.advance(index)?;
            }
        }
        loop {
            let Some(Head { entry, rank }) = self.heap.pop() else { return Ok(None) };
            self.advance(rank)?;
            // Older entries of the same key are passed over.
            while self.heap.peek().is_some_and(|head| head.entry.0 == entry.0) {
                if let Some(older) = self.heap.pop() {
                    self.advance(older.rank)?;
                }
            }
            if entry.1.is_some() || self.keep_tombstones {
                return Ok(Some(entry));
            }
        }
    }
}

impl Iterator for MergedEntries {
    type Item = Result<PointWrite>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

/// A blocked Bloom filter: each key sets [`BLOOM_PROBES`] bits of one 512-bit block.
#[derive(Debug)]
struct Bloom {
    bytes: Vec<u8>,
}

impl Bloom {
    /// An empty filter for up to `keys` keys.
    fn for_keys(keys: usize) -> Self {
        let blocks = keys.saturating_mul(BLOOM_BITS_PER_KEY).div_ceil(BLOOM_BLOCK_BYTES * 8).max(1);
        Bloom { bytes: vec![0; blocks * BLOOM_BLOCK_BYTES] }
    }

    fn insert(&mut self, hash: u64) {
        let block = self.block_of(hash);
        for bit in probes(hash) {
            self.bytes[block + bit / 8] |= 1 << (bit % 8);
        }
    }

    fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (!bytes.is_empty() && bytes.len().is_multiple_of(BLOOM_BLOCK_BYTES)).then_some(Bloom { bytes })
    }

    fn block_of(&self, hash: u64) -> usize {
        let blocks = (self.bytes.len() / BLOOM_BLOCK_BYTES) as u64;
        // The high half picks the block (multiply-shift, no division).
        (((hash >> 32) * blocks) >> 32) as usize * BLOOM_BLOCK_BYTES
    }

    fn may_contain(&self, hash: u64) -> bool {
        let block = self.block_of(hash);
        probes(hash).all(|bit| self.bytes[block + bit / 8] & (1 << (bit % 8)) != 0)
    }
}

/// The bits of a 512-bit block a hash sets, from its low half by double hashing.
fn probes(hash: u64) -> impl Iterator<Item = usize> {
    let low = hash as u32;
    let step = (low >> 16) | 1;
    (0..BLOOM_PROBES).map(move |probe| (low.wrapping_add(probe.wrapping_mul(step)) % 512) as usize)
}

/// A stable 64-bit hash of a key (FNV-1a, then a SplitMix64 finish to spread the bits):
/// stored filters depend on it, so it never changes without a new header format.
fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const PREFIX: &[u8] = b"Ptest\x00\x00\x00\x00\x00\x00\x00\x00\x01";

    fn tree() -> sled::Tree {
        sled::Config::new().temporary(true).open().unwrap().open_tree("log").unwrap()
    }

    /// Writes one group the way the writer does: the run, then the batch.
    fn write_group(tree: &sled::Tree, runs: &Runs, writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Runs {
        let mut batch = sled::Batch::default();
        let writes = writes.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
        let runs = runs.write(tree, PREFIX, writes, &mut batch).unwrap();
        tree.apply_batch(batch).unwrap();
        runs
    }

    fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct keys, so that groups overwrite and remove each other's.
        (0u16..300).prop_map(|key| format!("k{key:05}").into_bytes())
    }

    fn group_strategy() -> impl Strategy<Value = BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        prop::collection::btree_map(
            key_strategy(),
            prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..40)),
            0..60,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any sequence of groups, merged however the levels fill, reads back as a map
        /// would: every key's newest value, removed keys absent, for the writer, for a
        /// reader and after loading the runs again.
        #[test]
        fn runs_read_as_a_map(groups in prop::collection::vec(group_strategy(), 1..80)) {
            let tree = tree();
            let mut runs = Runs::default();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for group in &groups {
                runs = write_group(&tree, &runs, group);
                for (key, value) in group {
                    match value {
                        Some(value) => model.insert(key.clone(), value.clone()),
                        None => model.remove(key),
                    };
                }
                prop_assert!(runs.len() <= RUNS_PER_LEVEL * 4);
            }
            let reloaded = Runs::load(&tree, PREFIX).unwrap();
            prop_assert_eq!(reloaded.len(), runs.len());
            let shared: SharedRuns = Arc::new(RwLock::new(reloaded));
            for key in (0u16..300).map(|key| format!("k{key:05}").into_bytes()) {
                let expected = model.get(&key).cloned();
                prop_assert_eq!(runs.get(&tree, PREFIX, &key).unwrap().flatten(), expected.clone());
                prop_assert_eq!(read(&shared, &tree, PREFIX, &key).unwrap(), expected);
            }
            let entries: Vec<(Vec<u8>, Vec<u8>)> = runs.entries(&tree, PREFIX).map(Result::unwrap).collect();
            prop_assert_eq!(entries, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn levels_merge_into_one_run_each() {
        let tree = tree();
        let mut runs = Runs::default();
        for group in 0..RUNS_PER_LEVEL * RUNS_PER_LEVEL {
            let writes = BTreeMap::from([(format!("key {group}").into_bytes(), Some(vec![1]))]);
            runs = write_group(&tree, &runs, &writes);
        }
        // As many runs of level 1 as a level holds were merged into one of level 2.
        assert_eq!(runs.len(), 1);
        assert_eq!(runs.newest_first[0].level, 2);
        assert_eq!(runs.newest_first[0].entries, (RUNS_PER_LEVEL * RUNS_PER_LEVEL) as u64);
        // Nothing but that run is left in the tree.
        assert_eq!(tree.scan_prefix([PREFIX, &[RESERVED, HEADER]].concat()).count(), 1);
    }

    /// A merge whose batch never lands leaves pages that no header names; loading the runs
    /// removes them, and the next group gives out their id again and reads right.
    #[test]
    fn an_interrupted_merge_leaves_nothing_behind() {
        let tree = tree();
        let mut runs = Runs::default();
        for group in 0..RUNS_PER_LEVEL - 1 {
            let writes = BTreeMap::from([(format!("key {group}").into_bytes(), Some(vec![1]))]);
            runs = write_group(&tree, &runs, &writes);
        }
        let mut lost = sled::Batch::default();
        let writes = vec![(b"key lost".to_vec(), Some(vec![2]))];
        runs.write(&tree, PREFIX, writes, &mut lost).unwrap();
        drop(lost);
        let pages_before = tree.scan_prefix(all_pages(PREFIX)).count();
        let runs = Runs::load(&tree, PREFIX).unwrap();
        assert_eq!(runs.len(), RUNS_PER_LEVEL - 1);
        assert_eq!(tree.scan_prefix(all_pages(PREFIX)).count(), pages_before - 1);
        assert_eq!(runs.get(&tree, PREFIX, b"key lost").unwrap(), None);
        let runs = write_group(&tree, &runs, &BTreeMap::from([(b"key again".to_vec(), Some(vec![3]))]));
        assert_eq!(runs.len(), 1);
        assert_eq!(runs.get(&tree, PREFIX, b"key again").unwrap(), Some(Some(vec![3])));
        assert_eq!(runs.get(&tree, PREFIX, b"key lost").unwrap(), None);
        assert_eq!(runs.get(&tree, PREFIX, b"key 3").unwrap(), Some(Some(vec![1])));
    }

    #[test]
    fn a_reader_holding_merged_runs_reads_again() {
        let tree = tree();
        let mut runs = Runs::default();
        for group in 0..RUNS_PER_LEVEL - 1 {
            let writes = BTreeMap::from([(format!("key {group}").into_bytes(), Some(vec![group as u8]))]);
            runs = write_group(&tree, &runs, &writes);
        }
        let stale = runs.clone();
        let shared: SharedRuns = Arc::new(RwLock::new(stale.clone()));
        let merged = write_group(&tree, &runs, &BTreeMap::from([(b"key 9".to_vec(), Some(vec![9]))]));
        assert!(matches!(stale.find(&tree, PREFIX, b"key 2").unwrap(), Found::RunGone | Found::Absent));
        *shared.write().unwrap() = merged;
        assert_eq!(read(&shared, &tree, PREFIX, b"key 2").unwrap(), Some(vec![2]));
    }

    #[test]
    fn filters_hold_every_key_and_few_others() {
        let hashes: Vec<u64> = (0..10_000u32).map(|key| key_hash(&key.to_be_bytes())).collect();
        let mut bloom = Bloom::for_keys(hashes.len());
        hashes.iter().for_each(|hash| bloom.insert(*hash));
        assert!(hashes.iter().all(|hash| bloom.may_contain(*hash)));
        let false_positives =
            (10_000..110_000u32).filter(|key| bloom.may_contain(key_hash(&key.to_be_bytes()))).count();
        assert!(false_positives < 400, "{false_positives} false positives in 100,000");
    }
}
