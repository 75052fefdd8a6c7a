//! Usage report benchmarks: `cclog usage daily` (and `monthly`, `blocks`) on archives of
//! 10,000 and 100,000 generated sessions spread over one year — three models, a session
//! about every 5 minutes at the larger size. A report reads the day rows of the days it
//! covers, so its time should not grow with the number of sessions (target: ≤ 20 ms at
//! 100,000). Run with `cargo bench --bench usage`.

use std::sync::Arc;

use cclog_engine::{Log, LogOptions, NewEvent};
use cclog_projections::events::{self, FileIdentity, Revision, RevisionReason};
use cclog_projections::usage::{self, Grouping, UsageQuery};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2026-01-01T00:00Z.
const YEAR_START_MS: i64 = 1_767_225_600_000;
const YEAR_MS: i64 = 365 * 24 * 3_600_000;
const MODELS: [&str; 3] = ["claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"];

fn at(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).expect("time").strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An archive of `sessions` sessions (a revision, a prompt and two requests each) over 2026.
fn archive(sessions: u64) -> (tempfile::TempDir, Arc<Log>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogOptions::with_projections(cclog_projections::standard())).expect("open");
    let mut batch = Vec::new();
    for number in 0..sessions {
        let session = format!("00000000-0000-4000-8000-{number:012x}");
        let project = format!("-home-dev-project-{}", number % 20);
        let path = format!("/home/dev/.claude/projects/{project}/{session}.jsonl");
        let stream = events::transcript_stream(&path);
        let start_ms = YEAR_START_MS + (YEAR_MS / sessions as i64) * number as i64;
        let file = FileIdentity { session: session.clone(), project, agent: None };
        let revision = Revision { revision: 0, reason: RevisionReason::New, file };
        batch.push(NewEvent::new(&stream, events::KIND_REVISION, events::encode(&revision).expect("encode")));
        let prompt = format!(
            r#"{{"type":"user","uuid":"{session}-0","sessionId":"{session}","timestamp":"{}","message":{{"role":"user","content":"Task {number}"}}}}"#,
            at(start_ms)
        );
        batch.push(NewEvent::new(&stream, events::KIND_LINE, prompt.into_bytes()));
        for request in 1..=2u64 {
            let model = MODELS[(number + request) as usize % MODELS.len()];
            let line = format!(
                r#"{{"type":"assistant","uuid":"{session}-{request}","sessionId":"{session}","timestamp":"{}","requestId":"req_{number}_{request}","message":{{"id":"msg_{number}_{request}","model":"{model}","role":"assistant","content":[],"usage":{{"input_tokens":{},"output_tokens":300,"cache_creation_input_tokens":2000,"cache_read_input_tokens":40000,"cache_creation":{{"ephemeral_5m_input_tokens":500,"ephemeral_1h_input_tokens":1500}}}}}}}}"#,
                at(start_ms + request as i64 * 60_000),
                1_000 + number % 500
            );
            batch.push(NewEvent::new(&stream, events::KIND_LINE, line.into_bytes()));
        }
        if batch.len() >= 4_000 {
            log.append_blocking(std::mem::take(&mut batch)).expect("append");
        }
    }
    log.append_blocking(batch).expect("append");
    (dir, Arc::new(log))
}

fn reports(c: &mut Criterion) {
    let mut group = c.benchmark_group("usage");
    group.sample_size(20);
    for sessions in [10_000u64, 100_000] {
        let (_dir, log) = archive(sessions);
        for grouping in [Grouping::Daily, Grouping::Monthly, Grouping::Blocks] {
            let query = UsageQuery::new(grouping).in_time_zone("Europe/Paris").expect("zone");
            let days = usage::report(&log, &query).expect("report").rows.len();
            assert!(days > 0);
            group.bench_with_input(BenchmarkId::new(grouping.name(), sessions), &query, |b, query| {
                b.iter(|| usage::report(&log, query).expect("report"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, reports);
criterion_main!(benches);
