//! Criterion benchmarks of the log: durable appends at 1, 16 and 64 concurrent appenders
//! against SQLite doing the same work in the same run (WAL, synchronous=FULL, one row per
//! event with its chained hash, one transaction per append — the storage CC Manager uses);
//! verify (of an open log, and of a closed directory, which carves sled's files first) and
//! rebuild throughput; and bytes on disk per raw payload byte (printed).
//!
//! Run: `cargo bench --bench log`. Payloads are 256-byte stream-json-like JSON objects.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cclog_engine::{directory_size, Log, LogOptions, NewEvent};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

// The same allocator as the `cclog` binary, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAYLOAD_BYTES: usize = 256;
const VERIFY_EVENTS: u64 = 200_000;

fn payload(index: u64) -> Vec<u8> {
    let head = format!(
        r#"{{"type":"assistant","uuid":"{index:08x}-4d1c-4b8e-9f3a-5c2e1d0b7a69","session_id":"6f1e2d3c-b4a5-4968-8776-{:012x}","message":{{"id":"msg_{index:016x}","content":[{{"type":"text","text":""#,
        index % 7
    );
    let tail = r#""}]}}"#;
    let words = ["the ", "log ", "keeps ", "every ", "message ", "and ", "proves ", "it "];
    let mut text = String::new();
    let mut word = index as usize;
    while head.len() + text.len() + tail.len() < PAYLOAD_BYTES {
        text.push_str(words[word % words.len()]);
        word = word.wrapping_mul(31).wrapping_add(7);
    }
    text.truncate(PAYLOAD_BYTES - head.len() - tail.len());
    format!("{head}{text}{tail}").into_bytes()
}

fn open(dir: &Path) -> Log {
    Log::open(dir, LogOptions::with_projections(cclog_projections::standard())).expect("open log")
}

/// Runs `total` single-event durable appends spread over `appenders` tasks.
fn cclog_appends(runtime: &tokio::runtime::Runtime, log: &Log, appenders: u64, total: u64) -> Duration {
    let per_appender = total.div_ceil(appenders);
    let start = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for appender in 0..appenders {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for index in 0..per_appender {
                    let event = NewEvent::new(format!("session/{appender}"), "message", payload(index));
                    log.append(vec![event]).await.expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("appender");
        }
    });
    start.elapsed().mul_f64(total as f64 / (per_appender * appenders) as f64)
}

struct Sqlite {
    connection: Mutex<rusqlite::Connection>,
}

impl Sqlite {
    fn open(path: &Path) -> Sqlite {
        let connection = rusqlite::Connection::open(path).expect("sqlite");
        connection
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
                 CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
                   stream TEXT NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL, hash BLOB NOT NULL);",
            )
            .expect("schema");
        Sqlite { connection: Mutex::new(connection) }
    }

    /// One durable transaction: read the previous hash, chain, insert, commit.
    fn append(&self, stream: &str, payload: &[u8]) {
        let mut connection = self.connection.lock().expect("connection");
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("begin");
        let prev: Vec<u8> = transaction
            .query_row("SELECT hash FROM events ORDER BY seq DESC LIMIT 1", [], |row| row.get(0))
            .unwrap_or_else(|_| vec![0; 32]);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&prev);
        hasher.update(blake3::hash(payload).as_bytes());
        let hash = hasher.finalize();
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        transaction
            .execute(
                "INSERT INTO events (ts, stream, kind, payload, hash) VALUES (?1, ?2, 'message', ?3, ?4)",
                rusqlite::params![ts, stream, payload, hash.as_bytes().as_slice()],
            )
            .expect("insert");
        transaction.commit().expect("commit");
    }
}

fn sqlite_appends(db: &Arc<Sqlite>, appenders: u64, total: u64) -> Duration {
    let per_appender = total.div_ceil(appenders);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for appender in 0..appenders {
            let db = Arc::clone(db);
            scope.spawn(move || {
                let stream = format!("session/{appender}");
                for index in 0..per_appender {
                    db.append(&stream, &payload(index));
                }
            });
        }
    });
    start.elapsed().mul_f64(total as f64 / (per_appender * appenders) as f64)
}

fn durable_appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("durable_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    for appenders in [1u64, 16, 64] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path());
        group.bench_with_input(BenchmarkId::new("cclog", appenders), &appenders, |b, &appenders| {
            b.iter_custom(|iters| cclog_appends(&runtime, &log, appenders, iters.max(appenders)));
        });
        let events = log.len();
        drop(log);
        if events > 0 {
            let on_disk = directory_size(dir.path()).expect("size");
            println!(
                "cclog, {appenders} appenders: {events} events, {:.3} bytes on disk per payload byte",
                on_disk as f64 / (events * PAYLOAD_BYTES as u64) as f64
            );
        }

        let sqlite_dir = tempfile::tempdir().expect("tempdir");
        let sqlite = Arc::new(Sqlite::open(&sqlite_dir.path().join("events.db")));
        group.bench_with_input(BenchmarkId::new("sqlite", appenders), &appenders, |b, &appenders| {
            b.iter_custom(|iters| sqlite_appends(&sqlite, appenders, iters.max(appenders)));
        });
    }
    group.finish();
}

/// A log of `VERIFY_EVENTS` events, appended in batches of 1,000.
fn filled_log(dir: &Path) -> Log {
    let log = open(dir);
    let mut index = 0;
    while index < VERIFY_EVENTS {
        let batch = (index..(index + 1_000).min(VERIFY_EVENTS))
            .map(|i| NewEvent::new(format!("session/{}", i % 500), "message", payload(i)))
            .collect();
        log.append_blocking(batch).expect("append");
        index += 1_000;
    }
    log
}

fn verify_and_rebuild(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled_log(dir.path());
    let on_disk = directory_size(dir.path()).expect("size");
    println!(
        "cclog, {VERIFY_EVENTS} events appended in batches of 1,000: {:.3} bytes on disk per payload byte",
        on_disk as f64 / (VERIFY_EVENTS as f64 * PAYLOAD_BYTES as f64)
    );
    let mut group = c.benchmark_group("whole_log");
    group.throughput(Throughput::Elements(VERIFY_EVENTS));
    group.sample_size(10);
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = log.verify(0, &mut |_, _| {});
            assert!(report.intact());
        })
    });
    group.bench_function("rebuild", |b| b.iter(|| log.rebuild_blocking().expect("rebuild")));
    drop(log);
    // `cclog verify` on a closed directory: sled's files carved first, then the walk.
    group.bench_function("verify_dir", |b| {
        b.iter(|| {
            let report = cclog_engine::verify_dir(dir.path(), 0, &mut |_, _| {}).expect("verify_dir");
            assert!(report.intact());
        })
    });
    group.finish();
}

criterion_group!(benches, durable_appends, verify_and_rebuild);
criterion_main!(benches);
