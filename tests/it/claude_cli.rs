//! The real Claude Code CLI, pinned and installed from npm by `scripts/test`, driven by the
//! project's fake Messages API: a headless run with a tool call, whose stream-json output is
//! then appended to the log line by line and read back byte for byte. This is the harness
//! the import, capture and run-manager tests build on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fake_api::{FakeApi, Reply};
use crate::support::cclog_bin;

/// The Claude Code CLI pinned in `scripts/test`, or `CCLOG_TEST_CLAUDE_BIN`.
pub fn claude_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CCLOG_TEST_CLAUDE_BIN") {
        return PathBuf::from(bin);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/claude-code/node_modules/.bin/claude");
    assert!(bin.exists(), "{} is missing: scripts/test installs the pinned Claude Code CLI from npm", bin.display());
    bin
}

/// The older Claude Code release `scripts/test` also installs, for compatibility checks.
pub fn older_claude_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/claude-code-2.1.197/node_modules/.bin/claude");
    assert!(bin.exists(), "{} is missing: scripts/test installs Claude Code 2.1.197 from npm", bin.display());
    bin
}

/// A Claude Code 1.0 release, which `scripts/test` installs too: it answers `--resume` in a
/// new session (2.x keeps the session id), the case plans must follow.
pub fn claude_1_0_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/claude-code-1.0.51/node_modules/.bin/claude");
    assert!(bin.exists(), "{} is missing: scripts/test installs Claude Code 1.0.51 from npm", bin.display());
    bin
}

/// `claude ARGS…` with a private `HOME`, against `api`, as the tests run it.
pub fn claude_command(bin: &Path, api: &FakeApi, home: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-fake-key-for-tests")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    command
}

/// Runs `claude -p PROMPT --output-format stream-json --verbose` in `cwd` with a private
/// `HOME`, against `api`; returns its stdout lines.
pub fn run_claude(api: &FakeApi, home: &Path, cwd: &Path, prompt: &str, extra: &[&str]) -> Vec<String> {
    run_claude_with(&claude_bin(), api, home, cwd, prompt, extra)
}

/// [`run_claude`] with a given Claude Code binary.
pub fn run_claude_with(
    bin: &Path,
    api: &FakeApi,
    home: &Path,
    cwd: &Path,
    prompt: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut child = claude_command(bin, api, home)
        .args(["-p", prompt, "--output-format", "stream-json", "--verbose"])
        .args(extra)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start claude");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("claude did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "claude failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn a_real_headless_run_with_a_tool_call_is_archived_byte_for_byte() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let target = project.path().join("hello.txt");
    let api = FakeApi::start(vec![
        Reply::ToolUse {
            name: "Write".into(),
            input: json!({"file_path": target, "content": "hi from the fake model\n"}),
        },
        Reply::Text("I wrote hello.txt.".into()),
    ]);
    let lines = run_claude(&api, home.path(), project.path(), "Create hello.txt", &["--allowedTools", "Write"]);

    // The CLI really ran the tool and finished the turn.
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "hi from the fake model\n");
    let messages: Vec<Value> = lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(messages[0]["type"], "system");
    assert_eq!(messages[0]["subtype"], "init");
    let session = messages[0]["session_id"].as_str().unwrap().to_string();
    assert!(messages.iter().any(|m| m["type"] == "assistant" && m["message"]["content"][0]["type"] == "tool_use"));
    assert!(messages.iter().any(|m| m["type"] == "user" && m["message"]["content"][0]["type"] == "tool_result"));
    let result = messages.last().unwrap();
    assert_eq!((result["type"].as_str(), result["subtype"].as_str()), (Some("result"), Some("success")));
    assert!(api.requests().len() >= 2, "a tool round trip takes two requests");

    // Claude Code wrote its transcript under ~/.claude/projects/<cwd, every character but
    // letters and digits turned into '-'>/<session>.jsonl.
    let mangled: String =
        project.path().to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let transcript = home.path().join(".claude/projects").join(&mangled).join(format!("{session}.jsonl"));
    let found: Vec<_> = std::fs::read_dir(home.path().join(".claude/projects"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(transcript.exists(), "{} is missing; projects holds {found:?}", transcript.display());

    // Every stream-json line goes into the log and comes back byte for byte.
    let data = home.path().join("cclog");
    let mut append = Command::new(cclog_bin())
        .arg("--data")
        .arg(&data)
        .args(["append", "--stream", &format!("run/{session}"), "--kind", "stream-json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = append.stdin.take().unwrap();
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let acks = append.wait_with_output().unwrap();
    assert!(acks.status.success());
    assert_eq!(String::from_utf8_lossy(&acks.stdout).lines().count(), lines.len());
    let listed = Command::new(cclog_bin()).arg("--data").arg(&data).args(["log", "--json"]).output().unwrap();
    let stored: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<RawPayload>(line).unwrap().payload.get().to_string())
        .collect();
    assert_eq!(stored, lines);
}

/// An event of `cclog log --json` with its payload kept as the exact bytes stored.
#[derive(serde::Deserialize)]
struct RawPayload<'a> {
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
}
