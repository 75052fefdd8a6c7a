//! The OpenAPI document is the API: it is served at `/api/openapi.json` behind the token,
//! names every route the server answers (and nothing it does not), and Schemathesis — a
//! fuzzer nobody here wrote, installed from PyPI by `scripts/test` — drives every operation
//! from it against a server holding a real session, finding no 5xx, no undocumented status,
//! and no response that breaks its schema.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::claude_cli::run_claude;
use crate::fake_api::{FakeApi, Reply};
use crate::serve::Server;
use crate::support::cclog_bin;

/// The Schemathesis that `scripts/test` installs into `.cache/venv`.
fn schemathesis() -> std::path::PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/venv/bin/schemathesis");
    assert!(bin.exists(), "{} is missing: scripts/test installs Schemathesis from PyPI", bin.display());
    bin
}

/// CC Manager's routes, which the document must name with these methods.
const CC_MANAGER_ROUTES: &[(&str, &str)] = &[
    ("post", "/api/runs/start"),
    ("post", "/api/runs/resume"),
    ("post", "/api/runs/fork"),
    ("delete", "/api/runs/{run}"),
    ("get", "/api/runs/{run}"),
    ("get", "/api/runs/{run}/messages"),
    ("get", "/api/sessions"),
    ("get", "/api/sessions/{id}"),
    ("get", "/api/sessions/{id}/messages"),
    ("get", "/api/sessions/{id}/runs"),
    ("get", "/api/sessions/{id}/forks"),
    ("get", "/health"),
    ("get", "/"),
];

#[test]
fn the_openapi_document_matches_the_routes_and_survives_schemathesis() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    // One real session in the archive, so that the fuzzer reaches sessions that exist
    // (the document links `GET /api/sessions` to every per-session operation).
    let api = FakeApi::start(vec![Reply::Text("Hello from the fake API.".into())]);
    run_claude(&api, home.path(), &app, "say hello", &[]);
    let projects = home.path().join(".claude/projects");
    let env = [
        ("HOME", home.path().display().to_string()),
        // Runs the fuzzer starts fail at once, recorded: no CLI is there to start.
        ("CCLOG_CLAUDE_BIN", home.path().join("no-such-claude").display().to_string()),
    ];
    let server = Server::start(data.path(), &env, &["--token", "fuzz-token", "--archive", projects.to_str().unwrap()]);
    crate::serve::wait_for("the session to be archived", || {
        server.json("GET", "/api/sessions", None).1.as_array().is_some_and(|sessions| !sessions.is_empty())
    });

    // Served behind the token, and the same document `cclog serve --openapi` prints.
    let anonymous = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let status = anonymous.get(&format!("{}/api/openapi.json", server.url)).call().unwrap().status();
    assert_eq!(status, 401);
    let document = server.ok("GET", "/api/openapi.json", None);
    assert_eq!(document["openapi"], "3.1.0");
    let printed = Command::new(cclog_bin()).args(["serve", "--openapi"]).output().unwrap();
    assert!(printed.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&printed.stdout).unwrap(), document);
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    let paths = document["paths"].as_object().unwrap();
    for (method, path) in CC_MANAGER_ROUTES {
        assert!(paths.get(*path).is_some_and(|item| item.get(*method).is_some()), "{method} {path} is not documented");
    }
    // Every documented operation is routed: none falls through to "no route".
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if path.ends_with("/stream") {
                continue; // endless by design; routed like the rest (tested in serve.rs)
            }
            let concrete = path.replace("{run}", "run-x").replace("{id}", "x").replace("{a}", "x").replace("{b}", "y");
            let body = (method == "post").then(|| "{}".to_string());
            let (_, text) = server.call(&method.to_uppercase(), &concrete, body);
            assert!(!text.contains("no route"), "{method} {path} is documented but not routed: {text}");
        }
    }

    let report = tempfile::tempdir().unwrap();
    let fuzzed = Command::new(schemathesis())
        .current_dir(report.path())
        .args(["run", &format!("{}/api/openapi.json", server.url)])
        .args(["--header", "Authorization: Bearer fuzz-token"])
        // Server-sent event streams never end; serve.rs tests them. Team routes drive a
        // container engine and tmux, which this server has none of (every call would be a
        // 502); team.rs tests them against real ones.
        .args(["--exclude-path-regex", "/stream$|/api/teams"])
        // Every check but one: "schema-valid data must be accepted" cannot know that a
        // `cwd` must exist or that a session id must name a session (400 and 404 here).
        // And "a deleted resource is gone": DELETE /api/runs/:id cancels a run, as in CC
        // Manager; the cancelled run and its messages stay readable, by design.
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance,use_after_free"])
        .args(["--max-examples", "40", "--request-timeout", "30", "--no-color"])
        .args(["--generation-database", "none"])
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&fuzzed.stdout);
    assert!(
        fuzzed.status.success(),
        "schemathesis found problems:\n{output}\n{}",
        String::from_utf8_lossy(&fuzzed.stderr)
    );
    assert!(output.contains("passed"), "{output}");

    // The server is still serving, and its log is intact.
    let health = server.ok("GET", "/health", None);
    assert_eq!(health["status"], "ok");
    let verified = server.ok("GET", "/api/verify", None);
    assert_eq!(verified["intact"], true, "{verified}");
    server.stop();
    crate::support::verify_intact(data.path());
}
