//! A server whose write fails recovers without a restart
//! (`cargo test -p cclog-http --features failpoints --test faults`). A failpoint makes one
//! of sled's writes fail while the server archives a transcript: the log fails closed,
//! `/health` says `degraded`, and once the fault has cleared the same server reopens the
//! log on its own — cut back to the last acknowledged event — and the archive catches up,
//! replaying the transcript byte for byte.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cclog_engine::{Health, Log, LogOptions};
use cclog_http::connections::ConnectionLimits;
use cclog_http::server::{serve, ServeOptions};
use cclog_ingest::coordinator::{Identity, DEFAULT_LEASE};
use cclog_ingest::runner::RunnerConfig;
use cclog_projections::archive::Archive;

/// A GET over loopback; the answer's body as JSON.
fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut response =
        ureq::get(&format!("http://{addr}{path}")).call().unwrap_or_else(|error| panic!("GET {path}: {error}"));
    let body = response.body_mut().read_to_string().unwrap();
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

/// Appends `lines` transcript entries to a session file, as Claude Code writes them.
fn write_entries(file: &Path, from: usize, lines: usize) {
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(file).unwrap();
    for index in from..from + lines {
        let parent = if index == 0 { "null".to_string() } else { format!("\"u-{}\"", index - 1) };
        writeln!(
            out,
            r#"{{"type":"user","uuid":"u-{index}","parentUuid":{parent},"sessionId":"s-1","timestamp":"2026-12-02T00:00:00.000Z","message":{{"role":"user","content":"entry {index} {}"}}}}"#,
            "z".repeat(index % 300)
        )
        .unwrap();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_server_whose_write_failed_reopens_the_log_and_catches_up_without_a_restart() {
    let scenario = fail::FailScenario::setup();
    let data = tempfile::tempdir().unwrap();
    let projects = tempfile::tempdir().unwrap();
    let project = projects.path().join("-work-demo");
    std::fs::create_dir_all(&project).unwrap();
    let transcript = project.join("s-1.jsonl");
    write_entries(&transcript, 0, 50);

    let log = Arc::new(Log::open(data.path(), LogOptions::with_projections(cclog_projections::standard())).unwrap());
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: None,
        archive_roots: vec![projects.path().to_path_buf()],
        archive_interval: Duration::from_millis(200),
        cancel_on_shutdown: true,
        runner: RunnerConfig::from_env().unwrap(),
        commands: None,
        coordinator: Identity { machine: "test".into(), project: "demo".into(), lease: DEFAULT_LEASE },
        allowed_hosts: Vec::new(),
        allowed_origins: Vec::new(),
        limits: ConnectionLimits::default(),
        prices: std::sync::Arc::new(cclog_projections::pricing::PriceTable::built_in().clone()),
        cclog_bin: std::path::PathBuf::from("cclog"),
        plan_ttl: cclog_ingest::plan::file::DEFAULT_TTL,
        idle_exit: None,
    };
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(serve(
                log,
                options,
                async move {
                    let _ = stop_rx.await;
                },
                move |bound| {
                    let _ = bound_tx.send(bound);
                },
            ))
        })
    };
    let addr = bound_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let archived = |log: &Log| -> usize {
        Archive::files(log)
            .unwrap()
            .iter()
            .find(|file| file.path.ends_with("s-1.jsonl"))
            .map_or(0, |file| file.lines as usize)
    };
    wait_until("the first 50 entries to be archived", || archived(&log) == 50);
    assert_eq!(get_json(addr, "/health")["status"], "ok");

    // The next write fails inside sled, and keeps failing until the fault clears.
    let before = log.len();
    fail::cfg("commit.torn_write", "return").unwrap();
    write_entries(&transcript, 50, 200);
    wait_until("the log to fail", || matches!(log.health(), Health::Failed(_)));
    let health = get_json(addr, "/health");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["reason"].as_str().unwrap().contains("commit.torn_write"), "{health}");
    assert!(cclog_engine::read_fault(data.path()).is_some(), "no fault recorded");
    std::thread::sleep(cclog_http::server::REOPEN_INTERVAL * 3);
    assert!(matches!(log.health(), Health::Failed(_)), "reopened while the fault lasted");
    assert_eq!(log.len(), before, "nothing was acknowledged while failing");

    // The fault clears: the same server reopens the log, and the archive catches up.
    fail::remove("commit.torn_write");
    wait_until("the server to reopen the log", || log.health() == Health::Ok);
    let recovery = log.recovery().expect("a recovery was recorded");
    assert!(recovery.reason.contains("commit.torn_write"), "{}", recovery.describe());
    assert!(cclog_engine::read_fault(data.path()).is_none(), "the fault record stays");
    wait_until("every entry to be archived", || archived(&log) == 250);
    assert_eq!(get_json(addr, "/health")["status"], "ok");
    let recoveries = get_json(addr, &format!("/api/events?stream={}", cclog_engine::RECOVERY_STREAM));
    assert_eq!(recoveries.as_array().unwrap().len(), 1, "{recoveries}");

    let file = Archive::files(&log).unwrap().into_iter().find(|file| file.path.ends_with("s-1.jsonl")).unwrap();
    let mut replayed = Vec::new();
    cclog_projections::replay::write_file(&log, &file, None, &mut replayed).unwrap();
    assert_eq!(replayed, std::fs::read(&transcript).unwrap(), "the replay differs from the transcript");
    let report = log.verify(0, &mut |_, _| {});
    assert!(report.intact(), "{:?}", report.damage);

    let _ = stop_tx.send(());
    server.join().unwrap().unwrap();
    drop(log);
    let reopened = Log::open(data.path(), LogOptions::with_projections(cclog_projections::standard())).unwrap();
    assert!(reopened.verify(0, &mut |_, _| {}).intact());
    scenario.teardown();
}
