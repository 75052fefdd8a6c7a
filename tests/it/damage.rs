//! Damage is contained: a byte flipped inside one live block — in sled's own files, where
//! sled then refuses the whole page holding it — costs exactly that block's events. For
//! each live block in turn: `verify` names that block's seqs as lost and no other,
//! `salvage` copies every other event (with its original hashes) into a new directory,
//! whose `verify` names exactly the missing seqs and whose replay gives back every other
//! line. And a store sled cannot open at all is still described and salvaged.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{cclog_command, copy_dir};

/// A transcript of `lines` lines whose entries do not compress away.
fn projects(root: &Path, lines: u64) -> PathBuf {
    let project = root.join("projects").join("-work-damage");
    std::fs::create_dir_all(&project).unwrap();
    let session = "9d1c2e3a-0000-4000-8000-00000000da3a";
    let mut text = String::new();
    let mut parent = Value::Null;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for index in 0..lines {
        let words: String = (0..200)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{:x} ", state % 100_000)
            })
            .collect();
        let uuid = format!("00000000-0000-4000-8000-{index:012x}");
        let line = serde_json::json!({
            "parentUuid": parent, "type": if index.is_multiple_of(2) { "user" } else { "assistant" },
            "message": {"role": "user", "content": words}, "uuid": uuid, "sessionId": session,
            "cwd": "/work/damage", "timestamp": "2026-01-01T00:00:00.000Z",
        });
        text.push_str(&line.to_string());
        text.push('\n');
        parent = Value::String(uuid);
    }
    std::fs::write(project.join(format!("{session}.jsonl")), text).unwrap();
    root.join("projects")
}

fn run(data: &Path, args: &[&str]) -> (i32, Value) {
    let output = cclog_command(data, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("{args:?}: {error}: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap_or(-1), value)
}

/// sled's files: its log and every blob.
fn sled_files(data: &Path) -> Vec<PathBuf> {
    let mut files = vec![data.join("sled").join("db")];
    if let Ok(entries) = std::fs::read_dir(data.join("sled").join("blobs")) {
        files.extend(entries.map(|entry| entry.unwrap().path()));
    }
    files
}

/// The bytes of every file of sled's, by name.
fn sled_contents(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = sled_files(data)
        .into_iter()
        .chain(std::iter::once(data.join("sled").join("conf")))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_default();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Every live block: (first seq, last seq, its stored bytes).
fn live_blocks(data: &Path) -> Vec<(u64, u64, Vec<u8>)> {
    let store = cclog_engine::Store::open(data).unwrap();
    let head = store.stored_head().unwrap().unwrap().seq;
    let mut blocks = Vec::new();
    let mut seq = 0;
    while seq <= head {
        let (first, bytes) = store.raw_block_containing(seq).unwrap().unwrap();
        let count = cclog_engine::block::parse_block(&bytes).records.len() as u64;
        blocks.push((first, first + count - 1, bytes));
        seq = first + count;
    }
    blocks
}

/// Flips one byte in the middle of the block's compressed frame, in every copy of the block
/// in sled's files (found by 32 of its stored bytes, which nothing else shares); returns how
/// many copies there were.
fn flip_block(data: &Path, block: &[u8]) -> usize {
    let middle = block.len() / 2 - 16;
    let needle = &block[middle..middle + 32];
    let delta = 16;
    let mut copies = 0;
    for path in sled_files(data) {
        let mut bytes = std::fs::read(&path).unwrap();
        let mut changed = false;
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(needle.len()).position(|window| window == needle) {
            let flip = at + found + delta;
            if flip < bytes.len() {
                bytes[flip] ^= 0x5a;
                changed = true;
                copies += 1;
            }
            at += found + needle.len();
        }
        if changed {
            std::fs::write(&path, bytes).unwrap();
        }
    }
    copies
}

#[test]
fn a_flipped_byte_in_each_live_block_costs_that_block_and_salvage_recovers_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let source = projects(work.path(), 900);
    let pristine = work.path().join("pristine");
    crate::support::cclog(&pristine, &["import", source.to_str().unwrap()]);
    // Small appends too: values inline in sled's log file, not only blobs.
    let mut append = cclog_command(&pristine, &["append", "--stream", "notes/1", "--kind", "note"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = append.stdin.take().unwrap();
        for index in 0..40 {
            writeln!(stdin, r#"{{"note":{index},"text":"{}"}}"#, "n".repeat(index * 3)).unwrap();
        }
    }
    assert!(append.wait().unwrap().success());
    let blocks = live_blocks(&pristine);
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    let last_seq = blocks.last().unwrap().1;
    for (index, (first, last, bytes)) in blocks.iter().enumerate() {
        let case = work.path().join(format!("case-{index}"));
        copy_dir(&pristine, &case);
        assert!(flip_block(&case, bytes) > 0, "block {first}..={last} not found in sled's files");
        let context = format!("block {index} ({first}..={last})");
        let (code, report) = run(&case, &["verify", "--json"]);
        assert_eq!(code, 3, "{context}: {report}");
        // What is lost lies inside the block (its records are one compressed frame), never
        // outside it.
        let lost: Vec<(u64, u64)> = serde_json::from_value(report["lost"].clone()).unwrap();
        assert!(!lost.is_empty(), "{context}: {report}");
        assert!(lost.iter().all(|(from, to)| first <= from && from <= to && to <= last), "{context}: {report}");
        let lost_events: u64 = lost.iter().map(|(from, to)| to - from + 1).sum();
        let is_lost = |seq: u64| lost.iter().any(|(from, to)| (*from..=*to).contains(&seq));
        // Read-only commands leave the damaged store as they found it and read every event
        // that can be proven; a command that writes refuses it, and leaves it as it is too.
        let files_before = sled_contents(&case);
        let output = cclog_command(&case, &["log", "--json"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{context}: log: {stderr}");
        assert!(stderr.contains("is damaged"), "{context}: {stderr}");
        let logged: Vec<u64> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(logged, (0..=last_seq).filter(|seq| !is_lost(*seq)).collect::<Vec<_>>(), "{context}");
        let mut append = cclog_command(&case, &["append", "--stream", "notes/2", "--kind", "note"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(append.stdin.take());
        let appended = append.wait_with_output().unwrap();
        assert_eq!(appended.status.code(), Some(3), "{context}: append on a damaged store");
        assert!(String::from_utf8_lossy(&appended.stderr).contains("cclog salvage"), "{context}");
        assert!(sled_contents(&case) == files_before, "{context}: a command changed the damaged store's files");
        // Salvage: every other event, its hashes unchanged.
        let salvaged = work.path().join(format!("salvaged-{index}"));
        let (code, salvage) = run(&case, &["salvage", "--to", salvaged.to_str().unwrap(), "--json"]);
        assert_eq!(code, 3, "{context}: {salvage}");
        assert_eq!(salvage["missing"], report["lost"], "{context}: {salvage}");
        let expected_events = last_seq + 1 - lost_events;
        assert_eq!(salvage["events"], expected_events, "{context}: {salvage}");
        let (code, verified) = run(&salvaged, &["verify", "--json"]);
        assert_eq!(code, 3, "{context}: {verified}");
        assert_eq!(verified["lost"], report["lost"], "{context}: {verified}");
        // The salvaged copy's events are the originals: same seq, same hash.
        let original = cclog_engine::Store::open(&pristine).unwrap();
        let copy = cclog_engine::Store::open(&salvaged).unwrap();
        for seq in [0, first.saturating_sub(1), *first, *last, last + 1, last_seq] {
            if is_lost(seq) || seq > last_seq {
                continue;
            }
            let (a_first, a) = original.raw_block_containing(seq).unwrap().unwrap();
            let (b_first, b) = copy.raw_block_containing(seq).unwrap().unwrap();
            let hash_of =
                |first: u64, bytes: &[u8]| cclog_engine::block::parse_block(bytes).records[(seq - first) as usize].hash;
            assert_eq!(hash_of(a_first, &a), hash_of(b_first, &b), "{context}: seq {seq}");
        }
        drop((original, copy));
        std::fs::remove_dir_all(&case).unwrap();
        std::fs::remove_dir_all(&salvaged).unwrap();
    }
}

#[test]
fn a_store_sled_cannot_open_is_described_and_salvaged_in_full() {
    let work = tempfile::tempdir().unwrap();
    let source = projects(work.path(), 300);
    let data = work.path().join("data");
    crate::support::cclog(&data, &["import", source.to_str().unwrap()]);
    let events = live_blocks(&data).last().unwrap().1 + 1;
    // sled's configuration file garbled: sled refuses to open the store at all.
    let conf = data.join("sled").join("conf");
    let garbled: Vec<u8> = std::fs::read(&conf).unwrap().iter().map(|byte| !byte).collect();
    std::fs::write(&conf, garbled).unwrap();
    let (code, report) = run(&data, &["verify", "--json"]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["lost"], serde_json::json!([]), "every event is intact in sled's files: {report}");
    let salvaged = work.path().join("salvaged");
    let (code, salvage) = run(&data, &["salvage", "--to", salvaged.to_str().unwrap(), "--json"]);
    assert_eq!((code, salvage["events"].as_u64()), (0, Some(events)), "{salvage}");
    let (code, verified) = run(&salvaged, &["verify", "--json"]);
    assert_eq!(code, 0, "{verified}");
    // The salvaged store is a working store: its projections fold, and it replays.
    let output = cclog_command(&salvaged, &["import", "--verify-replay", source.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("replay: every file gives back its exact bytes"), "{stdout}");
}
