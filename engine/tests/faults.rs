//! Faults at every write and sync step of the writer and the syncer, through the `fail`
//! crate's failpoints (`cargo test -p cclog-engine --features failpoints --test faults`).
//! For each point, an injected error and a crash: what survives on disk verifies intact,
//! holds every acknowledged event, and takes appends again once reopened. A proptest drives
//! random appends against a random failpoint and checks the same every time.
//!
//! The failpoint registry is global to the process, so every test here holds a
//! `FailScenario` (which serialises them) and this file holds nothing else.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cclog_engine::{Log, LogOptions, NewEvent};
use proptest::prelude::*;

/// Every failpoint in the commit sequence, in the order a group meets them.
const POINTS: [&str; 5] = ["commit.write", "commit.torn_write", "sync.flush", "sync.fsync", "sync.anchor"];

fn payload(index: u64) -> Vec<u8> {
    format!(r#"{{"n":{index},"text":"{}"}}"#, "x".repeat((index % 7) as usize * 40)).into_bytes()
}

/// Copies a data directory file by file: what a crash right now would leave on disk.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Appends `batches` one after the other until one fails; returns the acknowledged events
/// as (seq, payload) and whether an append failed.
fn append_until_failure(log: &Log, batches: &[usize], next_index: &mut u64) -> (Vec<(u64, Vec<u8>)>, bool) {
    let mut acknowledged = Vec::new();
    for &size in batches {
        let events: Vec<(u64, Vec<u8>)> =
            (0..size as u64).map(|offset| (*next_index + offset, payload(*next_index + offset))).collect();
        *next_index += size as u64;
        let appended = log.append_blocking(
            events.iter().map(|(_, payload)| NewEvent::new("test/faults", "event", payload.clone())).collect(),
        );
        match appended {
            Ok(appended) => {
                for (landed, (_, payload)) in appended.iter().zip(events) {
                    acknowledged.push((landed.seq, payload));
                }
            }
            Err(_) => return (acknowledged, true),
        }
    }
    (acknowledged, false)
}

/// Opens what survived, and checks the promise: intact, every acknowledged event there with
/// its payload, appends accepted again, and intact after them.
fn check_survivor(dir: &Path, acknowledged: &[(u64, Vec<u8>)], context: &str) {
    let log = Log::open(dir, LogOptions::default()).unwrap_or_else(|error| panic!("{context}: reopen: {error}"));
    let report = log.verify(0, &mut |_, _| {});
    assert!(report.intact(), "{context}: {:?}", report.damage);
    for (seq, expected) in acknowledged {
        let event = log.get(*seq).unwrap().unwrap_or_else(|| panic!("{context}: acknowledged event {seq} is gone"));
        assert_eq!(&event.payload, expected, "{context}: event {seq}");
    }
    let again = log.append_blocking(vec![NewEvent::new("test/faults", "event", b"after".to_vec())]);
    assert!(again.is_ok(), "{context}: appends refused after reopening: {again:?}");
    drop(log);
    let log = Log::open(dir, LogOptions::default()).unwrap();
    assert!(log.verify(0, &mut |_, _| {}).intact(), "{context}: damaged after appending again");
}

/// `Log::reopen` on the failed log itself, as a server does once the fault clears: the
/// failed store is cut back, every acknowledged event is there, appends are taken again by
/// the same handle, and a subscription from before the fault goes on, missing nothing.
fn check_reopened_in_place(
    log: &Log,
    mut subscription: cclog_engine::Subscription,
    acknowledged: &[(u64, Vec<u8>)],
    point: &str,
    context: &str,
) {
    let recovery = log.reopen().unwrap_or_else(|error| panic!("{context}: reopen in place: {error}"));
    let recovery = recovery.unwrap_or_else(|| panic!("{context}: reopen found nothing to do"));
    assert!(recovery.reason.contains(point), "{context}: {}", recovery.describe());
    assert_eq!(log.health(), cclog_engine::Health::Ok, "{context}");
    assert!(cclog_engine::read_fault(log.dir()).is_none(), "{context}: the fault record stays");
    for (seq, expected) in acknowledged {
        let event = log.get(*seq).unwrap().unwrap_or_else(|| panic!("{context}: acknowledged event {seq} is gone"));
        assert_eq!(&event.payload, expected, "{context}: event {seq}");
    }
    let after = log
        .append_blocking(vec![NewEvent::new("test/faults", "event", b"after reopen".to_vec())])
        .unwrap_or_else(|error| panic!("{context}: appends refused after reopening in place: {error}"))[0];
    assert!(log.verify(0, &mut |_, _| {}).intact(), "{context}: damaged after reopening in place");
    assert_eq!(log.reopen().unwrap(), None, "{context}: a healthy log is not reopened");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let delivered = runtime.block_on(async {
        let mut delivered = Vec::new();
        loop {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
                .await
                .unwrap_or_else(|_| panic!("{context}: the subscription stalled at {}", subscription.position()))
                .unwrap_or_else(|error| panic!("{context}: the subscription ended: {error}"));
            let seq = event.seq();
            delivered.push((seq, event.payload));
            if seq == after.seq {
                return delivered;
            }
        }
    });
    let seqs: Vec<u64> = delivered.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (0..=after.seq).collect::<Vec<_>>(), "{context}: the subscription skipped or repeated");
    for (seq, expected) in acknowledged {
        assert_eq!(&delivered[*seq as usize].1, expected, "{context}: subscription's event {seq}");
    }
}

/// One injected error: `point` returns an error (an I/O error, or ENOSPC) on its
/// `after + 1`-th hit, while `batches` are appended.
fn error_case(point: &str, after: usize, enospc: bool, batches: &[usize]) {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let log = Log::open(&live, LogOptions::default()).unwrap();
    // A reader following the log from before the fault.
    let subscription = log.subscribe(0);
    let mut next_index = 0;
    // Some history from before the fault.
    let (mut acknowledged, failed) = append_until_failure(&log, &[3, 1], &mut next_index);
    assert!(!failed);
    let argument = if enospc { "return(enospc)" } else { "return" };
    fail::cfg(point, &format!("{after}*off->{argument}")).unwrap();
    let (more, failed) = append_until_failure(&log, batches, &mut next_index);
    acknowledged.extend(more);
    fail::remove(point);
    let context =
        format!("{point} after {after} hits ({}), batches {batches:?}", if enospc { "ENOSPC" } else { "EIO" });
    if failed {
        // Failed closed: nothing more is accepted, and the reason says what happened.
        let refused = log.append_blocking(vec![NewEvent::new("test/faults", "event", b"late".to_vec())]);
        let error = refused.expect_err(&format!("{context}: an append after the failure was accepted"));
        assert!(error.to_string().contains(point), "{context}: {error}");
        assert_eq!(error.is_disk_full(), enospc, "{context}: {error}");
        assert!(matches!(log.health(), cclog_engine::Health::Failed(_)), "{context}");
        assert!(cclog_engine::read_fault(&live).is_some(), "{context}: no fault recorded");
    }
    // What a crash now would leave: the files as they are.
    let survivor = dir.path().join("survivor");
    copy_dir(&live, &survivor);
    if failed {
        check_reopened_in_place(&log, subscription, &acknowledged, point, &context);
    }
    drop(log);
    check_survivor(&survivor, &acknowledged, &context);
    if failed {
        let survivor = Log::open(&survivor, LogOptions::default()).unwrap();
        let recovered: Vec<_> = survivor.stream(cclog_engine::RECOVERY_STREAM, 0).collect::<Result<_, _>>().unwrap();
        assert_eq!(recovered.len(), 1, "{context}: one recovery recorded");
        assert!(cclog_engine::read_fault(survivor.dir()).is_none(), "{context}: the fault record stays");
    }
    scenario.teardown();
}

#[test]
fn an_error_at_each_failpoint_fails_closed_and_recovers_on_reopen() {
    for point in POINTS {
        for enospc in [false, true] {
            error_case(point, 2, enospc, &[1, 4, 2, 8, 1, 3]);
        }
    }
}

#[test]
fn a_torn_group_is_cut_back_to_the_last_acknowledged_event() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let log = Log::open(&live, LogOptions::default()).unwrap();
    let mut next_index = 0;
    let (acknowledged, _) = append_until_failure(&log, &[5, 5], &mut next_index);
    fail::cfg("commit.torn_write", "return(enospc)").unwrap();
    let (none, failed) = append_until_failure(&log, &[7], &mut next_index);
    assert!(failed && none.is_empty());
    fail::remove("commit.torn_write");
    // The torn group's blocks are on disk, past the recorded head.
    let survivor = dir.path().join("survivor");
    drop(log);
    copy_dir(&live, &survivor);
    {
        let report = cclog_engine::verify_dir(&survivor, 0, &mut |_, _| {}).unwrap();
        assert!(report.intact(), "{:?}", report.damage);
        assert_eq!(report.checked, 10, "verify stops at the acknowledged head");
        assert!(report.recovery_pending.is_some());
    }
    let log = Log::open(&survivor, LogOptions::default()).unwrap();
    let recovery = log.recovery().expect("recovered").clone();
    assert_eq!((recovery.kept_through, recovery.cut_first, recovery.cut_last), (Some(9), Some(10), Some(16)));
    assert_eq!(recovery.cut_events, 7);
    assert!(recovery.reason.contains("commit.torn_write"), "{}", recovery.describe());
    drop(log);
    check_survivor(&survivor, &acknowledged, "torn group");
    scenario.teardown();
}

/// Blocks past the recorded head with no fault record (a torn group written by an older
/// build, or a fault record that could not be written) are cut too.
#[test]
fn blocks_past_the_head_are_cut_even_without_a_fault_record() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let log = Log::open(&live, LogOptions::default()).unwrap();
    let mut next_index = 0;
    let (acknowledged, _) = append_until_failure(&log, &[2, 2], &mut next_index);
    fail::cfg("commit.torn_write", "return").unwrap();
    let _ = append_until_failure(&log, &[3], &mut next_index);
    fail::remove("commit.torn_write");
    drop(log);
    let survivor = dir.path().join("survivor");
    copy_dir(&live, &survivor);
    // Forget the fault record: only the blocks past the head tell.
    let anchor = survivor.join(cclog_engine::ANCHOR_FILE);
    let bytes = std::fs::read(&anchor).unwrap();
    std::fs::write(&anchor, &bytes[..72]).unwrap();
    let log = Log::open(&survivor, LogOptions::default()).unwrap();
    let recovery = log.recovery().expect("recovered");
    assert_eq!((recovery.kept_through, recovery.cut_first, recovery.cut_last), (Some(3), Some(4), Some(6)));
    drop(log);
    check_survivor(&survivor, &acknowledged, "no fault record");
    scenario.teardown();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_appends_with_a_random_failpoint_never_lose_an_acknowledged_event(
        point in 0..POINTS.len(),
        after in 0usize..12,
        enospc in any::<bool>(),
        batches in proptest::collection::vec(1usize..40, 1..12),
    ) {
        error_case(POINTS[point], after, enospc, &batches);
    }
}

/// The crash half: a child process appends one event at a time, printing each
/// acknowledged seq, and aborts at the failpoint's `after + 1`-th hit.
#[test]
#[ignore = "run by a_crash_at_each_failpoint_keeps_every_acknowledged_event as its child"]
fn crash_child() {
    let (Some(dir), Some(point), Some(after)) = (
        std::env::var_os("CCLOG_FAULTS_DIR"),
        std::env::var("CCLOG_FAULTS_POINT").ok(),
        std::env::var("CCLOG_FAULTS_AFTER").ok().and_then(|after| after.parse::<usize>().ok()),
    ) else {
        return;
    };
    let scenario = fail::FailScenario::setup();
    let hits = std::sync::atomic::AtomicUsize::new(0);
    fail::cfg_callback(&point, move || {
        if hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= after {
            std::process::abort();
        }
    })
    .unwrap();
    let log = Log::open(Path::new(&dir), LogOptions::default()).unwrap();
    for index in 0..1_000u64 {
        let appended = log.append_blocking(vec![NewEvent::new("test/faults", "event", payload(index))]).unwrap();
        println!("{} {index}", appended[0].seq);
    }
    scenario.teardown();
}

#[test]
fn a_crash_at_each_failpoint_keeps_every_acknowledged_event() {
    let _scenario = fail::FailScenario::setup();
    for point in POINTS {
        for after in [0, 3] {
            let dir = tempfile::tempdir().unwrap();
            let data: PathBuf = dir.path().join("data");
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads", "1"])
                .env("CCLOG_FAULTS_DIR", &data)
                .env("CCLOG_FAULTS_POINT", point)
                .env("CCLOG_FAULTS_AFTER", after.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut acknowledged = Vec::new();
            for line in BufReader::new(child.stdout.take().unwrap()).lines() {
                let line = line.unwrap();
                let mut fields = line.split(' ');
                if let (Some(Ok(seq)), Some(Ok(index))) =
                    (fields.next().map(str::parse::<u64>), fields.next().map(str::parse::<u64>))
                {
                    acknowledged.push((seq, payload(index)));
                }
            }
            let status = child.wait().unwrap();
            assert!(!status.success(), "{point}: the child was meant to crash");
            assert!(acknowledged.len() >= after.min(1), "{point} after {after}: {} acknowledged", acknowledged.len());
            check_survivor(&data, &acknowledged, &format!("crash at {point} after {after} hits"));
        }
    }
}

/// A projection whose every event writes a point key (`k` ‖ seq → payload), so that commit
/// groups add sorted runs and merge them.
struct PointIndex;

impl cclog_engine::Projection for PointIndex {
    fn name(&self) -> &str {
        "points"
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(
        &self,
        event: &cclog_engine::Event,
        state: &mut cclog_engine::ProjectionState<'_>,
    ) -> Result<(), cclog_engine::ApplyError> {
        state.insert([&b"k"[..], &event.seq().to_be_bytes()].concat(), event.payload.clone());
        state.insert(b"last".to_vec(), event.seq().to_be_bytes().to_vec());
        Ok(())
    }

    fn is_point_key(&self, key: &[u8]) -> bool {
        key.first() == Some(&b'k')
    }
}

fn point_options() -> LogOptions {
    LogOptions::with_projections(vec![std::sync::Arc::new(PointIndex)])
}

/// Every acknowledged event's point key reads its payload, and a rebuild finds the same.
fn check_points(log: &Log, acknowledged: &[(u64, Vec<u8>)], context: &str) {
    let view = log.projection("points").unwrap();
    for (seq, expected) in acknowledged {
        let value = view.get(&[&b"k"[..], &seq.to_be_bytes()].concat()).unwrap();
        assert_eq!(value.as_ref(), Some(expected), "{context}: point key of {seq}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reports = runtime.block_on(log.rebuild()).unwrap();
    assert!(reports.iter().all(|report| report.equal_to_previous), "{context}: a rebuild disagrees: {reports:?}");
}

/// A merge of sorted runs that fails halfway (an I/O error or a full disk while its pages
/// are written, before its group's batch) fails the log closed; reopened in place, or from
/// the files as a crash would leave them, every acknowledged event's point key reads right
/// and a rebuild agrees.
#[test]
fn a_merge_of_sorted_runs_that_fails_halfway_loses_nothing() {
    for enospc in [false, true] {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let log = Log::open(&live, point_options()).unwrap();
        let mut next_index = 0;
        // Fifteen groups: fifteen runs at level 0 (a level holds 16); the next merges them.
        let groups = [300, 1, 2, 3, 400, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
        let (mut acknowledged, failed) = append_until_failure(&log, &groups, &mut next_index);
        assert!(!failed);
        fail::cfg("runs.merge", if enospc { "1*off->return(enospc)" } else { "1*off->return" }).unwrap();
        let (more, failed) = append_until_failure(&log, &[500, 1], &mut next_index);
        acknowledged.extend(more);
        fail::remove("runs.merge");
        let context = format!("runs.merge ({})", if enospc { "ENOSPC" } else { "EIO" });
        assert!(failed, "{context}: the merge did not fail");
        let before_fault = acknowledged.clone();
        let survivor = dir.path().join("survivor");
        copy_dir(&live, &survivor);
        let recovery = log.reopen().unwrap_or_else(|error| panic!("{context}: reopen in place: {error}"));
        let recovery = recovery.unwrap_or_else(|| panic!("{context}: reopen found nothing to do"));
        assert!(recovery.reason.contains("runs.merge"), "{context}: {}", recovery.describe());
        let (more, failed) = append_until_failure(&log, &[500, 7, 8], &mut next_index);
        assert!(!failed, "{context}: appends refused after reopening");
        acknowledged.extend(more);
        check_points(&log, &acknowledged, &context);
        drop(log);
        let survivor = Log::open(&survivor, point_options()).unwrap();
        check_points(&survivor, &before_fault, &format!("{context}, survivor"));
        scenario.teardown();
    }
}
