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
//! ```
//!
//! Trees and keys (all integers big-endian so that sled iterates in order):
//!
//! ```text
//! events                 first seq (8)                  -> block of events (see `block`)
//! streams                stream ‖ 0x00 ‖ seq (8)         -> empty
//! meta                   "head"                         -> seq (8) ‖ hash (32) ‖ ts_us (8)
//!                        "format"                       -> FORMAT_VERSION (1)
//!                        "projection/" ‖ name           -> postcard(ProjectionMeta)
//! projection/<name>/<generation>                        -> the projection's own keys
//! ```

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::anchor::HeadAnchor;
use crate::block::decode_block;
use crate::envelope::FORMAT_VERSION;
use crate::ownership::Ownership;
use crate::{Error, Event, Hash, Result};

pub(crate) const EVENTS_TREE: &str = "events";
pub(crate) const STREAMS_TREE: &str = "streams";
pub(crate) const META_TREE: &str = "meta";
pub(crate) const HEAD_KEY: &[u8] = b"head";
pub(crate) const FORMAT_KEY: &[u8] = b"format";

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

pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn stream_key(stream: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 9);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 1);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

/// An open data directory.
pub struct Store {
    pub(crate) dir: PathBuf,
    pub(crate) db: sled::Db,
    pub(crate) events: sled::Tree,
    pub(crate) streams: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) anchor: HeadAnchor,
    blocks: Mutex<BlockCache>,
    // Dropped last, so the directory stays locked until sled has closed its files.
    _ownership: Ownership,
}

/// sled's configuration; every opener must use the same one.
fn sled_config(sled_dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(sled_dir)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(256 << 20)
        // The writer flushes and fsyncs after every commit; a timer would only add syncs.
        .flush_every_ms(None)
}

impl Store {
    /// Opens (creating if needed) the data directory and takes ownership of it.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
        let ownership = Ownership::acquire(dir)?;
        let sled_dir = dir.join("sled");
        let db = open_sled(&sled_dir)?;
        let events = db.open_tree(EVENTS_TREE)?;
        let streams = db.open_tree(STREAMS_TREE)?;
        let meta = db.open_tree(META_TREE)?;
        match meta.get(FORMAT_KEY)? {
            Some(version) if version.as_ref() == [FORMAT_VERSION] => {}
            Some(version) => {
                return Err(Error::UnsupportedFormat {
                    found: version.first().copied().unwrap_or(0),
                    supported: FORMAT_VERSION,
                })
            }
            None => {
                meta.insert(FORMAT_KEY, &[FORMAT_VERSION])?;
            }
        }
        let anchor = HeadAnchor::open(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            db,
            events,
            streams,
            meta,
            anchor,
            blocks: Mutex::new(BlockCache::default()),
            _ownership: ownership,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn sled_dir(&self) -> PathBuf {
        self.dir.join("sled")
    }

    /// The head as recorded in the meta tree.
    pub fn stored_head(&self) -> Result<Option<Head>> {
        match self.meta.get(HEAD_KEY)? {
            None => Ok(None),
            Some(bytes) => Head::decode(&bytes)
                .map(Some)
                .ok_or_else(|| Error::Corruption { at: None, detail: "the head record is damaged".into() }),
        }
    }

    /// The block holding `seq`: its first seq and its bytes.
    pub(crate) fn block_containing(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>> {
        match self.events.range(..=seq_key(seq)).next_back() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                let first = be_u64(&key).ok_or_else(|| Error::Corruption { at: Some(seq), detail: "block key is not 8 bytes".into() })?;
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
        let blocks = self.events.range(seq_key(start)..seq_key(end.max(start)));
        EventsBetween { blocks: Some(blocks), pending: VecDeque::new(), from, end }
    }

    /// The events tree, for forensic tools and tests that must reach under the API.
    pub fn raw_events(&self) -> &sled::Tree {
        &self.events
    }

    /// The meta tree, for forensic tools and tests that must reach under the API.
    pub fn raw_meta(&self) -> &sled::Tree {
        &self.meta
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
            let Some(first) = be_u64(&key) else {
                return Some(Err(Error::Corruption { at: None, detail: "block key is not 8 bytes".into() }));
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
/// same block again for each of them.
#[derive(Default)]
struct BlockCache {
    entries: VecDeque<(u64, Arc<Vec<Event>>)>,
}

const BLOCK_CACHE_ENTRIES: usize = 64;

impl BlockCache {
    fn find(&self, seq: u64) -> Option<(u64, Arc<Vec<Event>>)> {
        self.entries
            .iter()
            .find(|(first, events)| *first <= seq && seq < first + events.len() as u64)
            .map(|(first, events)| (*first, Arc::clone(events)))
    }

    fn insert(&mut self, first: u64, events: Arc<Vec<Event>>) {
        if self.entries.len() >= BLOCK_CACHE_ENTRIES {
            self.entries.pop_back();
        }
        self.entries.push_front((first, events));
    }
}
