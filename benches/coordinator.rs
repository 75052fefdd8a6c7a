//! Coordinator benchmarks. `cas_with_waiters`: one writer's compare-and-set on a key (read
//! the version, store with `expected_version`, durable before it returns) while 0 or 50
//! `wait_for_change` waiters wait — on other keys of the same scope (`50_other_keys`), or on
//! the very key written (`50_same_key`: every write answers all 50, which wait again at
//! once). The waiters hold neither the write lock nor the log's writer; the target is that
//! 50 waiters cost the writer at most 10%. Run with `cargo bench --bench coordinator`.

use std::sync::Arc;
use std::time::Duration;

use cclog_engine::{Log, LogOptions};
use cclog_ingest::coordinator::{KvStore, Stored};
use cclog_ingest::kv_watch::{CoordinatorWrites, WaitTimeout};
use cclog_projections::events::coordinator::Writer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCOPE: &str = "bench:project:handoff";

fn writer() -> Writer {
    Writer { instance: "claude_1".into(), machine: "bench".into(), project: "project".into() }
}

/// One compare-and-set: the current version, then a store expecting it.
fn compare_and_set(store: &KvStore<'_>, writer: &Writer) {
    let current = store.retrieve(SCOPE, "counter", None).expect("read").map_or(0, |version| version.version);
    let stored =
        store.store(SCOPE, "counter", &serde_json::json!(current + 1), Some(current), None, writer).expect("store");
    assert!(matches!(stored, Stored::Written { .. }), "one writer never conflicts");
}

fn cas_with_waiters(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("coordinator");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for (case, waiters, same_key) in [("none", 0, false), ("50_other_keys", 50, false), ("50_same_key", 50, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log =
            Arc::new(Log::open(dir.path(), LogOptions::with_projections(cclog_projections::standard())).expect("open"));
        let writes = CoordinatorWrites::new(Arc::clone(&log));
        let timeout = WaitTimeout::seconds(300.0).expect("timeout");
        // Each waiter waits on its own key of the scope, again as soon as a wait ends.
        let tasks: Vec<_> = (0..waiters)
            .map(|number| {
                let writes = Arc::clone(&writes);
                runtime.spawn(async move {
                    let key = if same_key { "counter".to_string() } else { format!("waiter-{number}") };
                    while writes.wait_for_change(SCOPE, &key, None, timeout).await.is_ok() {}
                })
            })
            .collect();
        // Let them all join before measuring.
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
        let (store, writer) = (KvStore::new(&log), writer());
        group.bench_with_input(BenchmarkId::new("cas_with_waiters", case), &waiters, |b, _| {
            b.iter(|| compare_and_set(&store, &writer))
        });
        for task in tasks {
            task.abort();
        }
    }
    group.finish();
}

criterion_group!(benches, cas_with_waiters);
criterion_main!(benches);
