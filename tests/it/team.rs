//! Team sessions against a real container engine (podman's Docker API) and real tmux:
//! create, list, health, a container removed behind cclog's back and repaired, stop and
//! resume, conflicts and bad input, the clean-ups; then the real Claude Code CLI as a team's
//! agents in their containers, answering prompts typed into their tmux windows against the
//! fake Messages API, brought back in their own sessions after a simulated reboot.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::containers::{Engine, TmuxServer, IMAGE};
use crate::support::{cclog_command, verify_intact};

/// `cclog --data DATA team ARGS…` on `engine` and `tmux`.
fn team(data: &Path, engine: &Engine, tmux: &TmuxServer, args: &[&str]) -> Output {
    let mut command = cclog_command(data, &[&["team"], args].concat());
    command.env("DOCKER_HOST", engine.docker_host()).env("CCLOG_TMUX_SOCKET", &tmux.socket);
    command.output().unwrap()
}

/// [`team`], which must succeed; its stdout.
fn team_ok(data: &Path, engine: &Engine, tmux: &TmuxServer, args: &[&str]) -> String {
    let output = team(data, engine, tmux, args);
    assert!(
        output.status.success(),
        "cclog team {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn team_json(data: &Path, engine: &Engine, tmux: &TmuxServer, args: &[&str]) -> Value {
    let stdout = team_ok(data, engine, tmux, args);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{args:?}: {error}: {stdout}"))
}

/// A team of busybox shells: `sleep` keeps each container up, and each window runs `sh`;
/// 256 MiB and half a CPU each, and one variable.
fn create_shell_team(data: &Path, engine: &Engine, tmux: &TmuxServer, name: &str, cwd: &Path) -> Output {
    create_shell_team_with(
        data,
        engine,
        tmux,
        name,
        cwd,
        &["--container-memory", "256m", "--container-cpus", "0.5", "--env", "GREETING=hello"],
    )
}

/// [`create_shell_team`] with other options.
fn create_shell_team_with(
    data: &Path,
    engine: &Engine,
    tmux: &TmuxServer,
    name: &str,
    cwd: &Path,
    extra: &[&str],
) -> Output {
    let cwd = cwd.to_str().unwrap();
    let args = ["create", name, "--image", IMAGE, "--keepalive", "sleep 100000", "--agent-command", "sh", "--cwd", cwd];
    team(data, engine, tmux, &[&args[..], extra].concat())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn agent_states(listed: &Value, name: &str) -> Vec<(String, String)> {
    let team = listed.as_array().unwrap().iter().find(|team| team["name"] == name).expect("team listed");
    team["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| (agent["agent"].as_str().unwrap().to_string(), agent["state"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_team_is_created_checked_broken_repaired_stopped_resumed_and_removed() {
    let engine = Engine::start();
    let tmux = TmuxServer::new();
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = data.path();

    let created = create_shell_team(data, &engine, &tmux, "alpha", project.path());
    assert!(created.status.success(), "{}", stderr(&created));
    for agent in ["leader", "researcher", "writer"] {
        assert_eq!(engine.state(&format!("alpha-{agent}")).as_deref(), Some("running"));
    }
    let windows = tmux.tmux(&["list-windows", "-t", "=alpha:", "-F", "#{window_name}"]);
    assert_eq!(String::from_utf8_lossy(&windows.stdout), "leader\nresearcher\nwriter\n");

    // Each window is a terminal in its agent's own container, in the project directory.
    tmux.wait_for("alpha", "researcher", "#", Duration::from_secs(20))
        .expect("a shell prompt in the researcher's window");
    tmux.type_line("alpha", "researcher", "echo made-by-$HOSTNAME > from-researcher.txt; echo done-$((20+22))");
    tmux.wait_for("alpha", "researcher", "done-42", Duration::from_secs(20)).expect("the command ran");
    let written = std::fs::read_to_string(project.path().join("from-researcher.txt")).unwrap();
    assert!(written.starts_with("made-by-"), "{written}");

    let listed = team_json(data, &engine, &tmux, &["list", "--verbose", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["running"], 3);
    assert_eq!(listed[0]["total"], 3);
    assert_eq!(listed[0]["tmux"], true);
    let verbose = team_ok(data, &engine, &tmux, &["list", "--verbose"]);
    assert!(verbose.contains("alpha-writer") && verbose.contains("running"), "{verbose}");
    // Two tables within 80 columns: the teams, then each agent's container and session.
    assert!(verbose.starts_with("TEAM ") && verbose.contains("\n\nTEAM   AGENT"), "{verbose}");
    assert!(verbose.lines().all(|line| line.chars().count() <= 80), "{verbose}");
    let healthy = team(data, &engine, &tmux, &["health", "alpha"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stdout));

    // Conflicts: the same names again, without --force.
    let again = create_shell_team(data, &engine, &tmux, "alpha", project.path());
    assert_eq!(again.status.code(), Some(1));
    let message = stderr(&again);
    assert!(message.contains("tmux session alpha") && message.contains("container alpha-leader"), "{message}");
    assert!(message.contains("--force"), "{message}");

    // A container removed behind cclog's back: health names it and how to fix it.
    assert!(engine.podman_run(&["rm", "--force", "--time", "0", "alpha-writer"]).status.success());
    let broken = team(data, &engine, &tmux, &["health", "alpha", "--json"]);
    assert_eq!(broken.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let problems: Vec<&str> =
        report["problems"].as_array().unwrap().iter().map(|p| p["problem"].as_str().unwrap()).collect();
    assert!(
        problems.iter().any(|problem| problem.contains("alpha-writer") && problem.contains("missing")),
        "{problems:?}"
    );
    // A dry run changes nothing; --yes recreates it exactly as it was made.
    let dry = team_ok(data, &engine, &tmux, &["cleanup", "--fix-broken"]);
    assert!(dry.contains("would recreate alpha-writer"), "{dry}");
    assert_eq!(engine.state("alpha-writer"), None);
    team_ok(data, &engine, &tmux, &["cleanup", "--fix-broken", "--yes"]);
    assert_eq!(engine.state("alpha-writer").as_deref(), Some("running"));
    let inspected = engine.podman_run(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"cclog.agent\"}} {{.Config.WorkingDir}}",
        "alpha-writer",
    ]);
    assert_eq!(String::from_utf8_lossy(&inspected.stdout).trim(), format!("writer {}", project.path().display()));
    let limits = engine.podman_run(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.Config.Env}}",
        "alpha-writer",
    ]);
    let limits = String::from_utf8_lossy(&limits.stdout).into_owned();
    assert!(limits.starts_with("268435456 500000000 "), "{limits}");
    assert!(limits.contains("GREETING=hello") && limits.contains("HOME=/root"), "{limits}");
    // Its window's program exited with the old container; resume gives it a live one.
    team_ok(data, &engine, &tmux, &["resume", "alpha"]);
    let healthy = team(data, &engine, &tmux, &["health", "alpha"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stdout));
    tmux.wait_for("alpha", "writer", "#", Duration::from_secs(20)).expect("the writer's window is back");

    // Stop keeps the containers, closes tmux; resume brings both back.
    team_ok(data, &engine, &tmux, &["stop", "alpha"]);
    for agent in ["leader", "researcher", "writer"] {
        assert_eq!(engine.state(&format!("alpha-{agent}")).as_deref(), Some("exited"));
    }
    assert!(!tmux.tmux(&["has-session", "-t", "=alpha"]).status.success());
    let stopped = team_json(data, &engine, &tmux, &["list", "--json"]);
    assert!(agent_states(&stopped, "alpha").iter().all(|(_, state)| state == "stopped"), "{stopped}");
    let resumed = team_json(data, &engine, &tmux, &["resume", "alpha", "--json"]);
    assert_eq!(resumed["tmux_created"], true);
    assert!(
        resumed["agents"].as_array().unwrap().iter().all(|agent| agent["container_action"] == "started"),
        "{resumed}"
    );
    let listed = team_json(data, &engine, &tmux, &["list", "--json"]);
    assert!(agent_states(&listed, "alpha").iter().all(|(_, state)| state == "running"), "{listed}");

    // An agent whose container is gone can be dropped instead: the team goes on without it.
    assert!(engine.podman_run(&["rm", "--force", "--time", "0", "alpha-researcher"]).status.success());
    let dropped =
        team_ok(data, &engine, &tmux, &["cleanup", "--fix-broken", "--drop-missing", "--remove", "alpha", "--yes"]);
    assert!(dropped.contains("dropped agents researcher"), "{dropped}");
    let listed = team_json(data, &engine, &tmux, &["list", "--json"]);
    let expected = [("leader".to_string(), "running".to_string()), ("writer".to_string(), "running".to_string())];
    assert_eq!(agent_states(&listed, "alpha"), expected);
    let healthy = team(data, &engine, &tmux, &["health", "alpha"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stdout));

    // Removal: containers, tmux and homes go; the history stays, and the chain is intact.
    team_ok(data, &engine, &tmux, &["cleanup", "--remove", "alpha", "--yes"]);
    assert_eq!(engine.state("alpha-leader"), None);
    assert!(!tmux.tmux(&["has-session", "-t", "=alpha"]).status.success());
    assert!(!data.join("teams/alpha/agents").exists());
    let listed = team_json(data, &engine, &tmux, &["list", "--json"]);
    assert_eq!(listed, Value::Array(vec![]));
    let all = team_json(data, &engine, &tmux, &["list", "--all", "--json"]);
    assert_eq!(all[0]["phase"], "Removed");
    let history = crate::support::cclog(data, &["log", "--stream", "team/alpha", "--json"]);
    let history: Vec<Value> =
        String::from_utf8_lossy(&history.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let kinds: Vec<&str> = history.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    for kind in
        ["team.created", "team.container", "team.tmux", "team.health", "team.stopped", "team.resumed", "team.removed"]
    {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    verify_intact(data);
}

#[test]
fn clean_ups_take_only_the_teams_they_match() {
    let engine = Engine::start();
    let tmux = TmuxServer::new();
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = data.path();
    for name in ["feat-a", "feat-b", "main"] {
        let created = create_shell_team(data, &engine, &tmux, name, project.path());
        assert!(created.status.success(), "{}", stderr(&created));
    }
    team_ok(data, &engine, &tmux, &["stop", "feat-b"]);

    let dry = team_ok(data, &engine, &tmux, &["cleanup", "--pattern", "feat-*"]);
    assert!(dry.contains("would remove team feat-a") && dry.contains("would remove team feat-b"), "{dry}");
    assert!(!dry.contains("team main"), "{dry}");
    assert_eq!(engine.state("feat-a-leader").as_deref(), Some("running"));

    // Only the stopped team matching the pattern goes.
    let removed =
        team_json(data, &engine, &tmux, &["cleanup", "--pattern", "feat-*", "--stopped-only", "--yes", "--json"]);
    assert_eq!(removed["done"], serde_json::json!(["feat-b"]));
    assert_eq!(engine.state("feat-b-leader"), None);
    assert_eq!(engine.state("feat-a-leader").as_deref(), Some("running"));

    team_ok(data, &engine, &tmux, &["cleanup", "--pattern", "feat-*", "--yes"]);
    assert_eq!(engine.state("feat-a-leader"), None);
    assert_eq!(engine.state("main-leader").as_deref(), Some("running"));
    let listed = team_json(data, &engine, &tmux, &["list", "--json"]);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|team| team["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["main"]);

    // --interactive needs a terminal; on one, it asks about each team.
    let refused = team(data, &engine, &tmux, &["cleanup", "--interactive"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("terminal"), "{}", stderr(&refused));
    let asking = format!(
        "env DOCKER_HOST={} CCLOG_TMUX_SOCKET={} {} --data {} team cleanup --interactive; echo cleanup-exited-$?; sleep 60",
        engine.docker_host(),
        tmux.socket,
        crate::support::cclog_bin().display(),
        data.display()
    );
    let started = tmux.tmux(&["new-session", "-d", "-s", "asker", "-n", "ask", "-x", "200", "-y", "50", &asking]);
    assert!(started.status.success());
    tmux.wait_for("asker", "ask", "? [y/N]", Duration::from_secs(20)).expect("cleanup asks about team main");
    tmux.type_line("asker", "ask", "y");
    tmux.wait_for("asker", "ask", "cleanup-exited-0", Duration::from_secs(30)).expect("cleanup ends");
    assert!(tmux.screen("asker", "ask").contains("team main removed"), "{}", tmux.screen("asker", "ask"));
    assert_eq!(engine.state("main-leader"), None);
}

#[test]
fn bad_names_a_missing_engine_and_bad_limits_are_clear_errors_and_record_nothing() {
    let engine = Engine::start();
    let tmux = TmuxServer::new();
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = data.path();
    let cwd = project.path().to_str().unwrap();

    for bad in ["has space", "sl/ash", ".dot", "ünï"] {
        let output = team(data, &engine, &tmux, &["create", bad, "--image", IMAGE, "--cwd", cwd]);
        assert_eq!(output.status.code(), Some(2), "{bad}: {}", stderr(&output));
        assert!(stderr(&output).contains("not valid"), "{bad}: {}", stderr(&output));
    }
    let output = team(data, &engine, &tmux, &["create", "ok", "--agents", "a,b c", "--image", IMAGE, "--cwd", cwd]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output =
        team(data, &engine, &tmux, &["create", "ok", "--container-memory", "lots", "--image", IMAGE, "--cwd", cwd]);
    assert!(stderr(&output).contains("--container-memory"), "{}", stderr(&output));
    let output = team(data, &engine, &tmux, &["create", "ok", "--image", "localhost/no-such-image:1", "--cwd", cwd]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no image localhost/no-such-image:1"), "{}", stderr(&output));

    let mut command = cclog_command(data, &["team", "create", "ok", "--image", IMAGE, "--cwd", cwd]);
    let missing = data.join("no-engine-here.sock");
    command.env("DOCKER_HOST", format!("unix://{}", missing.display())).env("CCLOG_TMUX_SOCKET", &tmux.socket);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("DOCKER_HOST") && message.contains("no-engine-here.sock"), "{message}");
    let listed = team_json(data, &engine, &tmux, &["list", "--all", "--json"]);
    assert_eq!(listed, Value::Array(vec![]), "nothing recorded as created");

    // A tmux session of the user's with the team's name: an error naming it; --force replaces it.
    assert!(tmux.tmux(&["new-session", "-d", "-s", "solo", "sleep 600"]).status.success());
    let taken = create_shell_team(data, &engine, &tmux, "solo", project.path());
    assert_eq!(taken.status.code(), Some(1));
    assert!(stderr(&taken).contains("tmux session solo already exists"), "{}", stderr(&taken));
    let output = create_shell_team_with(data, &engine, &tmux, "solo", project.path(), &["--force", "--agents", "one"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let windows = tmux.tmux(&["list-windows", "-t", "=solo:", "-F", "#{window_name}"]);
    assert_eq!(String::from_utf8_lossy(&windows.stdout), "one\n");
}

/// `cclog team ARGS…` as a user whose Claude Code talks to `api` would run it (the
/// `ANTHROPIC_*` variables are passed to the agents' containers), on `engine` and `tmux`;
/// it must succeed, and its stdout is returned.
fn team_with_api(
    data: &Path,
    engine: &Engine,
    tmux: &TmuxServer,
    api: &crate::fake_api::FakeApi,
    args: &[&str],
) -> String {
    let mut command = cclog_command(data, &[&["team"], args].concat());
    command
        .env("DOCKER_HOST", engine.docker_host())
        .env("CCLOG_TMUX_SOCKET", &tmux.socket)
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-fake-key-for-team-tests")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    let output = command.output().unwrap();
    assert!(output.status.success(), "cclog team {args:?}: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// `team create NAME` of real Claude Code agents in busybox containers on the host network
/// (so the fake API on loopback answers them): the host's libraries and the pinned native
/// binary mounted read-only.
fn claude_team_args(name: &str, project: &str, agents: &[&str]) -> Vec<String> {
    let native = claude_native_binary();
    let mut args: Vec<String> = ["create", name, "--agents"].map(str::to_string).to_vec();
    args.push(agents.join(","));
    for arg in [
        "--image",
        IMAGE,
        "--network",
        "host",
        "--keepalive",
        "sleep 100000",
        "--agent-command",
        "/usr/local/bin/claude --allowedTools Write",
        "--cwd",
        project,
        "--mount",
        "/lib:/lib:ro",
        "--mount",
        "/lib64:/lib64:ro",
        "--mount",
        "/usr/lib:/usr/lib:ro",
        "--mount",
    ] {
        args.push(arg.to_string());
    }
    args.push(format!("{}:/usr/local/bin/claude:ro", native.display()));
    args
}

/// The native Claude Code binary inside the pinned npm package (`claude` on the host is a
/// launcher script that execs it).
fn claude_native_binary() -> std::path::PathBuf {
    let launcher = crate::claude_cli::claude_bin();
    let package = launcher.parent().and_then(Path::parent).expect("node_modules/.bin").join("@anthropic-ai");
    let native = package.join("claude-code-linux-x64/claude");
    assert!(native.exists(), "{} is missing: scripts/test installs Claude Code from npm", native.display());
    native
}

#[test]
fn claude_code_agents_answer_in_their_windows_and_resume_their_sessions_after_a_reboot() {
    use crate::fake_api::{FakeApi, Reply};
    let agents = ["leader", "researcher", "writer"];
    let project = tempfile::tempdir().unwrap();
    let routes: Vec<(String, Vec<Reply>)> = agents
        .iter()
        .flat_map(|agent| {
            let file = project.path().join(format!("{agent}.txt"));
            [
                (
                    format!("note-{agent}"),
                    vec![
                        Reply::ToolUse {
                            name: "Write".into(),
                            input: serde_json::json!({"file_path": file, "content": format!("written by the {agent}\n")}),
                        },
                        Reply::Text(format!("The {agent} wrote its note.")),
                    ],
                ),
                (format!("again-{agent}"), vec![Reply::Text(format!("The {agent} is back."))]),
            ]
        })
        .collect();
    let api = FakeApi::by_prompt(routes.iter().map(|(word, replies)| (word.as_str(), replies.clone())).collect());
    let engine = Engine::start();
    let tmux = TmuxServer::new();
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let project_dir = project.path().to_str().unwrap().to_string();
    let create_args = claude_team_args("crew", &project_dir, &agents);
    let create_args: Vec<&str> = create_args.iter().map(String::as_str).collect();
    let with_api = |args: &[&str]| team_with_api(data, &engine, &tmux, &api, args);
    with_api(&create_args);

    let ready = |agent: &str| {
        tmux.wait_for("crew", agent, "❯", Duration::from_secs(90))
            .unwrap_or_else(|screen| panic!("{agent}'s Claude Code did not get ready:\n{screen}"))
    };
    for agent in agents {
        ready(agent);
        tmux.type_line("crew", agent, &format!("please write your note-{agent}"));
    }
    for agent in agents {
        tmux.wait_for("crew", agent, &format!("The {agent} wrote its note."), Duration::from_secs(90))
            .unwrap_or_else(|screen| panic!("{agent} did not answer:\n{screen}"));
        let note = std::fs::read_to_string(project.path().join(format!("{agent}.txt"))).unwrap();
        assert_eq!(note, format!("written by the {agent}\n"));
    }

    let verbose = with_api(&["list", "--verbose"]);
    for agent in agents {
        assert!(verbose.contains(&format!("crew-{agent}")), "{verbose}");
    }
    with_api(&["health", "crew"]);

    // A reboot: the containers stop, the tmux server dies.
    with_api(&["stop", "crew"]);
    tmux.kill_server();
    let resumed: Value = serde_json::from_str(&with_api(&["resume", "crew", "--json"])).unwrap();
    let sessions: Vec<String> = resumed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["session"].as_str().unwrap_or_else(|| panic!("no session resumed: {resumed}")).to_string())
        .collect();
    assert_eq!(sessions.len(), 3);
    for (agent, session) in agents.iter().zip(&sessions) {
        ready(agent);
        tmux.type_line("crew", agent, &format!("again-{agent}"));
        tmux.wait_for("crew", agent, &format!("The {agent} is back."), Duration::from_secs(90))
            .unwrap_or_else(|screen| panic!("{agent} did not answer after the resume:\n{screen}"));
        // The request after the resume carries the turns from before it.
        let requests = api.requests();
        let resumed_request = requests
            .iter()
            .rev()
            .find(|request| request.to_string().contains(&format!("again-{agent}")))
            .expect("a request after the resume");
        assert!(
            resumed_request.to_string().contains(&format!("please write your note-{agent}")),
            "{agent}: {resumed_request}"
        );
        let home = data.join("teams/crew/agents").join(agent);
        assert!(
            crate::support::files_under(&home).iter().any(|path| path.ends_with(format!("{session}.jsonl"))),
            "{agent}'s session {session} is a transcript in its home"
        );
    }
    // Every agent's conversation is in the archive, linked to the team and agent.
    crate::support::cclog(data, &["import", data.join("teams/crew/agents").to_str().unwrap()]);
    let listed = crate::support::cclog_json(data, &["sessions", "--team", "crew", "--json"]);
    for (agent, session) in agents.iter().zip(&sessions) {
        let found = listed.as_array().unwrap().iter().find(|listed| listed["id"] == session.as_str());
        let found = found.unwrap_or_else(|| panic!("{session} not archived for the team: {listed}"));
        assert_eq!(found["agent"], *agent, "{found}");
    }
    let shown = crate::support::cclog_json(data, &["show", &sessions[2], "--json"]);
    assert_eq!((shown["team"].as_str(), shown["agent"].as_str()), (Some("crew"), Some("writer")), "{shown}");
    // The fork tree names what ran the session.
    let tree = crate::support::cclog_json(data, &["tree", &sessions[2], "--json"]);
    assert_eq!(tree[0]["owner"], "team crew/writer", "{tree}");
    let text = crate::support::cclog(data, &["tree", &sessions[2]]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("[team crew/writer]"), "{text:?}");
    let transcripts: Vec<(String, std::path::PathBuf, Vec<u8>)> = agents
        .iter()
        .zip(&sessions)
        .map(|(agent, session)| {
            let home = data.join("teams/crew/agents").join(agent);
            let file = crate::support::files_under(&home)
                .into_iter()
                .find(|path| path.ends_with(format!("{session}.jsonl")))
                .unwrap();
            let inside = file.strip_prefix(home.join(".claude/projects")).unwrap().to_path_buf();
            (agent.to_string(), inside, std::fs::read(&file).unwrap())
        })
        .collect();

    // Removed: containers and homes go; every word stays in the log and comes back in an
    // export, byte for byte, under a manifest the log vouches for.
    with_api(&["cleanup", "--remove", "crew", "--yes"]);
    assert!(!data.join("teams/crew/agents").exists());
    let export = tempfile::tempdir().unwrap();
    let out = export.path().join("crew");
    with_api(&["export", "crew", "--output", out.to_str().unwrap()]);
    for (agent, inside, bytes) in &transcripts {
        let exported = std::fs::read(out.join("transcripts").join(agent).join(inside)).unwrap();
        assert!(exported == *bytes, "{agent}'s exported transcript differs from what it wrote");
    }
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.lines().next().unwrap().contains("team.created"), "{events}");
    let checked = cclog_command(data, &["team", "check-export", out.to_str().unwrap(), "--json"]).output().unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", String::from_utf8_lossy(&checked.stdout));
    let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(report["report"]["recorded_in_log"], true, "{report}");
    let (agent, inside, _) = &transcripts[1];
    let tampered = out.join("transcripts").join(agent).join(inside);
    let mut bytes = std::fs::read(&tampered).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    let checked = cclog_command(data, &["team", "check-export", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(checked.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&checked.stdout).contains(&inside.display().to_string()));
    // The API key passed from the host reached the agents, never the log.
    let everything = crate::support::cclog(data, &["log", "--json"]);
    assert!(!String::from_utf8_lossy(&everything.stdout).contains("sk-ant-fake-key-for-team-tests"));
    assert!(String::from_utf8_lossy(&everything.stdout).contains("ANTHROPIC_API_KEY"), "the spec names it");
    verify_intact(data);
}

mod registry {
    //! The `teams` projection against a plain model, for arbitrary sequences of team
    //! events, a rebuild included.

    use std::collections::BTreeMap;

    use cclog_engine::NewEvent;
    use cclog_projections::events::encode;
    use cclog_projections::events::team::{
        self, AgentSession, ContainerChange, ContainerEvent, HealthFindings, Note, TeamSpec, TmuxChange, TmuxEvent,
    };
    use cclog_projections::teams::{TeamPhase, TeamRegistry};
    use proptest::prelude::*;

    use crate::support::{dump, open};

    const AGENTS: [&str; 3] = ["a", "b", "c"];

    #[derive(Debug, Clone)]
    enum Op {
        Create { team: u8, agents: u8 },
        Container { team: u8, agent: u8, event: u8, id: Option<u8> },
        Tmux { team: u8, event: u8, private: bool },
        Session { team: u8, agent: u8, session: Option<u8> },
        Phase { team: u8, kind: u8 },
        Health { team: u8, problems: u8 },
        Exported { team: u8 },
        Dropped { team: u8, agent: u8 },
        Reopen,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..3u8, 1..8u8).prop_map(|(team, agents)| Op::Create { team, agents }),
            4 => (0..3u8, 0..3u8, 0..5u8, proptest::option::of(0..4u8))
                .prop_map(|(team, agent, event, id)| Op::Container { team, agent, event, id }),
            2 => (0..3u8, 0..3u8, any::<bool>()).prop_map(|(team, event, private)| Op::Tmux { team, event, private }),
            2 => (0..3u8, 0..3u8, proptest::option::of(0..4u8))
                .prop_map(|(team, agent, session)| Op::Session { team, agent, session }),
            2 => (0..3u8, 0..3u8).prop_map(|(team, kind)| Op::Phase { team, kind }),
            1 => (0..3u8, 0..4u8).prop_map(|(team, problems)| Op::Health { team, problems }),
            1 => (0..3u8).prop_map(|team| Op::Exported { team }),
            1 => (0..3u8, 0..3u8).prop_map(|(team, agent)| Op::Dropped { team, agent }),
            1 => Just(Op::Reopen),
        ]
    }

    /// An agent as the model knows it: container id, last container event, session, its seq.
    type ModelAgent = (Option<String>, Option<ContainerEvent>, Option<String>, Option<u64>);

    /// What the registry should say of one team.
    #[derive(Debug, Clone, PartialEq)]
    struct ModelTeam {
        created_seq: u64,
        phase: TeamPhase,
        /// agent → (container id, last container event, session, session seq)
        agents: BTreeMap<String, ModelAgent>,
        tmux: Option<TmuxEvent>,
        tmux_socket: Option<String>,
        health: Option<(u64, u64)>,
        exports: u64,
        events: u64,
        last_seq: u64,
    }

    fn spec(agents: u8) -> TeamSpec {
        TeamSpec {
            agents: AGENTS
                .iter()
                .enumerate()
                .filter(|(i, _)| agents & (1 << i) != 0)
                .map(|(_, a)| a.to_string())
                .collect(),
            image: "img".into(),
            memory_bytes: Some(1 << 30),
            nano_cpus: None,
            cwd: "/p".into(),
            env: vec![("K".into(), "V".into())],
            host_env: vec!["ANTHROPIC_API_KEY".into()],
            network: "bridge".into(),
            keepalive: None,
            agent_command: vec!["claude".into()],
            mounts: vec![],
            container_home: "/root".into(),
            agents_dir: "/d".into(),
            coordinator: true,
            coordinator_url: None,
        }
    }

    const CONTAINER_EVENTS: [ContainerEvent; 5] = [
        ContainerEvent::Created,
        ContainerEvent::Started,
        ContainerEvent::Stopped,
        ContainerEvent::Missing,
        ContainerEvent::Removed,
    ];
    const TMUX_EVENTS: [TmuxEvent; 3] = [TmuxEvent::Created, TmuxEvent::Killed, TmuxEvent::Missing];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn the_registry_is_what_a_model_of_the_events_says(ops in proptest::collection::vec(arb_op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path());
            let mut model: BTreeMap<String, ModelTeam> = BTreeMap::new();
            for op in &ops {
                if let Op::Reopen = op {
                    drop(log);
                    log = open(dir.path());
                    continue;
                }
                let (team, kind, payload) = match op {
                    Op::Create { team, agents } => (*team, team::KIND_CREATED, encode(&spec(*agents)).unwrap()),
                    Op::Container { team, agent, event, id } => {
                        let change = ContainerChange {
                            agent: AGENTS[usize::from(*agent)].into(),
                            event: CONTAINER_EVENTS[usize::from(*event)],
                            id: id.map(|id| format!("id-{id}")),
                        };
                        (*team, team::KIND_CONTAINER, encode(&change).unwrap())
                    }
                    Op::Tmux { team, event, private } => {
                        let change = TmuxChange { event: TMUX_EVENTS[usize::from(*event)], socket: private.then(|| "s".to_string()) };
                        (*team, team::KIND_TMUX, encode(&change).unwrap())
                    }
                    Op::Session { team, agent, session } => {
                        let session = AgentSession { agent: AGENTS[usize::from(*agent)].into(), session: session.map(|s| format!("s-{s}")), note: None };
                        (*team, team::KIND_AGENT_SESSION, encode(&session).unwrap())
                    }
                    Op::Phase { team, kind } => {
                        let kind = [team::KIND_RESUMED, team::KIND_STOPPED, team::KIND_REMOVED][usize::from(*kind)];
                        (*team, kind, encode(&Note::default()).unwrap())
                    }
                    Op::Health { team, problems } => {
                        let findings = HealthFindings { problems: (0..*problems).map(|n| format!("problem {n}")).collect() };
                        (*team, team::KIND_HEALTH, encode(&findings).unwrap())
                    }
                    Op::Exported { team } => {
                        let exported = team::Exported { output: "/out".into(), sessions: 2, manifest_blake3: "00".into() };
                        (*team, team::KIND_EXPORTED, encode(&exported).unwrap())
                    }
                    Op::Dropped { team, agent } => {
                        let dropped = team::AgentDropped { agent: AGENTS[usize::from(*agent)].into() };
                        (*team, team::KIND_AGENT_DROPPED, encode(&dropped).unwrap())
                    }
                    Op::Reopen => unreachable!(),
                };
                let name = format!("team-{team}");
                let seq = log.append_blocking(vec![NewEvent::new(team::team_stream(&name), kind, payload)]).unwrap()[0].seq;
                if kind == team::KIND_CREATED {
                    let Op::Create { agents, .. } = op else { unreachable!() };
                    model.insert(name, ModelTeam {
                        created_seq: seq,
                        phase: TeamPhase::Created,
                        agents: spec(*agents).agents.into_iter().map(|agent| (agent, (None, None, None, None))).collect(),
                        tmux: None,
                        tmux_socket: None,
                        health: None,
                        exports: 0,
                        events: 1,
                        last_seq: seq,
                    });
                    continue;
                }
                // Events of a team never created are not folded.
                let Some(known) = model.get_mut(&name) else { continue };
                known.events += 1;
                known.last_seq = seq;
                match op {
                    Op::Container { agent, event, id, .. } => {
                        let entry = known.agents.entry(AGENTS[usize::from(*agent)].to_string()).or_default();
                        let event = CONTAINER_EVENTS[usize::from(*event)];
                        entry.1 = Some(event);
                        if matches!(event, ContainerEvent::Missing | ContainerEvent::Removed) {
                            entry.0 = None;
                        } else if let Some(id) = id {
                            entry.0 = Some(format!("id-{id}"));
                        }
                    }
                    Op::Tmux { event, private, .. } => {
                        known.tmux = Some(TMUX_EVENTS[usize::from(*event)]);
                        known.tmux_socket = private.then(|| "s".to_string());
                    }
                    Op::Session { agent, session, .. } => {
                        let entry = known.agents.entry(AGENTS[usize::from(*agent)].to_string()).or_default();
                        entry.2 = session.map(|s| format!("s-{s}"));
                        entry.3 = Some(seq);
                    }
                    Op::Phase { kind, .. } => known.phase = [TeamPhase::Resumed, TeamPhase::Stopped, TeamPhase::Removed][usize::from(*kind)],
                    Op::Health { problems, .. } => known.health = Some((seq, u64::from(*problems))),
                    Op::Exported { .. } => known.exports += 1,
                    Op::Dropped { agent, .. } => {
                        known.agents.remove(AGENTS[usize::from(*agent)]);
                    }
                    Op::Create { .. } | Op::Reopen => unreachable!(),
                }
            }
            let registry = TeamRegistry::all(&log).unwrap();
            prop_assert_eq!(registry.len(), model.len());
            for record in &registry {
                let expected = &model[&record.name];
                prop_assert_eq!(record.created_seq, expected.created_seq);
                prop_assert_eq!(record.phase, expected.phase);
                prop_assert_eq!(record.tmux, expected.tmux);
                prop_assert_eq!(&record.tmux_socket, &expected.tmux_socket);
                prop_assert_eq!(record.health_seq.map(|seq| (seq, record.health_problems)), expected.health);
                prop_assert_eq!(record.exports, expected.exports);
                prop_assert_eq!(record.events, expected.events);
                prop_assert_eq!(record.last_seq, expected.last_seq);
                let agents: BTreeMap<String, _> = record
                    .agents
                    .iter()
                    .map(|(name, agent)| (name.clone(), (agent.container_id.clone(), agent.container, agent.session.clone(), agent.session_seq)))
                    .collect();
                prop_assert_eq!(&agents, &expected.agents);
                let spec = TeamRegistry::spec(&log, record).unwrap();
                prop_assert_eq!(&spec.image, "img");
                // The spec's agents are those the team still has.
                prop_assert!(spec.agents.iter().all(|agent| expected.agents.contains_key(agent)));
            }
            let incremental = dump(&log, "teams");
            let reports = log.rebuild_blocking().unwrap();
            prop_assert!(reports.iter().all(|report| report.equal_to_previous), "{:?}", reports);
            prop_assert_eq!(incremental, dump(&log, "teams"));
        }
    }
}

#[test]
fn the_http_api_creates_checks_streams_stops_resumes_and_removes_a_team_and_the_cli_goes_through_it() {
    use crate::serve::Server;
    let engine = Engine::start();
    let tmux = TmuxServer::new();
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = data.path();
    let env = [("DOCKER_HOST", engine.docker_host())];
    let server = Server::start(data, &env, &["--no-archive"]);

    let body = serde_json::json!({
        "name": "web",
        "agents": ["one", "two"],
        "image": IMAGE,
        "cwd": project.path(),
        "keepalive": "sleep 100000",
        "agentCommand": "sh",
        "tmuxSocket": tmux.socket,
    });
    let (status, created) = server.json("POST", "/api/teams", Some(body.clone()));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["agents"].as_array().unwrap().len(), 2);
    assert!(created["attach"].as_str().unwrap().contains(&tmux.socket), "{created}");
    let (status, again) = server.json("POST", "/api/teams", Some(body));
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("team_exists")), "{again}");
    let (status, bad) =
        server.json("POST", "/api/teams", Some(serde_json::json!({"name": "no/slash", "image": IMAGE, "cwd": "/"})));
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}");

    let listed = server.ok("GET", "/api/teams", None);
    assert_eq!(listed[0]["name"], "web");
    assert_eq!(listed[0]["running"], 2);
    let team = server.ok("GET", "/api/teams/web", None);
    assert_eq!(team["healthy"], true, "{team}");
    let (status, missing) = server.json("GET", "/api/teams/nope", None);
    assert_eq!(status, 404, "{missing}");

    // The CLI, while the server owns the directory, goes through it with its own DOCKER_HOST.
    let listed = team_json(data, &engine, &tmux, &["list", "--json"]);
    assert_eq!(listed[0]["name"], "web");

    let stopped = server.ok("POST", "/api/teams/web/stop", Some(serde_json::json!({})));
    assert_eq!(stopped["running"], 0, "{stopped}");
    assert_eq!(engine.state("web-one").as_deref(), Some("exited"));
    let resumed = server.ok("POST", "/api/teams/web/resume", Some(serde_json::json!({})));
    assert_eq!(resumed["tmuxCreated"], true, "{resumed}");
    assert_eq!(engine.state("web-two").as_deref(), Some("running"));

    // The team's history as server-sent events, from its creation on.
    let streamed = std::process::Command::new("curl")
        .args(["-sN", "--max-time", "3"])
        .arg(format!("{}/api/teams/web/stream", server.url))
        .output()
        .unwrap();
    let streamed = String::from_utf8_lossy(&streamed.stdout);
    let events: Vec<Value> = streamed
        .lines()
        .filter_map(|line| line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect();
    assert_eq!(events.first().map(|event| event["kind"].clone()), Some(Value::from("team.created")), "{streamed}");
    assert!(events.iter().all(|event| event["stream"] == "team/web"), "{streamed}");
    assert!(events.iter().any(|event| event["kind"] == "team.stopped"), "{streamed}");

    let (status, _) = server.call("DELETE", "/api/teams/web", None);
    assert_eq!(status, 204);
    assert_eq!(engine.state("web-one"), None);
    let (status, removed) = server.json("GET", "/api/teams/web", None);
    assert_eq!(status, 400, "{removed}");
    assert!(removed["error"]["message"].as_str().unwrap().contains("removed"), "{removed}");
    server.stop();
    verify_intact(data);
}

#[test]
fn two_claude_code_agents_share_the_team_scope_through_the_coordinator() {
    use crate::fake_api::{FakeApi, Reply};
    use crate::serve::Server;
    let tool = |name: &str, input: Value| Reply::ToolUse { name: format!("mcp__cclog__{name}"), input };
    let sign_on_and_store = |agent: &str| {
        vec![
            tool("sign_on", serde_json::json!({"session_id": agent})),
            tool(
                "store_data",
                serde_json::json!({"session_id": agent, "scope": "team:duo", "key": format!("from-{agent}"), "value": format!("hello from {agent}")}),
            ),
            Reply::Text(format!("{agent} stored its value.")),
        ]
    };
    let api = FakeApi::by_prompt(vec![
        ("share-a", sign_on_and_store("a")),
        ("share-b", sign_on_and_store("b")),
        (
            "read-b",
            vec![
                tool("retrieve_data", serde_json::json!({"session_id": "a", "scope": "team:duo", "key": "from-b"})),
                Reply::Text("a read what b stored.".into()),
            ],
        ),
    ]);
    let engine = Engine::start();
    let tmux = TmuxServer::new();
    let data = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let data = data.path();
    let server = Server::start(data, &[("DOCKER_HOST", engine.docker_host())], &["--no-archive"]);
    let create_args = claude_team_args("duo", project.path().to_str().unwrap(), &["a", "b"]);
    let create_args: Vec<&str> = create_args.iter().map(String::as_str).collect();
    team_with_api(data, &engine, &tmux, &api, &create_args);

    for (agent, prompt, answer) in [
        ("a", "share-a", "a stored its value."),
        ("b", "share-b", "b stored its value."),
        ("a", "read-b", "a read what b stored."),
    ] {
        tmux.wait_for("duo", agent, "❯", Duration::from_secs(90))
            .unwrap_or_else(|screen| panic!("{agent} not ready:\n{screen}"));
        tmux.type_line("duo", agent, &format!("please {prompt}"));
        tmux.wait_for("duo", agent, answer, Duration::from_secs(90))
            .unwrap_or_else(|screen| panic!("{agent} did not answer {prompt}:\n{screen}"));
    }
    // What a read: the tool result the model got holds b's value.
    let requests = api.requests();
    let read = requests.iter().find(|request| {
        request["messages"].as_array().unwrap().iter().any(|message| {
            message.to_string().contains("tool_result")
                && message.to_string().contains("hello from b")
                && message.to_string().contains("from-b")
        }) && request.to_string().contains("read-b")
    });
    assert!(read.is_some(), "no request carried b's value back to a");
    // Both writes are in the log, each by its agent's instance, in the shared scope.
    let scopes = crate::support::cclog_json(data, &["kv", "scopes", "--json"]);
    let scope = scopes.as_array().unwrap().iter().filter_map(Value::as_str).find(|scope| scope.ends_with(":team:duo"));
    let scope = scope.unwrap_or_else(|| panic!("no team scope among {scopes}"));
    for agent in ["a", "b"] {
        let written = crate::support::cclog_json(data, &["kv", "get", scope, &format!("from-{agent}"), "--json"]);
        assert_eq!(written["value"], format!("hello from {agent}"), "{written}");
        assert_eq!(written["writer"]["instance"], agent, "{written}");
    }

    // The server archives the agents' transcripts as they are written, with no import asked.
    crate::serve::wait_for("both agents' sessions to be archived", || {
        let listed = crate::support::cclog_json(data, &["sessions", "--team", "duo", "--json"]);
        let agents: Vec<&str> =
            listed.as_array().unwrap().iter().filter_map(|session| session["agent"].as_str()).collect();
        agents.contains(&"a") && agents.contains(&"b")
    });

    // A reboot: containers stopped, tmux gone, the server restarted on another port. The
    // resume points each agent's coordinator at the new server and brings it back in its
    // own session, which can still read what the other agent stored.
    let team_command = |args: &[&str]| team_with_api(data, &engine, &tmux, &api, args);
    team_command(&["stop", "duo"]);
    tmux.kill_server();
    let old_url = server.url.clone();
    server.stop();
    let server = Server::start(data, &[("DOCKER_HOST", engine.docker_host())], &["--no-archive"]);
    assert_ne!(server.url, old_url, "the restarted server listens on another port");
    let resumed: Value = serde_json::from_str(&team_command(&["resume", "duo", "--json"])).unwrap();
    assert!(resumed["agents"][0]["session"].is_string(), "{resumed}");
    let registered = std::fs::read_to_string(data.join("teams/duo/agents/a/.claude.json")).unwrap();
    assert!(registered.contains(&format!("{}/mcp", server.url)), "{registered}");
    tmux.wait_for("duo", "a", "❯", Duration::from_secs(90)).unwrap_or_else(|screen| panic!("a not back:\n{screen}"));
    // Claude Code takes a prompt before its MCP servers have connected; a tool called in that
    // window is answered "No such tool available", which is Claude Code's race, not the
    // coordinator's. Such a try is typed again; any other answer without b's value fails.
    let mut tries = 0;
    'typed: loop {
        tries += 1;
        let before = api.requests().len();
        tmux.type_line("duo", "a", "please read-b again");
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let requests = api.requests();
            let result = requests[before..].iter().find_map(|request| {
                let text = request.to_string();
                let last = request["messages"].as_array()?.last()?.to_string();
                (text.contains("read-b again") && text.contains("please share-a") && last.contains("tool_result"))
                    .then_some(last)
            });
            match result {
                Some(result) if result.contains("hello from b") => break 'typed,
                Some(result) if result.contains("No such tool available") && tries < 4 => {
                    eprintln!("a's coordinator was not connected yet (try {tries}); typing the prompt again");
                    // The reply to that result is on its way; Claude Code queues what is typed meanwhile.
                    std::thread::sleep(Duration::from_secs(3));
                    continue 'typed;
                }
                Some(result) => {
                    panic!("after the resume, a could not read b's value: {result}\n{}", tmux.screen("duo", "a"))
                }
                None => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after the resume, a never called the coordinator:\n{}",
                tmux.screen("duo", "a")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    server.stop();
    verify_intact(data);
}
