//! Crash test in sled's style: this test binary re-executes itself as a child that appends
//! under concurrent load and prints every acknowledgement; the parent kills it with SIGKILL
//! at a random moment, reopens the log, and checks that every acknowledged event survived
//! with its hash, that verification passes, and that the projections equal a rebuild —
//! i.e. events and their projection updates were written atomically.
//!
//! The same for `cclog import`: killed mid-file several times, then run to the end, it
//! leaves exactly the archive an uninterrupted import leaves, and every file replays byte
//! for byte — chunks and their checkpoints are atomic, and a resumed import starts where
//! the last durable chunk ended.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::support::{cclog, cclog_bin, cclog_json, dump, event, open, verify_intact};
use crate::transcript;

const CHILD_ENV: &str = "CCLOG_CRASH_CHILD_DIR";
const TRIALS: usize = 24;
const APPENDERS: u64 = 16;

/// The child: appends forever from 16 tasks until it is killed.
#[test]
#[ignore = "run by crash_keeps_every_acknowledged_event as its child process"]
fn crash_child_appender() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let log = open(std::path::Path::new(&dir));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for appender in 0..APPENDERS {
            let log = log.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for index in 0.. {
                    // Batches of 1–3 events: the batch is atomic, so all or none survive.
                    let size = 1 + (index % 3);
                    let batch =
                        (0..size).map(|offset| event(&format!("crash/{appender}"), index * 3 + offset)).collect();
                    let appended = log.append(batch).await.expect("append");
                    for done in appended {
                        let _ = tx.send(format!("{} {}\n", done.seq, done.hash));
                    }
                }
            });
        }
        drop(tx);
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            stdout.write_all(line.as_bytes()).unwrap();
            stdout.flush().unwrap();
        }
    });
}

#[test]
fn crash_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acknowledged: HashMap<u64, String> = HashMap::new();
    for trial in 0..TRIALS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::crash_child_appender", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after = Duration::from_millis(rng.random_range(100..900));
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((seq, hash)) = line.split_once(' ') {
                    if let Ok(seq) = seq.parse::<u64>() {
                        seen.push((seq, hash.to_string()));
                    }
                }
            }
            seen
        });
        // Wait until the child is appending (its first ack), then let it run a random while.
        let started = Instant::now();
        std::thread::sleep(kill_after);
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        child.wait().unwrap();
        let seen = reader.join().unwrap();
        for (seq, hash) in seen.iter().cloned() {
            acknowledged.insert(seq, hash);
        }

        let log = open(dir.path());
        for (seq, hash) in &acknowledged {
            let event =
                log.get(*seq).unwrap().unwrap_or_else(|| panic!("trial {trial}: acknowledged event {seq} is lost"));
            assert_eq!(&event.hash.to_hex(), hash, "trial {trial}: event {seq} changed");
        }
        let report = log.verify(0, &mut |_, _| {});
        assert!(report.intact(), "trial {trial}: {:?}", report.damage);
        let live = dump(&log, "stream_stats");
        log.rebuild_blocking().unwrap();
        assert_eq!(live, dump(&log, "stream_stats"), "trial {trial}: projection disagrees with the log");
        eprintln!(
            "trial {trial}: killed after {:?}, {} acks this run, log holds {} events",
            started.elapsed(),
            seen.len(),
            log.len()
        );
        drop(log);
    }
    verify_intact(dir.path());
    assert!(acknowledged.len() > 100, "the children appended too little to test anything: {}", acknowledged.len());
}

#[test]
fn an_import_killed_mid_file_resumes_to_the_archive_an_uninterrupted_one_makes() {
    const MAIN: &str = "5a1d3c2e-0f4b-4c6d-8e7f-a1b2c3d4e5f6";
    const FORK: &str = "9e8d7c6b-5a49-4837-a625-1403f2e1d0c9";
    let root = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    let project = projects.join("-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    // Many chunks of one session, then a fork that copies the entries of its first half
    // (the copies differ only in sessionId, as --fork-session writes them) and goes on by
    // itself.
    let main_path = project.join(format!("{MAIN}.jsonl"));
    let lines = transcript::generate(&main_path, MAIN, 1, 12 << 20).unwrap();
    let main_text = std::fs::read_to_string(&main_path).unwrap();
    let copied: String =
        main_text.lines().take(lines as usize / 2).map(|line| format!("{}\n", line.replace(MAIN, FORK))).collect();
    let own_path = root.path().join("own.jsonl");
    transcript::generate(&own_path, FORK, 2, 2 << 20).unwrap();
    std::fs::write(project.join(format!("{FORK}.jsonl")), copied + &std::fs::read_to_string(&own_path).unwrap())
        .unwrap();
    // And a history of many small files, whose chunks share commit groups across file
    // boundaries, with forks of some of them: a fork's copies may point into the chunk of
    // a file still in flight.
    transcript::generate_history(&projects, 600, 3).unwrap();
    let small = projects.join("-home-dev-project-0");
    let mut originals: Vec<std::path::PathBuf> = std::fs::read_dir(&small)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "jsonl"))
        .collect();
    originals.sort();
    let mut small_forks = Vec::new();
    for (number, original) in originals.iter().take(8).enumerate() {
        let session = original.file_stem().unwrap().to_str().unwrap().to_string();
        let fork = format!("f0f0f0f0-0000-4000-8000-{number:012}");
        let text = std::fs::read_to_string(original).unwrap();
        let half = text.lines().count() / 2;
        let copied: String =
            text.lines().take(half).map(|line| format!("{}\n", line.replace(&session, &fork))).collect();
        std::fs::write(small.join(format!("{fork}.jsonl")), copied).unwrap();
        small_forks.push((fork, session));
    }
    let root_arg = projects.to_str().unwrap();

    let clean = tempfile::tempdir().unwrap();
    let started = Instant::now();
    cclog(clean.path(), &["import", root_arg]);
    let whole = started.elapsed();

    let crashed = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut interrupted = 0;
    for trial in 0..4 {
        // Each trial starts where the last one was killed, so kill early enough to land
        // inside what is left.
        let after = whole.mul_f64(rng.random_range(0.05..0.3));
        interrupted += u32::from(killed_while_running(crashed.path(), &["import", root_arg], after));
        verify_intact(crashed.path());
        eprintln!("import trial {trial}: {interrupted} imports interrupted so far (a whole one takes {whole:?})");
    }
    assert!(interrupted > 0, "every import finished before it was killed: nothing was tested");
    let finished: serde_json::Value = cclog_json(crashed.path(), &["import", "--verify-replay", "--json", root_arg]);
    assert_eq!(finished["revisions"], 0, "a resumed file is continued, not rewritten: {finished}");
    assert!(finished["malformed_lines"].as_array().unwrap().is_empty(), "{finished}");
    let sessions = |data: &std::path::Path| -> serde_json::Value { cclog_json(data, &["sessions", "--json"]) };
    assert_eq!(sessions(crashed.path()), sessions(clean.path()), "the same sessions, counts, usage and fork point");
    let all = sessions(crashed.path());
    let parent_of =
        |id: &str| all.as_array().unwrap().iter().find(|session| session["id"] == id).map(|s| s["parent"].clone());
    assert_eq!(parent_of(FORK), Some(serde_json::json!(MAIN)));
    for (fork, session) in &small_forks {
        assert_eq!(parent_of(fork), Some(serde_json::json!(session)), "a small fork is a pointer into its parent");
    }
    assert!(all.as_array().unwrap().len() > 450, "every small session is archived");
    for session in [MAIN, FORK] {
        let replayed = cclog(crashed.path(), &["replay", session, "--format", "jsonl"]).stdout;
        let file = std::fs::read(project.join(format!("{session}.jsonl"))).unwrap();
        assert!(replayed == file, "{session} replays byte for byte");
    }
    let rebuilt: serde_json::Value = cclog_json(crashed.path(), &["rebuild", "--json"]);
    assert_eq!(rebuilt["equal"], true, "projections equal a rebuild: {rebuilt}");
}

/// `cclog compact` killed at random moments — mid-copy, at the commit point, between the
/// renames — leaves a store that the next open settles to the same log, key for key: the
/// old store whole, or the new one in place.
#[test]
fn a_compaction_killed_at_any_moment_leaves_the_same_log() {
    let root = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    transcript::generate_history(&projects, 400, 5).unwrap();
    let data = tempfile::tempdir().unwrap();
    cclog(data.path(), &["import", projects.to_str().unwrap()]);
    let contents = |dir: &std::path::Path| -> Vec<(Vec<u8>, Vec<u8>)> {
        let log = open(dir);
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = log
            .range(0)
            .map(|event| event.map(|event| (event.hash.0.to_vec(), event.payload)))
            .collect::<Result<_, _>>()
            .unwrap();
        all.extend(dump(&log, "archive"));
        all
    };
    let before = contents(data.path());
    assert!(before.len() > 10_000, "{} events and archive keys", before.len());
    // How long a whole compaction takes, measured on a copy once the files are cached (the
    // first one reads them from the disk, and the trials would all finish in its time).
    let copy = tempfile::tempdir().unwrap();
    crate::support::copy_dir(data.path(), copy.path());
    cclog(copy.path(), &["compact"]);
    let started = Instant::now();
    cclog(copy.path(), &["compact"]);
    let whole = started.elapsed();

    let mut rng = rand::rng();
    let mut interrupted = 0;
    for trial in 0..12 {
        if interrupted >= 4 {
            break;
        }
        let after = whole.mul_f64(rng.random_range(0.1..1.1));
        interrupted += u32::from(killed_while_running(data.path(), &["compact"], after));
        verify_intact(data.path());
        assert!(contents(data.path()) == before, "trial {trial}: the log changed");
        for leftover in ["compact.new", "compact.old", "compact.ready"] {
            assert!(!data.path().join(leftover).exists(), "trial {trial}: {leftover} left behind");
        }
    }
    assert!(interrupted > 0, "every compaction finished before it was killed: nothing was tested");
}

/// Runs `cclog --data DATA ARGS…` and SIGKILLs it `after` that long; whether it was still
/// running then.
fn killed_while_running(data: &std::path::Path, args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(cclog_bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    running
}
