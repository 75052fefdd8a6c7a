//! The on-disk store: a data directory, its lock, and the sled trees the log lives in.
//! Both the live [`crate::Log`] and the offline verifier open the store through here, so
//! there is one place that knows the directory layout and sled's configuration.
//!
//! Directory layout:
//!
//! ```text
//! <data>/cclog.lock     advisory lock + owner pid and command line
//! <data>/head.anchor    last durable head, see `anchor`
//! <data>/sled/          sled's files: db (its log), conf, snap.*, blobs/
//! <data>/quarantine/     blobs sled's recovery deleted, kept for carving (see BlobGuard)
//! ```
//!
//! Everything lives in one sled tree, `log`, so that a commit group — its blocks, their
//! stream-index entries, the projection updates they cause and the new head — is one
//! `apply_batch`, which sled applies atomically. Each concern owns a keyspace, named by
//! the key's first byte (integers big-endian so that sled iterates in order):
//!
//! ```text
//! 'E' ‖ first seq (8)                        -> block of events (see `block`)
//! 'S' ‖ stream ‖ 0x00 ‖ first seq (8)         -> empty, or last seq (8): the stream index
//! 'M' ‖ "head"                               -> seq (8) ‖ hash (32) ‖ ts_us (8)
//! 'M' ‖ "format"                             -> FORMAT_VERSION (1)
//! 'M' ‖ "projection/" ‖ name                 -> postcard(ProjectionMeta)
//! 'P' ‖ name ‖ 0x00 ‖ generation (8) ‖ key    -> a projection's own state
//! ```
//!
//! Stream names and projection names contain no 0x00 (control characters are refused), so
//! no stream's keys are a prefix of another's.
//!
//! A stream-index entry stands for a run of consecutive seqs of its stream, written by one
//! commit group: an empty value is the first seq alone, an 8-byte value the run's last seq.
//! A file import appends thousands of lines of one stream per group, and one key instead of
//! one per line halves the sled inserts of an import. Format 1 wrote only empty values,
//! which later formats read the same way. Format 3 writes version-2 blocks (each block's
//! records one compressed frame) and reads the version-1 blocks of formats 1 and 2 as they
//! are, so an older directory is upgraded by opening it: only its version byte changes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::anchor::{read_anchor, AnchorState, HeadAnchor};
use crate::block::decode_block;
use crate::envelope::FORMAT_VERSION;
use crate::ownership::Ownership;
use crate::{Error, Event, Hash, Result};

pub(crate) const LOG_TREE: &str = "log";
const BLOCKS: u8 = b'E';
pub(crate) const STREAMS: u8 = b'S';
const META: u8 = b'M';
const PROJECTIONS: u8 = b'P';
pub(crate) const HEAD_KEY: &[u8] = b"head";
const FORMAT_KEY: &[u8] = b"format";

/// The durable head of the log: its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
    pub ts_us: u64,
}

impl Head {
    pub(crate) fn encode(&self) -> [u8; 48] {
        let mut bytes = [0u8; 48];
        bytes[..8].copy_from_slice(&self.seq.to_be_bytes());
        bytes[8..40].copy_from_slice(&self.hash.0);
        bytes[40..].copy_from_slice(&self.ts_us.to_be_bytes());
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Head> {
        if bytes.len() != 48 {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[8..40]);
        Some(Head { seq: be_u64(&bytes[..8])?, hash: Hash(hash), ts_us: be_u64(&bytes[40..])? })
    }
}

pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(array))
}

pub(crate) fn block_key(first: u64) -> [u8; 9] {
    let mut key = [BLOCKS; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

/// The first seq a block key names, if it is a block key.
pub(crate) fn block_seq(key: &[u8]) -> Option<u64> {
    match key.split_first() {
        Some((&BLOCKS, seq)) => be_u64(seq),
        _ => None,
    }
}

/// Just past every block key.
const BLOCKS_END: [u8; 1] = [BLOCKS + 1];

pub(crate) fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(STREAMS);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

pub(crate) fn stream_key(stream: &str, seq: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The stream-index value of the run `first..=last`.
pub(crate) fn stream_run_value(first: u64, last: u64) -> Vec<u8> {
    if first == last {
        Vec::new()
    } else {
        last.to_be_bytes().to_vec()
    }
}

/// The run `(first, last)` a stream-index entry stands for.
fn stream_run(prefix_len: usize, key: &[u8], value: &[u8]) -> Result<(u64, u64)> {
    let damaged = || Error::Corruption { at: None, detail: "stream index entry damaged".into() };
    let first = key.get(prefix_len..).and_then(be_u64).ok_or_else(damaged)?;
    let last = if value.is_empty() { first } else { be_u64(value).filter(|last| *last > first).ok_or_else(damaged)? };
    Ok((first, last))
}

/// The seqs of `stream` in `from..end`, in order, from the stream index.
pub(crate) fn stream_seqs(
    log: &sled::Tree,
    stream: &str,
    from: u64,
    end: u64,
) -> impl Iterator<Item = Result<u64>> + 'static {
    let prefix = stream_prefix(stream);
    let prefix_len = prefix.len();
    let start = stream_key(stream, from);
    // A run that starts before `from` may still reach it.
    let before = log.range(prefix.clone()..start.clone()).next_back();
    let after = log.range(start..).take_while({
        let prefix = prefix.clone();
        move |item| item.as_ref().map_or(true, |(key, _)| key.starts_with(&prefix))
    });
    before
        .into_iter()
        .chain(after)
        .map(move |item| {
            let (key, value) = item?;
            stream_run(prefix_len, &key, &value)
        })
        .take_while(move |run| run.as_ref().map_or(true, |(first, _)| *first < end))
        .flat_map(move |run| {
            let (seqs, error) = match run {
                Ok((first, last)) => (first.max(from)..last.saturating_add(1).min(end), None),
                Err(error) => (0..0, Some(Err(error))),
            };
            seqs.map(Ok).chain(error)
        })
}

/// The names of every indexed stream that starts with `prefix`, in order. Each stream costs
/// one seek: after a stream's entries comes the first key past all of them.
pub(crate) fn streams_with_prefix(log: &sled::Tree, prefix: &str) -> Result<Vec<String>> {
    let mut start = Vec::with_capacity(prefix.len() + 1);
    start.push(STREAMS);
    start.extend_from_slice(prefix.as_bytes());
    let mut streams = Vec::new();
    let mut from = start.clone();
    while let Some(item) = log.range(from.clone()..).next() {
        let (key, _) = item?;
        if !key.starts_with(&start) {
            break;
        }
        // An index key is 'S' ‖ stream ‖ 0x00 ‖ seq (8).
        let name = key
            .len()
            .checked_sub(9)
            .and_then(|end| key.get(1..end))
            .filter(|_| key.get(key.len() - 9) == Some(&0))
            .ok_or(Error::Corruption { at: None, detail: "stream index key damaged".into() })?;
        let name = std::str::from_utf8(name)
            .map_err(|_| Error::Corruption { at: None, detail: "stream name is not UTF-8".into() })?;
        streams.push(name.to_string());
        // Past every key of this stream: 'S' ‖ stream ‖ 0x01.
        from = stream_prefix(name);
        if let Some(last) = from.last_mut() {
            *last = 1;
        }
    }
    Ok(streams)
}

pub(crate) fn meta_key(name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(META);
    key.extend_from_slice(name);
    key
}

/// The prefix of every generation of a projection's state.
pub(crate) fn projection_name_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 10);
    key.push(PROJECTIONS);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}

/// The prefix of one generation of a projection's state.
pub(crate) fn projection_prefix(name: &str, generation: u64) -> Vec<u8> {
    let mut key = projection_name_prefix(name);
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

/// An open data directory.
pub struct Store {
    pub(crate) dir: PathBuf,
    /// sled's handles. Dropping them flushes whatever sled still buffers, which after a
    /// failed write is a torn commit group (and a flush that never returns), so a faulted
    /// store leaks them instead: nothing more reaches the disk, and the process's exit
    /// closes the files.
    pub(crate) db: std::mem::ManuallyDrop<sled::Db>,
    pub(crate) log: std::mem::ManuallyDrop<sled::Tree>,
    pub(crate) anchor: HeadAnchor,
    faulted: std::sync::atomic::AtomicBool,
    blocks: Mutex<BlockCache>,
    // Dropped last, so the directory stays locked until sled has closed its files; taken
    // early by `fence`, which has cut sled off from them.
    ownership: Mutex<Option<Ownership>>,
}

/// sled's configuration; every opener must use the same one.
pub(crate) fn sled_config(sled_dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(sled_dir)
        .mode(sled::Mode::HighThroughput)
        // sled keeps several times its nominal cache resident; 32 MiB keeps a 1 GiB import
        // near 200 MiB and measured faster for appends than 256 MiB (README, Performance).
        .cache_capacity(32 << 20)
        // The writer flushes and fsyncs after every commit; a timer would only add syncs.
        .flush_every_ms(None)
}

/// Creates the data directory (and any missing parent) readable by its owner only — it
/// holds every prompt and tool result; an existing directory keeps its mode.
pub fn create_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| Error::io(dir, source))
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.faulted.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // SAFETY: dropped once, here, and never used again.
        unsafe {
            std::mem::ManuallyDrop::drop(&mut self.log);
            std::mem::ManuallyDrop::drop(&mut self.db);
        }
        // Still owned: nobody else can write sled's files before the seal describes them.
        crate::seal::write(&self.dir, &self.sled_dir());
    }
}

/// Carves sled's files and refuses a store whose chain they show damaged (see `seal`). A
/// store whose last write failed is left to `recovery`, which cuts it back instead.
fn refuse_damaged_files(dir: &Path) -> Result<()> {
    if crate::anchor::read_fault(dir).is_some() {
        return Ok(());
    }
    let mut chain = crate::carve::carve_dir(dir, crate::carve::Keep::Hashes, &mut |_, _| {})?;
    // A salvaged directory's holes are known, not new damage.
    let known = crate::salvage::known_holes(dir);
    chain.missing.retain(|range| !known.contains(range));
    if !crate::verify::chain_is_damaged(&chain, read_anchor(dir)) {
        return Ok(());
    }
    let ranges: Vec<String> =
        chain.missing.iter().map(|&(first, last)| crate::verify::describe_events(first, last)).collect();
    let detail = if ranges.is_empty() {
        "its files do not hold the last acknowledged event".to_string()
    } else {
        format!("its files hold no intact copy of {}", ranges.join(", "))
    };
    Err(Error::DamagedFiles { dir: dir.to_path_buf(), detail })
}

/// Removes what an interrupted snapshot left in sled's directory. sled writes a snapshot
/// to `snap.<n>.generating` and renames it when it is complete, so such a file is garbage
/// by construction; left behind by a full disk, it makes sled refuse the store as damaged.
fn remove_unfinished_snapshots(sled_dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(sled_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::io(sled_dir, source)),
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(sled_dir, source))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(|source| Error::io(entry.path(), source))?;
        }
    }
    Ok(())
}

/// Where blobs that sled's recovery deleted are kept (`carve` reads them).
pub(crate) const QUARANTINE_DIR: &str = "quarantine";
const BLOB_GUARD_DIR: &str = "blob-guard";

/// Keeps what sled's recovery deletes. When sled opens a log whose file holds a damaged
/// message, it recovers only up to that message and deletes every blob written after it —
/// values of events it can no longer see, which cclog's carving could still prove. So
/// before sled opens, every blob file gets a hard link in `<data>/blob-guard/`; after, a
/// blob sled deleted is moved into `<data>/quarantine/blobs/` instead of vanishing, and the
/// guard's other links go. A guard left by a crash is settled the same way on the next
/// open. Links cost no space; on a filesystem that refuses them, nothing is guarded.
struct BlobGuard {
    guard_dir: PathBuf,
    blob_dir: PathBuf,
    quarantine: PathBuf,
}

impl BlobGuard {
    fn take(dir: &Path, sled_dir: &Path) -> BlobGuard {
        let guard = BlobGuard {
            guard_dir: dir.join(BLOB_GUARD_DIR),
            blob_dir: sled_dir.join("blobs"),
            quarantine: dir.join(QUARANTINE_DIR).join("blobs"),
        };
        // A guard an earlier open left behind is settled first.
        guard.release();
        if let Ok(entries) = std::fs::read_dir(&guard.blob_dir) {
            if std::fs::create_dir_all(&guard.guard_dir).is_ok() {
                for entry in entries.flatten() {
                    let _ = std::fs::hard_link(entry.path(), guard.guard_dir.join(entry.file_name()));
                }
            }
        }
        guard
    }

    /// Moves every guarded blob sled deleted into quarantine, and removes the guard.
    fn release(&self) {
        let Ok(entries) = std::fs::read_dir(&self.guard_dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if self.blob_dir.join(&name).exists() {
                let _ = std::fs::remove_file(entry.path());
            } else if std::fs::create_dir_all(&self.quarantine).is_ok() {
                let _ = std::fs::rename(entry.path(), self.quarantine.join(&name));
            }
        }
        let _ = std::fs::remove_dir(&self.guard_dir);
    }
}

impl Store {
    /// Opens (creating if needed, owner-only) the data directory and takes ownership of it.
    ///
    /// sled's files are proven intact first (`carve`) unless the seal of a clean close
    /// vouches for them (`seal`): a store they show damaged is refused with
    /// [`Error::DamagedFiles`] before sled, whose recovery would cut it, touches it.
    pub fn open(dir: &Path) -> Result<Store> {
        let opened = Store::open_unless(dir, |sealed| {
            if !sealed {
                refuse_damaged_files(dir)?;
            }
            Ok(true)
        });
        opened.map(|store| store.expect("opened"))
    }

    /// [`Store::open`], with `proceed` asked — while the directory is already owned, before
    /// sled touches any file, and told whether the seal of a clean close vouches for
    /// sled's files — whether to open sled at all (`None` when it says no).
    pub(crate) fn open_unless(dir: &Path, proceed: impl FnOnce(bool) -> Result<bool>) -> Result<Option<Store>> {
        create_data_dir(dir)?;
        let ownership = Ownership::acquire(dir)?;
        crate::compact::settle(dir, &ownership)?;
        // sled creates files as it opens (a snapshot): out of inodes, it would fail inside.
        crate::space::check_inodes(dir, dir, crate::space::INODE_RESERVE)?;
        let sled_dir = dir.join("sled");
        // A new store has no files to vouch for.
        let sealed = !sled_dir.join("db").exists() || crate::seal::take_and_check(dir, &sled_dir);
        if !proceed(sealed)? {
            return Ok(None);
        }
        remove_unfinished_snapshots(&sled_dir)?;
        let guard = BlobGuard::take(dir, &sled_dir);
        let opened = open_sled(&sled_dir);
        guard.release();
        let db = opened?;
        let log = db.open_tree(LOG_TREE)?;
        match log.get(meta_key(FORMAT_KEY))? {
            Some(version) if version.as_ref() == [FORMAT_VERSION] => {}
            // Format 1 differs only in writing no stream-index runs, and formats 1 and 2 in
            // writing version-1 blocks; format 3 reads both as they are.
            Some(version) if version.as_ref() == [1] || version.as_ref() == [2] => {
                log.insert(meta_key(FORMAT_KEY), &[FORMAT_VERSION])?;
            }
            Some(version) => {
                return Err(Error::UnsupportedFormat {
                    found: version.first().copied().unwrap_or(0),
                    supported: FORMAT_VERSION,
                })
            }
            None => {
                log.insert(meta_key(FORMAT_KEY), &[FORMAT_VERSION])?;
            }
        }
        let anchor = HeadAnchor::open(dir)?;
        Ok(Some(Store {
            dir: dir.to_path_buf(),
            db: std::mem::ManuallyDrop::new(db),
            log: std::mem::ManuallyDrop::new(log),
            anchor,
            faulted: std::sync::atomic::AtomicBool::new(false),
            blocks: Mutex::new(BlockCache::default()),
            ownership: Mutex::new(Some(ownership)),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Marks the store as faulted after a failed write: the fault record goes into the
    /// anchor file first (so the next open recovers), and sled is never flushed again.
    pub(crate) fn mark_faulted(&self, reason: &str) {
        if !self.faulted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // Nothing better can be done when even this fails: the next open still finds
            // any blocks past the recorded head.
            let _ = self.anchor.mark_fault(reason);
        }
    }

    /// Cuts a faulted store off from its files so that the directory can be opened again
    /// in this process: every descriptor the process holds on a file under sled's
    /// directory (sled's log file, whose lock sled holds, and the syncer's) is pointed at
    /// `/dev/null`, opened read-only, and the directory lock is released. sled's leaked
    /// handles stay in memory, but nothing they do reaches the disk any more: a write
    /// fails, a read finds nothing. Idempotent.
    pub(crate) fn fence(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        if !self.faulted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Storage("only a faulted store can be fenced".into()));
        }
        let sled_dir = self.sled_dir();
        let sled_dir = std::fs::canonicalize(&sled_dir).map_err(|source| Error::io(&sled_dir, source))?;
        let null = std::fs::File::open("/dev/null").map_err(|source| Error::io("/dev/null", source))?;
        let descriptors = Path::new("/proc/self/fd");
        let entries = std::fs::read_dir(descriptors).map_err(|source| Error::io(descriptors, source))?;
        for entry in entries.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else { continue };
            let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
            if target.starts_with(&sled_dir) && fd != null.as_raw_fd() {
                // SAFETY: dup2 atomically replaces the descriptor `fd` — whoever uses it
                // goes on using a valid descriptor, now of /dev/null.
                if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                    return Err(Error::io(&target, std::io::Error::last_os_error()));
                }
            }
        }
        self.ownership.lock().map_err(|_| Error::Storage("the ownership lock was poisoned".into()))?.take();
        Ok(())
    }

    /// Refuses a store whose recovered head disagrees with its head anchor: sled may have
    /// cut off acknowledged events while recovering a damaged file. Appending then would
    /// overwrite the anchor, the only evidence of the loss, so the store is left as it is
    /// for `verify` to describe.
    pub(crate) fn check_anchor(&self, head: Option<Head>) -> Result<()> {
        let lost = |detail: String| Error::Corruption {
            at: Some(head.map_or(0, |head| head.seq + 1)),
            detail: format!("{detail}; refusing to append — run `cclog verify` on {}", self.dir.display()),
        };
        match (read_anchor(&self.dir), head) {
            (AnchorState::Absent, Some(head)) => self.anchor.write(head.seq, &head.hash),
            (AnchorState::Absent, None) => Ok(()),
            (AnchorState::Unreadable, _) => Err(lost("the head anchor is damaged".into())),
            (AnchorState::Head { seq, .. }, None) => {
                Err(lost(format!("event {seq} was acknowledged but the log is empty")))
            }
            (AnchorState::Head { seq, .. }, Some(head)) if seq > head.seq => {
                Err(lost(format!("event {seq} was acknowledged but the log ends at {}", head.seq)))
            }
            (AnchorState::Head { seq, hash }, Some(head)) if seq == head.seq && hash != head.hash => {
                Err(lost(format!("the head anchor's hash for event {seq} differs from the log's")))
            }
            (AnchorState::Head { .. }, Some(_)) => Ok(()),
        }
    }

    pub fn sled_dir(&self) -> PathBuf {
        self.dir.join("sled")
    }

    /// The head as recorded in the meta tree.
    pub fn stored_head(&self) -> Result<Option<Head>> {
        match self.log.get(meta_key(HEAD_KEY))? {
            None => Ok(None),
            Some(bytes) => Head::decode(&bytes)
                .map(Some)
                .ok_or_else(|| Error::Corruption { at: None, detail: "the head record is damaged".into() }),
        }
    }

    /// The block holding `seq`: its first seq and its bytes.
    pub(crate) fn block_containing(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>> {
        match self.log.range(block_key(0)..=block_key(seq)).next_back() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                let first = block_seq(&key)
                    .ok_or_else(|| Error::Corruption { at: Some(seq), detail: "damaged block key".into() })?;
                Ok(Some((first, value)))
            }
        }
    }

    /// The decoded events of the block holding `seq`, through a small cache.
    pub(crate) fn decoded_block(&self, seq: u64) -> Result<Option<(u64, Arc<Vec<Event>>)>> {
        if let Some(hit) = self.blocks.lock().ok().and_then(|cache| cache.find(seq)) {
            return Ok(Some(hit));
        }
        let Some((first, bytes)) = self.block_containing(seq)? else { return Ok(None) };
        let events = Arc::new(decode_block(first, &bytes)?);
        if let Ok(mut cache) = self.blocks.lock() {
            cache.insert(first, Arc::clone(&events));
        }
        Ok(Some((first, events)))
    }

    /// One event, if it is stored.
    pub(crate) fn read_event(&self, seq: u64) -> Result<Option<Event>> {
        Ok(self
            .decoded_block(seq)?
            .and_then(|(first, events)| usize::try_from(seq - first).ok().and_then(|index| events.get(index).cloned())))
    }

    /// Events with `from <= seq < end`, in order, decoding each block once.
    pub(crate) fn events_between(&self, from: u64, end: u64) -> impl Iterator<Item = Result<Event>> + 'static {
        let start = match self.block_containing(from) {
            Ok(Some((first, _))) => first,
            Ok(None) => from,
            Err(error) => return EventsBetween { blocks: None, pending: vec![Err(error)].into(), from, end },
        };
        let blocks = self.log.range(block_key(start)..block_key(end.max(start)));
        EventsBetween { blocks: Some(blocks), pending: VecDeque::new(), from, end }
    }

    /// The blocks from the one holding `from` on, in order, as stored.
    pub(crate) fn blocks_from(&self, from: u64) -> Result<impl Iterator<Item = Result<(u64, sled::IVec)>>> {
        let start = self.block_containing(from)?.map_or(from, |(first, _)| first);
        Ok(self.log.range(block_key(start).to_vec()..BLOCKS_END.to_vec()).map(|item| {
            let (key, value) = item?;
            let first =
                block_seq(&key).ok_or_else(|| Error::Corruption { at: None, detail: "damaged block key".into() })?;
            Ok((first, value))
        }))
    }

    // Forensic access below the engine's API, for tools and tests that damage a store on
    // purpose. Nothing here keeps the log's invariants.

    /// The stored bytes of the block holding `seq`, with its first seq.
    pub fn raw_block_containing(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self.block_containing(seq)?.map(|(first, bytes)| (first, bytes.to_vec())))
    }

    /// Stores `bytes` as the block starting at `first`, replacing any block there.
    pub fn raw_put_block(&self, first: u64, bytes: Vec<u8>) -> Result<()> {
        self.log.insert(block_key(first), bytes)?;
        self.forget_decoded_blocks();
        Ok(())
    }

    /// Removes the block starting at `first`.
    pub fn raw_remove_block(&self, first: u64) -> Result<()> {
        self.log.remove(block_key(first))?;
        self.forget_decoded_blocks();
        Ok(())
    }

    /// Closes sled as dropping the store does (a clean close, sealed) and hands back the
    /// directory's lock, so that the caller goes on with sled's files and nobody else can
    /// open them meanwhile (compaction).
    pub(crate) fn close_keeping_ownership(self) -> Result<Ownership> {
        let ownership = self
            .ownership
            .lock()
            .map_err(|_| Error::Storage("the ownership lock was poisoned".into()))?
            .take()
            .ok_or_else(|| Error::Storage("the store no longer owns its directory".into()))?;
        drop(self);
        Ok(ownership)
    }

    /// Drops every cached decoded block (the stored ones were changed underneath).
    pub(crate) fn forget_decoded_blocks(&self) {
        if let Ok(mut cache) = self.blocks.lock() {
            *cache = BlockCache::default();
        }
    }

    /// Overwrites the recorded head.
    pub fn raw_set_head(&self, head: Head) -> Result<()> {
        self.log.insert(meta_key(HEAD_KEY), head.encode().to_vec())?;
        Ok(())
    }

    /// Flushes sled's buffers (used when closing; commits sync through `DurableFiles`).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// Opens sled, turning a panic inside it (it has some on damaged files) into an error.
///
/// The caller already owns `cclog.lock`, so if sled's own lock on its files is still held it
/// is held by a previous owner in this process whose background threads are finishing; sled
/// is given a moment to let go before that counts as an error.
fn open_sled(sled_dir: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let config = sled_config(sled_dir);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open())) {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(error)))
                if error.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(Err(error)) => return Err(Error::from(error)),
            Err(panic) => {
                return Err(Error::Corruption {
                    at: None,
                    detail: format!("sled could not open the store: {}", panic_text(&panic)),
                })
            }
        }
    }
}

pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_string()
    }
}

/// Iterator behind [`Store::events_between`].
struct EventsBetween {
    blocks: Option<sled::Iter>,
    pending: VecDeque<Result<Event>>,
    from: u64,
    end: u64,
}

impl Iterator for EventsBetween {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                match &next {
                    Ok(event) if event.seq() < self.from => continue,
                    Ok(event) if event.seq() >= self.end => {
                        self.blocks = None;
                        self.pending.clear();
                        return None;
                    }
                    _ => return Some(next),
                }
            }
            let (key, value) = match self.blocks.as_mut()?.next()? {
                Ok(pair) => pair,
                Err(error) => return Some(Err(Error::from(error))),
            };
            let Some(first) = block_seq(&key) else {
                return Some(Err(Error::Corruption { at: None, detail: "damaged block key".into() }));
            };
            match decode_block(first, &value) {
                Ok(events) => self.pending.extend(events.into_iter().map(Ok)),
                Err(error) => {
                    self.blocks = None;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// Recently decoded blocks, so that reading a stream's events one by one does not decode the
/// same block again for each of them, and a hot session's pages are served without zstd.
/// Bounded by the bytes of the events it holds; the oldest decoded block goes first.
#[derive(Default)]
struct BlockCache {
    by_first: std::collections::BTreeMap<u64, Arc<Vec<Event>>>,
    /// First seqs in the order their blocks were decoded.
    order: VecDeque<u64>,
    bytes: usize,
}

/// What the decoded-block cache may hold.
const BLOCK_CACHE_BYTES: usize = 16 << 20;

/// Roughly what one decoded event takes besides its payload.
const EVENT_OVERHEAD: usize = 256;

impl BlockCache {
    fn find(&self, seq: u64) -> Option<(u64, Arc<Vec<Event>>)> {
        let (first, events) = self.by_first.range(..=seq).next_back()?;
        (seq < first + events.len() as u64).then(|| (*first, Arc::clone(events)))
    }

    fn insert(&mut self, first: u64, events: Arc<Vec<Event>>) {
        if self.by_first.contains_key(&first) {
            return;
        }
        self.bytes += Self::size(&events);
        self.by_first.insert(first, events);
        self.order.push_back(first);
        while self.bytes > BLOCK_CACHE_BYTES && self.order.len() > 1 {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(events) = self.by_first.remove(&oldest) {
                self.bytes -= Self::size(&events);
            }
        }
    }

    fn size(events: &[Event]) -> usize {
        events.iter().map(|event| event.payload.len() + EVENT_OVERHEAD).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(log: &sled::Tree, stream: &str, from: u64, end: u64) -> Vec<u64> {
        stream_seqs(log, stream, from, end).collect::<Result<_>>().unwrap()
    }

    #[test]
    fn stream_index_reads_single_entries_and_runs_from_any_seq() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree(LOG_TREE).unwrap();
        // "a": 0 alone (as format 1 wrote it), 2..=5 as a run, 7 alone; "ab" in between.
        for (stream, first, last) in [("a", 0, 0), ("ab", 1, 1), ("a", 2, 5), ("ab", 6, 6), ("a", 7, 7)] {
            log.insert(stream_key(stream, first), stream_run_value(first, last)).unwrap();
        }
        assert_eq!(seqs(&log, "a", 0, 100), [0, 2, 3, 4, 5, 7]);
        assert_eq!(seqs(&log, "a", 3, 100), [3, 4, 5, 7]);
        assert_eq!(seqs(&log, "a", 6, 100), [7]);
        assert_eq!(seqs(&log, "a", 0, 4), [0, 2, 3], "nothing at or past the end");
        assert_eq!(seqs(&log, "ab", 0, 100), [1, 6]);
        assert_eq!(seqs(&log, "b", 0, 100), Vec::<u64>::new());
    }

    #[test]
    fn a_damaged_run_is_reported_not_skipped() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree(LOG_TREE).unwrap();
        log.insert(stream_key("a", 4), vec![0, 1]).unwrap();
        let read: Vec<Result<u64>> = stream_seqs(&log, "a", 0, 100).collect();
        assert!(matches!(read.as_slice(), [Err(Error::Corruption { .. })]));
    }

    #[test]
    fn a_format_1_directory_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.log.insert(meta_key(FORMAT_KEY), &[1]).unwrap();
            store.db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.log.get(meta_key(FORMAT_KEY)).unwrap().unwrap().as_ref(), [FORMAT_VERSION]);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        store.log.insert(meta_key(FORMAT_KEY), &[FORMAT_VERSION + 1]).unwrap();
        drop(store);
        assert!(matches!(Store::open(dir.path()), Err(Error::UnsupportedFormat { .. })));
    }

    /// A directory as formats 1 and 2 wrote it, its blocks version 1 (records stored as they
    /// are), opens as it is, verifies, reads back every event and takes new appends, which
    /// are stored as version-2 blocks beside the old ones.
    #[test]
    fn a_format_2_directory_of_version_1_blocks_is_read_as_it_is() {
        use crate::{Log, LogOptions, NewEvent};
        let dir = tempfile::tempdir().unwrap();
        let payload = |index: u64| format!(r#"{{"n":{index},"text":"{}"}}"#, "word ".repeat(index as usize % 40));
        let written: Vec<Event> = {
            let log = Log::open(dir.path(), LogOptions::default()).unwrap();
            for group in 0..6u64 {
                let events = (group * 50..group * 50 + 50)
                    .map(|index| NewEvent::new(format!("s/{}", index % 3), "k", payload(index).into_bytes()))
                    .collect();
                log.append_blocking(events).unwrap();
            }
            log.range(0).take(300).collect::<Result<_>>().unwrap()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            let blocks: Vec<(sled::IVec, sled::IVec)> =
                store.log.range(block_key(0).to_vec()..BLOCKS_END.to_vec()).map(|item| item.unwrap()).collect();
            for (key, value) in blocks {
                let parsed = crate::block::parse_block(&value);
                let mut version_1 = vec![crate::block::BLOCK_VERSION_1];
                crate::envelope::write_varint(&mut version_1, parsed.records.len() as u64);
                version_1.extend_from_slice(&parsed.record_bytes);
                store.log.insert(key, version_1).unwrap();
            }
            store.log.insert(meta_key(FORMAT_KEY), &[2]).unwrap();
            store.db.flush().unwrap();
        }
        let log = Log::open(dir.path(), LogOptions::default()).unwrap();
        let read: Vec<Event> = log.range(0).take(300).collect::<Result<_>>().unwrap();
        assert_eq!(read, written);
        log.append_blocking(vec![NewEvent::new("s/0", "k", payload(300).into_bytes())]).unwrap();
        let footprint = log.footprint().unwrap();
        assert!(footprint.blocks.version_1_blocks >= 6 && footprint.blocks.version_2_blocks == 1, "{footprint:?}");
        assert_eq!(log.stream("s/0", 0).count(), 101);
        drop(log);
        let report = crate::verify_dir(dir.path(), 0, &mut |_, _| {}).unwrap();
        assert!(report.intact() && report.checked == 301, "{report:?}");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.log.get(meta_key(FORMAT_KEY)).unwrap().unwrap().as_ref(), [FORMAT_VERSION]);
    }

    #[test]
    fn a_new_data_directory_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new").join("data");
        drop(Store::open(&dir).unwrap());
        for created in [&dir, &parent.path().join("new")] {
            assert_eq!(
                std::fs::metadata(created).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                created.display()
            );
        }
        // An existing directory keeps the mode its owner gave it.
        let shared = parent.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
        drop(Store::open(&shared).unwrap());
        assert_eq!(std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777, 0o750);
    }
}
