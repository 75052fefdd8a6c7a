//! Verification: walk every event from a starting seq, recompute every hash, check seq
//! continuity and every prev link, compare the end of the log with the recorded head and the
//! head anchor, and name the first bad position and what is wrong with it. Damage is the
//! answer, not an error: the walk never panics and never gives up on a damaged store
//! without saying what it found.

use std::path::Path;

use serde::Serialize;

use crate::anchor::{read_anchor, AnchorState};
use crate::block::{parse_block, BlockRecord, RecordFault};
use crate::envelope::{chain_hash, payload_hash, GENESIS};
use crate::store::{panic_text, Head, Store};
use crate::{Error, Hash, Result};

/// What kind of damage verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// The payload does not match its hash, or no longer decodes.
    PayloadAltered,
    /// The header or the stored hash was changed: the recomputed hash differs.
    HeaderAltered,
    /// The event's `prev` is not the hash of the event before it.
    LinkBroken,
    /// A seq is missing.
    Gap,
    /// An intact event sits at another event's position.
    Reordered,
    /// A copy of an earlier event sits at a later position.
    Duplicate,
    /// The log ends before the head it recorded, or before its head anchor.
    Truncated,
    /// The recorded head or anchor disagrees with the events.
    HeadMismatch,
    /// The store, or a record's framing, cannot be read at all.
    Unreadable,
}

impl DamageKind {
    pub fn describe(&self) -> &'static str {
        match self {
            DamageKind::PayloadAltered => "payload altered",
            DamageKind::HeaderAltered => "header or hash altered",
            DamageKind::LinkBroken => "chain link broken",
            DamageKind::Gap => "gap in seq",
            DamageKind::Reordered => "events reordered",
            DamageKind::Duplicate => "duplicated event",
            DamageKind::Truncated => "log truncated",
            DamageKind::HeadMismatch => "head mismatch",
            DamageKind::Unreadable => "unreadable store",
        }
    }
}

/// The first damage found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// The first bad seq, when the store was readable enough to tell.
    pub seq: Option<u64>,
    pub kind: DamageKind,
    pub detail: String,
}

/// The outcome of a verification walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub from: u64,
    /// Events whose hashes and links were checked and found intact.
    pub checked: u64,
    /// The last intact event's seq and hash.
    pub last_good: Option<(u64, String)>,
    pub damage: Option<Damage>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.damage.is_none()
    }

    /// A report on a store that could not be read at all.
    fn unreadable(from: u64, detail: impl Into<String>) -> VerifyReport {
        VerifyReport {
            from,
            checked: 0,
            last_good: None,
            damage: Some(Damage { seq: None, kind: DamageKind::Unreadable, detail: detail.into() }),
        }
    }
}

/// Progress callback: events checked so far, events expected in all.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Opens a data directory for verification only and walks it. A store that will not open is
/// reported as [`DamageKind::Unreadable`]; only a held lock is an error, since then nothing
/// can be said about the store.
pub fn verify_dir(dir: &Path, from: u64, progress: Progress<'_>) -> Result<VerifyReport> {
    if !dir.join("sled").join("db").exists() {
        // A directory the engine once owned keeps its lock and anchor files.
        if !dir.join(crate::ANCHOR_FILE).exists() {
            return Err(Error::Storage(format!("{} holds no cclog store", dir.display())));
        }
        return Ok(VerifyReport::unreadable(from, "sled's log file (sled/db) is missing"));
    }
    match Store::open(dir) {
        Ok(store) => {
            // Starting right after the head is allowed: it checks the anchor and nothing else.
            if let Ok(head) = store.stored_head() {
                let len = head.map_or(0, |head| head.seq + 1);
                if from > len {
                    return Err(Error::OutOfRange { from, len });
                }
            }
            Ok(walk(&store, from, None, progress))
        }
        Err(error @ Error::Locked { .. }) => Err(error),
        Err(error) => Ok(VerifyReport::unreadable(from, error.to_string())),
    }
}

/// Logs shorter than this are walked on one thread.
const PARALLEL_FROM_EVENTS: u64 = 65_536;

/// Walks an open store: long logs in as many contiguous ranges as there are cores, each
/// range on its own thread checking its link into the range before it. Panics inside sled
/// on damaged pages are caught and reported.
/// Walks the log from `from`. With `snapshot` (a live log's durable head) the walk ends
/// there and the end is checked against it, so that appends during the walk are not
/// mistaken for a head mismatch.
pub(crate) fn walk(store: &Store, from: u64, snapshot: Option<Head>, progress: Progress<'_>) -> VerifyReport {
    let head = snapshot.or_else(|| store.stored_head().ok().flatten());
    let total = head.map_or(0, |head| (head.seq + 1).saturating_sub(from));
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get() as u64);
    if total < PARALLEL_FROM_EVENTS || threads < 2 {
        return walk_range(store, from, None, snapshot, &mut |done| progress(done, total));
    }
    let chunk = total.div_ceil(threads);
    let bounds: Vec<(u64, Option<u64>)> = (0..threads)
        .map(|index| {
            let start = from + index * chunk;
            let until = (index + 1 < threads).then_some(start + chunk);
            (start, until)
        })
        .collect();
    let done: Vec<std::sync::atomic::AtomicU64> = bounds.iter().map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
    let reports = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .iter()
            .zip(&done)
            .map(|(&(start, until), done)| {
                scope.spawn(move || {
                    walk_range(store, start, until, snapshot, &mut |checked| {
                        done.store(checked, std::sync::atomic::Ordering::Relaxed)
                    })
                })
            })
            .collect();
        while handles.iter().any(|handle| !handle.is_finished()) {
            progress(done.iter().map(|done| done.load(std::sync::atomic::Ordering::Relaxed)).sum(), total);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| VerifyReport::unreadable(from, "a verifier thread failed")))
            .collect::<Vec<_>>()
    });
    let mut combined = VerifyReport { from, checked: 0, last_good: None, damage: None };
    for report in reports {
        combined.checked += report.checked;
        if report.last_good.is_some() {
            combined.last_good = report.last_good;
        }
        if report.damage.is_some() {
            combined.damage = report.damage;
            break;
        }
    }
    progress(combined.checked, total);
    combined
}

/// Walks events `from..until` (to the end of the log, with its end checks, when `until` is
/// `None`).
fn walk_range(
    store: &Store,
    from: u64,
    until: Option<u64>,
    snapshot: Option<Head>,
    progress: &mut dyn FnMut(u64),
) -> VerifyReport {
    let mut walker = Walker { store, from, until, snapshot, checked: 0, last_good: None };
    let damage = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walker.run(progress))) {
        Ok(damage) => damage,
        Err(panic) => Some(Damage {
            seq: Some(walker.next_expected()),
            kind: DamageKind::Unreadable,
            detail: format!("the store panicked while reading: {}", panic_text(&panic)),
        }),
    };
    VerifyReport {
        from,
        checked: walker.checked,
        last_good: walker.last_good.map(|(seq, hash)| (seq, hash.to_hex())),
        damage,
    }
}

struct Walker<'a> {
    store: &'a Store,
    from: u64,
    /// Where this walker's range ends (exclusive); `None` for the end of the log.
    until: Option<u64>,
    /// A live log's durable head: the end of the walk and what the end is checked against.
    snapshot: Option<Head>,
    checked: u64,
    last_good: Option<(u64, Hash)>,
}

fn damage(seq: Option<u64>, kind: DamageKind, detail: impl Into<String>) -> Option<Damage> {
    Some(Damage { seq, kind, detail: detail.into() })
}

impl Walker<'_> {
    fn next_expected(&self) -> u64 {
        self.last_good.map_or(self.from, |(seq, _)| seq + 1)
    }

    fn run(&mut self, progress: &mut dyn FnMut(u64)) -> Option<Damage> {
        let stored_head = match (self.snapshot, self.store.stored_head()) {
            (Some(snapshot), _) => Some(snapshot),
            (None, Ok(head)) => head,
            (None, Err(error)) => return damage(None, DamageKind::Unreadable, error.to_string()),
        };
        let until = self.until.or(self.snapshot.map(|head| head.seq + 1)).unwrap_or(u64::MAX);
        let mut prev = match self.hash_before(self.from) {
            Ok(hash) => hash,
            Err(found) => return Some(found),
        };
        let blocks = match self.store.blocks_from(self.from) {
            Ok(blocks) => blocks,
            Err(error) => return damage(Some(self.from), DamageKind::Unreadable, error.to_string()),
        };
        let mut expected = self.from;
        for block in blocks {
            let (first, value) = match block {
                Ok(block) => block,
                Err(error) => {
                    return damage(Some(expected), DamageKind::Unreadable, format!("reading the log: {error}"))
                }
            };
            if first >= until {
                break;
            }
            if first > expected {
                let detail = if first == expected + 1 {
                    format!("event {expected} is missing")
                } else {
                    format!("events {expected}..={} are missing", first - 1)
                };
                return damage(Some(expected), DamageKind::Gap, detail);
            }
            let parsed = parse_block(&value);
            for (index, record) in parsed.records.iter().enumerate() {
                let position = first + index as u64;
                if position < expected {
                    continue;
                }
                if position >= until {
                    break;
                }
                if let Some(found) = self.check_record(position, record, &prev, &parsed.records[index + 1..]) {
                    return Some(found);
                }
                prev = record.hash;
                self.last_good = Some((position, prev));
                self.checked += 1;
                expected = position + 1;
                if self.checked.is_multiple_of(16_384) {
                    progress(self.checked);
                }
            }
            if let Some(fault) = parsed.framing_fault {
                return damage(Some(expected), DamageKind::Unreadable, fault.to_string());
            }
        }
        progress(self.checked);
        match self.until {
            // A range that ends early ends where the next range's link check begins.
            Some(until) if expected < until => {
                let kind = if stored_head.is_some_and(|head| head.seq >= until) {
                    DamageKind::Gap
                } else {
                    DamageKind::Truncated
                };
                damage(Some(expected), kind, format!("events {expected}..{until} are missing"))
            }
            Some(_) => None,
            None => self.check_end(stored_head),
        }
    }

    /// The stored hash of event `seq`, read from its record without decoding the payload.
    fn stored_hash(&self, seq: u64) -> std::result::Result<Option<Hash>, String> {
        let Some((first, bytes)) = self.store.block_containing(seq).map_err(|error| error.to_string())? else {
            return Ok(None);
        };
        let parsed = parse_block(&bytes);
        let index = usize::try_from(seq - first).map_err(|_| "block offset overflows".to_string())?;
        match parsed.records.get(index) {
            Some(record) => Ok(Some(record.hash)),
            None => match parsed.framing_fault {
                Some(fault) => Err(fault.to_string()),
                None => Ok(None),
            },
        }
    }

    /// The hash the event at `from` must link to.
    fn hash_before(&self, from: u64) -> std::result::Result<Hash, Damage> {
        if from == 0 {
            return Ok(GENESIS);
        }
        match self.stored_hash(from - 1) {
            Ok(Some(hash)) => Ok(hash),
            Ok(None) => Err(Damage {
                seq: Some(from - 1),
                kind: DamageKind::Gap,
                detail: format!("event {} before the starting point is missing", from - 1),
            }),
            Err(detail) => Err(Damage { seq: Some(from - 1), kind: DamageKind::Unreadable, detail }),
        }
    }

    /// Checks one record: its payload first; then, for a record whose own hash is intact,
    /// its position (so a moved event is named as moved); then its link (a changed `prev`
    /// breaks the link before it breaks the hash); and last the hash over the header.
    fn check_record(
        &self,
        seq: u64,
        record: &BlockRecord<'_>,
        prev: &Hash,
        later: &[BlockRecord<'_>],
    ) -> Option<Damage> {
        let header = match record.header() {
            Ok(header) => header,
            Err(fault) => return damage(Some(seq), DamageKind::HeaderAltered, fault.to_string()),
        };
        let payload = match &record.payload {
            Ok(payload) => payload,
            Err(RecordFault::Header(detail)) => return damage(Some(seq), DamageKind::HeaderAltered, detail.clone()),
            Err(fault) => return damage(Some(seq), DamageKind::PayloadAltered, fault.to_string()),
        };
        if payload.len() as u64 != header.payload_len || payload_hash(payload) != record.payload_hash {
            return damage(Some(seq), DamageKind::PayloadAltered, "the payload does not match its payload hash");
        }
        let self_consistent = chain_hash(record.header_bytes, &record.payload_hash, &record.prev) == record.hash;
        if self_consistent && header.seq < seq {
            let copy_of_earlier = matches!(self.stored_hash(header.seq), Ok(Some(original)) if original == record.hash);
            return if copy_of_earlier {
                damage(Some(seq), DamageKind::Duplicate, format!("position {seq} holds a copy of event {}", header.seq))
            } else {
                damage(Some(seq), DamageKind::Reordered, format!("position {seq} holds event {}", header.seq))
            };
        }
        if self_consistent && header.seq > seq {
            let moved_later = later.iter().any(|other| other.header().is_ok_and(|other| other.seq == seq));
            return if moved_later {
                damage(Some(seq), DamageKind::Reordered, format!("position {seq} holds event {}", header.seq))
            } else {
                damage(Some(seq), DamageKind::Gap, format!("event {seq} is missing; event {} follows", header.seq))
            };
        }
        if record.prev != *prev {
            return damage(Some(seq), DamageKind::LinkBroken, "prev is not the hash of the event before");
        }
        if !self_consistent {
            return damage(Some(seq), DamageKind::HeaderAltered, "the recomputed hash differs from the stored hash");
        }
        None
    }

    /// The log must end exactly at its recorded head, and not before its anchor.
    fn check_end(&self, stored_head: Option<Head>) -> Option<Damage> {
        let last = self.last_good;
        match (stored_head, last) {
            (Some(head), last) if last.is_none_or(|(seq, _)| seq < head.seq) => {
                let first_missing = last.map_or(self.from, |(seq, _)| seq + 1);
                if first_missing <= head.seq {
                    return damage(
                        Some(first_missing),
                        DamageKind::Truncated,
                        format!("the log ends at {}, its head is {}", describe_last(last), head.seq),
                    );
                }
            }
            (Some(head), Some((seq, hash))) if seq > head.seq || (seq == head.seq && hash != head.hash) => {
                return damage(
                    Some(head.seq),
                    DamageKind::HeadMismatch,
                    "the recorded head disagrees with the last event",
                );
            }
            (None, Some((seq, _))) => {
                return damage(Some(seq), DamageKind::HeadMismatch, "events exist but no head is recorded");
            }
            _ => {}
        }
        match read_anchor(&self.store.dir) {
            // On a live log the anchor may already be past the snapshot.
            AnchorState::Head { seq, .. } if self.snapshot.is_some_and(|snapshot| seq > snapshot.seq) => None,
            AnchorState::Head { seq, hash } => {
                let last_seq = last.map(|(seq, _)| seq);
                if last_seq.is_none_or(|last_seq| last_seq < seq) && self.from <= seq {
                    let first_missing = last_seq.map_or(self.from, |last_seq| last_seq + 1);
                    return damage(
                        Some(first_missing),
                        DamageKind::Truncated,
                        format!("the log ends at {}, but event {seq} was acknowledged as durable", describe_last(last)),
                    );
                }
                if seq >= self.from && !matches!(self.stored_hash(seq), Ok(Some(stored)) if stored == hash) {
                    return damage(
                        Some(seq),
                        DamageKind::HeadMismatch,
                        "the head anchor's hash differs from the event's",
                    );
                }
                None
            }
            AnchorState::Unreadable if last.is_some() => {
                damage(None, DamageKind::HeadMismatch, "the head anchor file is damaged")
            }
            AnchorState::Absent | AnchorState::Unreadable => None,
        }
    }
}

fn describe_last(last: Option<(u64, Hash)>) -> String {
    match last {
        Some((seq, _)) => format!("seq {seq}"),
        None => "no event".to_string(),
    }
}
