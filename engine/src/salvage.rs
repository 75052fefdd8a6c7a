//! Salvage: every event carving can prove (`carve`), with its original bytes and hashes,
//! copied into a new data directory. The copy is an ordinary store — blocks, stream index,
//! head and anchor; its projections are folded when it is first opened — whose `verify`
//! names exactly the seqs that could not be recovered. Nothing is written to the damaged
//! directory, and sled is not needed to read it.

use std::path::Path;

use serde::Serialize;

use crate::block::BlockEncoder;
use crate::carve::{carve_dir, CarvedEvent, Keep};
use crate::durability::DurableFiles;
use crate::store::{block_key, meta_key, stream_key, stream_run_value, Head, Store, HEAD_KEY};
use crate::{Error, Result};

/// What a salvage recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SalvageReport {
    /// Events copied.
    pub events: u64,
    /// The last event copied: its seq and hash (hex).
    pub head: Option<(u64, String)>,
    /// Ranges of seqs (inclusive) that no intact record was found for, up to the head the
    /// anchor says was acknowledged.
    pub missing: Vec<(u64, u64)>,
    /// Intact records found in sled's files that are not part of the chain (old copies).
    pub unused: u64,
}

/// Events written per sled batch.
const EVENTS_PER_BATCH: usize = 4096;

/// Carves `from` and writes what it proves into `to`, which must not exist or be empty.
pub fn salvage(from: &Path, to: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<SalvageReport> {
    if std::fs::read_dir(to).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Storage(format!(
            "{} is not empty; salvage writes into a new directory and never over one",
            to.display()
        )));
    }
    if !from.join("sled").exists() {
        return Err(Error::Storage(format!("{} holds no cclog store (no sled directory)", from.display())));
    }
    // No cclog may write the damaged directory while it is read (its lock file is the only
    // thing this touches there).
    let owner = crate::ownership::Ownership::acquire(from)?;
    crate::compact::settle(from, &owner)?;
    let chain = carve_dir(from, Keep::Payloads, progress)?;
    let store = Store::open(to)?;
    let mut files = DurableFiles::open(&store.sled_dir())?;
    let mut encoder = BlockEncoder::new()?;
    for batch_events in chain.events.chunks(EVENTS_PER_BATCH) {
        let mut batch = sled::Batch::default();
        write_blocks(batch_events, &mut encoder, &mut batch)?;
        write_stream_index(batch_events, &mut batch);
        store.log.apply_batch(batch)?;
    }
    let head = chain.events.last().map(|last| Head {
        seq: last.event.seq(),
        hash: last.event.hash,
        ts_us: last.event.header.ts_us,
    });
    if let Some(head) = head {
        store.log.insert(meta_key(HEAD_KEY), head.encode().to_vec())?;
    }
    store.db.flush()?;
    files.sync()?;
    if let Some(head) = head {
        store.anchor.write(head.seq, &head.hash)?;
    }
    // Acknowledged events past the last one proven are missing too: the copy ends early,
    // and says so.
    let mut missing = chain.missing;
    missing.extend(chain.lost_tail);
    write_known_holes(to, &missing)?;
    Ok(SalvageReport {
        events: chain.events.len() as u64,
        head: head.map(|head| (head.seq, head.hash.to_hex())),
        missing,
        unused: chain.unused,
    })
}

/// The file in a salvaged directory naming the seqs the salvage could not bring back, so
/// that opening it does not take those known holes for new damage (see `seal`).
pub(crate) const KNOWN_HOLES_FILE: &str = "salvage-holes.json";

fn write_known_holes(to: &Path, missing: &[(u64, u64)]) -> Result<()> {
    let path = to.join(KNOWN_HOLES_FILE);
    let json = serde_json::to_vec(missing).map_err(|error| Error::Storage(error.to_string()))?;
    std::fs::write(&path, json).map_err(|source| Error::io(&path, source))?;
    crate::durability::sync_dir(to)
}

/// The holes a salvage left in `dir` (none for a directory no salvage wrote).
pub(crate) fn known_holes(dir: &Path) -> Vec<(u64, u64)> {
    std::fs::read(dir.join(KNOWN_HOLES_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Blocks of consecutive events, their records verbatim (a hole ends a block).
fn write_blocks(events: &[CarvedEvent], encoder: &mut BlockEncoder, batch: &mut sled::Batch) -> Result<()> {
    let mut first: Option<u64> = None;
    let mut last = 0;
    for carved in events {
        let event = &carved.event;
        let contiguous = first.is_some() && event.seq() == last + 1;
        if first.is_some() && (!contiguous || encoder.is_full_for(event.payload.len())) {
            if let Some(first) = first.take() {
                batch.insert(block_key(first).to_vec(), encoder.finish()?);
            }
        }
        first.get_or_insert(event.seq());
        encoder.push(&carved.header_bytes, &event.payload_hash, &event.prev, &event.hash, &event.payload)?;
        last = event.seq();
    }
    if let Some(first) = first {
        batch.insert(block_key(first).to_vec(), encoder.finish()?);
    }
    Ok(())
}

/// Stream-index runs: consecutive seqs of one stream share an entry.
fn write_stream_index(events: &[CarvedEvent], batch: &mut sled::Batch) {
    let mut run: Option<(&str, u64, u64)> = None;
    for carved in events {
        let (stream, seq) = (carved.event.stream(), carved.event.seq());
        match &mut run {
            Some((run_stream, _, last)) if *run_stream == stream && *last + 1 == seq => *last = seq,
            _ => {
                if let Some((stream, first, last)) = run.take() {
                    batch.insert(stream_key(stream, first), stream_run_value(first, last));
                }
                run = Some((stream, seq, seq));
            }
        }
    }
    if let Some((stream, first, last)) = run {
        batch.insert(stream_key(stream, first), stream_run_value(first, last));
    }
}
