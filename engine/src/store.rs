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
//! events                 seq (8)                        -> stored record (see `envelope`)
//! streams                stream ‖ 0x00 ‖ seq (8)         -> empty
//! meta                   "head"                         -> seq (8) ‖ hash (32) ‖ ts_us (8)
//!                        "format"                       -> FORMAT_VERSION (1)
//!                        "projection/" ‖ name           -> postcard(ProjectionMeta)
//! projection/<name>/<generation>                        -> the projection's own keys
//! ```

use std::path::{Path, PathBuf};

use crate::anchor::HeadAnchor;
use crate::envelope::FORMAT_VERSION;
use crate::ownership::Ownership;
use crate::{Error, Hash, Result};

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
        Ok(Store { dir: dir.to_path_buf(), db, events, streams, meta, anchor, _ownership: ownership })
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
fn open_sled(sled_dir: &Path) -> Result<sled::Db> {
    let config = sled_config(sled_dir);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(error)) => Err(Error::from(error)),
        Err(panic) => Err(Error::Corruption { at: None, detail: format!("sled could not open the store: {}", panic_text(&panic)) }),
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
