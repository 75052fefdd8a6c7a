//! The MCP coordinator driven by a client nobody here wrote: the official Python SDK (`mcp`
//! from PyPI, pinned in `scripts/test-requirements.txt`). `tests/mcp/coordinator_client.py`
//! lists the tools and runs every one with good and bad input, over Streamable HTTP at
//! `/mcp` and over stdio through `cclog mcp` — with a server running, with none (the relay
//! starts one), and as two `cclog mcp` processes at once. `concurrent_increments.py` has 8
//! clients add to one counter 200 times each with compare-and-set. What they wrote is then
//! read back with `cclog kv`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::serve::Server;
use crate::support::cclog_bin;

fn python() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/venv/bin/python");
    assert!(bin.exists(), "{} is missing: scripts/test installs the Python test tools", bin.display());
    bin
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp").join(name)
}

/// Runs a client script; its one line of JSON.
fn run_client(output: Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the MCP client failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn stdio_client(data: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(python());
    command.current_dir(cwd).arg(script("coordinator_client.py")).arg("stdio").arg(cclog_bin()).arg(data);
    command
}

fn kv(data: &Path, args: &[&str]) -> Value {
    let output = Command::new(cclog_bin()).arg("--data").arg(data).arg("kv").args(args).arg("--json").output().unwrap();
    assert!(output.status.success(), "kv {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Stops the server a relay started in the background.
fn stop_background_server(data: &Path) {
    let advertised: Value = serde_json::from_slice(&std::fs::read(data.join("server.json")).unwrap()).unwrap();
    let pid = advertised["pid"].as_i64().unwrap() as libc::pid_t;
    // SAFETY: kill(2) with a pid the server advertised.
    unsafe { libc::kill(pid, libc::SIGINT) };
    // SAFETY: kill(2) with signal 0 only asks whether the process still exists.
    crate::serve::wait_for("the background server to exit", || unsafe { libc::kill(pid, 0) } != 0);
}

#[test]
fn every_tool_over_streamable_http_and_stdio_with_the_python_sdk() {
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &["--token", "mcp-token", "--no-archive"]);
    let endpoint = format!("{}/mcp", server.url);

    // /mcp sits behind the token like /api.
    let anonymous = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let refused = anonymous.post(&endpoint).header("Content-Type", "application/json").send("{}").unwrap();
    assert_eq!(refused.status(), 401);

    let over_http = run_client(
        Command::new(python())
            .arg(script("coordinator_client.py"))
            .args(["http", &endpoint, "mcp-token"])
            .output()
            .unwrap(),
    );
    let prefix = over_http["signed_on"]["full_scope_prefix"].as_str().unwrap().to_string();
    // What the MCP client wrote is there for `cclog kv`, with its writer.
    let scope = format!("{prefix}{}", over_http["progress_scope"].as_str().unwrap());
    let history = kv(data.path(), &["history", &scope, "step"]);
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    assert_eq!(history[0]["writer"]["instance"], over_http["signed_on"]["session_id"]);
    assert_eq!(history[2]["value"], Value::Null, "the deletion is a version");

    // stdio through `cclog mcp`, relaying to the running server (it reads the token from
    // server.json). Its scopes are those of the relay's own project directory.
    let over_stdio = run_client(stdio_client(data.path(), project.path()).output().unwrap());
    let project_name = project.path().file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(over_stdio["signed_on"]["project"], project_name.as_str());
    assert!(over_stdio["signed_on"]["full_scope_prefix"].as_str().unwrap().ends_with(&format!(":{project_name}:")));
    server.stop();
    crate::support::verify_intact(data.path());
}

#[test]
fn two_cclog_mcp_processes_at_once_start_and_share_one_server() {
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    // No server runs: each relay finds none, one starts it, both use it; neither sees a
    // lock error.
    let first = stdio_client(data.path(), project.path()).spawn_output();
    let second = stdio_client(data.path(), project.path()).spawn_output();
    let (first, second) = (run_client(first.join().unwrap()), run_client(second.join().unwrap()));
    assert_ne!(first["progress_scope"], second["progress_scope"]);
    assert!(data.path().join("server.json").exists(), "the relay left the server running for the next session");
    stop_background_server(data.path());
    crate::support::verify_intact(data.path());
}

#[test]
fn eight_mcp_clients_compare_and_set_one_counter_exactly() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &["--token", "mcp-token", "--no-archive"]);
    let result = run_client(
        Command::new(python())
            .arg(script("concurrent_increments.py"))
            .args([&format!("{}/mcp", server.url), "mcp-token"])
            .output()
            .unwrap(),
    );
    assert_eq!(result["final"], 1_600, "{result}");
    assert_eq!(result["versions"], 1_600, "every write is in the history: {result}");
    assert_eq!(result["writers"].as_array().unwrap().len(), 8, "{result}");
    let instances: std::collections::BTreeSet<&str> =
        result["instances"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(instances.len(), 8, "8 sign-ons at once got 8 different instances: {result}");
    server.stop();
}

/// A child whose output is collected on a thread, so that several run at once.
trait SpawnOutput {
    fn spawn_output(&mut self) -> std::thread::JoinHandle<Output>;
}

impl SpawnOutput for Command {
    fn spawn_output(&mut self) -> std::thread::JoinHandle<Output> {
        let child = self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::spawn(move || child.wait_with_output().unwrap())
    }
}

#[test]
fn each_relay_leases_its_instance_for_its_own_configured_time() {
    let (data, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let project = |name: &str, config: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".claude")).unwrap();
        std::fs::write(dir.path().join(".claude/session-coordinator-config.json"), config).unwrap();
        assert!(config.contains(name));
        dir
    };
    let brief = project("acme/brief", r#"{"project": "acme/brief", "lease_seconds": 1}"#);
    let patient = project("acme/patient", r#"{"project": "acme/patient"}"#);
    // A session that signs on and ends without signing off.
    let sign_on = |cwd: &Path| -> String {
        let output = Command::new(python())
            .current_dir(cwd)
            .env("HOME", home.path())
            .env_remove("CCLOG_COORDINATOR_CONFIG")
            .env_remove("CLAUDE_SESSION_COORDINATOR_CONFIG")
            .arg(script("sign_on.py"))
            .arg(cclog_bin())
            .arg(data.path())
            .output()
            .unwrap();
        run_client(output)["session_id"].as_str().unwrap().to_string()
    };
    // The first relay starts the server in its own directory, where the lease is the
    // default: only the header can give the other project its 1 s.
    assert_eq!(sign_on(patient.path()), "claude_1");
    assert_eq!(sign_on(brief.path()), "claude_1");
    std::thread::sleep(std::time::Duration::from_millis(2000));
    // Its holder's lease of 1 s is over: the next session of that project gets claude_1.
    assert_eq!(sign_on(brief.path()), "claude_1", "the relay's lease_seconds reached the server");
    // The default lease of 10 minutes is not: claude_1 stays taken.
    assert_eq!(sign_on(patient.path()), "claude_2");
    stop_background_server(data.path());
}

#[test]
fn configuration_comes_from_the_first_source_that_sets_each_value() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let check = |extra: &[&str], env: &[(&str, &Path)]| {
        let mut command = Command::new(cclog_bin());
        command
            .current_dir(project.path())
            .env("HOME", home.path())
            .env_remove("CCLOG_COORDINATOR_CONFIG")
            .env_remove("CLAUDE_SESSION_COORDINATOR_CONFIG")
            .arg("--data")
            .arg(data.path())
            .args(["mcp", "--check-config", "--json"])
            .args(extra);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let config = |output: Output| -> Value {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    // Defaults: the hostname, and the git origin's owner/repo.
    std::fs::create_dir_all(project.path().join(".git")).unwrap();
    std::fs::write(
        project.path().join(".git/config"),
        "[remote \"origin\"]\n\turl = git@github.com:acme/widgets.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
    )
    .unwrap();
    let defaults = config(check(&[], &[]));
    assert_eq!(defaults["project"]["value"], "acme/widgets");
    assert_eq!(defaults["machine"]["source"], "hostname");
    assert_eq!(defaults["lease_seconds"]["value"], 600);

    // ~/.config/cclog/coordinator.json, then ./.claude/…, then the variable, then --config.
    let user = home.path().join(".config/cclog/coordinator.json");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::write(&user, r#"{"machine_id": "user-box", "lease_seconds": 90}"#).unwrap();
    let local = project.path().join(".claude/session-coordinator-config.json");
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(&local, r#"{"machine_id": "local-box"}"#).unwrap();
    let layered = config(check(&[], &[]));
    assert_eq!(layered["machine"]["value"], "local-box");
    assert!(layered["machine"]["source"].as_str().unwrap().contains("session-coordinator-config.json"));
    assert_eq!(layered["lease_seconds"]["value"], 90, "a value only the user file sets still comes from it");
    let variable = home.path().join("from-env.json");
    std::fs::write(&variable, r#"{"project": "env/project"}"#).unwrap();
    let from_env = config(check(&[], &[("CLAUDE_SESSION_COORDINATOR_CONFIG", variable.as_path())]));
    assert_eq!(from_env["project"]["value"], "env/project");
    assert!(from_env["project"]["source"].as_str().unwrap().starts_with("CLAUDE_SESSION_COORDINATOR_CONFIG"));
    let explicit = home.path().join("explicit.json");
    std::fs::write(&explicit, r#"{"machine_id": "explicit-box"}"#).unwrap();
    let from_flag =
        config(check(&["--config", explicit.to_str().unwrap()], &[("CCLOG_COORDINATOR_CONFIG", variable.as_path())]));
    assert_eq!(from_flag["machine"]["value"], "explicit-box");
    assert_eq!(from_flag["project"]["value"], "env/project");

    // An invalid file is a clear error naming it.
    std::fs::write(&local, r#"{"machine_id": "x", "colour": "blue"}"#).unwrap();
    let invalid = check(&[], &[]);
    assert_eq!(invalid.status.code(), Some(2));
    let message = String::from_utf8_lossy(&invalid.stderr);
    assert!(message.contains("session-coordinator-config.json") && message.contains("colour"), "{message}");
    std::fs::write(&local, "{not json").unwrap();
    assert_eq!(check(&[], &[]).status.code(), Some(2));
    let missing = check(&["--config", "/nonexistent/coordinator.json"], &[]);
    assert_eq!(missing.status.code(), Some(2));
}

/// The Python coordinator's own configuration file, in each place it reads one, works as
/// it is: `session.machine_id` "auto" is the hostname, `project_detection` git or directory;
/// `storage` (local or redis) and `server` are read and reported as not used.
#[test]
fn the_python_coordinators_configuration_files_work_as_they_are() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join(".git")).unwrap();
    std::fs::write(
        project.path().join(".git/config"),
        "[remote \"origin\"]\n\turl = https://github.com/acme/widgets.git\n",
    )
    .unwrap();
    let check = |env: &[(&str, &Path)]| {
        let mut command = Command::new(cclog_bin());
        command
            .current_dir(project.path())
            .env("HOME", home.path())
            .env_remove("CCLOG_COORDINATOR_CONFIG")
            .env_remove("CLAUDE_SESSION_COORDINATOR_CONFIG")
            .arg("--data")
            .arg(data.path())
            .args(["mcp", "--check-config", "--json"]);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let config = |output: Output| -> Value {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let local_adapter = r#"{"storage": {"adapter": "local", "config": {"base_path": ".claude/session-state"}},
        "session": {"machine_id": "auto", "project_detection": "git"}, "server": {"port": 9999, "host": "localhost"}}"#;
    let redis_adapter = r#"{"storage": {"adapter": "redis", "config": {"url": "redis://localhost:6379/0"}},
        "session": {"machine_id": "team-box", "project_detection": "directory"}}"#;
    let local = project.path().join(".claude/session-coordinator-config.json");
    let user = home.path().join(".config/claude-session-coordinator/config.json");
    let variable = home.path().join("coordinator-config.json");
    for (place, env) in [(&local, None), (&user, None), (&variable, Some("CLAUDE_SESSION_COORDINATOR_CONFIG"))] {
        for (shape, machine, project_name) in [
            (local_adapter, hostname.as_str(), "acme/widgets"),
            (redis_adapter, "team-box", project.path().file_name().unwrap().to_str().unwrap()),
        ] {
            std::fs::create_dir_all(place.parent().unwrap()).unwrap();
            std::fs::write(place, shape).unwrap();
            let env: Vec<(&str, &Path)> = env.map(|name| (name, variable.as_path())).into_iter().collect();
            let read = config(check(&env));
            assert_eq!(read["machine"]["value"], machine, "{place:?}: {read}");
            assert_eq!(read["project"]["value"], project_name, "{place:?}: {read}");
            let notes = read["notes"].to_string();
            assert!(notes.contains("storage") && notes.contains("is not used"), "{read}");
            std::fs::remove_file(place).unwrap();
        }
    }
    // One file in both shapes: cclog's field wins, and the report says so.
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(&local, r#"{"machine_id": "ours", "session": {"machine_id": "theirs"}}"#).unwrap();
    let both = config(check(&[]));
    assert_eq!(both["machine"]["value"], "ours", "{both}");
    assert!(both["notes"].to_string().contains("machine_id wins"), "{both}");
    // An adapter the original does not know is a warning, not an error.
    std::fs::write(&local, r#"{"storage": {"adapter": "s3"}}"#).unwrap();
    let unknown = config(check(&[]));
    assert!(unknown["notes"][0].as_str().unwrap().contains("warning: storage adapter \"s3\""), "{unknown}");
    // A detection method neither knows is bad input, naming the ones there are.
    std::fs::write(&local, r#"{"session": {"project_detection": "svn"}}"#).unwrap();
    let refused = check(&[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(r#"use "git" or "directory""#), "{refused:?}");
}

#[test]
fn the_real_claude_code_cli_signs_on_and_stores_through_cclog_mcp() {
    use crate::fake_api::{FakeApi, Reply};
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let server = Server::start(data.path(), &[("HOME", home.path().display().to_string())], &["--no-archive"]);
    let api = FakeApi::start(vec![
        Reply::ToolUse { name: "mcp__cclog__sign_on".into(), input: serde_json::json!({}) },
        Reply::ToolUse {
            name: "mcp__cclog__store_data".into(),
            input: serde_json::json!({"scope": "progress", "key": "step", "value": {"done": ["parser"], "next": "tests"}}),
        },
        Reply::Text("Signed on and stored my progress.".into()),
    ]);
    let config = serde_json::json!({"mcpServers": {"cclog": {
        "type": "stdio",
        "command": cclog_bin(),
        "args": ["--data", data.path(), "mcp"],
    }}});
    let lines = crate::claude_cli::run_claude(
        &api,
        home.path(),
        &app,
        "sign on to the coordinator and store your progress",
        &[
            "--mcp-config",
            &config.to_string(),
            "--strict-mcp-config",
            "--allowedTools",
            "mcp__cclog__sign_on,mcp__cclog__store_data",
        ],
    );
    let result: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(result["subtype"], "success", "{result}");
    // The tool results the CLI sent back to the model are the coordinator's answers.
    let tool_results = tool_results_sent(&api);
    assert_eq!(tool_results.len(), 2, "{tool_results:?}");
    assert!(tool_results[0].contains("claude_1"), "sign_on answered: {}", tool_results[0]);
    assert!(tool_results[1].contains("stored"), "store_data answered: {}", tool_results[1]);

    // `cclog kv` reads it back, and its history names the writer.
    let machine = cclog_ingest::coordinator::detect_machine();
    let scope = format!("{machine}:app:progress");
    let value = kv(data.path(), &["get", &scope, "step"]);
    assert_eq!(value["value"], serde_json::json!({"done": ["parser"], "next": "tests"}), "{value}");
    let history = kv(data.path(), &["history", &scope, "step"]);
    assert_eq!(history[0]["writer"]["instance"], "claude_1");
    assert_eq!(history[0]["writer"]["project"], "app");
    server.stop();
}

/// The tool results the CLI sent back to the model in its last request: what the tools
/// answered.
fn tool_results_sent(api: &crate::fake_api::FakeApi) -> Vec<String> {
    let requests = api.requests();
    requests.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|message| message["content"].as_array().cloned().unwrap_or_default())
        .filter(|block| block["type"] == "tool_result")
        .map(|block| block["content"].to_string())
        .collect()
}

/// Registers `cclog mcp` with `bin` as a user would (`claude mcp add`), checks that
/// `claude mcp list` reports it connected with its tools, then has the model call
/// `sign_on` and `retrieve_data` — the tool whose result schema older releases rejected.
fn claude_code_loads_and_calls_cclogs_tools(bin: &Path) {
    use crate::claude_cli::{claude_command, run_claude_with};
    use crate::fake_api::{FakeApi, Reply};
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let api = FakeApi::start(vec![
        Reply::ToolUse { name: "mcp__cclog__sign_on".into(), input: serde_json::json!({}) },
        Reply::ToolUse {
            name: "mcp__cclog__retrieve_data".into(),
            input: serde_json::json!({"scope": "progress", "key": "step"}),
        },
        Reply::Text("Signed on; nothing stored yet.".into()),
    ]);
    let cclog = cclog_bin();
    let added = claude_command(bin, &api, home.path())
        .current_dir(&app)
        .args(["mcp", "add", "--scope", "user", "cclog", "--"])
        .arg(&cclog)
        .arg("--data")
        .arg(data.path())
        .arg("mcp")
        .output()
        .unwrap();
    assert!(added.status.success(), "claude mcp add: {added:?}");
    let listed = claude_command(bin, &api, home.path()).current_dir(&app).args(["mcp", "list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout);
    let line = listing.lines().find(|line| line.starts_with("cclog")).unwrap_or_else(|| panic!("{bin:?}: {listing}"));
    assert!(line.contains("✔ Connected") && !line.contains("failed"), "{bin:?}: {line}");

    let lines = run_claude_with(
        bin,
        &api,
        home.path(),
        &app,
        "sign on and read your progress",
        &["--allowedTools", "mcp__cclog__sign_on,mcp__cclog__retrieve_data"],
    );
    let result: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(result["subtype"], "success", "{bin:?}: {result}");
    let tool_results = tool_results_sent(&api);
    assert_eq!(tool_results.len(), 2, "{bin:?}: {tool_results:?}");
    assert!(tool_results[0].contains("claude_1"), "{bin:?}: sign_on answered {}", tool_results[0]);
    assert!(tool_results[1].contains("found"), "{bin:?}: retrieve_data answered {}", tool_results[1]);
    stop_background_server(data.path());
}

#[test]
fn the_pinned_claude_code_loads_cclogs_tools_and_calls_them() {
    claude_code_loads_and_calls_cclogs_tools(&crate::claude_cli::claude_bin());
}

#[test]
fn claude_code_2_1_197_loads_cclogs_tools_and_calls_them() {
    claude_code_loads_and_calls_cclogs_tools(&crate::claude_cli::older_claude_bin());
}

/// A migrating user's store: the Python coordinator's `.claude/session-state` (here at the
/// `base_path` its configuration names) imported with `cclog kv import-legacy`, read back
/// with `kv get` and with `retrieve_data` by an agent of that machine and project; a second
/// import adds nothing; a malformed file is reported and skipped.
#[test]
fn the_python_coordinators_local_store_is_imported_once_and_read_back() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join(".git")).unwrap();
    std::fs::write(
        project.path().join(".git/config"),
        "[remote \"origin\"]\n\turl = git@github.com:acme/widgets.git\n",
    )
    .unwrap();
    std::fs::create_dir_all(project.path().join(".claude")).unwrap();
    std::fs::write(
        project.path().join(".claude/session-coordinator-config.json"),
        r#"{"storage": {"adapter": "local", "config": {"base_path": "state/coordinator"}},
            "session": {"machine_id": "laptop", "project_detection": "git"}}"#,
    )
    .unwrap();
    // As the original's LocalFileAdapter writes them: one file a scope, `:` and `/` as `__`.
    let store = project.path().join("state/coordinator");
    std::fs::create_dir_all(&store).unwrap();
    let scope_file = |scope_file: &str, body: Value| {
        std::fs::write(store.join(scope_file), serde_json::to_string_pretty(&body).unwrap()).unwrap();
    };
    scope_file(
        "laptop__acme__widgets__session__claude_1.json",
        serde_json::json!({
            "data": {"current_task": "refactor the parser", "progress": {"done": 3, "of": 5}},
            "metadata": {
                "current_task": {"created_at": "2025-11-02T09:00:00.000001", "updated_at": "2025-11-02T10:30:00.000002"},
                "progress": {"created_at": "2025-11-02T09:05:00", "updated_at": "2025-11-02T11:00:00"}
            }
        }),
    );
    scope_file(
        "laptop__acme__widgets__team.json",
        serde_json::json!({"data": {"owner": "claude_1"}, "metadata": {"owner": {"created_at": "2025-11-01T08:00:00"}}}),
    );
    std::fs::write(store.join("broken.json"), "{not json").unwrap();
    let cclog_here = |args: &[&str]| {
        Command::new(cclog_bin())
            .current_dir(project.path())
            .env("HOME", home.path())
            .env_remove("CCLOG_COORDINATOR_CONFIG")
            .env_remove("CLAUDE_SESSION_COORDINATOR_CONFIG")
            .arg("--data")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap()
    };
    let imported = cclog_here(&["kv", "import-legacy", "--json"]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let report: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(report["files"], 2, "{report}");
    assert_eq!(report["imported"], 3, "{report}");
    assert_eq!(
        report["scopes"],
        serde_json::json!(["laptop:acme/widgets:session:claude_1", "laptop:acme/widgets:team"]),
        "{report}"
    );
    assert!(report["malformed"][0]["file"].as_str().unwrap().ends_with("broken.json"), "{report}");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("skipped"), "the skip is said on stderr");

    let get = |scope: &str, key: &str| -> Value {
        let output = cclog_here(&["kv", "get", scope, key, "--json"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let progress = get("laptop:acme/widgets:session:claude_1", "progress");
    assert_eq!(progress["value"], serde_json::json!({"done": 3, "of": 5}), "{progress}");
    assert_eq!(progress["writer"]["instance"], "import", "{progress}");
    assert_eq!(progress["imported"]["created_at"], "2025-11-02T09:05:00", "{progress}");
    assert_eq!(progress["imported"]["updated_at"], "2025-11-02T11:00:00", "{progress}");
    assert!(progress["imported"]["file"].as_str().unwrap().ends_with("laptop__acme__widgets__session__claude_1.json"));

    // An agent of that machine and project reads it where the original would have.
    let read = Command::new(python())
        .current_dir(project.path())
        .env("HOME", home.path())
        .env_remove("CCLOG_COORDINATOR_CONFIG")
        .env_remove("CLAUDE_SESSION_COORDINATOR_CONFIG")
        .arg(script("retrieve.py"))
        .arg(cclog_bin())
        .arg(data.path())
        .args(["session:claude_1", "current_task"])
        .output()
        .unwrap();
    let read = run_client(read);
    stop_background_server(data.path());
    assert_eq!(read["value"], "refactor the parser", "{read}");
    assert_eq!(read["version"], 1, "{read}");

    // Again: nothing new.
    let events_before = crate::support::cclog_json(data.path(), &["stats", "--json"])["events"].clone();
    let again = cclog_here(&["kv", "import-legacy", "--json"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((again["imported"].clone(), again["unchanged"].clone()), (Value::from(0), Value::from(3)), "{again}");
    assert_eq!(crate::support::cclog_json(data.path(), &["stats", "--json"])["events"], events_before);
    // A directory that is not there is said so (bad input).
    let missing = cclog_here(&["kv", "import-legacy", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2), "{}", String::from_utf8_lossy(&missing.stderr));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}

/// `wait_and_ttl.py`: a claim with a TTL lapses and is taken again; one client waits for
/// another's write, its deletion and a value's expiry; bad TTLs and timeouts are tool errors.
fn waits_and_ttls(client: Output) {
    let seen = run_client(client);
    let latency = seen["handoff"]["latency_ms"].as_f64().unwrap();
    assert!(latency < 200.0, "the waiter answered {latency} ms after the write: {seen}");
    assert!(seen["handoff"]["waited_s"].as_f64().unwrap() >= 1.9, "the waiter answered before the write: {seen}");
    let timeout = seen["timeout_s"].as_f64().unwrap();
    assert!((0.45..5.0).contains(&timeout), "a 0.5 s timeout took {timeout} s");
}

#[test]
fn over_stdio_a_waiter_hears_another_clients_write_and_a_claim_lapses_on_its_own() {
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    // Two relays, no server running: the first starts one.
    waits_and_ttls(
        Command::new(python())
            .current_dir(project.path())
            .arg(script("wait_and_ttl.py"))
            .arg("stdio")
            .arg(cclog_bin())
            .arg(data.path())
            .output()
            .unwrap(),
    );
    stop_background_server(data.path());
    // The same after a rebuild: the lapsed claim reads as absent, its history keeps both.
    let rebuilt = Command::new(cclog_bin()).arg("--data").arg(data.path()).arg("rebuild").output().unwrap();
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let scopes = kv(data.path(), &["scopes", "*:claims"]);
    let scope = scopes[0].as_str().unwrap().to_string();
    let history = kv(data.path(), &["history", &scope, "job-1"]);
    assert_eq!(history[0]["expired"], true, "{history}");
    assert_eq!(history[1]["version"], 2, "{history}");
    crate::support::verify_intact(data.path());
}

#[test]
fn over_streamable_http_a_waiter_hears_another_clients_write() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &["--token", "mcp-token", "--no-archive"]);
    waits_and_ttls(
        Command::new(python())
            .arg(script("wait_and_ttl.py"))
            .args(["http", &format!("{}/mcp", server.url), "mcp-token"])
            .output()
            .unwrap(),
    );
    server.stop();
}

#[test]
fn over_stdio_a_subscribed_client_is_told_of_another_clients_writes() {
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let seen = run_client(
        Command::new(python())
            .current_dir(project.path())
            .arg(script("notifications.py"))
            .arg(cclog_bin())
            .arg(data.path())
            .output()
            .unwrap(),
    );
    let state = seen["own_scope"].as_array().unwrap().iter().find(|uri| uri != &"session://context").cloned();
    assert!(state.is_some_and(|uri| uri.as_str().unwrap().starts_with("session://state/")), "{seen}");
    assert_eq!(
        seen["own_scope"].as_array().unwrap().len(),
        2,
        "a write to bob's scope changes his state and the context: {seen}"
    );
    assert_eq!(seen["state_after"]["progress"], "step 1", "{seen}");
    assert_eq!(seen["other_scope"], serde_json::json!(["session://context"]), "{seen}");
    assert_eq!(seen["after_unsubscribe"], serde_json::json!(["session://context"]), "{seen}");
    stop_background_server(data.path());
}

/// `notifications.py --listen`: one `subscriptions/listen` stream for bob's state and the
/// context hears bob's writes.
fn listens(client: Output) {
    let seen = run_client(client);
    assert_eq!(seen["honored"].as_array().unwrap().len(), 2, "both resources are honoured: {seen}");
    assert_eq!(seen["own_scope"], seen["honored"], "a write to bob's scope changes both: {seen}");
    assert_eq!(seen["other_scope"], serde_json::json!(["session://context"]), "{seen}");
}

#[test]
fn at_2026_07_28_a_listening_client_is_told_of_writes_over_http_and_stdio() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &["--token", "mcp-token", "--no-archive"]);
    listens(
        Command::new(python())
            .arg(script("notifications.py"))
            .args(["--listen", "http", &format!("{}/mcp", server.url), "mcp-token"])
            .output()
            .unwrap(),
    );
    // Through `cclog mcp`, which states the revision's headers as an HTTP client does.
    let project = tempfile::tempdir().unwrap();
    listens(
        Command::new(python())
            .current_dir(project.path())
            .arg(script("notifications.py"))
            .args(["--listen", "stdio"])
            .arg(cclog_bin())
            .arg(data.path())
            .output()
            .unwrap(),
    );
    server.stop();
}

#[test]
fn a_server_the_relay_started_exits_once_no_client_is_left() {
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    // A 2 s idle period, from the project's coordinator configuration: the client's own
    // pauses between calls must not end it.
    std::fs::create_dir(project.path().join(".claude")).unwrap();
    std::fs::write(
        project.path().join(".claude/session-coordinator-config.json"),
        r#"{"server_idle_exit_seconds": 2}"#,
    )
    .unwrap();
    let client = run_client(stdio_client(data.path(), project.path()).output().unwrap());
    assert!(client["signed_on"]["session_id"].is_string(), "{client}");
    let advertised: Value = serde_json::from_slice(&std::fs::read(data.path().join("server.json")).unwrap()).unwrap();
    let pid = advertised["pid"].as_i64().unwrap() as libc::pid_t;
    // SAFETY: kill(2) with signal 0 only asks whether the process still exists.
    crate::serve::wait_for("the idle server to exit", || unsafe { libc::kill(pid, 0) } != 0);
    assert!(!data.path().join("server.json").exists(), "it stopped advertising itself");
    let log = std::fs::read_to_string(data.path().join("serve.log")).unwrap();
    assert!(log.contains("no client and no run for the idle period"), "{log}");
    crate::support::verify_intact(data.path());
}

/// What the issue's "done" asks: two real Claude Code agents hand work to each other through
/// the coordinator. Bob starts first and waits for the result; Alice claims the job with a
/// 2 s TTL, stores the result and exits without releasing the claim; Bob is handed the
/// result the moment it is stored, waits for Alice's claim to lapse, and takes the job.
#[test]
fn two_claude_code_agents_hand_work_over_and_a_dead_agents_claim_lapses() {
    use crate::fake_api::{FakeApi, Reply};
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let app = project.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let config = serde_json::json!({"mcpServers": {"cclog": {
        "type": "stdio", "command": cclog_bin(), "args": ["--data", data.path(), "mcp"],
    }}})
    .to_string();
    let tools = "mcp__cclog__sign_on,mcp__cclog__store_data,mcp__cclog__wait_for_change";
    let tool = |name: &str, input: Value| Reply::ToolUse { name: format!("mcp__cclog__{name}"), input };
    let bob_api = FakeApi::start(vec![
        tool("sign_on", serde_json::json!({})),
        tool(
            "wait_for_change",
            serde_json::json!({"scope": "handoff", "key": "result", "after_version": 0, "timeout_seconds": 120}),
        ),
        tool(
            "wait_for_change",
            serde_json::json!({"scope": "claims", "key": "job", "after_version": 1, "timeout_seconds": 60}),
        ),
        tool(
            "store_data",
            serde_json::json!({"scope": "claims", "key": "job", "value": {"by": "bob"}, "expected_version": 0}),
        ),
        Reply::Text("Got the result and took the job.".into()),
    ]);
    let alice_api = FakeApi::start(vec![
        tool("sign_on", serde_json::json!({})),
        tool(
            "store_data",
            serde_json::json!({"scope": "claims", "key": "job", "value": {"by": "alice"}, "expected_version": 0, "ttl_seconds": 2}),
        ),
        tool("store_data", serde_json::json!({"scope": "handoff", "key": "result", "value": {"answer": 42}})),
        Reply::Text("Stored the result.".into()),
    ]);
    let agent = |api: &FakeApi, prompt: &str| {
        let home = tempfile::tempdir().unwrap();
        let lines = crate::claude_cli::run_claude(
            api,
            home.path(),
            &app,
            prompt,
            &["--mcp-config", &config, "--strict-mcp-config", "--allowedTools", tools],
        );
        let result: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(result["subtype"], "success", "{prompt}: {result}");
    };
    std::thread::scope(|threads| {
        let bob = threads.spawn(|| agent(&bob_api, "wait for alice's result, then take the job"));
        // Bob is waiting before Alice starts: his first wait_for_change has reached the API.
        crate::serve::wait_for("bob to wait", || bob_api.requests().len() >= 2);
        std::thread::sleep(std::time::Duration::from_secs(1));
        agent(&alice_api, "claim the job and store your result");
        bob.join().unwrap();
    });
    let results = tool_results_sent(&bob_api);
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[1].contains("42") && results[1].contains("written"), "the handed-over result: {}", results[1]);
    assert!(results[2].contains("expired"), "alice's claim lapsed: {}", results[2]);
    assert!(results[3].contains(r#"\"stored\":true"#), "bob took the job: {}", results[3]);
    let scopes = kv(data.path(), &["scopes", "*:claims"]);
    let history = kv(data.path(), &["history", scopes[0].as_str().unwrap(), "job"]);
    assert_eq!(history[0]["expired"], true, "{history}");
    // Bob signed on first (claude_1), Alice second.
    assert_eq!(history[0]["writer"]["instance"], "claude_2", "{history}");
    assert_eq!(history[1]["writer"]["instance"], "claude_1", "{history}");
    stop_background_server(data.path());
}
