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

/// One damaged range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// The first bad seq, when the store was readable enough to tell.
    pub seq: Option<u64>,
    /// The last seq the damage covers, when the walk found intact events after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
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
    /// The first damage (also `damages[0]`).
    pub damage: Option<Damage>,
    /// Every damaged range, in seq order (at most [`MAX_DAMAGES`]): after each one the walk
    /// goes on at the next block it can read, so that one damaged block costs at most its
    /// own events in the report.
    pub damages: Vec<Damage>,
    /// Exactly the seqs (inclusive ranges) of which no intact copy exists, not in the store
    /// nor anywhere in sled's files: what a salvage cannot bring back. Damage that sled
    /// merely cannot read, whose records are intact in its files, is not lost.
    pub lost: Vec<(u64, u64)>,
    /// A write failed the last time the log was open: the walk stopped at the last
    /// acknowledged event, and this says what the next open for writing cuts and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_pending: Option<String>,
}

/// The walk reports at most this many damaged ranges.
pub const MAX_DAMAGES: usize = 1000;

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.damage.is_none()
    }

    fn new(from: u64) -> VerifyReport {
        VerifyReport {
            from,
            checked: 0,
            last_good: None,
            damage: None,
            damages: Vec::new(),
            lost: Vec::new(),
            recovery_pending: None,
        }
    }

    /// A report on a store that could not be read at all.
    fn unreadable(from: u64, detail: impl Into<String>) -> VerifyReport {
        let damage = Damage { seq: None, until: None, kind: DamageKind::Unreadable, detail: detail.into() };
        VerifyReport { damage: Some(damage.clone()), damages: vec![damage], ..VerifyReport::new(from) }
    }
}

/// Progress callback: events checked so far, events expected in all.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Free space a verification wants before it lets sled open the store: sled writes a
/// little on open (a snapshot), and a full disk must not make an intact store look damaged.
const VERIFY_NEEDS_FREE: u64 = 1 << 20;

/// Opens a data directory for verification only and walks it. A store that will not open is
/// reported as [`DamageKind::Unreadable`]; a held lock and a full disk are errors, since
/// then nothing can be said about the store (and a full disk is not damage).
///
/// A store whose last write failed (the anchor file carries a fault record) is walked to its
/// last acknowledged event; what lies past it is named in `recovery_pending`, since the next
/// open for writing cuts it.
pub fn verify_dir(dir: &Path, from: u64, progress: Progress<'_>) -> Result<VerifyReport> {
    if !dir.join("sled").join("db").exists() {
        // A directory the engine once owned keeps its lock and anchor files.
        if !dir.join(crate::ANCHOR_FILE).exists() {
            return Err(Error::Storage(format!("{} holds no cclog store", dir.display())));
        }
        return Ok(VerifyReport::unreadable(from, "sled's log file (sled/db) is missing"));
    }
    if let Ok(free) = crate::space::free_bytes(dir) {
        if free < VERIFY_NEEDS_FREE {
            return Err(Error::DiskFull { dir: dir.to_path_buf(), free, needed: VERIFY_NEEDS_FREE });
        }
    }
    // Carving comes first, before sled touches the files: sled's recovery of a damaged log
    // file cuts the file short past the damage (blobs it deletes are kept in quarantine),
    // so what can be proven must be read before sled opens. When carving already shows
    // the chain damaged, sled is not opened at all and the report comes from carving.
    let mut carved = None;
    let mut carved_report = None;
    let mut fault = None;
    let opened = Store::open_unless(dir, |_sealed| {
        // Read once the directory is owned, so that no writer changes it meanwhile.
        fault = crate::anchor::read_fault(dir);
        let chain = crate::carve::carve_dir(dir, crate::carve::Keep::Hashes, &mut |_, _| {}).ok();
        let damaged = chain.as_ref().is_some_and(|chain| chain_is_damaged(chain, read_anchor(dir)));
        if damaged && fault.is_none() {
            carved_report = chain.as_ref().map(|chain| report_from_carving(from, chain));
        }
        carved = chain;
        Ok(carved_report.is_none())
    });
    let opened = match opened {
        Ok(Some(store)) => Ok(store),
        Ok(None) => return carved_report.ok_or_else(|| Error::Storage("verification was not run".into())),
        Err(error) => Err(error),
    };
    match opened {
        Ok(store) => {
            let acknowledged = match (&fault, read_anchor(dir)) {
                (Some(_), AnchorState::Head { seq, hash }) => Some(Some(Head { seq, hash, ts_us: 0 })),
                (Some(_), _) => Some(None),
                (None, _) => None,
            };
            // Starting right after the head is allowed: it checks the anchor and nothing else.
            if let Ok(head) = store.stored_head() {
                let head = acknowledged.unwrap_or(head);
                let len = head.map_or(0, |head| head.seq + 1);
                if from > len {
                    return Err(Error::OutOfRange { from, len });
                }
            }
            let mut report = match acknowledged {
                Some(None) => VerifyReport::new(from),
                Some(Some(head)) => walk(&store, from, Some(head), progress),
                None => walk(&store, from, None, progress),
            };
            if !report.intact() {
                refine_with_carving(carved.as_ref(), &mut report);
            }
            if let Ok(head) = store.stored_head() {
                report_salvaged_tail(dir, head, &mut report);
            }
            if let Some(reason) = fault {
                let kept = match acknowledged.flatten() {
                    Some(head) => format!("events past {} were never acknowledged", head.seq),
                    None => "no event was acknowledged".to_string(),
                };
                report.recovery_pending = Some(format!(
                    "a write failed ({reason}); {kept}, and the next command that opens the log for writing cuts them"
                ));
            }
            Ok(report)
        }
        Err(error @ Error::Locked { .. }) => Err(error),
        Err(error) if error.is_disk_full() => Err(error),
        Err(error) => {
            let mut report = VerifyReport::unreadable(from, error.to_string());
            refine_with_carving(carved.as_ref(), &mut report);
            Ok(report)
        }
    }
}

/// Reads sled's files without sled (`carve`) to tell, for every damaged range, which of its
/// events are lost for good and which are intact in sled's files (and so salvageable), and
/// says so in the damage's detail. A store sled cannot open at all is described the same
/// way: what carving proves is what `cclog salvage` recovers.
fn refine_with_carving(carved: Option<&crate::carve::CarvedChain>, report: &mut VerifyReport) {
    let Some(carved) = carved else {
        report.lost = report.damages.iter().filter_map(damage_range).collect();
        return;
    };
    let present: std::collections::BTreeSet<u64> = carved.events.iter().map(|carved| carved.event.seq()).collect();
    let top = carved.events.last().map(|carved| carved.event.seq());
    let mut lost = Vec::new();
    for damage in &mut report.damages {
        let range = match damage_range(damage) {
            Some(range) => range,
            // The whole store: everything up to the carved top that carving did not prove.
            None => match top {
                Some(top) => (0, top),
                None => continue,
            },
        };
        let mut recoverable = 0u64;
        let mut start: Option<u64> = None;
        for seq in range.0..=range.1 {
            if present.contains(&seq) {
                recoverable += 1;
                if let Some(first) = start.take() {
                    lost.push((first, seq - 1));
                }
            } else {
                start.get_or_insert(seq);
            }
        }
        if let Some(first) = start {
            lost.push((first, range.1));
        }
        let total = range.1 - range.0 + 1;
        if recoverable > 0 {
            damage.detail.push_str(&format!(
                "; {recoverable} of its {total} event(s) are intact in sled's files: `cclog salvage --to DIR` recovers them"
            ));
        }
    }
    lost.sort_unstable();
    report.lost = lost;
    report.damage = report.damages.first().cloned();
}

/// A salvaged copy ends with the last event its salvage could prove; the events its
/// original had acknowledged after that (named in its holes file) are lost, and verifying
/// the copy says so as verifying the original did.
fn report_salvaged_tail(dir: &Path, head: Option<Head>, report: &mut VerifyReport) {
    let past_head = head.map_or(0, |head| head.seq + 1);
    for (first, last) in crate::salvage::known_holes(dir) {
        if first < past_head || last < report.from {
            continue;
        }
        report.damages.push(Damage {
            seq: Some(first.max(report.from)),
            until: Some(last),
            kind: DamageKind::Truncated,
            detail: format!(
                "{}: the directory this one was salvaged from had lost them",
                describe_events(first.max(report.from), last)
            ),
        });
        report.lost.push((first.max(report.from), last));
    }
    report.damage = report.damages.first().cloned();
}

/// Whether the carved chain has holes, or does not reach the acknowledged head. Without an
/// anchor nothing was acknowledged (or an old build wrote the store), and what the files
/// hold says nothing: sled's own view decides.
/// "event 7" or "events 7..=9".
pub(crate) fn describe_events(first: u64, last: u64) -> String {
    if first == last {
        format!("event {first}")
    } else {
        format!("events {first}..={last}")
    }
}

pub(crate) fn chain_is_damaged(chain: &crate::carve::CarvedChain, anchor: AnchorState) -> bool {
    match anchor {
        AnchorState::Head { seq, hash } => {
            !chain.missing.is_empty()
                || !chain.events.iter().any(|carved| carved.event.seq() == seq && carved.event.hash == hash)
        }
        AnchorState::Unreadable | AnchorState::Absent => false,
    }
}

/// The report on a store whose files show a damaged chain, from carving alone (sled left
/// unopened so that its recovery cuts nothing). Events past the last one proven, up to the
/// anchor's head, are lost: they were acknowledged and no record of them is intact.
fn report_from_carving(from: u64, chain: &crate::carve::CarvedChain) -> VerifyReport {
    let mut report = VerifyReport::new(from);
    let note = "sled was not opened, since its recovery would cut the damaged log file; \
                `cclog salvage --to DIR` copies every other event into a new directory";
    for &(first, last) in &chain.missing {
        if last < from {
            continue;
        }
        let kind = chain.faults.get(&first).copied().unwrap_or(DamageKind::Gap);
        let what = match kind {
            DamageKind::Gap => "no record of them is left in the store's files",
            _ => "their records in the store's files are damaged",
        };
        let range = describe_events(first, last);
        report.damages.push(Damage {
            seq: Some(first.max(from)),
            until: Some(last),
            kind,
            detail: format!("{range}: {what}; {note}"),
        });
        report.lost.push((first.max(from), last));
    }
    if report.damages.is_empty() {
        let first_missing = chain.events.last().map_or(0, |carved| carved.event.seq() + 1);
        report.damages.push(Damage {
            seq: Some(first_missing),
            until: chain.lost_tail.map(|(_, last)| last),
            kind: DamageKind::Truncated,
            detail: format!("the events in the store's files end before the acknowledged head; {note}"),
        });
        if let Some((first, last)) = chain.lost_tail {
            report.lost.push((first.max(from), last));
        }
    }
    report.checked = chain.events.iter().filter(|carved| carved.event.seq() >= from).count() as u64;
    report.last_good = chain.events.last().map(|carved| (carved.event.seq(), carved.event.hash.to_hex()));
    report.damage = report.damages.first().cloned();
    report
}

/// The seqs a damage covers, when it names any.
fn damage_range(damage: &Damage) -> Option<(u64, u64)> {
    match damage.kind {
        // The end of the log disagreeing with its head or anchor loses no stored event.
        DamageKind::HeadMismatch => None,
        _ => damage.seq.map(|seq| (seq, damage.until.unwrap_or(seq).max(seq))),
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
        let report = walk_range(store, from, None, snapshot, true, &mut |done| progress(done, total));
        let mut report = continue_past_damage(store, report, snapshot);
        report.damages.truncate(MAX_DAMAGES);
        return report;
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
                    walk_range(store, start, until, snapshot, true, &mut |checked| {
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
    let mut combined = VerifyReport::new(from);
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
    let mut combined = continue_past_damage(store, combined, snapshot);
    progress(combined.checked, total);
    combined.damages.truncate(MAX_DAMAGES);
    combined
}

/// After the first damage, walks on from the next block that can be read — again and
/// again — so that every damaged range is named and everything around them is checked.
/// Each resumed stretch is checked as a whole except for its link into the damage.
fn continue_past_damage(store: &Store, mut report: VerifyReport, snapshot: Option<Head>) -> VerifyReport {
    let Some(first) = report.damage.clone() else { return report };
    report.damages.clear();
    let mut current = first;
    loop {
        let resume = match current.seq {
            Some(seq) => next_readable_block(store, seq),
            None => None,
        };
        match resume {
            Some(start) if report.damages.len() < MAX_DAMAGES => {
                if current.until.is_none() && start > 0 && current.seq.is_some_and(|seq| start > seq) {
                    current.until = Some(start - 1);
                }
                report.damages.push(current);
                let resumed = walk_range(store, start, None, snapshot, false, &mut |_| {});
                report.checked += resumed.checked;
                if resumed.last_good.is_some() {
                    report.last_good = resumed.last_good;
                }
                match resumed.damage {
                    Some(damage) => current = damage,
                    None => break,
                }
            }
            _ => {
                // Nothing readable after it: sled lost the log's last page, so the damage
                // reaches the head.
                if current.kind == DamageKind::Unreadable && current.until.is_none() {
                    let head = snapshot.or_else(|| store.stored_head().ok().flatten());
                    current.until = head.map(|head| head.seq).filter(|head| current.seq.is_some_and(|seq| *head > seq));
                }
                report.damages.push(current);
                break;
            }
        }
    }
    report.damage = report.damages.first().cloned();
    report.lost = report.damages.iter().filter_map(damage_range).collect();
    report
}

/// The first seq of the first block after `seq` that sled can read. sled loses a whole page
/// (many blocks) to one bad byte and refuses every read that passes through it, so the
/// search gallops forwards until a read succeeds, then narrows down to the first key past
/// the lost page.
fn next_readable_block(store: &Store, seq: u64) -> Option<u64> {
    let first_at = |from: u64| -> Result<Option<u64>> {
        match store.log.range(crate::store::block_key(from)..crate::store::block_key(u64::MAX)).next() {
            None => Ok(None),
            Some(Ok((key, _))) => Ok(crate::store::block_seq(&key)),
            Some(Err(error)) => Err(Error::from(error)),
        }
    };
    let read = |from: u64| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| first_at(from))).ok()?.ok();
    let start = seq.checked_add(1)?;
    if let Some(found) = read(start) {
        return found;
    }
    // Gallop: the first probe past the lost page.
    let mut failing = start;
    let mut step = 1u64;
    let found = loop {
        let probe = start.checked_add(step)?;
        match read(probe) {
            Some(found) => break (probe, found?),
            None => {
                failing = probe;
                step = step.checked_mul(2)?;
            }
        }
    };
    // Narrow down between the last failing probe and the first that read.
    let (mut low, mut high) = (failing, found.0);
    let mut best = found.1;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        match read(middle) {
            Some(Some(first)) => {
                best = first;
                high = middle;
            }
            Some(None) => high = middle,
            None => low = middle,
        }
    }
    Some(best)
}

/// Walks events `from..until` (to the end of the log, with its end checks, when `until` is
/// `None`); `linked` checks the first event's link into the one before it.
fn walk_range(
    store: &Store,
    from: u64,
    until: Option<u64>,
    snapshot: Option<Head>,
    linked: bool,
    progress: &mut dyn FnMut(u64),
) -> VerifyReport {
    let mut walker = Walker { store, from, until, snapshot, checked: 0, last_good: None, linked };
    let damage = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walker.run(progress))) {
        Ok(damage) => damage,
        Err(panic) => Some(Damage {
            seq: Some(walker.next_expected()),
            until: None,
            kind: DamageKind::Unreadable,
            detail: format!("the store panicked while reading: {}", panic_text(&panic)),
        }),
    };
    VerifyReport {
        checked: walker.checked,
        last_good: walker.last_good.map(|(seq, hash)| (seq, hash.to_hex())),
        damages: damage.iter().cloned().collect(),
        damage,
        ..VerifyReport::new(from)
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
    /// Whether the first event's link into the one before it is checked (not when the walk
    /// resumes after damage).
    linked: bool,
}

fn damage(seq: Option<u64>, kind: DamageKind, detail: impl Into<String>) -> Option<Damage> {
    Some(Damage { seq, until: None, kind, detail: detail.into() })
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
        let mut prev = if self.linked {
            match self.hash_before(self.from) {
                Ok(hash) => Some(hash),
                Err(found) => return Some(found),
            }
        } else {
            None
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
                if let Some(found) = self.check_record(position, record, prev.as_ref(), &parsed.records[index + 1..]) {
                    return Some(found);
                }
                prev = Some(record.hash);
                self.last_good = Some((position, record.hash));
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
                until: None,
                kind: DamageKind::Gap,
                detail: format!("event {} before the starting point is missing", from - 1),
            }),
            Err(detail) => Err(Damage { seq: Some(from - 1), until: None, kind: DamageKind::Unreadable, detail }),
        }
    }

    /// Checks one record: its payload first; then, for a record whose own hash is intact,
    /// its position (so a moved event is named as moved); then its link (a changed `prev`
    /// breaks the link before it breaks the hash); and last the hash over the header.
    fn check_record(
        &self,
        seq: u64,
        record: &BlockRecord,
        prev: Option<&Hash>,
        later: &[BlockRecord],
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
        let self_consistent = chain_hash(&record.header_bytes, &record.payload_hash, &record.prev) == record.hash;
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
        if prev.is_some_and(|prev| record.prev != *prev) {
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
                    return Some(Damage {
                        seq: Some(first_missing),
                        until: Some(head.seq),
                        kind: DamageKind::Truncated,
                        detail: format!("the log ends at {}, its head is {}", describe_last(last), head.seq),
                    });
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
                    return Some(Damage {
                        seq: Some(first_missing),
                        until: Some(seq),
                        kind: DamageKind::Truncated,
                        detail: format!(
                            "the log ends at {}, but event {seq} was acknowledged as durable",
                            describe_last(last)
                        ),
                    });
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
