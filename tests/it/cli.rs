//! End-to-end tests of the `cclog` binary: the "done means" scenario (pipe lines in,
//! kill and restart at will, verify; flip a byte, verify says where), bad input, ownership
//! and the JSON outputs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rand::Rng;

use crate::support::{cclog_bin, json_payload};

fn cclog(data: &Path, args: &[&str]) -> Output {
    Command::new(cclog_bin()).arg("--data").arg(data).args(args).env("NO_COLOR", "1").output().unwrap()
}

/// `cclog append --stream demo --kind line` with stdin and stdout piped.
fn spawn_append(data: &Path, stderr: Stdio) -> std::process::Child {
    Command::new(cclog_bin())
        .arg("--data")
        .arg(data)
        .args(["append", "--stream", "demo", "--kind", "line"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn append_lines(data: &Path, lines: &[Vec<u8>]) -> Output {
    let mut child = spawn_append(data, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn pipe_kill_restart_verify_then_a_flipped_byte_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = rand::rng();
    let mut acknowledged: HashMap<u64, String> = HashMap::new();
    let mut next_line = 0u64;
    for _round in 0..4 {
        let mut child = spawn_append(&data, Stdio::null());
        let mut stdin = child.stdin.take().unwrap();
        let start = next_line;
        let feeder = std::thread::spawn(move || {
            for index in start..start + 3_000 {
                let mut line = json_payload(index, 200);
                line.push(b'\n');
                if stdin.write_all(&line).is_err() {
                    break;
                }
                if index % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        next_line += 3_000;
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| {
                    line.split_once(' ').map(|(seq, hash)| (seq.parse::<u64>().unwrap(), hash.to_string()))
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(30..250)));
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = feeder.join();
        acknowledged.extend(reader.join().unwrap());
    }
    // A clean run appends to the same chain after all those kills.
    let clean = append_lines(&data, &(0..500).map(|index| json_payload(100_000 + index, 200)).collect::<Vec<_>>());
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert_eq!(text(&clean.stdout).lines().count(), 500);
    for line in text(&clean.stdout).lines() {
        let (seq, hash) = line.split_once(' ').unwrap();
        acknowledged.insert(seq.parse().unwrap(), hash.to_string());
    }

    let verify = cclog(&data, &["verify"]);
    assert!(verify.status.success(), "{}{}", text(&verify.stdout), text(&verify.stderr));
    assert!(text(&verify.stdout).starts_with("intact:"), "{}", text(&verify.stdout));

    let listed = cclog(&data, &["log", "--json"]);
    assert!(listed.status.success());
    let mut listed_hashes = HashMap::new();
    for line in text(&listed.stdout).lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        listed_hashes.insert(event["seq"].as_u64().unwrap(), event["hash"].as_str().unwrap().to_string());
    }
    for (seq, hash) in &acknowledged {
        assert_eq!(listed_hashes.get(seq), Some(hash), "acknowledged event {seq}");
    }

    // Flip one byte of a stored event's block wherever sled keeps it: its log file, or a
    // blob file when a large node was written out of line. The block is found by 32 of its
    // stored (compressed) bytes.
    let victim = *acknowledged.keys().min_by_key(|seq| seq.abs_diff(acknowledged.len() as u64 / 2)).unwrap();
    let needle = {
        let store = cclog_engine::Store::open(&data).unwrap();
        let (_, block) = store.raw_block_containing(victim).unwrap().unwrap();
        let middle = block.len() / 2 - 16;
        block[middle..middle + 32].to_vec()
    };
    let mut flipped = 0;
    for file in files_under(&data.join("sled")) {
        let mut bytes = std::fs::read(&file).unwrap();
        let positions: Vec<usize> =
            bytes.windows(32).enumerate().filter(|(_, w)| *w == needle.as_slice()).map(|(at, _)| at).collect();
        for at in &positions {
            bytes[at + 10] ^= 0x04;
        }
        if !positions.is_empty() {
            flipped += positions.len();
            std::fs::write(&file, bytes).unwrap();
        }
    }
    assert!(flipped > 0);

    let verify = cclog(&data, &["verify"]);
    assert_eq!(verify.status.code(), Some(3), "{}{}", text(&verify.stdout), text(&verify.stderr));
    let out = text(&verify.stdout);
    assert!(out.starts_with("DAMAGED at "), "{out}");
    let json = cclog(&data, &["verify", "--json"]);
    assert_eq!(json.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["intact"], false);
    if report["damage"]["kind"] != "unreadable" {
        // The byte sits in the compressed frame of the victim's block, which it costs whole:
        // the first bad seq is that block's first.
        let first_bad = report["damage"]["seq"].as_u64().unwrap();
        let block_size = cclog_engine::block::MAX_BLOCK_EVENTS as u64;
        assert!(first_bad <= victim && victim - first_bad < block_size, "victim {victim}: {report}");
        assert!(out.contains(&format!("seq {first_bad}")), "{out}");
    }
}

#[test]
fn a_malformed_line_stops_with_its_number_and_keeps_the_lines_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines: Vec<Vec<u8>> =
        vec![b"{\"a\":1}".to_vec(), b"[2]".to_vec(), b"{\"broken\":".to_vec(), b"{\"c\":3}".to_vec()];
    let output = append_lines(&data, &lines);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("line 3 is not valid JSON"), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).lines().count(), 2);
    let listed = cclog(&data, &["log", "--json"]);
    let payloads: Vec<serde_json::Value> = text(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![serde_json::json!({"a":1}), serde_json::json!([2])]);
}

#[test]
fn a_second_process_is_told_who_owns_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut owner = spawn_append(&data, Stdio::inherit());
    let mut stdin = owner.stdin.take().unwrap();
    stdin.write_all(b"{}\n").unwrap();
    stdin.flush().unwrap();
    // Once the first event is acknowledged the owner certainly holds the directory.
    let mut first = String::new();
    BufReader::new(owner.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("0 "), "{first}");

    let second = cclog(&data, &["stats"]);
    assert_eq!(second.status.code(), Some(75));
    let message = text(&second.stderr);
    assert!(message.contains("is in use by process") && message.contains(&owner.id().to_string()), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    drop(stdin);
    assert!(owner.wait().unwrap().success());
}

#[test]
fn stats_and_log_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines: Vec<Vec<u8>> = (0..50).map(|index| json_payload(index, 256)).collect();
    let output = append_lines(&data, &lines);
    assert!(output.status.success());
    let last_hash = text(&output.stdout).lines().last().unwrap().split_once(' ').unwrap().1.to_string();

    let stats = cclog(&data, &["stats", "--json"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["events"], 50);
    assert_eq!(stats["streams"], 1);
    assert_eq!(stats["head"]["hash"], last_hash.as_str());
    assert_eq!(stats["raw_payload_bytes"], 50 * 256);
    assert!(stats["bytes_on_disk"].as_u64().unwrap() > 0);
    // Where the bytes go: every event and payload byte accounted for in the blocks, and
    // the files' total is the bytes on disk.
    let footprint = &stats["footprint"];
    assert_eq!(footprint["blocks"]["events"], 50);
    assert_eq!(footprint["blocks"]["payload_bytes"], 50 * 256);
    assert_eq!(footprint["blocks"]["hash_bytes"], 50 * 96);
    assert_eq!(footprint["files"]["total"], stats["bytes_on_disk"]);
    let blocks = &footprint["blocks"];
    let fields: u64 =
        ["payload_bytes", "header_bytes", "hash_bytes"].iter().map(|part| blocks[*part].as_u64().unwrap()).sum();
    assert!(blocks["record_bytes"].as_u64().unwrap() > fields, "{blocks}");

    let listed = cclog(&data, &["log", "--from", "10", "--limit", "5", "--json"]);
    let seqs: Vec<u64> = text(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![10, 11, 12, 13, 14]);
    let past_the_end = cclog(&data, &["verify", "--from", "51"]);
    assert_eq!(past_the_end.status.code(), Some(2));
    assert!(
        text(&past_the_end.stderr).contains("seq 51 is past the end of the log (its last event is 49)"),
        "{}",
        text(&past_the_end.stderr)
    );
    let other = cclog(&data, &["log", "--stream", "nothing"]);
    assert_eq!(other.status.code(), Some(2), "an unknown stream is bad input");
    assert!(text(&other.stderr).contains("no stream \"nothing\""), "{}", text(&other.stderr));
    let near = cclog(&data, &["log", "--stream", "dem"]);
    assert!(text(&near.stderr).contains("did you mean demo?"), "{}", text(&near.stderr));
    let past_the_end = cclog(&data, &["log", "--from", "51"]);
    assert_eq!(past_the_end.status.code(), Some(2), "as verify: {}", text(&past_the_end.stderr));
    let table = cclog(&data, &["log", "--limit", "1"]);
    let table = text(&table.stdout);
    let mut rows = table.lines();
    assert!(rows.next().is_some_and(|header| header.contains("SEQ") && header.contains("PAYLOAD")), "{table}");
    let row: Vec<&str> = rows.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(&row[..4], ["0", row[1], "demo", "line"], "{table}");
    assert!(table.lines().all(|line| line.chars().count() <= 80), "{table}");
}

#[test]
fn read_commands_never_create_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing-here");
    for command in [&["verify"][..], &["stats"], &["log"]] {
        let output = cclog(&data, command);
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        assert!(text(&output.stderr).contains("holds no cclog log"), "{}", text(&output.stderr));
    }
    assert!(!data.exists());
}

/// Runs `cclog ARGS` with its stdout read for a few bytes and then closed, as `| head -c 10`
/// does; returns its exit code and stderr.
fn read_a_little(data: &Path, args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = Command::new(cclog_bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.code(), text(&output.stderr))
}

#[test]
fn a_reader_that_goes_away_ends_every_command_quietly() {
    let data = tempfile::tempdir().unwrap();
    let projects = tempfile::tempdir().unwrap();
    let project = projects.path().join("-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    let session = "0b5e55e0-0000-4000-8000-000000000001";
    crate::transcript::generate(&project.join(format!("{session}.jsonl")), session, 7, 4 << 20).unwrap();
    assert!(cclog(data.path(), &["import", projects.path().to_str().unwrap()]).status.success());
    for args in [
        vec!["replay", session],
        vec!["replay", session, "--format", "markdown"],
        vec!["replay", session, "--format", "jsonl"],
        vec!["log"],
        vec!["log", "--json"],
        vec!["sessions", "--json"],
    ] {
        let (code, stderr) = read_a_little(data.path(), &args);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "cclog {args:?}");
    }
}

#[test]
fn compact_gives_back_sleds_garbage_and_keeps_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines: Vec<Vec<u8>> = (0..3_000).map(|index| json_payload(index, 256)).collect();
    for chunk in lines.chunks(100) {
        assert!(append_lines(&data, chunk).status.success());
    }
    let listed_before = text(&cclog(&data, &["log", "--json"]).stdout);
    let stats_before: serde_json::Value = serde_json::from_slice(&cclog(&data, &["stats", "--json"]).stdout).unwrap();

    let compacted = cclog(&data, &["compact", "--json"]);
    assert!(compacted.status.success(), "{}", text(&compacted.stderr));
    let report: serde_json::Value = serde_json::from_slice(&compacted.stdout).unwrap();
    let footprint = &stats_before["footprint"];
    let keys = |part: &serde_json::Value| part["keys"].as_u64().unwrap();
    let projection_keys: u64 = footprint["projections"].as_object().unwrap().values().map(keys).sum();
    let every_key = keys(&footprint["blocks"]["stored"])
        + keys(&footprint["stream_index"])
        + keys(&footprint["meta"])
        + keys(&footprint["other"])
        + projection_keys;
    assert_eq!(report["keys"], every_key, "{report}");
    assert!(report["bytes_after"].as_u64().unwrap() < report["bytes_before"].as_u64().unwrap(), "{report}");
    assert_eq!(report["live_bytes"], stats_before["footprint"]["live_bytes"], "{report}");

    // The same log, key for key: every event as before, and it verifies.
    assert_eq!(text(&cclog(&data, &["log", "--json"]).stdout), listed_before);
    let verify = cclog(&data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    let stats_after: serde_json::Value = serde_json::from_slice(&cclog(&data, &["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats_after["footprint"]["live_bytes"], stats_before["footprint"]["live_bytes"]);
    assert!(
        stats_after["footprint"]["sled_overhead"].as_u64() < stats_before["footprint"]["sled_overhead"].as_u64(),
        "{stats_before} {stats_after}"
    );
    // It goes on taking appends.
    assert!(append_lines(&data, &[json_payload(9_999, 256)]).status.success());
    assert!(cclog(&data, &["verify"]).status.success());
}
