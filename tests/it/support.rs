//! Helpers shared by the test modules: payload generators, the `cclog` binary, logs opened
//! with the standard projections.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cclog_engine::{Log, LogOptions, NewEvent};

/// A JSON payload of about `size` bytes that looks like a stream-json message.
pub fn json_payload(index: u64, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"type":"assistant","uuid":"{index:08x}-4d1c-4b8e-9f3a-5c2e1d0b7a69","session_id":"6f1e2d3c-b4a5-4968-8776-{index:012x}","message":{{"id":"msg_{index:016x}","content":[{{"type":"text","text":""#
    );
    let tail = r#""}]}}"#;
    let filler_len = size.saturating_sub(head.len() + tail.len());
    let words = ["the ", "log ", "keeps ", "every ", "message ", "and ", "proves ", "it "];
    let mut filler = String::with_capacity(filler_len);
    let mut word = index as usize;
    while filler.len() < filler_len {
        filler.push_str(words[word % words.len()]);
        word = word.wrapping_mul(31).wrapping_add(7);
    }
    filler.truncate(filler_len);
    format!("{head}{filler}{tail}").into_bytes()
}

pub fn event(stream: &str, index: u64) -> NewEvent {
    NewEvent::new(stream, "message", json_payload(index, 256))
}

pub fn open(dir: &Path) -> Log {
    Log::open(dir, LogOptions::with_projections(cclog_projections::standard())).expect("open log")
}

pub fn open_with(dir: &Path, projections: Vec<Arc<dyn cclog_engine::Projection>>) -> Log {
    Log::open(dir, LogOptions::with_projections(projections)).expect("open log")
}

/// The `cclog` binary cargo built for this test run (`target/<profile>/cclog`).
pub fn cclog_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("cclog");
    assert!(bin.exists(), "{} is missing: run the suite with `cargo test --workspace`", bin.display());
    bin
}

/// The command `cclog --data DATA ARGS…`, to run as the caller needs.
pub fn cclog_command(data: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(cclog_bin());
    command.arg("--data").arg(data).args(args);
    command
}

/// Runs `cclog --data DATA ARGS…` and insists that it succeeds.
pub fn cclog(data: &Path, args: &[&str]) -> std::process::Output {
    let output = cclog_command(data, args).output().unwrap();
    assert!(
        output.status.success(),
        "cclog {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// [`cclog`], its stdout read as one JSON value.
pub fn cclog_json(data: &Path, args: &[&str]) -> serde_json::Value {
    let output = cclog(data, args);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{args:?}: {error}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// Every key and value of a projection, for comparing states.
pub fn dump(log: &Log, projection: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    log.projection(projection)
        .expect("projection is open")
        .iter()
        .collect::<Result<_, _>>()
        .expect("readable projection")
}

pub fn verify_intact(dir: &Path) {
    let report = cclog_engine::verify_dir(dir, 0, &mut |_, _| {}).expect("verify runs");
    assert!(report.intact(), "verify found damage: {:?}", report.damage);
}

/// Writes an executable shell script at `path` (a wrapper around the real CLI, say).
pub fn executable_script(path: &Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// Copies a directory tree file by file (what a crash, or a copy of a data directory,
/// leaves).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}
