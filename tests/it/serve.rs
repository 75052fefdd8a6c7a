//! `cclog serve` end to end, over real HTTP on loopback: the real Claude Code CLI, run by
//! the server against the fake Messages API — start with a tool call, resume, two forks,
//! cancel mid-run, a server killed mid-run and restarted — plus every route's bad input,
//! the token policy and the run limit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::claude_cli::claude_bin;
use crate::fake_api::{FakeApi, Reply};
use crate::support::cclog_bin;

/// A `cclog serve` child and how to reach it.
pub struct Server {
    child: Child,
    pub url: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl Server {
    pub fn start(data: &Path, env: &[(&str, String)], extra: &[&str]) -> Server {
        Server::start_with(data, env, extra, "127.0.0.1:0", |_| {})
    }

    /// [`Server::start`] on a given address.
    pub fn start_at(data: &Path, env: &[(&str, String)], extra: &[&str], addr: &str) -> Server {
        Server::start_with(data, env, extra, addr, |_| {})
    }

    /// [`Server::start`] in a process allowed at most `descriptors` open files.
    pub fn start_limited(data: &Path, env: &[(&str, String)], extra: &[&str], descriptors: u64) -> Server {
        Server::start_with(data, env, extra, "127.0.0.1:0", |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: descriptors, rlim_max: descriptors };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        })
    }

    fn start_with(
        data: &Path,
        env: &[(&str, String)],
        extra: &[&str],
        addr: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let _ = std::fs::remove_file(data.join("server.json"));
        let mut command = Command::new(cclog_bin());
        command
            .arg("--data")
            .arg(data)
            .args(["serve", "--addr", addr])
            .args(extra)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        configure(&mut command);
        let child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let advertised = loop {
            if let Ok(bytes) = std::fs::read(data.join("server.json")) {
                if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                    break value;
                }
            }
            assert!(Instant::now() < deadline, "the server did not advertise itself");
            std::thread::sleep(Duration::from_millis(50));
        };
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server {
            child,
            url: advertised["url"].as_str().unwrap().to_string(),
            token: advertised["token"].as_str().map(str::to_string),
            agent,
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, String) {
        let url = format!("{}{path}", self.url);
        let auth = self.token.as_ref().map(|token| format!("Bearer {token}"));
        let response = match (method, body) {
            ("POST", Some(body)) => {
                let mut request = self.agent.post(&url).header("Content-Type", "application/json");
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.send(body)
            }
            (method, _) => {
                let mut request = if method == "DELETE" { self.agent.delete(&url) } else { self.agent.get(&url) };
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.call()
            }
        };
        let mut response = response.unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    }

    pub fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.call(method, path, body.map(|body| body.to_string()));
        (status, serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path}: {error}: {text}")))
    }

    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.json(method, path, body);
        assert!(status == 200 || status == 202, "{method} {path}: {status} {value}");
        value
    }

    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve did not shut down within 60 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "serve did not shut down cleanly: {status}");
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// A test that fails before it stops its server must not leave it running: the child
    /// holds the test's stderr, and a pipe reading it would wait forever.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A wrapper around the real CLI that also copies its stdout into `tee_dir`, one file per
/// run, so that the test can compare what the server recorded with what the CLI wrote.
fn teeing_claude(dir: &Path, tee_dir: &Path) -> PathBuf {
    let script = format!(
        "#!/bin/sh\nout=\"{}/$$.out\"\n\"{}\" \"$@\" | tee \"$out\"\n",
        tee_dir.display(),
        claude_bin().display()
    );
    crate::support::executable_script(&dir.join("claude-tee"), &script)
}

pub fn claude_env(api: &FakeApi, home: &Path, claude: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", home.display().to_string()),
        ("ANTHROPIC_BASE_URL", api.base_url()),
        ("ANTHROPIC_API_KEY", "sk-ant-fake-key-for-tests".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("CCLOG_CLAUDE_BIN", claude.display().to_string()),
        ("CCLOG_MAX_RUNS", "2".into()),
    ]
}

/// The raw `message` of every recorded message, in order.
fn raw_messages(text: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        index: u64,
        message: Box<serde_json::value::RawValue>,
    }
    let messages: Vec<Raw> = serde_json::from_str(text).unwrap();
    for (position, message) in messages.iter().enumerate() {
        assert_eq!(message.index, position as u64);
    }
    messages.into_iter().map(|message| message.message.get().to_string()).collect()
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn runs_started_resumed_forked_cancelled_and_interrupted_through_the_api() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tee = tempfile::tempdir().unwrap();
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let api = FakeApi::by_prompt(vec![
        (
            "alpha",
            vec![
                Reply::ToolUse {
                    name: "Write".into(),
                    input: json!({"file_path": app.join("notes.txt"), "content": "alpha\n"}),
                },
                Reply::Text("Wrote notes.txt.".into()),
            ],
        ),
        ("beta", vec![Reply::Text("Resumed.".into())]),
        ("gamma", vec![Reply::Text("Fork one.".into())]),
        ("delta", vec![Reply::Text("Fork two.".into())]),
        ("sleepy", vec![Reply::Wait(Duration::from_secs(120))]),
    ]);
    let claude = teeing_claude(home.path(), tee.path());
    let env = claude_env(&api, home.path(), &claude);
    let server = Server::start(data.path(), &env, &[]);

    // CC Manager's start: cwd and prompt; the answer comes when the run has ended.
    let started = server.ok(
        "POST",
        "/api/runs/start",
        Some(json!({"cwd": app, "prompt": "alpha: write notes", "allowedTools": ["Write"]})),
    );
    assert_eq!(started["status"], "completed", "{started}");
    assert_eq!(started["mode"], "fresh");
    let run = started["id"].as_str().unwrap().to_string();
    let session = started["sessionId"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(app.join("notes.txt")).unwrap(), "alpha\n");

    // What was recorded is exactly what the CLI wrote to stdout, line for line.
    let (status, text) = server.call("GET", &format!("/api/runs/{run}/messages"), None);
    assert_eq!(status, 200);
    let recorded = raw_messages(&text);
    // CC Manager's columns: a unique id, the run, and the SDK message as messageJson.
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let ids: std::collections::BTreeSet<u64> = rows.iter().map(|row| row["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "message ids are unique");
    for row in &rows {
        assert_eq!(row["runId"], run.as_str());
        assert_eq!(row["messageJson"], row["message"]);
        assert_eq!(row["messageType"], row["messageJson"]["type"]);
    }
    // The run's resultJson is the SDK result message, byte for byte; durationMs is the wall
    // time, the CLI's own figure stays inside it.
    let (_, run_text) = server.call("GET", &format!("/api/runs/{}", &run[..8]), None);
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RawRun {
        result_json: Box<serde_json::value::RawValue>,
        duration_ms: u64,
    }
    let raw_run: RawRun = serde_json::from_str(&run_text).unwrap();
    assert_eq!(raw_run.result_json.get(), recorded.last().unwrap(), "the run by a prefix of its id");
    let result: Value = serde_json::from_str(raw_run.result_json.get()).unwrap();
    assert_eq!(result["type"], "result");
    assert!(raw_run.duration_ms >= result["duration_ms"].as_u64().unwrap(), "{run_text}");
    let outputs: Vec<String> = std::fs::read_dir(tee.path())
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert_eq!(outputs.len(), 1);
    let written: Vec<String> = outputs[0].lines().map(str::to_string).collect();
    assert_eq!(recorded, written);
    assert!(recorded.iter().any(|line| line.contains("\"tool_use\"")), "the Write call is recorded");
    // Paging: after index 0, two at most.
    let (_, page) = server.call("GET", &format!("/api/runs/{run}/messages?after=0&limit=2"), None);
    assert_eq!(raw_messages_from(&page, 1), recorded[1..3]);

    // Resume as CC Manager does: each resume a new session branched off the one before.
    let mut chain = vec![session.clone()];
    for prompt in ["beta: go on", "beta: and on"] {
        let previous = chain.last().unwrap().clone();
        let resumed = server.ok("POST", "/api/runs/resume", Some(json!({"sessionId": previous, "prompt": prompt})));
        assert_eq!((resumed["status"].as_str(), resumed["mode"].as_str()), (Some("completed"), Some("resume")));
        assert_eq!(resumed["parentSessionId"], previous.as_str(), "{resumed}");
        assert_eq!(resumed["resumedSessionId"], previous.as_str());
        assert_ne!(resumed["sessionId"], previous.as_str());
        chain.push(resumed["sessionId"].as_str().unwrap().to_string());
    }
    for pair in chain.windows(2) {
        let forks = server.ok("GET", &format!("/api/sessions/{}/forks", pair[0]), None);
        assert_eq!(forks.as_array().unwrap().len(), 1, "{forks}");
        assert_eq!(forks[0]["id"], pair[1].as_str());
        assert_eq!(forks[0]["parentSessionId"], pair[0].as_str());
    }
    let tree = server.ok("GET", &format!("/api/sessions/{}/tree", chain[2]), None);
    assert_eq!(tree[0]["id"], chain[0].as_str());
    assert_eq!(tree[0]["children"][0]["id"], chain[1].as_str(), "{tree}");
    assert_eq!(tree[0]["children"][0]["children"][0]["id"], chain[2].as_str(), "{tree}");
    // `forkSession: false` continues the session itself.
    let in_place = server.ok(
        "POST",
        "/api/runs/resume",
        Some(json!({"sessionId": session, "prompt": "beta: right here", "forkSession": false})),
    );
    assert_eq!(
        (in_place["status"].as_str(), in_place["sessionId"].as_str()),
        (Some("completed"), Some(session.as_str()))
    );
    assert_eq!(in_place["parentSessionId"], Value::Null);

    let fork_one = server.ok("POST", "/api/runs/fork", Some(json!({"sessionId": session, "prompt": "gamma: try one"})));
    let fork_two = server.ok("POST", "/api/runs/fork", Some(json!({"sessionId": session, "prompt": "delta: try two"})));
    for fork in [&fork_one, &fork_two] {
        assert_eq!(fork["status"], "completed", "{fork}");
        assert_eq!(fork["parentSessionId"], session.as_str());
        assert_ne!(fork["sessionId"], session.as_str());
    }
    let (one, two) = (fork_one["sessionId"].as_str().unwrap(), fork_two["sessionId"].as_str().unwrap());

    let forks = server.ok("GET", &format!("/api/sessions/{session}/forks"), None);
    let mut fork_ids: Vec<&str> = forks.as_array().unwrap().iter().map(|fork| fork["id"].as_str().unwrap()).collect();
    fork_ids.sort();
    let mut expected = vec![one, two, chain[1].as_str()];
    expected.sort();
    assert_eq!(fork_ids, expected);
    let tree = server.ok("GET", &format!("/api/sessions/{one}/tree"), None);
    assert_eq!(tree[0]["id"], session.as_str());
    assert_eq!(tree[0]["children"].as_array().unwrap().len(), 3, "{tree}");
    let diff = server.ok("GET", &format!("/api/sessions/{one}/diff/{two}"), None);
    assert_eq!(diff["ancestor"], session.as_str());
    assert_eq!((diff["left"]["session"].as_str(), diff["right"]["session"].as_str()), (Some(one), Some(two)));
    assert!(diff["fork_point"]["uuid"].is_string(), "{diff}");
    let session_runs = server.ok("GET", &format!("/api/sessions/{session}/runs"), None);
    assert_eq!(session_runs.as_array().unwrap().len(), 2, "start and the resume in place: {session_runs}");
    let jsonl = server.call("GET", &format!("/api/sessions/{one}/replay?format=jsonl"), None);
    assert_eq!(jsonl.0, 200);
    let transcript = std::fs::read_dir(home.path().join(".claude/projects"))
        .unwrap()
        .map(|dir| dir.unwrap().path().join(format!("{one}.jsonl")))
        .find(|path| path.exists())
        .unwrap();
    assert_eq!(jsonl.1, std::fs::read_to_string(transcript).unwrap());

    // Two resumes in place of one session at once: one runs, the other is refused.
    let in_place = json!({"sessionId": session, "prompt": "sleepy", "forkSession": false, "wait": false}).to_string();
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let body = in_place.clone();
                scope.spawn(|| {
                    let (status, text) = server.call("POST", "/api/runs/resume", Some(body));
                    (status, serde_json::from_str(&text).unwrap())
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{answers:?}");
    let (_, refused) = answers.iter().find(|(status, _)| *status == 409).unwrap();
    assert_eq!(refused["error"]["code"], "session_busy");
    let (_, sleepy) = answers.iter().find(|(status, _)| *status == 202).unwrap();
    // A fork of that session is no conflict: it writes a session of its own.
    let fork = server.ok("POST", "/api/runs/fork", Some(json!({"sessionId": session, "prompt": "gamma: meanwhile"})));
    assert_eq!(fork["status"], "completed", "{fork}");

    // Cancel mid-run: the API holds the model's answer; the messages so far stay.
    let sleepy_id = sleepy["id"].as_str().unwrap().to_string();
    assert_eq!(sleepy["status"], "running");
    wait_for("the sleepy run's init message", || {
        server.ok("GET", &format!("/api/runs/{sleepy_id}"), None)["messageCount"].as_u64() >= Some(1)
    });
    let active = server.ok("GET", "/api/runs/active", None);
    assert_eq!(active[0]["id"], sleepy_id.as_str());
    let cancelled = server.ok("DELETE", &format!("/api/runs/{sleepy_id}"), None);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(cancelled["messageCount"].as_u64() >= Some(1));
    let (status, again) = server.json("DELETE", &format!("/api/runs/{sleepy_id}"), None);
    assert_eq!(status, 409);
    assert!(again["error"]["message"].as_str().unwrap().contains("cancelled"), "{again}");

    // The run limit (2 here): two waiting runs, the third is refused.
    let waiting: Vec<String> = (0..2)
        .map(|_| {
            let run =
                server.ok("POST", "/api/runs/start", Some(json!({"cwd": app, "prompt": "sleepy", "wait": false})));
            run["id"].as_str().unwrap().to_string()
        })
        .collect();
    let (status, refused) = server.json("POST", "/api/runs/start", Some(json!({"cwd": app, "prompt": "sleepy"})));
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_runs");
    wait_for("the waiting runs' init messages", || {
        waiting.iter().all(|id| server.ok("GET", &format!("/api/runs/{id}"), None)["messageCount"].as_u64() >= Some(1))
    });

    // Kill the server mid-run and restart it: those runs were interrupted; the log verifies.
    server.kill();
    let server = Server::start(data.path(), &env, &[]);
    for id in &waiting {
        let run = server.ok("GET", &format!("/api/runs/{id}"), None);
        assert_eq!(run["status"], "interrupted", "{run}");
    }
    let verified = server.ok("GET", "/api/verify", None);
    assert_eq!(verified["intact"], true, "{verified}");
    server.stop();
    let verify = Command::new(cclog_bin()).arg("--data").arg(data.path()).arg("verify").output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

fn raw_messages_from(text: &str, first: u64) -> Vec<String> {
    let values: Vec<Value> = serde_json::from_str(text).unwrap();
    assert_eq!(values.first().map(|value| value["index"].as_u64()), Some(Some(first)));
    #[derive(serde::Deserialize)]
    struct Raw {
        message: Box<serde_json::value::RawValue>,
    }
    let raws: Vec<Raw> = serde_json::from_str(text).unwrap();
    raws.into_iter().map(|raw| raw.message.get().to_string()).collect()
}

#[test]
fn bad_requests_get_the_right_status_and_a_json_error() {
    let data = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let env = vec![("CCLOG_CLAUDE_BIN", "/nonexistent/claude".to_string()), ("HOME", cwd.path().display().to_string())];
    let server = Server::start(data.path(), &env, &["--no-archive"]);
    let expect = |method: &str, path: &str, body: Option<&str>, status: u16, code: &str| {
        let (got, text) = server.call(method, path, body.map(str::to_string));
        assert_eq!(got, status, "{method} {path} {body:?}: {text}");
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
        assert_eq!(value["error"]["code"], code, "{text}");
        assert!(value["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
    };
    expect("POST", "/api/runs/start", Some("{not json"), 400, "bad_request");
    expect("POST", "/api/runs/start", Some(r#"{"cwd": "/tmp"}"#), 400, "bad_request");
    expect("POST", "/api/runs/start", Some(r#"{"prompt": "hi"}"#), 400, "bad_request");
    expect("POST", "/api/runs/start", Some(r#"{"cwd": "/nonexistent/dir", "prompt": "hi"}"#), 400, "bad_request");
    expect("POST", "/api/runs/start", Some(r#"{"cwd": 7, "prompt": "hi"}"#), 400, "bad_request");
    expect("POST", "/api/runs/resume", Some(r#"{"prompt": "hi"}"#), 400, "bad_request");
    expect("POST", "/api/runs/fork", Some(r#"{"sessionId": "no-such-session", "prompt": "hi"}"#), 404, "not_found");
    let huge = format!(r#"{{"cwd": "/tmp", "prompt": "{}"}}"#, "x".repeat(1 << 20));
    expect("POST", "/api/runs/start", Some(&huge), 413, "payload_too_large");
    expect("GET", "/api/runs/no-such-run", None, 404, "not_found");
    expect("DELETE", "/api/runs/no-such-run", None, 404, "not_found");
    expect("GET", "/api/runs/no-such-run/messages", None, 404, "not_found");
    expect("GET", "/api/sessions/no-such-session", None, 404, "not_found");
    expect("GET", "/api/sessions/no-such-session/messages", None, 404, "not_found");
    expect("GET", "/api/sessions/a/diff/b", None, 404, "not_found");
    expect("GET", "/api/runs/x/messages?after=minus", None, 400, "bad_request");
    expect("GET", "/api/nothing-here", None, 404, "not_found");

    // A missing Claude binary fails that run, with the reason recorded; the server goes on.
    let body = json!({"cwd": cwd.path(), "prompt": "hi"}).to_string();
    let (status, text) = server.call("POST", "/api/runs/start", Some(body));
    assert_eq!(status, 200, "{text}");
    let run: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(run["status"], "error");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("could not start /nonexistent/claude") && error.contains("CCLOG_CLAUDE_BIN"), "{run}");
    let id = run["id"].as_str().unwrap();
    expect("DELETE", &format!("/api/runs/{id}"), None, 409, "run_ended");
    assert_eq!(server.call("GET", "/health", None).0, 200);
    server.stop();

    // A token guards /api, not /health.
    let env = vec![("CCLOG_TOKEN", "s3cret".to_string()), ("HOME", cwd.path().display().to_string())];
    let mut server = Server::start(data.path(), &env, &["--no-archive"]);
    assert_eq!(server.token.as_deref(), Some("s3cret"));
    assert_eq!(server.call("GET", "/api/runs", None).0, 200);
    server.token = Some("wrong".into());
    assert_eq!(server.call("GET", "/api/runs", None).0, 401);
    server.token = None;
    assert_eq!(server.call("GET", "/api/sessions", None).0, 401);
    assert_eq!(server.call("GET", "/health", None).0, 200);
    server.stop();

    // Off loopback without a token: refused before binding.
    let refused = Command::new(cclog_bin())
        .arg("--data")
        .arg(data.path())
        .args(["serve", "--addr", "0.0.0.0:0", "--no-archive"])
        .env_remove("CCLOG_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("without a token"), "{refused:?}");
}

/// The curl examples of README's REST API section, as written there.
fn readme_curl_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("### The REST API").expect("README has a REST API section")..];
    let block = &section[section.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    // Lines ending in a backslash continue on the next, as in the shell.
    let mut examples: Vec<String> = Vec::new();
    let mut continues = false;
    for line in block.lines() {
        let text = line.trim_end().strip_suffix('\\');
        match examples.last_mut() {
            Some(last) if continues => last.push_str(text.unwrap_or(line)),
            _ => examples.push(text.unwrap_or(line).to_string()),
        }
        continues = text.is_some();
    }
    examples.retain(|example| example.starts_with("curl "));
    examples
}

#[test]
fn cc_managers_curl_examples_work_as_written() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = home.path().join("project");
    std::fs::create_dir_all(&app).unwrap();
    let api = FakeApi::by_prompt(vec![
        ("parser", vec![Reply::Text("Added the test.".into())]),
        ("run it", vec![Reply::Text("It passes.".into())]),
        ("another", vec![Reply::Text("Took another approach.".into())]),
    ]);
    let env = claude_env(&api, home.path(), &claude_bin());
    let server = Server::start(data.path(), &env, &[]);
    let examples = readme_curl_examples();
    assert_eq!(examples.len(), 3, "{examples:?}");
    let mut session = String::new();
    let mut answers = Vec::new();
    for example in &examples {
        let command = example
            .replace("localhost:3000", server.url.trim_start_matches("http://"))
            .replace("/path/to/project", app.to_str().unwrap())
            .replace("<session id>", &session);
        let output = Command::new("sh").args(["-c", &command]).output().expect("curl runs");
        assert!(output.status.success(), "{command}: {}", String::from_utf8_lossy(&output.stderr));
        let run: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{command}: {error}: {}", String::from_utf8_lossy(&output.stdout)));
        assert_eq!(run["status"], "completed", "{command}: {run}");
        if session.is_empty() {
            session = run["sessionId"].as_str().unwrap().to_string();
        }
        answers.push(run);
    }
    assert_eq!(answers[0]["mode"], "fresh");
    assert_eq!(answers[0]["result"], "Added the test.");
    // A resume branches a new session off the resumed one, as CC Manager's do.
    assert_eq!(answers[1]["mode"], "resume");
    assert_eq!(answers[1]["parentSessionId"], session.as_str());
    assert_ne!(answers[1]["sessionId"], session.as_str());
    assert_eq!(answers[1]["result"], "It passes.");
    assert_eq!(answers[2]["mode"], "fork");
    assert_eq!(answers[2]["parentSessionId"], session.as_str());
    assert_ne!(answers[2]["sessionId"], session.as_str());
    let forks = server.ok("GET", &format!("/api/sessions/{session}/forks"), None);
    let mut fork_ids: Vec<&Value> = forks.as_array().unwrap().iter().map(|fork| &fork["id"]).collect();
    fork_ids.sort_by_key(|id| id.to_string());
    let mut expected = vec![&answers[1]["sessionId"], &answers[2]["sessionId"]];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(fork_ids, expected);
    server.stop();
}

#[test]
fn fifty_readers_are_answered_while_a_run_writes() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    // A run that keeps writing for a while: twenty tool round trips, each a short sleep.
    let mut replies: Vec<Reply> = (0..20)
        .map(|step| Reply::ToolUse {
            name: "Bash".into(),
            input: json!({"command": format!("sleep 0.2; echo step {step}")}),
        })
        .collect();
    replies.push(Reply::Text("Done.".into()));
    let api = FakeApi::by_prompt(vec![("busy", replies)]);
    let env = claude_env(&api, home.path(), &claude_bin());
    let server = Server::start(data.path(), &env, &[]);
    let started = server.ok(
        "POST",
        "/api/runs/start",
        Some(json!({"cwd": app, "prompt": "busy: step through", "allowedTools": ["Bash"], "wait": false})),
    );
    let run = started["id"].as_str().unwrap().to_string();
    wait_for("the run's first messages", || {
        server.ok("GET", &format!("/api/runs/{run}"), None)["messageCount"].as_u64() >= Some(3)
    });
    let messages_before = server.ok("GET", &format!("/api/runs/{run}"), None)["messageCount"].as_u64().unwrap();

    // Fifty readers read, ten requests each at least, until the run has recorded more
    // messages: so every one of them is answered while the run writes.
    let server = std::sync::Arc::new(server);
    let written = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..50)
        .map(|reader| {
            let (server, written) = (std::sync::Arc::clone(&server), std::sync::Arc::clone(&written));
            let run = run.clone();
            std::thread::spawn(move || {
                let paths = [
                    format!("/api/runs/{run}"),
                    format!("/api/runs/{run}/messages?limit=100"),
                    "/api/sessions".to_string(),
                    "/api/runs/active".to_string(),
                    "/api/events?limit=50".to_string(),
                ];
                let mut request = 0;
                while request < 10 || !written.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = &paths[(reader + request) % paths.len()];
                    let (status, body) = server.call("GET", path, None);
                    assert_eq!(status, 200, "{path}: {body}");
                    request += 1;
                }
            })
        })
        .collect();
    wait_for("a message recorded while readers read", || {
        server.ok("GET", &format!("/api/runs/{run}"), None)["messageCount"].as_u64() > Some(messages_before)
    });
    written.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader failed");
    }
    // Every reader was answered while the run was still writing: it is still running, and
    // it recorded more messages meanwhile.
    let during = server.ok("GET", &format!("/api/runs/{run}"), None);
    assert_eq!(during["status"], "running", "the readers outlasted the run: {during}");
    assert!(during["messageCount"].as_u64().unwrap() > messages_before, "no message was recorded while readers read");
    wait_for("the run to complete", || server.ok("GET", &format!("/api/runs/{run}"), None)["status"] == "completed");
    let server = std::sync::Arc::try_unwrap(server).unwrap_or_else(|_| panic!("a reader still holds the server"));
    server.stop();
}

/// Reads a run's SSE stream to its `end`: every message's `(index, raw message)`, and the
/// ended run.
fn follow_stream(url: &str, run: &str) -> (Vec<(u64, String)>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent.get(&format!("{url}/api/runs/{run}/stream")).call().unwrap();
    assert_eq!(response.status(), 200);
    #[derive(serde::Deserialize)]
    struct Raw {
        index: u64,
        message: Box<serde_json::value::RawValue>,
    }
    let mut event = String::new();
    let mut messages = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(response.body_mut().as_reader())) {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            let data = data.strip_prefix(' ').unwrap_or(data);
            match event.as_str() {
                "message" => {
                    let raw: Raw = serde_json::from_str(data).unwrap();
                    messages.push((raw.index, raw.message.get().to_string()));
                }
                "end" => return (messages, serde_json::from_str(data).unwrap()),
                _ => {}
            }
        }
    }
    panic!("the stream of {run} ended without an end event");
}

#[test]
fn run_streams_and_cclog_run_deliver_every_message_once_in_order() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let mut steps: Vec<Reply> = (0..4)
        .map(|step| Reply::ToolUse {
            name: "Bash".into(),
            input: json!({"command": format!("sleep 0.3; echo {step}")}),
        })
        .collect();
    steps.push(Reply::Text("Stepped.".into()));
    let api = FakeApi::by_prompt(vec![
        ("steps", steps),
        ("hello", vec![Reply::Text("Hello there.".into())]),
        ("again", vec![Reply::Text("Once more.".into())]),
    ]);
    let env = claude_env(&api, home.path(), &claude_bin());
    let server = Server::start(data.path(), &env, &[]);
    let started = server.ok(
        "POST",
        "/api/runs/start",
        Some(json!({"cwd": app, "prompt": "steps: take them", "allowedTools": ["Bash"], "wait": false})),
    );
    let run = started["id"].as_str().unwrap().to_string();
    // Followers joining at the start, mid-run, and after the end all see the same thing.
    let early = {
        let (url, run) = (server.url.clone(), run.clone());
        std::thread::spawn(move || follow_stream(&url, &run))
    };
    wait_for("a few messages", || {
        server.ok("GET", &format!("/api/runs/{run}"), None)["messageCount"].as_u64() >= Some(4)
    });
    let middle = {
        let (url, run) = (server.url.clone(), run.clone());
        std::thread::spawn(move || follow_stream(&url, &run))
    };
    let (early, early_end) = early.join().unwrap();
    let (middle, middle_end) = middle.join().unwrap();
    let (late, late_end) = follow_stream(&server.url, &run);
    let (_, text) = server.call("GET", &format!("/api/runs/{run}/messages"), None);
    let recorded: Vec<(u64, String)> =
        raw_messages(&text).into_iter().enumerate().map(|(i, m)| (i as u64, m)).collect();
    assert!(recorded.len() >= 10, "{} messages", recorded.len());
    for (who, seen, end) in
        [("early", &early, &early_end), ("middle", &middle, &middle_end), ("late", &late, &late_end)]
    {
        assert_eq!(seen, &recorded, "the {who} follower's messages");
        assert_eq!(end["status"], "completed", "{who}: {end}");
    }

    // `cclog run` through the server: the SDK messages print as they are recorded.
    let cclog = |args: &[&str]| {
        let mut command = Command::new(cclog_bin());
        command.arg("--data").arg(data.path()).args(args);
        for (key, value) in &env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let output = cclog(&["run", "start", "--cwd", app.to_str().unwrap(), "hello: greet", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    let ended: Value = serde_json::from_str(lines.pop().unwrap()).unwrap();
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended["result"], "Hello there.");
    let cli_run = ended["id"].as_str().unwrap();
    let (_, text) = server.call("GET", &format!("/api/runs/{cli_run}/messages"), None);
    assert_eq!(lines, raw_messages(&text), "what cclog run printed is what was recorded");
    let listed: Value = serde_json::from_slice(&cclog(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let session = ended["session_id"].as_str().unwrap().to_string();
    server.stop();

    // Without a server, `cclog run` runs the CLI itself and records the same way.
    let output = cclog(&["run", "resume", "--in-place", &session[..8], "again: and again", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let resumed: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(resumed["status"], "completed", "{resumed}");
    assert_eq!(resumed["session_id"], session.as_str(), "--in-place continues the session");
    assert_eq!(resumed["mode"], "resume");
    assert_eq!(resumed["result"], "Once more.");
    let runs: Value = serde_json::from_slice(&cclog(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
    crate::support::verify_intact(data.path());
}
