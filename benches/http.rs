//! HTTP API benchmarks against the real server (`cclog_http::server::serve`) on loopback,
//! with real HTTP clients (ureq, keep-alive):
//!
//! - `imported_session/{1,100}/{10000,50000}`: a page of 1 and of 100 entries
//!   (`GET /api/sessions/:id/messages?after=N&limit=M`, N random) of an imported session
//!   of 10,000 and of 50,000 real-shaped entries (~1.7 KB each), one ureq client; the
//!   median is the p50.
//! - `imported_session_wrk/100/{10000,50000}`: the same page of 100 loaded by `wrk -t2 -c8`
//!   (Debian's wrk, its own process, random offsets from a Lua script); elements/s is
//!   requests/s, and each run prints wrk's own latency percentiles.
//! - `page_of_100/latency`: `GET /api/sessions/:id/messages?after=N&limit=100` on a session
//!   whose run recorded 10,000 messages, one client; criterion's median is the p50.
//! - `page_of_100/throughput`: the same request from 8 clients at once; elements/s is
//!   requests/s.
//! - `run_recording/subscribers/{0,100}`: how long the runner takes to record a run of 2,000
//!   messages, with no one watching and with 100 clients on its SSE stream
//!   (`GET /api/runs/:id/stream`). Measured from the log: the first message's timestamp to
//!   the run's end.
//! - `recording_lag/subscribers/{0,100}`: a run that prints its 400 messages at a steady
//!   pace (one every 2.5 ms, each stamped with the time it was printed), as Claude Code
//!   does, rather than in one burst; the measured "time" of an iteration is the run's median
//!   lag from a message being printed to it being recorded (its event's timestamp).
//!
//! The runs are recorded by the real runner; the program it starts stands in for Claude
//! Code and prints prepared stream-json lines as fast as it can, since what is measured is
//! cclog, not the model.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cclog_engine::{Log, LogOptions};
use cclog_http::server::{serve, ServeOptions};
use cclog_ingest::runner::RunnerConfig;
use criterion::{criterion_group, Criterion, Throughput};
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE_SESSION: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// `count` stream-json lines of one run: init, assistant and user messages, the result.
fn stream_json(session: &str, count: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        r#"{{"type":"system","subtype":"init","cwd":"/home/dev/app","session_id":"{session}","tools":["Bash","Read","Write"],"model":"claude-sonnet-4-5","permissionMode":"default","uuid":"{session}-init"}}"#
    ));
    out.push('\n');
    let filler = "The quick brown fox jumps over the lazy dog; ".repeat(6);
    for index in 1..count.saturating_sub(1) {
        let line = if index % 2 == 1 {
            format!(
                r#"{{"type":"assistant","message":{{"id":"msg_{index:016}","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{{"type":"text","text":"Step {index}: {filler}"}}],"stop_reason":null,"usage":{{"input_tokens":1200,"output_tokens":80}}}},"parent_tool_use_id":null,"session_id":"{session}","uuid":"{session}-{index:06}"}}"#
            )
        } else {
            format!(
                r#"{{"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_{index}","type":"tool_result","content":"{filler}"}}]}},"parent_tool_use_id":null,"session_id":"{session}","uuid":"{session}-{index:06}"}}"#
            )
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"duration_ms":1000,"num_turns":{count},"result":"Done.","session_id":"{session}","total_cost_usd":0.01,"uuid":"{session}-result"}}"#
    ));
    out.push('\n');
    out
}

/// A program standing in for Claude Code: reads the prompt, waits until `go` exists (when
/// given), then prints the lines of `messages`.
fn stand_in(dir: &Path, messages: &Path, go: Option<&Path>) -> PathBuf {
    let program = dir.join(format!("claude-stand-in-{}", messages.file_stem().unwrap().to_string_lossy()));
    let wait = go.map(|go| format!("while [ ! -e '{}' ]; do sleep 0.005; done\n", go.display())).unwrap_or_default();
    std::fs::write(&program, format!("#!/bin/sh\ncat > /dev/null\n{wait}cat '{}'\n", messages.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    program
}

/// A stand-in that prints the lines of `messages` at a steady pace, replacing `__PRINTED__`
/// in each with the time it is printed (ns since the epoch).
fn paced_stand_in(dir: &Path, messages: &Path, go: &Path) -> PathBuf {
    let program = dir.join("claude-stand-in-paced");
    std::fs::write(
        &program,
        format!(
            r#"#!/usr/bin/env python3
import os, sys, time
sys.stdin.read()
while not os.path.exists({go:?}):
    time.sleep(0.005)
for line in open({messages:?}):
    sys.stdout.write(line.replace("__PRINTED__", str(time.time_ns())))
    sys.stdout.flush()
    time.sleep(0.0025)
"#,
            go = go.display().to_string(),
            messages = messages.display().to_string()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    program
}

/// A server on loopback over a fresh log in `dir`, running `claude`.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(dir: &Path, claude: PathBuf) -> Server {
        let log = Arc::new(Log::open(dir, LogOptions::with_projections(cclog_projections::standard())).unwrap());
        let options = ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            token: None,
            archive_roots: Vec::new(),
            archive_interval: Duration::from_secs(3600),
            cancel_on_shutdown: true,
            runner: RunnerConfig {
                claude_bin: claude,
                max_runs: 8,
                interrupt_grace: Duration::from_secs(1),
                terminate_grace: Duration::from_secs(1),
            },
            commands: None,
            coordinator: cclog_ingest::coordinator::Identity::detect(dir),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            limits: cclog_http::connections::ConnectionLimits::default(),
            prices: Arc::new(cclog_projections::pricing::PriceTable::built_in().clone()),
            cclog_bin: std::path::PathBuf::from("cclog"),
            plan_ttl: cclog_ingest::plan::file::DEFAULT_TTL,
            idle_exit: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime
                .block_on(serve(
                    log,
                    options,
                    async move {
                        let _ = stopped.await;
                    },
                    move |addr| bound.send(addr).unwrap(),
                ))
                .unwrap();
        });
        let addr = address.recv().unwrap();
        Server { url: format!("http://{addr}"), stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn get(agent: &ureq::Agent, url: &str) -> String {
    let mut response = agent.get(url).call().unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.body_mut().read_to_string().unwrap()
}

fn start_run(agent: &ureq::Agent, url: &str, cwd: &Path, wait: bool) -> Value {
    let body = json!({"cwd": cwd, "prompt": "benchmark", "wait": wait}).to_string();
    let mut response =
        agent.post(&format!("{url}/api/runs/start")).header("Content-Type", "application/json").send(body).unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn page_of_100(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("page.jsonl");
    std::fs::write(&messages, stream_json(PAGE_SESSION, 10_000)).unwrap();
    let server = Server::start(&dir.path().join("log"), stand_in(dir.path(), &messages, None));
    let client = agent();
    let run = start_run(&client, &server.url, dir.path(), true);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["messageCount"], 10_000, "{run}");
    let page = |after: u64| format!("{}/api/sessions/{PAGE_SESSION}/messages?after={after}&limit=100", server.url);
    let first: Vec<Value> = serde_json::from_str(&get(&client, &page(5_000))).unwrap();
    assert_eq!(first.len(), 100);
    assert_eq!(first[0]["index"], 5_001);

    let mut group = c.benchmark_group("page_of_100");
    group.throughput(Throughput::Elements(1));
    let mut after = 0u64;
    group.bench_function("latency", |b| {
        b.iter(|| {
            after = (after + 997) % 9_900;
            get(&client, &page(after))
        })
    });
    const CLIENTS: u64 = 8;
    let agents: Vec<ureq::Agent> = (0..CLIENTS).map(|_| agent()).collect();
    group.bench_function("throughput", |b| {
        b.iter_custom(|iters| {
            let per_client = iters.div_ceil(CLIENTS);
            let started = Instant::now();
            std::thread::scope(|scope| {
                for (client, agent) in agents.iter().enumerate() {
                    let page = &page;
                    scope.spawn(move || {
                        for request in 0..per_client {
                            get(agent, &page((client as u64 * 1_237 + request * 997) % 9_900));
                        }
                    });
                }
            });
            started.elapsed().mul_f64(iters as f64 / (per_client * CLIENTS) as f64)
        })
    });
    group.finish();
}

/// Writes a transcript of `entries` real-shaped entries (~1.7 KB each, as real ones are on
/// average): user prompts and assistant replies with usage, chained by `parentUuid`.
fn real_shaped_session(path: &Path, session: &str, entries: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let text = "The parser keeps every token and its position so that errors can point at them; ".repeat(18);
    let mut parent = "null".to_string();
    for index in 0..entries {
        let uuid = format!("{:08x}-1111-4222-8333-{index:012x}", index.wrapping_mul(2_654_435_761) & 0xffff_ffff);
        let line = if index % 2 == 0 {
            format!(
                r#"{{"parentUuid":{parent},"isSidechain":false,"type":"user","message":{{"role":"user","content":"Step {index}: {text}"}},"uuid":"{uuid}","timestamp":"2026-11-21T10:00:00.000Z","cwd":"/home/dev/app","sessionId":"{session}","version":"2.1.329"}}"#
            )
        } else {
            format!(
                r#"{{"parentUuid":{parent},"isSidechain":false,"message":{{"id":"msg_{index:016}","model":"claude-sonnet-4-5","role":"assistant","type":"message","content":[{{"type":"text","text":"Done {index}: {text}"}}],"usage":{{"input_tokens":1200,"output_tokens":80}}}},"type":"assistant","uuid":"{uuid}","timestamp":"2026-11-21T10:00:01.000Z","cwd":"/home/dev/app","sessionId":"{session}","version":"2.1.329"}}"#
            )
        };
        parent = format!("\"{uuid}\"");
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
}

/// Runs `wrk -t2 -c8` for a second against `url` with `script`; requests done and wrk's
/// output.
fn wrk(url: &str, script: &Path) -> (u64, String) {
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c8", "-d1s", "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk (Debian's package) must be installed for this benchmark");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    let requests = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ").and_then(|(count, _)| count.parse().ok()))
        .unwrap_or_else(|| panic!("no request count in wrk's output: {text}"));
    (requests, text)
}

fn imported_session_pages(c: &mut Criterion) {
    let mut latency = c.benchmark_group("imported_session");
    latency.throughput(Throughput::Elements(1));
    let mut servers = Vec::new();
    for entries in [10_000u64, 50_000] {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects/-home-dev-app");
        std::fs::create_dir_all(&projects).unwrap();
        real_shaped_session(&projects.join(format!("{PAGE_SESSION}.jsonl")), PAGE_SESSION, entries);
        {
            let log = Log::open(&dir.path().join("log"), LogOptions::with_projections(cclog_projections::standard()))
                .unwrap();
            let report =
                cclog_ingest::import::Importer::new(&log).import(&[dir.path().join("projects")], &|_| {}).unwrap();
            assert_eq!(report.new_entries, entries);
        }
        let server = Server::start(&dir.path().join("log"), PathBuf::from("/nonexistent/claude"));
        let client = agent();
        let url = |after: u64, limit: u64| {
            format!("{}/api/sessions/{PAGE_SESSION}/messages?after={after}&limit={limit}", server.url)
        };
        let page: Vec<Value> = serde_json::from_str(&get(&client, &url(entries / 2, 100))).unwrap();
        assert_eq!((page.len(), page[0]["index"].as_u64()), (100, Some(entries / 2 + 1)));
        let bytes = get(&client, &url(entries / 2, 100)).len();
        eprintln!("imported_session/{entries}: a page of 100 is {} KB", bytes / 1024);
        for limit in [1u64, 100] {
            let mut after = 0u64;
            latency.bench_function(format!("{limit}/{entries}"), |b| {
                b.iter(|| {
                    after = (after + 7_919) % (entries - limit);
                    get(&client, &url(after, limit))
                })
            });
        }
        servers.push((server, dir, entries));
    }
    latency.finish();

    let mut load = c.benchmark_group("imported_session_wrk");
    load.throughput(Throughput::Elements(1));
    load.sample_size(10);
    load.warm_up_time(Duration::from_secs(1));
    load.measurement_time(Duration::from_secs(12));
    for (server, dir, entries) in &servers {
        let script = dir.path().join("pages.lua");
        std::fs::write(
            &script,
            format!(
                "math.randomseed(7)\nrequest = function()\n  local after = math.random(0, {})\n  \
                 return wrk.format(\"GET\", \"/api/sessions/{PAGE_SESSION}/messages?after=\" .. after .. \"&limit=100\")\nend\n",
                entries - 101
            ),
        )
        .unwrap();
        let mut last = String::new();
        load.bench_function(format!("100/{entries}"), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                let (requests, text) = wrk(&server.url, &script);
                last = text;
                started.elapsed().mul_f64(iters as f64 / requests.max(1) as f64)
            })
        });
        eprintln!("imported_session_wrk/100/{entries}, wrk's last run:\n{last}");
    }
    load.finish();
}

/// Records one run of `count` messages while `subscribers` clients follow its stream;
/// its recorded messages and the ended run.
fn record_one(server: &Server, cwd: &Path, go: &Path, subscribers: usize, count: usize) -> (Vec<Value>, Value) {
    let _ = std::fs::remove_file(go);
    let client = agent();
    let run = start_run(&client, &server.url, cwd, false);
    let id = run["id"].as_str().unwrap().to_string();
    let watchers: Vec<_> = (0..subscribers)
        .map(|_| {
            let url = format!("{}/api/runs/{id}/stream", server.url);
            let (connected, ready) = std::sync::mpsc::channel();
            let watcher = std::thread::spawn(move || {
                let mut response = agent().get(&url).call().unwrap();
                connected.send(()).unwrap();
                let mut messages = 0usize;
                for line in BufReader::new(response.body_mut().as_reader()).lines() {
                    let line = line.unwrap();
                    if line == "event: message" {
                        messages += 1;
                    } else if line == "event: end" {
                        break;
                    }
                }
                messages
            });
            ready.recv().unwrap();
            watcher
        })
        .collect();
    std::fs::File::create(go).unwrap().flush().unwrap();
    let run_url = format!("{}/api/runs/{id}", server.url);
    loop {
        let run: Value = serde_json::from_str(&get(&client, &run_url)).unwrap();
        if run["status"] != "running" {
            assert_eq!(run["status"], "completed", "{run}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for watcher in watchers {
        assert_eq!(watcher.join().unwrap(), count, "a subscriber missed messages");
    }
    let messages: Vec<Value> =
        serde_json::from_str(&get(&client, &format!("{}/api/runs/{id}/messages", server.url))).unwrap();
    assert_eq!(messages.len(), count);
    let run: Value = serde_json::from_str(&get(&client, &run_url)).unwrap();
    (messages, run)
}

fn recorded_at(message: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(message["createdAt"].as_str().unwrap()).unwrap()
}

/// From the first message to the run's end, as the log's timestamps say.
fn recording_time(server: &Server, cwd: &Path, go: &Path, subscribers: usize) -> Duration {
    let (messages, run) = record_one(server, cwd, go, subscribers, 2_000);
    let ended = humantime::parse_rfc3339(run["endedAt"].as_str().unwrap()).unwrap();
    ended.duration_since(recorded_at(&messages[0])).unwrap()
}

/// The median time from a message being printed to its being recorded.
fn median_lag(server: &Server, cwd: &Path, go: &Path, subscribers: usize) -> Duration {
    let (messages, _) = record_one(server, cwd, go, subscribers, LAG_MESSAGES);
    let mut lags: Vec<Duration> = messages
        .iter()
        .filter_map(|message| {
            let printed = message["message"]["printed_ns"].as_u64()?;
            let printed = std::time::UNIX_EPOCH + Duration::from_nanos(printed);
            // Event timestamps are µs; a lag under 1 µs reads as zero.
            Some(recorded_at(message).duration_since(printed).unwrap_or_default())
        })
        .collect();
    assert!(lags.len() >= LAG_MESSAGES - 2, "messages carry the time they were printed");
    lags.sort();
    lags[lags.len() / 2]
}

const LAG_MESSAGES: usize = 400;

fn run_recording(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("run.jsonl");
    std::fs::write(&messages, stream_json("3f2504e0-4f89-41d3-9a0c-0305e82c3301", 2_000)).unwrap();
    let go = dir.path().join("go");
    let server = Server::start(&dir.path().join("log"), stand_in(dir.path(), &messages, Some(&go)));
    let mut group = c.benchmark_group("run_recording");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2_000));
    for subscribers in [0usize, 100] {
        group.bench_function(format!("subscribers/{subscribers}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| recording_time(&server, dir.path(), &go, subscribers)).sum())
        });
    }
    group.finish();
}

fn recording_lag(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("paced.jsonl");
    let lines = stream_json("9b2f6c1e-5a7d-4e3b-8c9a-1d2e3f4a5b6c", LAG_MESSAGES)
        .replace(r#""parent_tool_use_id":null"#, r#""parent_tool_use_id":null,"printed_ns":__PRINTED__"#);
    std::fs::write(&messages, lines).unwrap();
    let go = dir.path().join("go");
    let server = Server::start(&dir.path().join("log"), paced_stand_in(dir.path(), &messages, &go));
    let mut group = c.benchmark_group("recording_lag");
    group.sample_size(10);
    for subscribers in [0usize, 100] {
        group.bench_function(format!("subscribers/{subscribers}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| median_lag(&server, dir.path(), &go, subscribers)).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, imported_session_pages, page_of_100, run_recording, recording_lag);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
