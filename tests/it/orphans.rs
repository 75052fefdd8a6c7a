//! No orphans: when `cclog serve` is killed with SIGKILL during a run, the run's Claude Code
//! process dies with it (a parent-death signal), and the tools it started (in process groups
//! of their own) are killed by the next server, which finds the run recorded as running and
//! its processes by the run id in their environment.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::claude_cli::claude_bin;
use crate::fake_api::{FakeApi, Reply};
use crate::serve::{claude_env, Server};

/// Pids of live processes whose command line contains `needle`.
pub(crate) fn processes_running(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(true);
        if cmdline.contains(needle) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

fn gone_within(pids: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let alive: Vec<&u32> = pids
            .iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
                    .unwrap_or(false)
            })
            .collect();
        if alive.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a run whose model calls the long Bash tool; returns the run's id once the tool's
/// process (found by `needle` in its command line) runs.
fn start_and_wait_for_the_tool(server: &Server, project: &std::path::Path, needle: &str) -> String {
    let body = json!({"cwd": project, "prompt": "long: work", "allowedTools": ["Bash"], "wait": false});
    let run = server.ok("POST", "/api/runs/start", Some(body))["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_running(needle).is_empty() {
        let messages = server.ok("GET", &format!("/api/runs/{run}/messages"), None);
        assert!(Instant::now() < deadline, "the tool never started: {messages}");
        std::thread::sleep(Duration::from_millis(100));
    }
    run
}

#[test]
fn a_killed_server_or_a_cancel_leaves_no_claude_process_or_tool_running() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let project = std::fs::canonicalize(&project).unwrap();
    // A tool that outlives its CLI unless something kills it: a long sleep with a marker
    // (Claude Code refuses a plain `sleep`).
    let marker = format!("{}", 700 + std::process::id() % 200);
    let command = format!("python3 -c 'import time; time.sleep({marker}.{})'", std::process::id() % 1000);
    let needle = format!("time.sleep({marker}.{})", std::process::id() % 1000);
    let api = FakeApi::by_prompt(vec![(
        "long",
        vec![
            Reply::ToolUse { name: "Bash".into(), input: json!({"command": command, "timeout": 600000}) },
            Reply::Text("Done.".into()),
        ],
    )]);
    let env = claude_env(&api, home.path(), &claude_bin());
    let server = Server::start(data.path(), &env, &["--no-archive"]);
    let run = start_and_wait_for_the_tool(&server, &project, &needle);
    // The run's CLI: the process running in this test's project directory.
    let cli_processes: Vec<u32> = processes_running(&claude_bin().display().to_string())
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == project))
        .collect();
    assert_eq!(cli_processes.len(), 1, "the run's Claude Code process is found");
    let tools = processes_running(&needle);

    server.kill();
    let survivors = || -> Vec<String> {
        cli_processes
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .filter(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
            .collect()
    };
    assert!(
        gone_within(&cli_processes, Duration::from_secs(10)),
        "Claude Code outlived the server it ran under: {:?}",
        survivors()
    );

    // The next server finds the run recorded as running and kills what is left of its group.
    let server = Server::start(data.path(), &env, &["--no-archive"]);
    assert!(gone_within(&tools, Duration::from_secs(10)), "the run's tool outlived the restart: {tools:?}");
    let record = server.ok("GET", &format!("/api/runs/{run}"), None);
    assert_eq!(record["status"], "interrupted", "{record}");

    // A cancelled run takes its tools with it too.
    let run = start_and_wait_for_the_tool(&server, &project, &needle);
    let tools = processes_running(&needle);
    let cancelled = server.ok("DELETE", &format!("/api/runs/{run}"), None);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(gone_within(&tools, Duration::from_secs(10)), "the cancelled run's tool kept running: {tools:?}");
    server.stop();
}
