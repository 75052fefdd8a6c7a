//! cclog as a drop-in for CC Manager: a client written only from CC Manager's README and
//! schema (`tests/ccmanager/client.py`) works against `cclog serve` unchanged; sessions that
//! runs made are complete when their transcripts are where cclog never looks, and become one
//! session with the transcript once it is archived; CC Manager's `DATABASE_PATH` and
//! `LOG_LEVEL` do what its users expect.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::claude_cli::claude_bin;
use crate::fake_api::{FakeApi, Reply};
use crate::serve::{claude_env, Server};
use crate::support::{cclog, cclog_bin, cclog_json};

fn replies() -> Vec<(&'static str, Vec<Reply>)> {
    vec![
        ("alpha", vec![Reply::Text("Began.".into())]),
        ("beta", vec![Reply::Text("Went on.".into())]),
        ("gamma", vec![Reply::Text("Tried another.".into())]),
        ("sleepy", vec![Reply::Wait(Duration::from_secs(120))]),
    ]
}

#[test]
fn a_client_written_from_cc_managers_schema_works_unchanged() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let api = FakeApi::by_prompt(replies());
    let server = Server::start(data.path(), &claude_env(&api, home.path(), &claude_bin()), &[]);
    let output =
        Command::new("python3").arg(client_script()).arg(&server.url).arg(&project).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the CC Manager client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(summary["ok"], true);
    server.stop();
    crate::support::verify_intact(data.path());
}

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ccmanager/client.py")
}

/// The real CLI with its own `HOME`, as in a container: its transcripts are where the
/// server never looks.
fn claude_elsewhere(dir: &Path, home: &Path) -> PathBuf {
    let script = format!("#!/bin/sh\nHOME=\"{}\" exec \"{}\" \"$@\"\n", home.display(), claude_bin().display());
    crate::support::executable_script(&dir.join("claude-elsewhere"), &script)
}

#[test]
fn sessions_made_by_runs_are_complete_without_their_transcripts() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let project = std::fs::canonicalize(&project).unwrap();
    let api = FakeApi::by_prompt(replies());
    let claude = claude_elsewhere(home.path(), elsewhere.path());
    let server = Server::start(data.path(), &claude_env(&api, home.path(), &claude), &["--no-archive"]);

    // A relative cwd is resolved before the run starts.
    let relative = relative_to_here(&project);
    let started = server.ok("POST", "/api/runs/start", Some(json!({"cwd": relative, "prompt": "alpha: begin"})));
    assert_eq!(started["cwd"], project.to_str().unwrap(), "{started}");
    let origin = started["sessionId"].as_str().unwrap().to_string();
    let resumed = server.ok("POST", "/api/runs/resume", Some(json!({"sessionId": origin, "prompt": "beta: go on"})));
    let forked = server.ok("POST", "/api/runs/fork", Some(json!({"sessionId": origin, "prompt": "gamma: another"})));
    let (resumed_id, forked_id) = (resumed["sessionId"].as_str().unwrap(), forked["sessionId"].as_str().unwrap());

    let sessions: Vec<Value> = serde_json::from_value(server.ok("GET", "/api/sessions", None)).unwrap();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert_eq!(sessions[0]["id"], forked_id, "most recently active first");
    let encoded: String =
        project.to_str().unwrap().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    for session in &sessions {
        assert_eq!(session["cwd"], project.to_str().unwrap(), "{session}");
        assert_eq!(session["project"], encoded.as_str(), "{session}");
        assert!(session["createdAt"].is_string() && session["updatedAt"].is_string(), "{session}");
        assert!(session["createdAt"].as_str() <= session["updatedAt"].as_str(), "{session}");
        assert!(session["entries"].as_u64().unwrap() >= 3, "{session}");
        assert!(session["assistantEntries"].as_u64().unwrap() >= 1, "{session}");
        assert!(session["usage"]["outputTokens"].as_u64().unwrap() > 0, "{session}");
        assert_eq!(session["files"], json!([]));
    }
    let forks = server.ok("GET", &format!("/api/sessions/{origin}/forks"), None);
    let mut fork_ids: Vec<&str> = forks.as_array().unwrap().iter().map(|fork| fork["id"].as_str().unwrap()).collect();
    fork_ids.sort();
    let mut expected = vec![resumed_id, forked_id];
    expected.sort();
    assert_eq!(fork_ids, expected);
    let tree = server.ok("GET", &format!("/api/sessions/{resumed_id}/tree"), None);
    assert_eq!(tree[0]["id"], origin.as_str());
    assert_eq!(tree[0]["children"].as_array().unwrap().len(), 2, "{tree}");
    let messages = server.ok("GET", &format!("/api/sessions/{resumed_id}/messages"), None);
    assert_eq!(messages.as_array().unwrap().len() as u64, resumed["messageCount"].as_u64().unwrap());
    // Its usage is what the CLI reported for its run (every API request the run made).
    let before: Value = server.ok("GET", &format!("/api/sessions/{resumed_id}"), None);
    let reported = &resumed["resultJson"]["usage"];
    assert_eq!(before["usage"]["outputTokens"], reported["output_tokens"], "{before} vs {reported}");
    assert_eq!(before["usage"]["inputTokens"], reported["input_tokens"], "{before} vs {reported}");
    server.stop();
    // Folded live (a message at a time) or in a rebuild (a chunk at a time), the same.
    let rebuilt = cclog_json(data.path(), &["rebuild", "--json"]);
    assert_eq!(rebuilt["equal"], true, "{rebuilt}");

    // The transcripts archived after all: still three sessions, one record each, the fork
    // point now known, and counts and usage the transcript's — the same as an import of the
    // transcripts alone finds, so nothing is counted twice.
    let transcripts = elsewhere.path().join(".claude/projects");
    cclog(data.path(), &["import", transcripts.to_str().unwrap()]);
    let sessions = cclog_json(data.path(), &["sessions", "--json"]);
    assert_eq!(sessions.as_array().unwrap().len(), 3, "{sessions}");
    let imported_alone = tempfile::tempdir().unwrap();
    cclog(imported_alone.path(), &["import", transcripts.to_str().unwrap()]);
    let alone = cclog_json(imported_alone.path(), &["sessions", "--json"]);
    for session in sessions.as_array().unwrap() {
        let twin = alone.as_array().unwrap().iter().find(|twin| twin["id"] == session["id"]).unwrap();
        for field in ["entries", "user_entries", "assistant_entries", "usage", "parent", "fork_point", "files"] {
            assert_eq!(session[field], twin[field], "{field}: {session} vs {twin}");
        }
        assert!(session["runs"].as_array().unwrap().len() == 1, "{session}");
    }
    let after = sessions.as_array().unwrap().iter().find(|session| session["id"] == resumed_id).unwrap();
    assert_eq!(after["parent"], origin.as_str());
    assert!(after["fork_point"].is_string(), "{after}");
    crate::support::verify_intact(data.path());
}

/// `path` relative to this process's directory (the server's too).
fn relative_to_here(path: &Path) -> String {
    let here = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
    let mut up = PathBuf::new();
    let mut base = here.as_path();
    loop {
        if let Ok(rest) = path.strip_prefix(base) {
            return up.join(rest).display().to_string();
        }
        up.push("..");
        base = base.parent().expect("the root is a prefix of every path");
    }
}

#[test]
fn database_path_and_log_level_do_what_cc_manager_users_expect() {
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("stderr.log");
    let token = "a-token-that-must-never-be-logged";
    let mut child = Command::new(cclog_bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--no-archive"])
        .env_remove("CCLOG_DATA")
        .env("DATABASE_PATH", dir.path().join("db.sqlite"))
        .env("LOG_LEVEL", "debug")
        .env("CCLOG_TOKEN", token)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    // The server owns DATABASE_PATH's directory: it advertises itself there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let advertised: Value = loop {
        if let Some(value) =
            std::fs::read(dir.path().join("server.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            break value;
        }
        assert!(Instant::now() < deadline, "no server.json in DATABASE_PATH's directory");
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = advertised["url"].as_str().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {token}");
    let listed = agent.get(&format!("{url}/api/runs?active=true")).header("Authorization", &auth).call().unwrap();
    assert_eq!(listed.status(), 200);
    // A wrong method and a missing route answer in the JSON error format.
    // Its connection is not kept: a server that answers without reading the body closes
    // it, and the next request must not find it in the client's pool.
    let mut wrong = agent
        .put(&format!("{url}/api/runs/start"))
        .header("Authorization", &auth)
        .header("Connection", "close")
        .send("{}")
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert!(wrong.headers().get("allow").is_some_and(|allow| allow.to_str().unwrap().contains("POST")), "{wrong:?}");
    let body: Value = serde_json::from_str(&wrong.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let mut missing = agent.get(&format!("{url}/api/nothing")).header("Authorization", &auth).call().unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = serde_json::from_str(&missing.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success());

    let logged = std::fs::read_to_string(&log_file).unwrap();
    let data = std::fs::canonicalize(dir.path()).unwrap();
    assert!(
        logged.contains(&format!("using {} as the data directory", data.display()))
            || logged.contains(&format!("using {} as the data directory", dir.path().display())),
        "{logged}"
    );
    let request_lines: Vec<&str> = logged.lines().filter(|line| line.contains("answered")).collect();
    assert!(
        request_lines
            .iter()
            .any(|line| line.contains("GET") && line.contains("/api/runs") && line.contains("status=200")),
        "{logged}"
    );
    assert!(request_lines.iter().any(|line| line.contains("PUT") && line.contains("status=405")), "{logged}");
    assert!(!logged.contains(token), "the token is never logged:\n{logged}");
    assert!(!logged.contains("active=true"), "nor a query:\n{logged}");
}
