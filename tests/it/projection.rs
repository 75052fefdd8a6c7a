//! The projection property: for arbitrary event sequences, appended in arbitrary batches,
//! the incrementally maintained state equals a rebuild from the log; and a changed version
//! rebuilds on open.

use std::sync::Arc;

use cclog_engine::{ApplyError, Event, NewEvent, Projection, ProjectionState};
use proptest::prelude::*;

use crate::support::{dump, open_with};

/// A projection that exercises every state operation: per stream it keeps the last payload
/// under `last/<stream>`, a running count under `count/<stream>`, and on a `reset` event it
/// removes every key of its stream, found by prefix scan.
struct Tracker {
    version: u32,
}

impl Projection for Tracker {
    fn name(&self) -> &str {
        "tracker"
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> Result<(), ApplyError> {
        let stream = event.stream();
        if event.kind() == "reset" {
            for prefix in [format!("last/{stream}"), format!("count/{stream}")] {
                for (key, _) in state.scan_prefix(prefix.as_bytes())? {
                    state.remove(key);
                }
            }
            return Ok(());
        }
        let count_key = format!("count/{stream}");
        let count = match state.get(count_key.as_bytes())? {
            Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into()?),
            None => 0,
        };
        state.insert(count_key, (count + 1).to_be_bytes().to_vec());
        state.insert(format!("last/{stream}"), event.payload.clone());
        Ok(())
    }
}

fn projections(version: u32) -> Vec<Arc<dyn Projection>> {
    let mut all = cclog_projections::standard();
    all.push(Arc::new(Tracker { version }));
    all
}

fn arb_event() -> impl Strategy<Value = NewEvent> {
    (0..4u8, prop_oneof![4 => Just("put"), 1 => Just("reset")], proptest::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(stream, kind, payload)| NewEvent::new(format!("s{stream}"), kind, payload))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn incremental_state_equals_rebuild(batches in proptest::collection::vec(proptest::collection::vec(arb_event(), 1..8), 1..10)) {
        let dir = tempfile::tempdir().unwrap();
        let log = open_with(dir.path(), projections(1));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // Submit every batch before awaiting any, so that several share one commit group.
        runtime.block_on(async {
            let mut pending = Vec::new();
            for batch in &batches {
                pending.push(log.submit(batch.clone()).await.unwrap());
            }
            for append in pending {
                append.wait().await.unwrap();
            }
        });
        let incremental = (dump(&log, "stream_stats"), dump(&log, "tracker"));
        let reports = log.rebuild_blocking().unwrap();
        prop_assert!(reports.iter().all(|report| report.equal_to_previous), "{:?}", reports);
        let rebuilt = (dump(&log, "stream_stats"), dump(&log, "tracker"));
        prop_assert_eq!(&incremental, &rebuilt);

        // A fresh process folding the same log with a new version of the fold agrees too.
        drop(log);
        let reopened = open_with(dir.path(), projections(2));
        prop_assert_eq!(&incremental.1, &dump(&reopened, "tracker"));
        prop_assert_eq!(&incremental.0, &dump(&reopened, "stream_stats"));
    }
}

#[test]
fn stream_stats_counts_every_stream() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with(dir.path(), cclog_projections::standard());
    log.append_blocking(vec![
        NewEvent::new("a", "k", b"12345".to_vec()),
        NewEvent::new("b", "k", b"1".to_vec()),
        NewEvent::new("a", "k", b"123".to_vec()),
    ])
    .unwrap();
    let a = cclog_projections::StreamStats::read(&log, "a").unwrap().unwrap();
    assert_eq!((a.events, a.first_seq, a.last_seq, a.payload_bytes), (2, 0, 2, 8));
    let totals = cclog_projections::StreamStats::totals(&log).unwrap();
    assert_eq!((totals.streams, totals.events, totals.payload_bytes), (2, 3, 9));
}

#[test]
fn a_projection_added_later_is_built_from_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open_with(dir.path(), cclog_projections::standard());
        log.append_blocking(
            (0..50).map(|index| NewEvent::new(format!("s{}", index % 3), "put", vec![index])).collect(),
        )
        .unwrap();
    }
    let log = open_with(dir.path(), projections(1));
    let built = dump(&log, "tracker");
    assert_eq!(built.len(), 6, "a count and a last payload for each of 3 streams");
    let reports = log.rebuild_blocking().unwrap();
    assert!(reports.iter().all(|report| report.equal_to_previous && report.events == 50), "{reports:?}");
}
