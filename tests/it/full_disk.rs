//! A real full disk: a small tmpfs mounted by the test (tests run as root; where mounting
//! is not allowed the tests say so and skip). Imports and appends run until the disk is
//! full — refused by the free-space check, or failing inside sled when another process
//! fills the disk under them — and each trial is bounded in time: a clear "disk full"
//! (exit 74), never a hang; after space is freed, verify intact, the transcript replays byte
//! for byte (so no acknowledged event is missing), and writes are accepted again — by the
//! same server, without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::support::cclog_command;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u64) -> Option<Tmpfs> {
        Tmpfs::mount_with(&format!("size={megabytes}m"))
    }

    fn mount_with(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs { dir }),
            _ => {
                eprintln!("full_disk: skipped — mounting a tmpfs is not allowed here (the test needs root)");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Frees space the way a user would: more room on the same filesystem.
    fn grow(&self, megabytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={megabytes}m")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remounting the tmpfs larger failed");
    }

    fn shrink_to(&self, megabytes: u64) {
        // A tmpfs refuses to shrink below what it holds; callers start each trial empty.
        let _ = Command::new("mount").args(["-o", &format!("remount,size={megabytes}m")]).arg(self.path()).status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A transcript of about `megabytes` MB in a project directory of its own.
fn transcript(root: &Path, megabytes: usize) -> PathBuf {
    let project = root.join("projects").join("-work-disk");
    std::fs::create_dir_all(&project).unwrap();
    let session = "5f1c2e3a-0000-4000-8000-00000000d15c";
    let mut file = std::fs::File::create(project.join(format!("{session}.jsonl"))).unwrap();
    let mut parent = serde_json::Value::Null;
    let mut written = 0;
    let mut index = 0u64;
    while written < megabytes << 20 {
        let uuid = format!("00000000-0000-4000-8000-{index:012x}");
        // Text that compresses about as well as real transcripts do.
        let text: String = (0..300).map(|word| format!("w{} ", (index * 7919 + word * 104_729) % 5003)).collect();
        let line = serde_json::json!({
            "parentUuid": parent, "isSidechain": false, "type": if index.is_multiple_of(2) { "user" } else { "assistant" },
            "message": {"role": if index.is_multiple_of(2) { "user" } else { "assistant" }, "content": text},
            "uuid": uuid, "sessionId": session, "cwd": "/work/disk", "version": "2.1.0",
            "timestamp": format!("2026-01-01T00:{:02}:{:02}.000Z", (index / 60) % 60, index % 60),
        })
        .to_string();
        writeln!(file, "{line}").unwrap();
        written += line.len() + 1;
        parent = serde_json::Value::String(uuid);
        index += 1;
    }
    root.join("projects")
}

/// Runs cclog, killing it (and failing the test) if it has not exited within a minute.
fn cclog_bounded(data: &Path, args: &[&str]) -> (i32, String, String) {
    let child = cclog_command(data, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let output = child.wait_with_output().unwrap();
    done.store(true, Ordering::SeqCst);
    assert!(!watchdog.join().unwrap(), "cclog {args:?} hung for a minute on a full disk");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Another process filling the disk: appends to a file, retrying on ENOSPC, until stopped.
struct Filler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Filler {
    fn start(path: PathBuf, delay: Duration) -> Filler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
                let chunk = vec![b'x'; 64 << 10];
                while !stop.load(Ordering::SeqCst) {
                    if file.write_all(&chunk).is_err() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        Filler { stop, thread: Some(thread), path }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        std::fs::remove_file(&self.path).unwrap();
    }
}

#[test]
fn imports_until_the_disk_is_full_end_clearly_and_lose_nothing() {
    let Some(disk) = Tmpfs::mount(12) else { return };
    let source = tempfile::tempdir().unwrap();
    let projects = transcript(source.path(), 32);
    let projects = projects.to_str().unwrap();
    let mut through_sled = 0;
    for trial in 0..10u64 {
        disk.shrink_to(12);
        let data = disk.path().join(format!("trial-{trial}"));
        // Even trials: the free-space check refuses the import. Odd ones: no reserve, and
        // another process fills the disk under the import, so sled's own writes fail.
        let (code, stdout, stderr) = if trial % 2 == 0 {
            cclog_bounded(&data, &["import", projects])
        } else {
            let filler = Filler::start(disk.path().join("filler"), Duration::from_millis(100 + trial * 40));
            let outcome = cclog_bounded(&data, &["--disk-reserve", "0", "import", projects]);
            filler.stop();
            outcome
        };
        assert_eq!(code, 74, "trial {trial}: {stdout}{stderr}");
        assert!(stderr.contains("disk full"), "trial {trial}: {stderr}");
        if stderr.contains("stopped accepting appends") {
            through_sled += 1;
        }
        // Space is back: the store verifies (up to what was acknowledged), and the import
        // finishes the file, which then replays byte for byte.
        disk.grow(128);
        let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
        assert_eq!(code, 0, "trial {trial}: verify after freeing space: {stdout}{stderr}");
        let (code, stdout, stderr) = cclog_bounded(&data, &["import", "--verify-replay", projects]);
        assert_eq!(code, 0, "trial {trial}: {stdout}{stderr}");
        assert!(stdout.contains("replay: every file gives back its exact bytes"), "trial {trial}: {stdout}");
        let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
        assert_eq!(code, 0, "trial {trial}: {stdout}{stderr}");
        assert!(stdout.starts_with("intact"), "trial {trial}: {stdout}");
        std::fs::remove_dir_all(&data).unwrap();
    }
    eprintln!("full_disk: {through_sled} of 5 filled trials failed inside sled and were recovered");
}

#[test]
fn read_only_commands_on_a_full_disk_say_so_and_leave_the_store_as_it_was() {
    let Some(disk) = Tmpfs::mount(32) else { return };
    let data = disk.path().join("data");
    let source = tempfile::tempdir().unwrap();
    let projects = transcript(source.path(), 2);
    let (code, _, stderr) = cclog_bounded(&data, &["import", projects.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // Fill the disk to the last byte.
    let filler = Filler::start(disk.path().join("filler"), Duration::ZERO);
    while cclog_engine::free_bytes(disk.path()).unwrap() > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    for args in [&["verify"][..], &["stats"], &["sessions"], &["log", "--limit", "1"]] {
        let (code, stdout, stderr) = cclog_bounded(&data, args);
        assert_eq!(code, 74, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("disk full") && !stdout.contains("DAMAGED"), "{args:?}: {stdout}{stderr}");
    }
    filler.stop();
    // Something sled left when a snapshot could not be finished is garbage, not damage.
    std::fs::write(data.join("sled").join("snap.00000000001f1d2c.generating"), b"").unwrap();
    let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("intact"), "{stdout}");
}

#[test]
fn a_server_on_a_full_disk_reports_degraded_and_takes_writes_again_once_space_is_freed() {
    let Some(disk) = Tmpfs::mount(14) else { return };
    let data = disk.path().join("data");
    // No archiving: its small appends between the refusal and the check would fit.
    let server = Server::start(&data, &[], &["--no-archive"]);
    assert_eq!(server.ok("GET", "/health", None)["status"], "ok");
    // A JSON string of 100 KiB (an argument may not exceed 128 KiB).
    // Hex of a pseudo-random sequence, so that it does not compress away.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let hex: String = (0..100 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from_digit((state % 16) as u32, 16).unwrap_or('0')
        })
        .collect();
    let value = format!("\"{hex}\"");
    let mut refused = None;
    for index in 0..200 {
        let (code, stdout, stderr) = cclog_bounded(&data, &["kv", "set", "disk", &format!("key-{index}"), &value]);
        if code != 0 {
            refused = Some((index, code, stdout, stderr));
            break;
        }
    }
    let (index, code, stdout, stderr) = refused.expect("the disk never filled");
    assert_eq!(code, 74, "{stdout}{stderr}");
    assert!(stderr.contains("disk full"), "{stderr}");
    let health = server.ok("GET", "/health", None);
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["reason"].as_str().unwrap().contains("disk full"), "{health}");
    // Reads still work.
    let (code, stdout, _) = cclog_bounded(&data, &["kv", "get", "disk", "key-0"]);
    assert_eq!((code, stdout.trim_end().len()), (0, value.len()));
    disk.grow(64);
    assert_eq!(server.ok("GET", "/health", None)["status"], "ok");
    let (code, stdout, stderr) = cclog_bounded(&data, &["kv", "set", "disk", &format!("key-{index}"), &value]);
    assert_eq!(code, 0, "the same server refused a write after space was freed: {stdout}{stderr}");
    let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    server.stop();
}

/// A run whose messages meet a full disk pauses — its recorder waits, the CLI waits on its
/// pipe or, having printed everything, exits — and once space is freed it is recorded to
/// the end by the same server: every message there, the run a success. Before, the
/// refused messages were lost and the run never ended in the log.
#[test]
fn a_run_that_meets_a_full_disk_pauses_and_loses_no_message() {
    use crate::fake_api::{FakeApi, Reply};
    let Some(disk) = Tmpfs::mount(48) else { return };
    let data = disk.path().join("data");
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let project = std::fs::canonicalize(&project).unwrap();
    // A tool that waits for the test to open a gate (Claude Code refuses a bare `sleep`).
    let gate = home.path().join(format!("gate-{}", std::process::id()));
    let command = format!(
        "python3 -c \"import os, time; [time.sleep(0.05) for _ in iter(lambda: os.path.exists('{}'), True)]\"",
        gate.display()
    );
    let api = FakeApi::by_prompt(vec![(
        "disk",
        vec![
            Reply::ToolUse { name: "Bash".into(), input: serde_json::json!({"command": command, "timeout": 600000}) },
            Reply::Text("Done after the disk filled.".into()),
        ],
    )]);
    let env = crate::serve::claude_env(&api, home.path(), &crate::claude_cli::claude_bin());
    let server = Server::start(&data, &env, &["--no-archive"]);
    let body = serde_json::json!({"cwd": project, "prompt": "disk: work", "allowedTools": ["Bash"], "wait": false});
    let run = server.ok("POST", "/api/runs/start", Some(body))["id"].as_str().unwrap().to_string();
    let needle = gate.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::orphans::processes_running(&needle).is_empty() {
        assert!(Instant::now() < deadline, "the tool never started");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The disk fills; then the tool ends, and the CLI prints its result, asks the API again
    // and prints the answer — none of which the log can take now.
    let filler = Filler::start(disk.path().join("filler"), Duration::ZERO);
    while cclog_engine::free_bytes(disk.path()).unwrap() >= cclog_engine::DEFAULT_DISK_RESERVE {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&gate, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.requests().len() < 2 {
        assert!(Instant::now() < deadline, "the CLI never asked the API again after the tool");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Longer than the runner waits for a pipe once the CLI has exited.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(server.ok("GET", "/health", None)["status"], "degraded");
    let record = server.ok("GET", &format!("/api/runs/{run}"), None);
    assert_eq!(record["status"], "running", "the run ended while its messages could not be recorded: {record}");

    filler.stop();
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let record = server.ok("GET", &format!("/api/runs/{run}"), None);
        if record["status"] != "running" {
            break record;
        }
        assert!(Instant::now() < deadline, "the run was never recorded to its end: {record}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(record["status"], "completed", "{record}");
    let (status, messages) = server.call("GET", &format!("/api/runs/{run}/messages"), None);
    assert_eq!(status, 200);
    assert!(messages.contains("Done after the disk filled."), "the answer given during the full disk is missing");
    assert!(messages.contains("\"type\":\"result\""), "the result message is missing");
    let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    server.stop();
}

/// A disk out of inodes is full too, though `df -h` shows space: a write is refused with a
/// clear "disk full" (exit 74) before sled sees it — not a failed write inside sled — and
/// once files are deleted writes go on, with nothing lost.
#[test]
fn a_disk_out_of_inodes_is_full_too_and_nothing_is_lost() {
    let Some(disk) = Tmpfs::mount_with("size=64m,nr_inodes=300") else { return };
    let data = disk.path().join("data");
    for index in 0..3 {
        let (code, stdout, stderr) = cclog_bounded(&data, &["kv", "set", "disk", &format!("key-{index}"), "\"v\""]);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    // Another program uses up the inodes with empty files.
    let spare = disk.path().join("spare");
    std::fs::create_dir(&spare).unwrap();
    let mut made = 0;
    while std::fs::File::create(spare.join(made.to_string())).is_ok() {
        made += 1;
    }
    assert!(cclog_engine::free_bytes(disk.path()).unwrap() > 32 << 20, "space is left; only inodes ran out");
    let (code, stdout, stderr) = cclog_bounded(&data, &["kv", "set", "disk", "key-3", "\"v\""]);
    assert_eq!(code, 74, "{stdout}{stderr}");
    assert!(stderr.contains("disk full") && stderr.contains("inodes"), "{stderr}");
    assert!(!stderr.contains("stopped accepting appends"), "refused before sled, not failed inside it: {stderr}");
    std::fs::remove_dir_all(&spare).unwrap();
    let (code, stdout, stderr) = cclog_bounded(&data, &["kv", "set", "disk", "key-3", "\"v\""]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for index in 0..4 {
        let (code, stdout, _) = cclog_bounded(&data, &["kv", "get", "disk", &format!("key-{index}")]);
        assert_eq!((code, stdout.trim()), (0, "\"v\""), "key-{index}");
    }
    let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// `cclog capture` on a full disk waits and says so, instead of exiting with the rest of
/// the stream unread; once space is freed every line is recorded, in order.
#[test]
fn a_capture_that_meets_a_full_disk_waits_and_loses_no_line() {
    let Some(disk) = Tmpfs::mount(48) else { return };
    let data = disk.path().join("data");
    let session = "7c1d2e3a-0000-4000-8000-00000000ca97";
    let line = |index: usize| {
        serde_json::json!({"type": "assistant", "session_id": session,
            "message": {"id": format!("msg-{index}"), "role": "assistant", "model": "claude-test",
                "content": [{"type": "text", "text": format!("line {index}")}]}})
        .to_string()
    };
    let mut capture = cclog_command(&data, &["capture", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = capture.stdin.take().unwrap();
    writeln!(stdin, r#"{{"type":"system","subtype":"init","session_id":"{session}","model":"claude-test"}}"#).unwrap();
    for index in 0..20 {
        writeln!(stdin, "{}", line(index)).unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let filler = Filler::start(disk.path().join("filler"), Duration::ZERO);
    while cclog_engine::free_bytes(disk.path()).unwrap() >= cclog_engine::DEFAULT_DISK_RESERVE {
        std::thread::sleep(Duration::from_millis(10));
    }
    for index in 20..40 {
        writeln!(stdin, "{}", line(index)).unwrap();
    }
    writeln!(
        stdin,
        r#"{{"type":"result","subtype":"success","session_id":"{session}","is_error":false,"result":"done"}}"#
    )
    .unwrap();
    drop(stdin);
    std::thread::sleep(Duration::from_secs(2));
    assert!(capture.try_wait().unwrap().is_none(), "the capture gave up on a full disk");
    filler.stop();
    let output = capture.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("disk full") && stderr.contains("waits"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((report["messages"].as_u64(), report["status"].as_str()), (Some(42), Some("completed")), "{report}");
    let run = report["run"].as_str().unwrap();
    let (code, logged, _) = cclog_bounded(&data, &["log", "--stream", &format!("run/{run}"), "--json"]);
    assert_eq!(code, 0);
    let texts: Vec<String> = logged
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["payload"]["type"] == "assistant")
        .map(|event| event["payload"]["message"]["content"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, (0..40).map(|index| format!("line {index}")).collect::<Vec<_>>());
    let (code, stdout, stderr) = cclog_bounded(&data, &["verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
