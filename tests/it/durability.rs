//! Durability is proven, not assumed: `cclog append` runs under strace while lines are fed
//! one at a time, and the trace must show, before every acknowledgement, sled's writes to
//! its log file followed by a completed `fdatasync` of that same file — and no write to it
//! after that sync. sled's own `flush()` only calls `sync_file_range`, which does not flush
//! the drive's cache, so without the engine's fdatasync this test fails.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::support::cclog_bin;

fn strace() -> std::path::PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("strace"))
        .find(|path| path.exists());
    found.expect("strace is needed to prove durability: `apt-get install strace` (.ci/run installs it)")
}

#[test]
fn every_acknowledgement_follows_an_fdatasync_of_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let trace = dir.path().join("trace.txt");
    let mut child = Command::new(strace())
        .args(["-f", "-y", "-qq", "-e", "trace=pwrite64,write,fdatasync,fsync,sync_file_range", "-o"])
        .arg(&trace)
        .arg(cclog_bin())
        .arg("--data")
        .arg(&data)
        .args(["append", "--stream", "proof", "--kind", "line"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut acks = BufReader::new(child.stdout.take().unwrap());
    let lines = 12;
    for index in 0..lines {
        writeln!(stdin, "{{\"line\":{index}}}").unwrap();
        stdin.flush().unwrap();
        let mut ack = String::new();
        acks.read_line(&mut ack).unwrap();
        assert!(ack.starts_with(&format!("{index} ")), "{ack}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let trace = std::fs::read_to_string(&trace).unwrap();
    let log_file = format!("{}>", data.join("sled").join("db").display());
    let mut wrote_since_sync = false;
    let mut synced_since_ack = false;
    let mut acknowledged = 0;
    // Threads whose fdatasync of the log file strace printed as unfinished.
    let mut syncing = std::collections::HashSet::new();
    for line in trace.lines() {
        let (pid, call) = line.split_once(' ').map_or(("", line), |(pid, rest)| (pid, rest.trim_start()));
        let on_log_file = call.contains(&log_file);
        let is_sync = call.starts_with("fdatasync(") || call.starts_with("fsync(");
        let sync_completed = (is_sync && on_log_file && call.ends_with("= 0"))
            || (call.starts_with("<... f") && call.ends_with("= 0") && syncing.remove(pid));
        if is_sync && on_log_file && call.ends_with("<unfinished ...>") {
            syncing.insert(pid);
        } else if call.starts_with("pwrite64(") && on_log_file {
            wrote_since_sync = true;
            synced_since_ack = false;
        } else if sync_completed {
            wrote_since_sync = false;
            synced_since_ack = true;
        } else if call.starts_with("write(1<") {
            if acknowledged < lines {
                assert!(
                    synced_since_ack && !wrote_since_sync,
                    "acknowledgement {acknowledged} was printed before the log file was synced:\n{trace}"
                );
            }
            acknowledged += 1;
            synced_since_ack = false;
        }
    }
    assert_eq!(acknowledged, lines, "every acknowledgement appears in the trace:\n{trace}");
}
