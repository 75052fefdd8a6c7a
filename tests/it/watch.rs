//! The long-running ingest commands, as users run them: `cclog import --watch` archives
//! appends, new files, rewrites and deletions while it runs and stops cleanly on SIGINT;
//! `cclog replay --follow` prints a transcript's new entries as Claude Code writes them —
//! together byte for byte what the file holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::cclog_bin;

pub const SESSION: &str = "5b0e7c1a-2f4d-4e8b-9a6c-3d1f0e2b4a71";
/// Long enough for a debounce, an import and a slow CI machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Claude Code-shaped chain entries `from..to` of `session`.
pub fn entries(session: &str, from: u64, to: u64) -> String {
    (from..to)
        .map(|index| {
            let parent = match index {
                0 => "null".to_string(),
                _ => format!("\"{session}-{:04}\"", index - 1),
            };
            let kind = if index % 2 == 0 { "user" } else { "assistant" };
            format!(
                r#"{{"parentUuid":{parent},"type":"{kind}","message":{{"role":"{kind}","content":"turn {index}"}},"uuid":"{session}-{index:04}","timestamp":"2026-11-21T10:00:{:02}.000Z","sessionId":"{session}","cwd":"/home/dev/app"}}"#,
                index % 60
            ) + "\n"
        })
        .collect()
}

pub fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

fn project(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `cclog` whose stdout lines arrive on a channel.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn spawn(data: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(cclog_bin())
            .arg("--data")
            .arg(data)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next stdout line, failing the test after `PATIENCE`.
    pub fn next_line(&mut self, waiting_for: &str) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                let mut stderr = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("no output while waiting for {waiting_for}; stderr: {stderr}");
            }
        }
    }

    /// The next stdout line as JSON.
    fn report(&mut self, waiting_for: &str) -> Value {
        serde_json::from_str(&self.next_line(waiting_for)).unwrap()
    }

    /// SIGINT, then the process must end (by the signal or by itself).
    pub fn interrupt_or_die(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        assert!(self.wait_for_exit(PATIENCE).is_some(), "cclog did not end on SIGINT");
    }

    /// The exit status, if the process ends within `patience`.
    pub fn wait_for_exit(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT, then the exit status must be success.
    pub fn interrupt(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut stderr);
        assert!(status.success(), "cclog did not stop cleanly on SIGINT: {status}; stderr: {stderr}");
    }
}

fn cclog_json(data: &Path, args: &[&str]) -> Value {
    let output = Command::new(cclog_bin()).arg("--data").arg(data).args(args).arg("--json").output().unwrap();
    assert!(output.status.success(), "cclog {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn import_watch_archives_appends_new_files_rewrites_and_deletions_until_interrupted() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = project(root.path(), "-home-dev-app");
    let main = app.join(format!("{SESSION}.jsonl"));
    append(&main, &entries(SESSION, 0, 4));

    let mut watching = Running::spawn(data.path(), &["import", "--watch", "--json", root.path().to_str().unwrap()]);
    let first = watching.report("the first import");
    assert_eq!(first["new_entries"], 4);

    append(&main, &entries(SESSION, 4, 7));
    let appended = watching.report("the appended entries");
    assert_eq!((appended["new_entries"].as_u64(), appended["revisions"].as_u64()), (Some(3), Some(0)), "{appended}");

    let other_session = "9c4d2e1f-0a3b-4c5d-8e6f-7a8b9c0d1e2f";
    let other = project(root.path(), "-home-dev-other").join(format!("{other_session}.jsonl"));
    append(&other, &entries(other_session, 0, 2));
    let new_file = watching.report("the new project's file");
    assert_eq!(new_file["new_entries"], 2, "{new_file}");

    // A /rewind-style rewrite: the file now holds a different history.
    std::fs::write(&main, entries(SESSION, 0, 2).replace("turn 1", "turn one")).unwrap();
    let rewritten = watching.report("the rewritten file");
    assert_eq!(rewritten["revisions"], 1, "{rewritten}");

    std::fs::remove_file(&other).unwrap();
    let deleted = watching.report("the deleted file");
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    watching.interrupt();

    // Everything is archived: the live files replay exactly, nothing is left to import, and
    // the deleted file and the first revision are still there.
    let verified = cclog_json(data.path(), &["import", "--verify-replay", root.path().to_str().unwrap()]);
    assert_eq!(verified["new_entries"], 0, "{verified}");
    assert_eq!(verified["replay_mismatches"], serde_json::json!([]));
    let old = Command::new(cclog_bin())
        .arg("--data")
        .arg(data.path())
        .args(["replay", SESSION, "--format", "jsonl", "--revision", "0"])
        .output()
        .unwrap();
    assert!(old.status.success(), "{}", String::from_utf8_lossy(&old.stderr));
    assert_eq!(String::from_utf8(old.stdout).unwrap(), entries(SESSION, 0, 7));
    let gone = Command::new(cclog_bin())
        .arg("--data")
        .arg(data.path())
        .args(["replay", other_session, "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(gone.status.success(), "{}", String::from_utf8_lossy(&gone.stderr));
    assert_eq!(String::from_utf8(gone.stdout).unwrap(), entries(other_session, 0, 2));
}

#[test]
fn replay_follow_prints_new_entries_as_they_are_written() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let main = project(root.path(), "-home-dev-app").join(format!("{SESSION}.jsonl"));
    append(&main, &entries(SESSION, 0, 3));
    cclog_json(data.path(), &["import", root.path().to_str().unwrap()]);

    let mut following = Running::spawn(data.path(), &["replay", SESSION, "--format", "jsonl", "--follow"]);
    let mut printed = Vec::new();
    for _ in 0..3 {
        printed.push(following.next_line("the archived entries"));
    }
    // Claude Code writes a line in pieces sometimes: half a line first, then the rest.
    let more = entries(SESSION, 3, 6);
    let (head, tail) = more.split_at(more.len() - 40);
    append(&main, head);
    for _ in 0..2 {
        printed.push(following.next_line("the appended entries"));
    }
    append(&main, tail);
    printed.push(following.next_line("the completed entry"));
    following.interrupt();

    let followed: String = printed.iter().map(|line| format!("{line}\n")).collect();
    assert_eq!(followed, std::fs::read_to_string(&main).unwrap());
}
