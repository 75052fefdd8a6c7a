//! The log's behaviour through its public API: group commit, reads, subscriptions,
//! ownership.

use cclog_engine::{Error, Log, NewEvent};

use crate::support::{event, open, verify_intact};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

#[test]
fn concurrent_appenders_share_fsyncs_and_get_gapless_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let runtime = runtime();
    let appenders = 64;
    let per_appender = 20;
    let seqs = runtime.block_on(async {
        let mut tasks = Vec::new();
        for appender in 0..appenders {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for index in 0..per_appender {
                    let appended = log.append(vec![event(&format!("s/{appender}"), index)]).await.unwrap();
                    seqs.push(appended[0].seq);
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..(appenders * per_appender)).collect::<Vec<_>>());
    let metrics = log.metrics();
    assert_eq!(metrics.appends, appenders * per_appender);
    assert!(
        metrics.syncs < metrics.appends / 4,
        "group commit should share fsyncs between waiting appends: {metrics:?}"
    );
    drop(log);
    verify_intact(dir.path());
}

#[test]
fn reads_cover_ranges_streams_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert!(log.head().is_none());
    let mut batch = Vec::new();
    for index in 0..30 {
        batch.push(event(if index % 3 == 0 { "a" } else { "b" }, index));
    }
    let appended = log.append_blocking(batch.clone()).unwrap();
    let head = log.head().unwrap();
    assert_eq!(head.seq, 29);
    assert_eq!(head.hash, appended[29].hash);

    let range: Vec<_> = log.range(10).map(Result::unwrap).collect();
    assert_eq!(range.len(), 20);
    assert_eq!(range[0].payload, batch[10].payload);
    let stream_a: Vec<u64> = log.stream("a", 0).map(|event| event.unwrap().seq()).collect();
    assert_eq!(stream_a, (0..30).filter(|seq| seq % 3 == 0).collect::<Vec<_>>());
    let stream_a_late: Vec<u64> = log.stream("a", 13).map(|event| event.unwrap().seq()).collect();
    assert_eq!(stream_a_late, vec![15, 18, 21, 24, 27]);
    assert_eq!(log.stream("ab", 0).count(), 0, "a stream name is not a prefix match");
    assert!(log.get(30).unwrap().is_none());
    assert_eq!(log.get(5).unwrap().unwrap().prev, appended[4].hash);
}

#[test]
fn raw_payload_bytes_are_stored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let payloads: Vec<Vec<u8>> =
        vec![Vec::new(), b"  {\"spaced\" :  1 }\r".to_vec(), (0u8..=255).collect(), "x".repeat(300_000).into_bytes()];
    let events = payloads.iter().map(|payload| NewEvent::new("raw", "bytes", payload.clone())).collect();
    log.append_blocking(events).unwrap();
    drop(log);
    let log = open(dir.path());
    for (seq, payload) in payloads.iter().enumerate() {
        assert_eq!(&log.get(seq as u64).unwrap().unwrap().payload, payload);
    }
}

#[test]
fn an_invalid_request_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let error = log.append_blocking(vec![event("ok", 0), NewEvent::new("bad\u{7}", "k", b"{}".to_vec())]);
    assert!(matches!(error, Err(Error::InvalidEvent(_))), "{error:?}");
    assert!(log.head().is_none(), "nothing of a rejected batch is written");
    log.append_blocking(vec![event("ok", 1)]).unwrap();
    assert_eq!(log.len(), 1);
}

#[test]
fn subscription_replays_then_follows_and_a_slow_one_blocks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let runtime = runtime();
    runtime.block_on(async {
        log.append((0..5).map(|index| event("s", index)).collect()).await.unwrap();
        let mut follower = log.subscribe(0);
        let mut idle = log.subscribe(0);
        for seq in 0..5 {
            assert_eq!(follower.next().await.unwrap().seq(), seq);
        }
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for index in 5..2_005 {
                    log.append(vec![event("s", index)]).await.unwrap();
                }
            })
        };
        for seq in 5..2_005 {
            let event =
                tokio::time::timeout(std::time::Duration::from_secs(30), follower.next()).await.unwrap().unwrap();
            assert_eq!(event.seq(), seq);
        }
        // `idle` never read while 2,000 events were written: the writer was not held up.
        writer.await.unwrap();
        let mut seen = 0;
        while let Some(event) = idle.try_next().unwrap() {
            assert_eq!(event.seq(), seen);
            seen += 1;
        }
        assert_eq!(seen, 2_005);
    });
}

#[test]
fn a_second_owner_is_refused_with_the_owner_named() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path());
    let second = Log::open(dir.path(), cclog_engine::LogOptions::default());
    match second {
        Err(Error::Locked { dir: locked, owner }) => {
            assert_eq!(locked, dir.path());
            let owner = owner.expect("owner is known");
            assert!(owner.contains(&std::process::id().to_string()), "{owner}");
        }
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("expected Locked, got an open log"),
    }
}

#[test]
fn reopening_keeps_the_chain_going() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let log = open(dir.path());
        log.append_blocking(vec![event("s", 0), event("s", 1)]).unwrap()
    };
    let log = open(dir.path());
    assert_eq!(log.head().unwrap().hash, first[1].hash);
    let next = log.append_blocking(vec![event("s", 2)]).unwrap();
    assert_eq!(next[0].seq, 2);
    assert_eq!(log.get(2).unwrap().unwrap().prev, first[1].hash);
    drop(log);
    verify_intact(dir.path());
}
