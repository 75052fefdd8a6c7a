//! Carving: reading cclog's events straight out of sled's files (and the blobs sled's
//! recovery deleted, which the store keeps in quarantine), without sled. A damaged
//! byte in sled's files costs more than the value it hits — sled checks each log message
//! and blob with a CRC and refuses the whole page (a leaf of many keys, or the root), and a
//! damaged page on the way to the head makes the store unopenable — but cclog's blocks are
//! self-describing and every record is hash-checked. So the carver scans `sled/db` and every
//! file in `sled/blobs/` for blocks, keeps each record whose payload matches its payload
//! hash and whose header, payload hash and `prev` match its hash, and proves the chain from
//! those hashes alone: starting at the head anchor (or the highest seq found), each event
//! names its predecessor's hash, so the chain is followed backwards and an old copy that
//! sled left as garbage (a block cut by recovery, say) is never mistaken for the live one.
//!
//! What it costs: one read of sled's files, and a hash of each candidate record's header.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::anchor::{read_anchor, AnchorState};
use crate::block::{decode_header, frame_of, parse_block, BLOCK_VERSION, BLOCK_VERSION_1, MAX_BLOCK_EVENTS};
use crate::envelope::{chain_hash, payload_hash, read_varint};
use crate::{Error, Event, Hash, Result};

/// A record carved from sled's files: the event, and its header bytes as they were hashed.
#[derive(Debug, Clone)]
pub struct CarvedEvent {
    pub event: Event,
    pub header_bytes: Vec<u8>,
}

/// The events of a chain proven from carved records, and what is missing from it.
#[derive(Debug, Default)]
pub struct CarvedChain {
    /// In seq order; a seq may be missing (see `missing`).
    pub events: Vec<CarvedEvent>,
    /// Ranges of seqs (inclusive) below the top that no intact record was found for.
    pub missing: Vec<(u64, u64)>,
    /// Intact records found that the chain does not use (old copies, cut tails).
    pub unused: u64,
    /// For seqs of which only damaged records were found: what was wrong with them.
    pub faults: BTreeMap<u64, crate::DamageKind>,
    /// Seqs (inclusive) past the last event proven up to the head the anchor says was
    /// acknowledged: lost with no record left, when the chain ends early.
    pub lost_tail: Option<(u64, u64)>,
}

/// How much of sled's log file one thread scans at once; pieces overlap by more than sled's
/// largest message there (a segment, 512 KiB), so every block lies whole in some piece.
const PIECE: u64 = 8 << 20;
const OVERLAP: usize = 1 << 20;

/// What the carver keeps of each intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Everything, to write it elsewhere (salvage).
    Payloads,
    /// Headers and hashes only, to tell what is proven (verify); payloads are checked and
    /// dropped.
    Hashes,
}

/// Scans a data directory's sled files for intact records, and proves the longest chain
/// they allow, ending at the head anchor when the anchor's event was found.
pub fn carve_dir(dir: &Path, keep: Keep, progress: &mut dyn FnMut(u64, u64)) -> Result<CarvedChain> {
    let sled_dir = dir.join("sled");
    let mut files = vec![sled_dir.join("db")];
    // sled's blobs, and those its recovery deleted (kept in quarantine by the store).
    for blobs in [sled_dir.join("blobs"), dir.join(crate::store::QUARANTINE_DIR).join("blobs")] {
        if let Ok(entries) = std::fs::read_dir(blobs) {
            files.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
    let total: u64 = files.iter().filter_map(|path| std::fs::metadata(path).ok()).map(|meta| meta.len()).sum();
    // The files are cut into pieces that overlap by OVERLAP (a block that starts in the
    // overlap is scanned twice, whole, and its copies are told apart by their hashes), and
    // the pieces are scanned on every core at once.
    let mut pieces: Vec<(&PathBuf, u64, u64)> = Vec::new();
    for (index, path) in files.iter().enumerate() {
        let length = std::fs::metadata(path).map_or(0, |meta| meta.len());
        // Only sled's log file (the first) is cut: a blob is one value, of any size.
        let piece = if index == 0 { PIECE } else { length.max(1) };
        let mut start = 0;
        while start < length {
            let end = (start + piece + OVERLAP as u64).min(length);
            pieces.push((path, start, end));
            start += piece;
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get()).min(pieces.len().max(1));
    let results: Vec<Result<Scanned>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut scanned = Scanned::default();
                    while let Some(&(path, start, end)) =
                        pieces.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        scan_piece(path, start, end, keep, &mut scanned)?;
                        done.fetch_add(end - start, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(scanned)
                })
            })
            .collect();
        while workers.iter().any(|worker| !worker.is_finished()) {
            progress(done.load(std::sync::atomic::Ordering::Relaxed), total);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or_else(|_| Err(Error::Storage("a carving thread panicked".into()))))
            .collect()
    });
    let mut found: BTreeMap<u64, Vec<CarvedEvent>> = BTreeMap::new();
    let mut faults = BTreeMap::new();
    for scanned in results {
        let scanned = scanned?;
        for (seq, candidates) in scanned.found {
            let known = found.entry(seq).or_default();
            for candidate in candidates {
                if !known.iter().any(|other| other.event.hash == candidate.event.hash) {
                    known.push(candidate);
                }
            }
        }
        faults.extend(scanned.faults);
    }
    progress(total, total);
    let anchor = match read_anchor(dir) {
        AnchorState::Head { seq, hash } => Some((seq, hash)),
        _ => None,
    };
    let mut chain = prove_chain(found, anchor);
    let proven: std::collections::BTreeSet<u64> = chain.events.iter().map(|carved| carved.event.seq()).collect();
    faults.retain(|seq, _| !proven.contains(seq));
    chain.faults = faults;
    let first_missing = chain.events.last().map_or(0, |carved| carved.event.seq() + 1);
    chain.lost_tail = anchor.map(|(seq, _)| (first_missing, seq)).filter(|(first, last)| first <= last);
    Ok(chain)
}

/// What one thread's files hold: intact records by seq, and what was wrong with damaged ones.
#[derive(Default)]
struct Scanned {
    found: BTreeMap<u64, Vec<CarvedEvent>>,
    faults: BTreeMap<u64, crate::DamageKind>,
}

/// Scans bytes `start..end` of one file.
fn scan_piece(path: &Path, start: u64, end: u64, keep: Keep, scanned: &mut Scanned) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(path) else { return Ok(()) };
    let mut bytes = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut bytes, start).map_err(|source| Error::io(path, source))?;
    scan(&bytes, keep, &mut scanned.found, &mut scanned.faults);
    Ok(())
}

/// Adds every intact record of every block found in `bytes` to `found`.
fn scan(
    bytes: &[u8],
    keep: Keep,
    found: &mut BTreeMap<u64, Vec<CarvedEvent>>,
    faults: &mut BTreeMap<u64, crate::DamageKind>,
) {
    let mut at = 0;
    while at + 2 < bytes.len() {
        if !could_start_block(&bytes[at..]) {
            at += 1;
            continue;
        }
        let parsed = parse_block(&bytes[at..]);
        // The scan skips past what was proven only: a damaged record's length may be
        // garbage and reach over blocks that follow it.
        let mut end = at + 1;
        for record in &parsed.records {
            let Ok(header) = record.header() else { break };
            let payload_intact = record.payload.as_ref().is_ok_and(|payload| {
                payload.len() as u64 == header.payload_len && payload_hash(payload) == record.payload_hash
            });
            let Ok(payload) = &record.payload else {
                faults.insert(header.seq, crate::DamageKind::PayloadAltered);
                continue;
            };
            if chain_hash(&record.header_bytes, &record.payload_hash, &record.prev) != record.hash {
                faults.insert(header.seq, crate::DamageKind::HeaderAltered);
                continue;
            }
            // The record's framing is proven by its hash, so the scan may skip it.
            end = at + parsed.stored_end_of(record);
            if !payload_intact {
                faults.insert(header.seq, crate::DamageKind::PayloadAltered);
                continue;
            }
            let candidates = found.entry(header.seq).or_default();
            if candidates.iter().any(|known| known.event.hash == record.hash) {
                continue;
            }
            candidates.push(CarvedEvent {
                header_bytes: record.header_bytes.to_vec(),
                event: Event {
                    header,
                    payload_hash: record.payload_hash,
                    prev: record.prev,
                    hash: record.hash,
                    payload: if keep == Keep::Payloads { payload.clone() } else { Vec::new() },
                },
            });
        }
        at = end.max(at + 1);
    }
}

/// The four bytes every zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether a block could start here (checked before any decompression): for version 2, a
/// plausible count and a zstd frame that fits; for version 1, a first record whose hash is
/// that of its header, payload hash and `prev`.
fn could_start_block(bytes: &[u8]) -> bool {
    match bytes[0] {
        BLOCK_VERSION => frame_of(bytes).is_ok_and(|(count, frame)| {
            (1..=MAX_BLOCK_EVENTS as u64).contains(&count) && bytes[frame].starts_with(&ZSTD_MAGIC)
        }),
        BLOCK_VERSION_1 => first_record_is_genuine(bytes),
        _ => false,
    }
}

fn first_record_is_genuine(bytes: &[u8]) -> bool {
    let Some((count, count_len)) = read_varint(&bytes[1..]) else { return false };
    if count == 0 || count > MAX_BLOCK_EVENTS as u64 {
        return false;
    }
    let Ok((layout, _)) = crate::block::frame_record(bytes, 1 + count_len) else { return false };
    let header_bytes = &bytes[layout.header.clone()];
    if decode_header(header_bytes).is_err() {
        return false;
    }
    let hash = |range: std::ops::Range<usize>| {
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes[range]);
        Hash(out)
    };
    chain_hash(header_bytes, &hash(layout.payload_hash.clone()), &hash(layout.prev.clone()))
        == hash(layout.hash.clone())
}

/// Follows the chain backwards from the top: the anchor's event when it was found (and
/// forwards from it, through events whose `prev` links to it, for what was durable but not
/// yet anchored), else the highest seq. Where several candidates could continue a stretch,
/// the one with the longest chain behind (or ahead of) it is taken.
fn prove_chain(mut found: BTreeMap<u64, Vec<CarvedEvent>>, anchor: Option<(u64, Hash)>) -> CarvedChain {
    let total: u64 = found.values().map(|candidates| candidates.len() as u64).sum();
    let mut chain = CarvedChain::default();
    let Some(&highest) = found.keys().next_back() else { return chain };
    let anchored = anchor.filter(|(seq, hash)| {
        found.get(seq).is_some_and(|candidates| candidates.iter().any(|candidate| candidate.event.hash == *hash))
    });
    // Forwards from the anchor.
    let mut ahead: Vec<CarvedEvent> = Vec::new();
    if let Some((anchor_seq, anchor_hash)) = anchored {
        let mut seq = anchor_seq + 1;
        let mut previous = anchor_hash;
        while let Some(candidates) = found.get(&seq) {
            let linked: Vec<CarvedEvent> =
                candidates.iter().filter(|candidate| candidate.event.prev == previous).cloned().collect();
            let Some(next) = longest_ahead(&found, linked) else { break };
            previous = next.event.hash;
            found.remove(&seq);
            ahead.push(next);
            seq += 1;
        }
    }
    let (mut seq, mut wanted) = match anchored {
        Some((seq, hash)) => (seq, Some(hash)),
        None => (highest, None),
    };
    let mut picked: Vec<CarvedEvent> = Vec::new();
    loop {
        let candidates = found.remove(&seq).unwrap_or_default();
        let chosen = match wanted {
            Some(hash) => candidates.into_iter().find(|candidate| candidate.event.hash == hash),
            None => longest_back(&found, candidates),
        };
        match chosen {
            Some(event) => {
                wanted = Some(event.event.prev);
                picked.push(event);
                if seq == 0 {
                    break;
                }
                seq -= 1;
            }
            None => {
                // A hole: the next event down that was found starts a new stretch.
                let Some((&below, _)) = found.range(..seq).next_back() else {
                    chain.missing.push((0, seq));
                    break;
                };
                chain.missing.push((below + 1, seq));
                seq = below;
                wanted = None;
            }
        }
    }
    picked.reverse();
    picked.extend(ahead);
    chain.missing.reverse();
    chain.unused = total - picked.len() as u64;
    chain.events = picked;
    chain
}

/// Of several candidates that continue a stretch forwards, the one whose successor chain
/// (through `found`) is the longest.
fn longest_ahead(found: &BTreeMap<u64, Vec<CarvedEvent>>, candidates: Vec<CarvedEvent>) -> Option<CarvedEvent> {
    let length = |candidate: &CarvedEvent| {
        let mut length = 0u64;
        let mut seq = candidate.event.seq() + 1;
        let mut previous = candidate.event.hash;
        while let Some(next) =
            found.get(&seq).and_then(|candidates| candidates.iter().find(|c| c.event.prev == previous))
        {
            length += 1;
            previous = next.event.hash;
            seq += 1;
        }
        length
    };
    candidates.into_iter().max_by_key(length)
}

/// Of several candidates for one seq with no known successor, the one whose predecessor
/// chain (through `found`) is the longest.
fn longest_back(found: &BTreeMap<u64, Vec<CarvedEvent>>, candidates: Vec<CarvedEvent>) -> Option<CarvedEvent> {
    let length = |candidate: &CarvedEvent| {
        let mut length = 0u64;
        let mut seq = candidate.event.seq();
        let mut wanted = candidate.event.prev;
        while seq > 0 {
            seq -= 1;
            match found.get(&seq).and_then(|candidates| candidates.iter().find(|c| c.event.hash == wanted)) {
                Some(previous) => {
                    length += 1;
                    wanted = previous.event.prev;
                }
                None => break,
            }
        }
        length
    };
    candidates.into_iter().max_by_key(length)
}
