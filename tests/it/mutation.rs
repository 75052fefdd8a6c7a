//! Mutation tests of verification: damage a known-good log in one specific way — through
//! sled, under the engine, or in sled's files on disk — and check that `verify` names the
//! damage and the first bad seq, and never panics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cclog_engine::block::{parse_block, BlockEncoder, RecordLayout, StoredEvent};
use cclog_engine::{verify_dir, DamageKind, Store, VerifyReport};

use crate::support::{copy_dir, event, open};

const EVENTS: u64 = 40;
/// Appended in batches of 5, so that event 17 sits third in the block of events 15..=19.
const BATCH: u64 = 5;
const TARGET: u64 = 17;

/// A log of 40 events, built once and copied for every mutation.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path());
            for first in (0..EVENTS).step_by(BATCH as usize) {
                log.append_blocking(
                    (first..first + BATCH).map(|index| event(&format!("session/{}", index % 4), index)).collect(),
                )
                .unwrap();
            }
            drop(log);
            let report = verify_dir(dir.path(), 0, &mut |_, _| {}).unwrap();
            assert!(report.intact() && report.checked == EVENTS, "{report:?}");
            dir
        })
        .path()
}

/// The block holding `seq`: its first seq and bytes.
fn block_of(store: &Store, seq: u64) -> (u64, Vec<u8>) {
    store.raw_block_containing(seq).unwrap().unwrap()
}

fn stored_events(bytes: &[u8]) -> Vec<StoredEvent> {
    let parsed = parse_block(bytes);
    assert!(parsed.framing_fault.is_none());
    parsed
        .records
        .iter()
        .map(|record| StoredEvent {
            header_bytes: record.header_bytes.to_vec(),
            payload_hash: record.payload_hash,
            prev: record.prev,
            hash: record.hash,
            payload: record.payload.clone().unwrap(),
        })
        .collect()
}

/// Packs events into a block with their stored fields kept verbatim.
fn encode(events: &[StoredEvent]) -> Vec<u8> {
    let mut encoder = BlockEncoder::new().unwrap();
    for event in events {
        encoder.push(&event.header_bytes, &event.payload_hash, &event.prev, &event.hash, &event.payload).unwrap();
    }
    encoder.finish().unwrap()
}

struct Case {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        copy_dir(template(), &path);
        Case { _dir: dir, path }
    }

    /// Changes the store through sled, below the engine's API.
    fn through_sled(self, change: impl FnOnce(&Store)) -> Case {
        {
            let store = Store::open(&self.path).unwrap();
            change(&store);
            store.flush().unwrap();
        }
        self
    }

    /// Rewrites the block holding `seq` with its events changed; `index` is `seq`'s place.
    fn edit_events(self, seq: u64, edit: impl FnOnce(&mut Vec<StoredEvent>, usize)) -> Case {
        self.through_sled(|store| {
            let (first, bytes) = block_of(store, seq);
            let mut stored = stored_events(&bytes);
            edit(&mut stored, (seq - first) as usize);
            store.raw_put_block(first, encode(&stored)).unwrap();
        })
    }

    /// Flips one byte of event `seq`'s record, chosen from its layout, and stores the block
    /// again as it was framed: a change to the record, not to the compression around it.
    fn flip_record(self, seq: u64, pick: impl FnOnce(&[RecordLayout], usize) -> usize) -> Case {
        self.edit_records(
            |store_first, layouts, records| {
                let at = pick(layouts, (seq - store_first) as usize);
                records[at] ^= 0x10;
            },
            seq,
        )
    }

    /// Changes the record bytes of the block holding `seq` (as its layouts index them) and
    /// seals the block again around them.
    fn edit_records(self, edit: impl FnOnce(u64, &[RecordLayout], &mut Vec<u8>), seq: u64) -> Case {
        self.through_sled(|store| {
            let (first, bytes) = block_of(store, seq);
            let parsed = parse_block(&bytes);
            let layouts: Vec<RecordLayout> = parsed.records.iter().map(|record| record.layout.clone()).collect();
            let mut records = parsed.record_bytes.to_vec();
            edit(first, &layouts, &mut records);
            let sealed = BlockEncoder::new().unwrap().seal(layouts.len() as u64, &records).unwrap();
            store.raw_put_block(first, sealed).unwrap();
        })
    }

    fn sled_file(&self, name: &str) -> PathBuf {
        self.path.join("sled").join(name)
    }

    fn verify(&self) -> VerifyReport {
        verify_dir(&self.path, 0, &mut |_, _| {}).expect("verify runs on a damaged store")
    }
}

#[track_caller]
fn check(report: VerifyReport, kind: DamageKind, seq: u64) {
    let damage = report.damage.clone().unwrap_or_else(|| panic!("damage went unnoticed: {report:?}"));
    assert_eq!((damage.kind, damage.seq), (kind, Some(seq)), "{}", damage.detail);
    // Every event before the damage checks out, and the walk goes on past it.
    assert!(report.checked >= seq, "{} checked, damage at {seq}", report.checked);
    assert_eq!(report.damages.first(), Some(&damage), "the first of the damages");
}

#[test]
fn payload_bit_flip() {
    let case = Case::new().edit_events(TARGET, |events, index| {
        let middle = events[index].payload.len() / 2;
        events[index].payload[middle] ^= 0x10;
    });
    check(case.verify(), DamageKind::PayloadAltered, TARGET);
}

#[test]
fn bit_flip_in_the_stored_payload() {
    let case =
        Case::new().flip_record(TARGET, |layouts, index| layouts[index].body.start + layouts[index].body.len() / 2);
    check(case.verify(), DamageKind::PayloadAltered, TARGET);
}

#[test]
fn payload_hash_bit_flip() {
    let case = Case::new().flip_record(TARGET, |layouts, index| layouts[index].payload_hash.start + 5);
    check(case.verify(), DamageKind::PayloadAltered, TARGET);
}

#[test]
fn header_bit_flip() {
    // Flip a byte of the stream name inside the header: it is "session/1" for event 17.
    let case = Case::new().edit_events(TARGET, |events, index| {
        let header = &mut events[index].header_bytes;
        let name = b"session/1";
        let offset = header.windows(name.len()).position(|window| window == name).expect("stream name in header");
        header[offset + 3] ^= 0x10;
    });
    check(case.verify(), DamageKind::HeaderAltered, TARGET);
}

#[test]
fn stored_hash_bit_flip() {
    let case = Case::new().flip_record(TARGET, |layouts, index| layouts[index].hash.start);
    check(case.verify(), DamageKind::HeaderAltered, TARGET);
}

#[test]
fn prev_hash_bit_flip() {
    let case = Case::new().flip_record(TARGET, |layouts, index| layouts[index].prev.end - 1);
    check(case.verify(), DamageKind::LinkBroken, TARGET);
}

#[test]
fn framing_damage() {
    // Make event 17's record length run past its block.
    let case = Case::new().edit_records(
        |first, layouts, records| {
            let length_at = layouts[(TARGET - first - 1) as usize].body.end;
            records[length_at] = 0xff;
            records[length_at + 1] = 0xff;
        },
        TARGET,
    );
    check(case.verify(), DamageKind::Unreadable, TARGET);
}

/// One byte of a block's compressed frame flipped: its checksum fails, and the block's
/// events (and no others) are unreadable.
#[test]
fn bit_flip_in_a_compressed_block() {
    let case = Case::new().through_sled(|store| {
        let (first, mut bytes) = block_of(store, TARGET);
        assert_eq!(first, TARGET - 2);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        store.raw_put_block(first, bytes).unwrap();
    });
    let report = case.verify();
    check(report.clone(), DamageKind::Unreadable, TARGET - 2);
    assert_eq!(report.damages.len(), 1, "{report:?}");
}

#[test]
fn deleted_event() {
    let case = Case::new().edit_events(TARGET, |events, index| {
        events.remove(index);
    });
    check(case.verify(), DamageKind::Gap, TARGET);
}

#[test]
fn deleted_block() {
    let case = Case::new().through_sled(|store| {
        store.raw_remove_block(20).unwrap();
    });
    check(case.verify(), DamageKind::Gap, 20);
}

#[test]
fn swapped_events() {
    let case = Case::new().edit_events(TARGET, |events, index| events.swap(index, index + 1));
    check(case.verify(), DamageKind::Reordered, TARGET);
}

#[test]
fn duplicated_event_over_its_successor() {
    let case = Case::new().edit_events(TARGET, |events, index| events[index + 1] = events[index].clone());
    check(case.verify(), DamageKind::Duplicate, TARGET + 1);
}

#[test]
fn duplicated_event_after_the_head() {
    let case = Case::new().through_sled(|store| {
        let (first, bytes) = block_of(store, TARGET);
        let copy = stored_events(&bytes).swap_remove((TARGET - first) as usize);
        store.raw_put_block(EVENTS, encode(&[copy])).unwrap();
    });
    check(case.verify(), DamageKind::Duplicate, EVENTS);
}

#[test]
fn truncated_tail() {
    let case = Case::new().edit_events(EVENTS - 1, |events, _| events.truncate(2));
    check(case.verify(), DamageKind::Truncated, EVENTS - 3);
}

/// The last block cut to its first event and the recorded head rewritten to match: only the
/// head anchor still knows that events 36..=39 were acknowledged.
#[test]
fn truncated_tail_with_a_rewritten_head_is_caught_by_the_anchor_and_refuses_appends() {
    let case = Case::new().edit_events(EVENTS - 1, |events, _| events.truncate(1)).through_sled(|store| {
        let (_, bytes) = block_of(store, EVENTS - 4);
        let kept = stored_events(&bytes).pop().unwrap();
        store.raw_set_head(cclog_engine::Head { seq: EVENTS - 5, hash: kept.hash, ts_us: 0 }).unwrap();
    });
    check(case.verify(), DamageKind::Truncated, EVENTS - 4);
    let refused = cclog_engine::Log::open(&case.path, cclog_engine::LogOptions::default());
    assert!(matches!(refused, Err(cclog_engine::Error::Corruption { .. })), "{:?}", refused.err());
    // Refusing left the evidence in place.
    check(case.verify(), DamageKind::Truncated, EVENTS - 4);
}

#[test]
fn verify_from_the_middle_checks_the_link_into_it() {
    let case = Case::new().flip_record(TARGET, |layouts, index| layouts[index].prev.start);
    let report = verify_dir(&case.path, TARGET, &mut |_, _| {}).unwrap();
    assert_eq!(report.damage.map(|damage| (damage.kind, damage.seq)), Some((DamageKind::LinkBroken, Some(TARGET))));
    let report = verify_dir(&case.path, TARGET + 1, &mut |_, _| {}).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.checked, EVENTS - TARGET - 1);
}

// ---- damage to sled's files on disk -------------------------------------------------------

/// Where the 32 bytes of event `seq`'s hash sit in sled's log file (every copy sled wrote),
/// inside its block's compressed frame.
fn hash_offsets(case: &Case, seq: u64) -> Vec<usize> {
    let hash = {
        let store = Store::open(&case.path).unwrap();
        let (first, bytes) = block_of(&store, seq);
        stored_events(&bytes)[(seq - first) as usize].hash.0.to_vec()
    };
    let bytes = std::fs::read(case.sled_file("db")).unwrap();
    let offsets: Vec<usize> =
        bytes.windows(32).enumerate().filter(|(_, window)| *window == hash.as_slice()).map(|(at, _)| at).collect();
    // zstd keeps random bytes as raw literals, so the hash is in the frame as it is.
    assert!(!offsets.is_empty(), "the hash is stored as it is in sled's file");
    offsets
}

fn edit_file(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// Damage in sled's files is found either by sled's own checksums (unreadable) or by the
/// chain; when sled can still read the store, the first bad seq must be right.
#[track_caller]
fn check_file_damage(report: VerifyReport, seq: u64) {
    let damage = report.damage.clone().unwrap_or_else(|| panic!("damage went unnoticed: {report:?}"));
    match damage.kind {
        DamageKind::Unreadable => assert!(damage.seq.is_none_or(|at| at <= seq), "{damage:?}"),
        DamageKind::Truncated => assert!(damage.seq.is_some_and(|at| at <= seq), "{damage:?}"),
        _ => assert_eq!(damage.seq, Some(seq), "{damage:?}"),
    }
}

#[test]
fn bit_flip_in_sleds_log_file() {
    let case = Case::new();
    let offsets = hash_offsets(&case, TARGET);
    edit_file(&case.sled_file("db"), |bytes| {
        for at in offsets {
            bytes[at + 7] ^= 0x01;
        }
    });
    // The byte sits in the compressed frame of the block of events 15..=19, which it costs
    // whole: the first bad seq is the block's first.
    check_file_damage(case.verify(), TARGET - 2);
}

#[test]
fn garbage_over_a_block_of_sleds_log_file() {
    let case = Case::new();
    let at = hash_offsets(&case, TARGET)[0];
    edit_file(&case.sled_file("db"), |bytes| {
        let end = (at + 4096).min(bytes.len());
        for (index, byte) in bytes[at..end].iter_mut().enumerate() {
            *byte = (index as u8).wrapping_mul(151).wrapping_add(89);
        }
    });
    check_file_damage(case.verify(), TARGET);
}

#[test]
fn sleds_log_file_cut_short() {
    let case = Case::new();
    let at = hash_offsets(&case, TARGET)[0];
    edit_file(&case.sled_file("db"), |bytes| bytes.truncate(at));
    check_file_damage(case.verify(), TARGET);
}

#[test]
fn sleds_config_file_damaged() {
    let case = Case::new();
    edit_file(&case.sled_file("conf"), |bytes| {
        for byte in bytes.iter_mut() {
            *byte = !*byte;
        }
    });
    let report = case.verify();
    let damage = report.damage.expect("damage went unnoticed");
    assert_eq!(damage.kind, DamageKind::Unreadable, "{damage:?}");
}

#[test]
fn sleds_log_file_deleted() {
    let case = Case::new();
    std::fs::remove_file(case.sled_file("db")).unwrap();
    let report = case.verify();
    let damage = report.damage.expect("damage went unnoticed");
    assert_eq!(damage.kind, DamageKind::Unreadable, "{damage:?}");
}

#[test]
fn anchor_file_damaged() {
    let case = Case::new();
    edit_file(&case.path.join(cclog_engine::ANCHOR_FILE), |bytes| bytes[3] ^= 0x40);
    let report = case.verify();
    assert_eq!(report.damage.map(|damage| damage.kind), Some(DamageKind::HeadMismatch));
}

/// Long logs are verified in parallel ranges; the first damage must still be the one named,
/// with every event before it counted, whichever range finds it.
#[test]
fn parallel_verification_names_the_first_damage() {
    const LONG: u64 = 70_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let log = open(&path);
        for first in (0..LONG).step_by(1_000) {
            let batch = (first..first + 1_000)
                .map(|index| cclog_engine::NewEvent::new("long", "k", format!("{{\"n\":{index}}}")))
                .collect();
            log.append_blocking(batch).unwrap();
        }
    }
    let report = verify_dir(&path, 0, &mut |_, _| {}).unwrap();
    assert!(report.intact() && report.checked == LONG, "{report:?}");

    let damage_at = |store: &Store, seq: u64| {
        let (first, bytes) = block_of(store, seq);
        let mut events = stored_events(&bytes);
        events[(seq - first) as usize].payload[2] ^= 0x01;
        store.raw_put_block(first, encode(&events)).unwrap();
    };
    let case = Case { _dir: dir, path };
    let case = case.through_sled(|store| damage_at(store, 60_000));
    check(case.verify(), DamageKind::PayloadAltered, 60_000);
    let case = case.through_sled(|store| damage_at(store, 100));
    check(case.verify(), DamageKind::PayloadAltered, 100);
}
