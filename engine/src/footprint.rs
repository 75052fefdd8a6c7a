//! Where a data directory's bytes go: one pass over the `log` tree sums what each part of
//! the stored format holds (the blocks, and their headers, hashes and payloads before
//! compression, the stream index, metadata and each projection's state), and the directory's
//! files say what sled keeps on disk for it. The difference between the two is sled's own
//! overhead: page headers, stale versions of rewritten pages and segments not yet cleaned.
//! `cclog stats` shows it; docs/format.md explains each part.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::block::parse_block;
use crate::store::Store;
use crate::{Error, Result};

/// Key and value bytes of one part of the `log` tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeyValueBytes {
    pub keys: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

impl KeyValueBytes {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.keys += 1;
        self.key_bytes += key.len() as u64;
        self.value_bytes += value.len() as u64;
    }

    /// Key and value bytes together.
    pub fn bytes(&self) -> u64 {
        self.key_bytes + self.value_bytes
    }
}

/// What the event blocks hold: their stored bytes, and what their records take before the
/// block's compression, by field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlockBytes {
    /// The blocks' keys and values, as for any other part.
    pub stored: KeyValueBytes,
    pub events: u64,
    /// Payload bytes as appended.
    pub payload_bytes: u64,
    /// Event headers (seq, time, stream, kind, payload length).
    pub header_bytes: u64,
    /// The three hashes of every event: payload hash, prev and hash.
    pub hash_bytes: u64,
    /// The records uncompressed (version 2) or as stored (version 1): payloads (version 1:
    /// compressed segments), headers, hashes and record framing.
    pub record_bytes: u64,
    /// Blocks whose records are one compressed frame (version 2), and the older kind whose
    /// records are stored as they are, each payload a segment of a stream (version 1).
    pub version_2_blocks: u64,
    pub version_1_blocks: u64,
}

/// The files of a data directory, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FileBytes {
    /// sled's log file (`sled/db`).
    pub sled_log: u64,
    /// sled's blob files (`sled/blobs/`): page versions too large for its log.
    pub sled_blobs: u64,
    pub sled_blob_files: u64,
    /// sled's snapshots and configuration.
    pub sled_other: u64,
    /// cclog's own files: lock, head anchor, seal, quarantine.
    pub cclog: u64,
    pub total: u64,
}

/// Where the bytes of a data directory go.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Footprint {
    pub blocks: BlockBytes,
    pub stream_index: KeyValueBytes,
    pub meta: KeyValueBytes,
    /// Each projection's state (every generation still stored), by name.
    pub projections: BTreeMap<String, KeyValueBytes>,
    /// Keys of no known keyspace.
    pub other: KeyValueBytes,
    /// Every key and value in the tree: what sled has to keep.
    pub live_bytes: u64,
    pub files: FileBytes,
    /// sled's files less what they hold: page and message headers, stale page versions,
    /// segments not yet reclaimed.
    pub sled_overhead: u64,
}

/// Measures the store: one pass over its tree, one over its directory.
pub(crate) fn measure(store: &Store) -> Result<Footprint> {
    let mut footprint = Footprint::default();
    for item in store.log.iter() {
        let (key, value) = item?;
        footprint.live_bytes += (key.len() + value.len()) as u64;
        match key.first() {
            Some(b'E') => footprint.blocks.add_block(&key, &value),
            Some(b'S') => footprint.stream_index.add(&key, &value),
            Some(b'M') => footprint.meta.add(&key, &value),
            Some(b'P') => {
                let name = key[1..].split(|byte| *byte == 0).next().unwrap_or_default();
                footprint.projections.entry(String::from_utf8_lossy(name).into_owned()).or_default().add(&key, &value);
            }
            _ => footprint.other.add(&key, &value),
        }
    }
    footprint.files = file_bytes(&store.dir)?;
    let sled_files = footprint.files.sled_log + footprint.files.sled_blobs + footprint.files.sled_other;
    footprint.sled_overhead = sled_files.saturating_sub(footprint.live_bytes);
    Ok(footprint)
}

impl BlockBytes {
    fn add_block(&mut self, key: &[u8], value: &[u8]) {
        self.stored.add(key, value);
        let parsed = parse_block(value);
        match parsed.version {
            crate::block::BLOCK_VERSION => self.version_2_blocks += 1,
            _ => self.version_1_blocks += 1,
        }
        self.record_bytes += parsed.record_bytes.len() as u64;
        for record in &parsed.records {
            self.events += 1;
            self.header_bytes += record.header_bytes.len() as u64;
            self.hash_bytes += 96;
            if let Ok(header) = record.header() {
                self.payload_bytes += header.payload_len;
            }
        }
    }
}

fn file_bytes(dir: &Path) -> Result<FileBytes> {
    let mut files = FileBytes { total: crate::log::directory_size(dir)?, ..FileBytes::default() };
    let sled = dir.join("sled");
    files.sled_log = file_len(&sled.join("db"))?;
    let blobs = sled.join("blobs");
    if blobs.is_dir() {
        for entry in std::fs::read_dir(&blobs).map_err(|source| Error::io(&blobs, source))? {
            let entry = entry.map_err(|source| Error::io(&blobs, source))?;
            let metadata = entry.metadata().map_err(|source| Error::io(entry.path(), source))?;
            files.sled_blobs += metadata.len();
            files.sled_blob_files += 1;
        }
    }
    let sled_total = if sled.is_dir() { crate::log::directory_size(&sled)? } else { 0 };
    files.sled_other = sled_total.saturating_sub(files.sled_log + files.sled_blobs);
    files.cclog = files.total.saturating_sub(sled_total);
    Ok(files)
}

fn file_len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(metadata.len()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(Error::io(path, source)),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Log, LogOptions, NewEvent};

    #[test]
    fn the_parts_add_up_to_what_the_tree_holds() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogOptions::default()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..300)
            .map(|index| format!(r#"{{"n":{index},"text":"{}"}}"#, "x".repeat(index % 50)).into_bytes())
            .collect();
        let raw: u64 = payloads.iter().map(|payload| payload.len() as u64).sum();
        log.append_blocking(payloads.iter().map(|payload| NewEvent::new("s/1", "k", payload.clone())).collect())
            .unwrap();
        log.append_blocking(vec![NewEvent::new("s/2", "k", b"tiny".to_vec())]).unwrap();
        let footprint = log.footprint().unwrap();
        let blocks = footprint.blocks;
        assert_eq!(blocks.events, 301);
        assert_eq!(blocks.payload_bytes, raw + 4);
        assert_eq!(blocks.hash_bytes, 301 * 96);
        assert!(blocks.record_bytes > blocks.payload_bytes + blocks.hash_bytes + blocks.header_bytes);
        assert_eq!((blocks.version_1_blocks, blocks.version_2_blocks), (0, blocks.stored.keys));
        // Compressed together, the records take less than they would one by one.
        assert!(blocks.stored.value_bytes < blocks.record_bytes, "{blocks:?}");
        assert_eq!(footprint.stream_index.keys, 2);
        let parts = blocks.stored.bytes()
            + footprint.stream_index.bytes()
            + footprint.meta.bytes()
            + footprint.projections.values().map(|part| part.bytes()).sum::<u64>()
            + footprint.other.bytes();
        assert_eq!(parts, footprint.live_bytes);
        assert!(footprint.files.total >= footprint.files.sled_log + footprint.files.sled_blobs);
    }
}
