//! Verification: walk every event from a starting seq, recompute every hash, check seq
//! continuity and every prev link, compare the end of the log with the recorded head and the
//! head anchor, and name the first bad position and what is wrong with it. Damage is the
//! answer, not an error: the walk never panics and never gives up on a damaged store
//! without saying what it found.

use std::path::Path;

use serde::Serialize;

use crate::anchor::{read_anchor, AnchorState};
use crate::envelope::{chain_hash, payload_hash, RecordFault, StoredRecord, GENESIS};
use crate::store::{be_u64, panic_text, seq_key, Head, Store};
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
        return Ok(VerifyReport {
            from,
            checked: 0,
            last_good: None,
            damage: Some(Damage { seq: None, kind: DamageKind::Unreadable, detail: "sled's log file (sled/db) is missing".into() }),
        });
    }
    match Store::open(dir) {
        Ok(store) => Ok(walk(&store, from, progress)),
        Err(error @ Error::Locked { .. }) => Err(error),
        Err(error) => Ok(VerifyReport {
            from,
            checked: 0,
            last_good: None,
            damage: Some(Damage { seq: None, kind: DamageKind::Unreadable, detail: error.to_string() }),
        }),
    }
}

/// Walks an open store. Panics inside sled on damaged pages are caught and reported.
pub(crate) fn walk(store: &Store, from: u64, progress: Progress<'_>) -> VerifyReport {
    let mut walker = Walker { store, from, checked: 0, last_good: None };
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

    fn run(&mut self, progress: Progress<'_>) -> Option<Damage> {
        let stored_head = match self.store.stored_head() {
            Ok(head) => head,
            Err(error) => return damage(None, DamageKind::Unreadable, error.to_string()),
        };
        let total = stored_head.map_or(0, |head| (head.seq + 1).saturating_sub(self.from));
        let mut prev = match self.hash_before(self.from) {
            Ok(hash) => hash,
            Err(found) => return Some(found),
        };
        let mut expected = self.from;
        for item in self.store.events.range(seq_key(self.from)..) {
            let (key, value) = match item {
                Ok(pair) => pair,
                Err(error) => {
                    return damage(Some(expected), DamageKind::Unreadable, format!("reading the event: {}", Error::from(error)))
                }
            };
            let Some(seq) = be_u64(&key) else {
                return damage(Some(expected), DamageKind::Unreadable, format!("an event key of {} bytes", key.len()));
            };
            if seq > expected {
                let detail = if seq == expected + 1 {
                    format!("event {expected} is missing")
                } else {
                    format!("events {expected}..={} are missing", seq - 1)
                };
                return damage(Some(expected), DamageKind::Gap, detail);
            }
            if let Some(found) = self.check_record(seq, &value, &prev) {
                return Some(found);
            }
            prev = match StoredRecord::split(&value) {
                Ok(record) => record.hash,
                Err(fault) => return damage(Some(seq), DamageKind::Unreadable, fault.to_string()),
            };
            self.last_good = Some((seq, prev));
            self.checked += 1;
            expected = seq + 1;
            if self.checked % 8192 == 0 {
                progress(self.checked, total);
            }
        }
        progress(self.checked, total);
        self.check_end(stored_head)
    }

    /// The hash the event at `from` must link to.
    fn hash_before(&self, from: u64) -> std::result::Result<Hash, Damage> {
        if from == 0 {
            return Ok(GENESIS);
        }
        let unreadable = |detail: String| Damage { seq: Some(from - 1), kind: DamageKind::Unreadable, detail };
        match self.store.events.get(seq_key(from - 1)) {
            Ok(Some(value)) => StoredRecord::split(&value).map(|record| record.hash).map_err(|fault| unreadable(fault.to_string())),
            Ok(None) => Err(Damage {
                seq: Some(from - 1),
                kind: DamageKind::Gap,
                detail: format!("event {} before the starting point is missing", from - 1),
            }),
            Err(error) => Err(unreadable(Error::from(error).to_string())),
        }
    }

    /// Checks one record: its payload first; then, for a record whose own hash is intact,
    /// its position (so a moved event is named as moved); then its link (a changed `prev`
    /// breaks the link before it breaks the hash); and last the hash over the header.
    fn check_record(&self, seq: u64, value: &[u8], prev: &Hash) -> Option<Damage> {
        let record = match StoredRecord::split(value) {
            Ok(record) => record,
            Err(fault) => return damage(Some(seq), DamageKind::Unreadable, fault.to_string()),
        };
        let header = match record.header() {
            Ok(header) => header,
            Err(fault) => return damage(Some(seq), DamageKind::HeaderAltered, fault.to_string()),
        };
        let payload = match record.payload(header.payload_len) {
            Ok(payload) => payload,
            Err(RecordFault::Header(detail)) => return damage(Some(seq), DamageKind::HeaderAltered, detail),
            Err(fault) => return damage(Some(seq), DamageKind::PayloadAltered, fault.to_string()),
        };
        if payload_hash(&payload) != record.payload_hash {
            return damage(Some(seq), DamageKind::PayloadAltered, "the payload does not match its payload hash");
        }
        let self_consistent = chain_hash(record.header_bytes, &record.payload_hash, &record.prev) == record.hash;
        // A record that hashes correctly but sits at the wrong position was moved or copied.
        if self_consistent && header.seq != seq {
            let copy_of_earlier = header.seq < seq
                && matches!(self.store.events.get(seq_key(header.seq)),
                    Ok(Some(original)) if StoredRecord::split(&original).is_ok_and(|original| original.hash == record.hash));
            return if copy_of_earlier {
                damage(Some(seq), DamageKind::Duplicate, format!("position {seq} holds a copy of event {}", header.seq))
            } else {
                damage(Some(seq), DamageKind::Reordered, format!("position {seq} holds event {}", header.seq))
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
                return damage(Some(head.seq), DamageKind::HeadMismatch, "the recorded head disagrees with the last event");
            }
            (None, Some((seq, _))) => {
                return damage(Some(seq), DamageKind::HeadMismatch, "events exist but no head is recorded");
            }
            _ => {}
        }
        match read_anchor(&self.store.dir) {
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
                if seq >= self.from {
                    let stored = self.store.events.get(seq_key(seq)).ok().flatten();
                    let matches = stored
                        .as_deref()
                        .and_then(|value| StoredRecord::split(value).ok())
                        .is_some_and(|record| record.hash == hash);
                    if !matches {
                        return damage(Some(seq), DamageKind::HeadMismatch, "the head anchor's hash differs from the event's");
                    }
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
