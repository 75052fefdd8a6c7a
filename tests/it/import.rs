//! Transcript import end to end with the real Claude Code CLI against the fake Messages
//! API: a session with Write, Bash and Read tool calls, a resume, two forks, a second
//! project whose session starts a subagent. Then `cclog import`, and everything a user
//! relies on: the fork tree, the diff of the two forks, byte-exact `replay --format jsonl`
//! of every file, idempotence, incremental pick-up of appended turns, a fork's storage not
//! growing with its prefix, and live capture linked to the transcript.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::claude_cli::{claude_bin, run_claude};
use crate::fake_api::{FakeApi, Reply};
use crate::support::{cclog, cclog_bin, cclog_command, cclog_json};

fn session_of(lines: &[String]) -> String {
    let init: Value = serde_json::from_str(&lines[0]).unwrap();
    init["session_id"].as_str().unwrap().to_string()
}

fn transcript(home: &Path, cwd: &Path, session: &str) -> PathBuf {
    let mangled: String =
        cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    home.join(".claude/projects").join(mangled).join(format!("{session}.jsonl"))
}

/// Payload bytes per kind of one stream's events.
fn stored_bytes(data: &Path, stream: &str, kind: &str) -> u64 {
    let output = cclog(data, &["log", "--stream", stream, "--json"]);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|event| event["kind"] == kind)
        .map(|event| event["payload_len"].as_u64().unwrap())
        .sum()
}

struct World {
    home: tempfile::TempDir,
    app: PathBuf,
    other: PathBuf,
    api: FakeApi,
}

const TOOLS: &[&str] = &["--allowedTools", "Write,Bash,Read,Agent"];

fn with_tools<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = extra.to_vec();
    args.extend_from_slice(TOOLS);
    args
}

fn world() -> World {
    let home = tempfile::tempdir().unwrap();
    let app = home.path().join("work/app");
    let other = home.path().join("work/other");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let api = FakeApi::by_prompt(vec![
        (
            "alpha",
            vec![
                Reply::ToolUse {
                    name: "Write".into(),
                    input: json!({"file_path": app.join("notes.txt"), "content": "one\ntwo\n"}),
                },
                Reply::ToolUse {
                    name: "Bash".into(),
                    input: json!({"command": "wc -l notes.txt", "description": "count lines"}),
                },
                Reply::ToolUse { name: "Read".into(), input: json!({"file_path": app.join("notes.txt")}) },
                Reply::Text("Wrote, counted and read notes.txt.".into()),
            ],
        ),
        ("beta", vec![Reply::Text("Resumed: still two lines.".into())]),
        (
            "left",
            vec![
                Reply::ToolUse {
                    name: "Write".into(),
                    input: json!({"file_path": app.join("left.txt"), "content": "L\n"}),
                },
                Reply::Text("Left branch wrote left.txt.".into()),
            ],
        ),
        ("right", vec![Reply::Text("Right branch only talks.".into())]),
        ("gamma", vec![Reply::Text("Appended turn.".into())]),
        ("third", vec![Reply::Text("A third fork.".into())]),
        (
            "delegate",
            vec![
                Reply::ToolUse {
                    name: "Agent".into(),
                    input: json!({"description": "sub task", "prompt": "subtask: say hello", "subagent_type": "general-purpose"}),
                },
                Reply::Text("The subagent finished.".into()),
            ],
        ),
        ("subtask", vec![Reply::Text("hello from the subagent".into())]),
    ]);
    World { home, app, other, api }
}

#[test]
fn real_sessions_resumes_and_forks_are_archived_as_pointers_and_replay_byte_for_byte() {
    let w = world();
    let home = w.home.path();
    let data = home.join("cclog-data");
    let projects = home.join(".claude/projects");
    let projects_arg = projects.to_str().unwrap();

    let main_lines = run_claude(&w.api, home, &w.app, "alpha: write, count and read notes", TOOLS);
    let main = session_of(&main_lines);
    assert_eq!(std::fs::read_to_string(w.app.join("notes.txt")).unwrap(), "one\ntwo\n");
    let resumed = run_claude(&w.api, home, &w.app, "beta: check again", &with_tools(&["--resume", &main]));
    assert_eq!(session_of(&resumed), main, "--resume keeps the session id");
    let left = session_of(&run_claude(
        &w.api,
        home,
        &w.app,
        "left branch",
        &with_tools(&["--resume", &main, "--fork-session"]),
    ));
    let right = session_of(&run_claude(
        &w.api,
        home,
        &w.app,
        "right branch",
        &with_tools(&["--resume", &main, "--fork-session"]),
    ));
    let other = session_of(&run_claude(&w.api, home, &w.other, "delegate: use a subagent", TOOLS));
    assert!(w.app.join("left.txt").exists());

    // Import everything.
    let report = cclog_json(&data, &["import", "--json", projects_arg]);
    assert_eq!(report["failed_files"], json!([]));
    assert_eq!(report["malformed_lines"], json!([]));
    assert!(report["files"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["sessions"], 4);
    assert_eq!(report["copy_runs"], 2, "each fork's shared prefix is one pointer: {report}");

    // Sessions, with the fields scripts rely on.
    let sessions = cclog_json(&data, &["sessions", "--json"]);
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 4);
    let by_id = |id: &str| sessions.iter().find(|session| session["id"] == id).unwrap().clone();
    for field in
        ["id", "project", "cwd", "title", "parent", "fork_point", "entries", "first_at", "last_at", "usage", "cost_usd"]
    {
        assert!(sessions.iter().all(|session| session.get(field).is_some()), "missing {field}");
    }
    let main_json = by_id(&main);
    assert_eq!(main_json["cwd"], w.app.to_str().unwrap());
    assert_eq!(main_json["parent"], Value::Null);
    assert!(main_json["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(main_json["cost_usd"].as_f64().is_some_and(|cost| cost > 0.0), "priced: {main_json}");
    let main_last_uuid = {
        let lines = std::fs::read_to_string(transcript(home, &w.app, &main)).unwrap();
        lines
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .rfind(|entry| entry["type"] == "assistant")
            .unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for fork in [&left, &right] {
        let fork_json = by_id(fork);
        assert_eq!(fork_json["parent"], main.as_str());
        assert_eq!(fork_json["fork_point"], main_last_uuid.as_str());
    }
    let other_json = by_id(&other);
    assert_eq!(other_json["subagents"].as_array().unwrap().len(), 1, "{other_json}");
    assert!(other_json["subagents"][0]["tool_use_id"].as_str().is_some(), "the subagent names its tool call");
    assert_eq!(cclog_json(&data, &["sessions", "--json", "--project", "other"]).as_array().unwrap().len(), 1);

    // The fork tree, through a unique id prefix.
    let tree = cclog_json(&data, &["tree", "--json", &left[..8]]);
    assert_eq!(tree[0]["id"], main.as_str());
    let mut children: Vec<&str> =
        tree[0]["children"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    children.sort_unstable();
    let mut expected = vec![left.as_str(), right.as_str()];
    expected.sort_unstable();
    assert_eq!(children, expected);

    // The diff of the two forks.
    let diff = cclog_json(&data, &["diff", "--json", &left, &right]);
    assert_eq!(diff["ancestor"], main.as_str());
    assert_eq!(diff["fork_point"]["uuid"], main_last_uuid.as_str());
    assert_eq!(diff["left"]["session"], left.as_str());
    assert_eq!(diff["right"]["session"], right.as_str());
    assert!(diff["left"]["entries"].as_array().unwrap().len() > diff["right"]["entries"].as_array().unwrap().len());
    assert_eq!(diff["left"]["files_touched"], json!([w.app.join("left.txt")]));
    assert_eq!(diff["right"]["tool_calls"], json!([]));
    assert_eq!(diff["left"]["tool_calls"][0]["name"], "Write");

    // Every file replays byte for byte, forks included, and the subagent's too.
    for (session, cwd) in [(&main, &w.app), (&left, &w.app), (&right, &w.app), (&other, &w.other)] {
        let replayed = cclog(&data, &["replay", session, "--format", "jsonl"]).stdout;
        assert_eq!(replayed, std::fs::read(transcript(home, cwd, session)).unwrap(), "replay of {session}");
    }
    let agent_file = other_json["subagents"][0]["path"].as_str().unwrap();
    let agent = other_json["subagents"][0]["agent"].as_str().unwrap();
    assert_eq!(
        cclog(&data, &["replay", &other, "--format", "jsonl", "--agent", agent]).stdout,
        std::fs::read(agent_file).unwrap()
    );
    let text = String::from_utf8(cclog(&data, &["replay", &main]).stdout).unwrap();
    assert!(
        text.contains("alpha: write, count and read notes")
            && text.contains("→ Bash")
            && text.contains("← tool result"),
        "{text}"
    );
    assert!(!text.contains("\x1b["), "no colour off a terminal");
    let markdown = String::from_utf8(cclog(&data, &["replay", &main, "--format", "markdown"]).stdout).unwrap();
    assert!(markdown.contains("**Write** `") && markdown.contains("*Result:*"), "{markdown}");

    // A second import adds nothing.
    let head_before = cclog_json(&data, &["stats", "--json"])["events"].clone();
    let again = cclog_json(&data, &["import", "--json", projects_arg]);
    assert_eq!((again["new_entries"].as_u64(), again["files_changed"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(cclog_json(&data, &["stats", "--json"])["events"], head_before);

    // Appended turns are picked up incrementally: only the new bytes are read.
    let main_file = transcript(home, &w.app, &main);
    let size_before = std::fs::metadata(&main_file).unwrap().len();
    run_claude(&w.api, home, &w.app, "gamma: one more turn", &with_tools(&["--resume", &main]));
    let size_after = std::fs::metadata(&main_file).unwrap().len();
    let third = session_of(&run_claude(
        &w.api,
        home,
        &w.app,
        "third fork",
        &with_tools(&["--resume", &main, "--fork-session"]),
    ));
    let third_size = std::fs::metadata(transcript(home, &w.app, &third)).unwrap().len();
    let incremental = cclog_json(&data, &["import", "--json", projects_arg]);
    assert_eq!(incremental["revisions"], 0);
    assert_eq!(incremental["bytes_read"].as_u64().unwrap(), size_after - size_before + third_size, "{incremental}");
    assert_eq!(cclog(&data, &["replay", &main, "--format", "jsonl"]).stdout, std::fs::read(&main_file).unwrap());

    // A fork's storage does not grow with the prefix it shares: the third fork shares a
    // longer prefix than the first, and both cost one small pointer.
    let stream = |session: &str| format!("transcript/{}", transcript(home, &w.app, session).display());
    let (first_pointer, third_pointer) = (
        stored_bytes(&data, &stream(&left), "transcript.copy"),
        stored_bytes(&data, &stream(&third), "transcript.copy"),
    );
    let third_shared = by_entries(&data, &third) - by_own(&data, &third);
    let left_shared = by_entries(&data, &left) - by_own(&data, &left);
    assert!(third_shared > left_shared, "the third fork shares more ({third_shared} > {left_shared})");
    assert!(first_pointer > 0 && first_pointer < 1024 && third_pointer < 1024, "{first_pointer} {third_pointer}");
    assert!(
        third_pointer.abs_diff(first_pointer) <= 8,
        "pointer size independent of prefix: {first_pointer} vs {third_pointer}"
    );
    assert_eq!(
        cclog(&data, &["replay", &third, "--format", "jsonl"]).stdout,
        std::fs::read(transcript(home, &w.app, &third)).unwrap()
    );

    // Rebuilt projections equal the live ones, and the log verifies.
    assert_eq!(cclog_json(&data, &["rebuild", "--json"])["equal"], true);
    cclog(&data, &["verify"]);
}

fn by_entries(data: &Path, session: &str) -> u64 {
    cclog_json(data, &["show", "--json", session])["entries"].as_u64().unwrap()
}

fn by_own(data: &Path, session: &str) -> u64 {
    cclog_json(data, &["show", "--json", session])["own_entries"].as_u64().unwrap()
}

#[test]
fn a_real_run_piped_through_capture_is_recorded_byte_for_byte_and_linked_to_its_transcript() {
    let w = world();
    let home = w.home.path();
    let data = home.join("cclog-data");
    let mut claude = Command::new(claude_bin())
        .args(["-p", "alpha: write, count and read notes", "--output-format", "stream-json", "--verbose"])
        .args(TOOLS)
        .current_dir(&w.app)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", w.api.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-fake-key-for-tests")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let capture = Command::new(cclog_bin())
        .arg("--data")
        .arg(&data)
        .args(["capture", "--passthrough", "--json"])
        .stdin(Stdio::from(claude.stdout.take().unwrap()))
        .output()
        .unwrap();
    assert!(claude.wait().unwrap().success());
    assert!(capture.status.success(), "{}", String::from_utf8_lossy(&capture.stderr));
    let passed: Vec<String> = String::from_utf8(capture.stdout.clone()).unwrap().lines().map(str::to_string).collect();
    let summary: Value = serde_json::from_slice(&capture.stderr).unwrap();
    let session = session_of(&passed);
    assert_eq!(summary["session"], session.as_str());
    assert_eq!(summary["status"], "completed");

    // What was recorded is exactly what passed through.
    let run = summary["run"].as_str().unwrap();
    let listed = cclog(&data, &["log", "--stream", &format!("run/{run}"), "--json"]);
    let recorded: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|event| event["kind"] == "run.message")
        .map(|event| serde_json::to_string(&event["payload"]).unwrap())
        .collect();
    let normalised: Vec<String> = passed
        .iter()
        .map(|line| serde_json::to_string(&serde_json::from_str::<Value>(line).unwrap()).unwrap())
        .collect();
    assert_eq!(recorded, normalised);
    let raw = Command::new(cclog_bin())
        .arg("--data")
        .arg(&data)
        .args(["log", "--stream", &format!("run/{run}"), "--json"])
        .output()
        .unwrap();
    let raw_payloads: Vec<String> = String::from_utf8(raw.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.contains("\"run.message\""))
        .map(|line| serde_json::from_str::<RawPayload>(line).unwrap().payload.get().to_string())
        .collect();
    assert_eq!(raw_payloads, passed, "byte for byte");

    // After importing the transcript, the run's messages link to its entries by uuid.
    cclog(&data, &["import", home.join(".claude/projects").to_str().unwrap()]);
    let shown = cclog_json(&data, &["show", "--json", &session]);
    assert_eq!(shown["runs"][0]["id"], run);
    assert_eq!(shown["runs"][0]["messages"].as_u64().unwrap(), passed.len() as u64);
    assert_eq!(shown["runs"][0]["status"], "completed");
    let with_uuid = passed
        .iter()
        .filter(|line| {
            let message: Value = serde_json::from_str(line).unwrap();
            matches!(message["type"].as_str(), Some("assistant" | "user")) && message["uuid"].is_string()
        })
        .count() as u64;
    assert!(with_uuid > 0);
    assert_eq!(shown["runs"][0]["linked_entries"].as_u64().unwrap(), with_uuid, "{shown}");

    // `cclog runs` for people: a header row, the run in 80 columns.
    let table = String::from_utf8(cclog(&data, &["runs"]).stdout).unwrap();
    let mut lines = table.lines();
    assert!(lines.next().is_some_and(|header| header.starts_with("ID        STARTED (")), "{table}");
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with(&run[..8]) && row.contains("completed  capture"), "{table}");
    assert!(table.lines().all(|line| line.chars().count() <= 80), "{table}");
}

/// An event of `cclog log --json` with its payload kept as the exact bytes stored.
#[derive(serde::Deserialize)]
struct RawPayload<'a> {
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
}

/// A line of a transcript for `session`.
fn line_of(session: &str, uuid: &str) -> String {
    format!(
        r#"{{"type":"user","uuid":"{uuid}","parentUuid":null,"sessionId":"{session}","timestamp":"2026-11-21T10:00:00.000Z","message":{{"role":"user","content":"hi"}}}}"#
    )
}

fn fifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

#[test]
fn links_fifos_and_unreadable_paths_are_followed_or_reported_never_fatal() {
    use std::os::unix::fs::symlink;
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let elsewhere = std::fs::canonicalize(elsewhere.path()).unwrap();
    let (here, there) = ("a1111111-1111-4111-8111-111111111111", "b2222222-2222-4222-8222-222222222222");
    let project = root.join("-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join(format!("{here}.jsonl")), line_of(here, "u-here") + "\n").unwrap();
    // A project that lives elsewhere, linked into the root: followed, named by its real path.
    let linked = elsewhere.join("-home-dev-other");
    std::fs::create_dir_all(&linked).unwrap();
    let real_file = linked.join(format!("{there}.jsonl"));
    std::fs::write(&real_file, line_of(there, "u-there") + "\n").unwrap();
    symlink(&linked, root.join("-home-dev-other")).unwrap();
    // A loop, a dangling link and a FIFO with a transcript's name: reported, not fatal.
    symlink(&root, project.join("back-to-the-root")).unwrap();
    symlink(root.join("nothing-here"), project.join("c3333333-3333-4333-8333-333333333333.jsonl")).unwrap();
    fifo(&project.join("d4444444-4444-4444-8444-444444444444.jsonl"));

    let report = cclog_json(data.path(), &["import", root.to_str().unwrap(), "--json"]);
    assert_eq!(report["files"], 2, "{report}");
    let skipped: Vec<(String, String)> = serde_json::from_value(report["skipped"].clone()).unwrap();
    let reason_for = |name: &str| {
        skipped.iter().find(|(path, _)| path.ends_with(name)).map(|(_, reason)| reason.clone()).unwrap_or_default()
    };
    assert!(reason_for("back-to-the-root").contains("already walked"), "{skipped:?}");
    assert!(reason_for("c3333333-3333-4333-8333-333333333333.jsonl").contains("symbolic link"), "{skipped:?}");
    assert!(reason_for("d4444444-4444-4444-8444-444444444444.jsonl").contains("not a regular file"), "{skipped:?}");
    let files = cclog_json(data.path(), &["sessions", "--json"]);
    let paths: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|session| session["files"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    assert!(paths.contains(&real_file.to_str().unwrap()), "{paths:?}");

    // A FIFO given as the root: reported, exit 0, nothing read from it.
    let pipe = elsewhere.join("e5555555-5555-4555-8555-555555555555.jsonl");
    fifo(&pipe);
    let report = cclog_json(data.path(), &["import", pipe.to_str().unwrap(), "--json"]);
    assert_eq!(report["files"], 0, "{report}");
    assert!(report["skipped"][0][1].as_str().unwrap().contains("not a regular file"), "{report}");

    // A directory that cannot be walked any more is not an empty one: what is archived under
    // it is not recorded as deleted — until it is really gone.
    std::fs::rename(&project, elsewhere.join("moved-away")).unwrap();
    symlink(root.join("nowhere"), &project).unwrap();
    let report = cclog_json(data.path(), &["import", root.to_str().unwrap(), "--json"]);
    assert_eq!(report["deleted"], 0, "{report}");
    let skipped_now: Vec<(String, String)> = serde_json::from_value(report["skipped"].clone()).unwrap();
    assert!(skipped_now.iter().any(|(path, _)| path.ends_with("-home-dev-app")), "{skipped_now:?}");
    std::fs::remove_file(&project).unwrap();
    let report = cclog_json(data.path(), &["import", root.to_str().unwrap(), "--json"]);
    assert_eq!(report["deleted"], 1, "{report}");
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Not as root (root reads every directory): an unreadable directory is named.
        let locked = root.join("-home-dev-locked");
        std::fs::create_dir(&locked).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let report = cclog_json(data.path(), &["import", root.to_str().unwrap(), "--json"]);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(report["skipped"].to_string().contains("-home-dev-locked"), "{report}");
    }
}

#[test]
fn files_under_a_directory_are_its_own_not_a_sibling_that_shares_its_name_as_a_prefix() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (app, sibling) = (root.path().join("-home-dev-app"), root.path().join("-home-dev-app2"));
    for (dir, session) in
        [(&app, "a1111111-1111-4111-8111-111111111111"), (&sibling, "b2222222-2222-4222-8222-222222222222")]
    {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{session}.jsonl")), line_of(session, &format!("u-{session}")) + "\n").unwrap();
    }
    let log = crate::support::open(data.path());
    cclog_ingest::import::Importer::new(&log).import(&[root.path().to_path_buf()], &|_| {}).unwrap();
    let under = |dir: &Path| -> Vec<String> {
        cclog_projections::Archive::files_under(&log, dir).unwrap().into_iter().map(|file| file.path).collect()
    };
    let app_file = app.join("a1111111-1111-4111-8111-111111111111.jsonl").display().to_string();
    assert_eq!(under(&app), std::slice::from_ref(&app_file));
    assert_eq!(under(&app.join("")), [app_file], "a trailing slash names the same directory");
    assert_eq!(under(root.path()).len(), 2);
    assert!(under(&root.path().join("-home-dev")).is_empty());
}

#[test]
fn a_rewritten_file_counts_its_current_lines_once() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    let session = "f6666666-6666-4666-8666-666666666666";
    let file = project.join(format!("{session}.jsonl"));
    let lines: Vec<String> = (0..10).map(|index| line_of(session, &format!("u-{index}"))).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    cclog(data.path(), &["import", root.path().to_str().unwrap()]);
    // Rewritten as /rewind does: the first eight kept, three new ones after them.
    let mut rewritten = lines[..8].to_vec();
    rewritten.extend((10..13).map(|index| line_of(session, &format!("u-{index}"))));
    std::fs::write(&file, rewritten.join("\n") + "\n").unwrap();
    let report = cclog_json(data.path(), &["import", root.path().to_str().unwrap(), "--json"]);
    assert_eq!(report["revisions"], 1, "{report}");
    let sessions = cclog_json(data.path(), &["sessions", "--json"]);
    assert_eq!(sessions[0]["entries"], 11, "the current revision's lines, once: {sessions}");
    let rebuilt = cclog_json(data.path(), &["rebuild", "--json"]);
    assert_eq!(rebuilt["equal"], true, "{rebuilt}");
}

/// Every line a JSON parser accepts is an entry: Claude Code 1.0's tool results as plain
/// strings, and a field whose type drifted, cost nothing but that field (counted, so the
/// drift shows), never the line's other facts.
#[test]
fn a_valid_json_line_with_an_unexpected_field_type_is_an_entry_not_malformed() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-home-dev-drift");
    std::fs::create_dir_all(&project).unwrap();
    let session = "f9999999-9999-4999-8999-999999999999";
    let lines = [
        line_of(session, "u-0"),
        format!(
            r#"{{"type":"user","uuid":"u-1","parentUuid":"u-0","sessionId":"{session}","timestamp":"2026-11-21T10:00:01.000Z","toolUseResult":"Error: File does not exist.","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","content":"x"}}]}}}}"#
        ),
        format!(
            r#"{{"type":"user","uuid":"u-2","parentUuid":"u-1","sessionId":"{session}","timestamp":"2026-11-21T10:00:02.000Z","cwd":5,"message":{{"role":"user","content":"next"}}}}"#
        ),
    ];
    std::fs::write(project.join(format!("{session}.jsonl")), lines.join("\n") + "\n").unwrap();
    let report = cclog_json(data.path(), &["import", "--json", root.path().to_str().unwrap()]);
    assert_eq!(report["malformed_lines"], serde_json::json!([]), "{report}");
    let sessions = cclog_json(data.path(), &["sessions", "--json"]);
    assert_eq!(sessions[0]["malformed_lines"], 0, "{sessions}");
    assert_eq!(sessions[0]["user_entries"], 3, "{sessions}");
    assert_eq!(sessions[0]["drifted_fields"], serde_json::json!({"cwd": 1}), "{sessions}");
    // No title entry: the first prompt typed stands in.
    assert_eq!(
        (sessions[0]["title"].as_str(), sessions[0]["title_source"].as_str()),
        (Some("hi"), Some("first-prompt"))
    );
    let text = |args: &[&str]| String::from_utf8_lossy(&cclog(data.path(), args).stdout).into_owned();
    let replay = text(&["replay", session]);
    assert!(replay.contains("next"), "the drifted line is in the conversation: {replay}");
    let show = text(&["show", session]);
    assert!(show.contains("cwd ×1") && !show.contains("malformed"), "{show}");
}

/// A rewrite that changes every line (Claude Code re-serialising its entries) stores each
/// line again; the session still holds ten user entries, not twenty.
#[test]
fn a_rewrite_that_stores_every_line_again_counts_each_entry_once() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-home-dev-count");
    std::fs::create_dir_all(&project).unwrap();
    let session = "f8888888-8888-4888-8888-888888888888";
    let file = project.join(format!("{session}.jsonl"));
    let lines: Vec<String> = (0..10).map(|index| line_of(session, &format!("u-{index}"))).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    cclog(data.path(), &["import", root.path().to_str().unwrap()]);
    let changed: Vec<String> =
        lines.iter().map(|line| line.replace(r#""content":"hi""#, r#""content":"hi again""#)).collect();
    std::fs::write(&file, changed.join("\n") + "\n").unwrap();
    let report = cclog_json(data.path(), &["import", root.path().to_str().unwrap(), "--json"]);
    assert_eq!(report["revisions"], 1, "{report}");
    let sessions = cclog_json(data.path(), &["sessions", "--json"]);
    assert_eq!(sessions[0]["entries"], 10, "{sessions}");
    assert_eq!(sessions[0]["user_entries"], 10, "each entry once: {sessions}");
    let rebuilt = cclog_json(data.path(), &["rebuild", "--json"]);
    assert_eq!(rebuilt["equal"], true, "{rebuilt}");
}

#[test]
fn a_file_that_shrinks_while_it_is_imported_is_reported_and_archived_as_it_is_now() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-home-dev-big");
    std::fs::create_dir_all(&project).unwrap();
    let session = "f7777777-7777-4777-8777-777777777777";
    let file = project.join(format!("{session}.jsonl"));
    // About 80 MB: long enough to be cut while it is read.
    let padding = "p".repeat(4000);
    let mut text = String::with_capacity(81 << 20);
    let mut index = 0;
    while text.len() < 80 << 20 {
        text.push_str(&line_of(session, &format!("u-{index}-{padding}")));
        text.push('\n');
        index += 1;
    }
    std::fs::write(&file, &text).unwrap();
    let mut import = cclog_command(data.path(), &["import", "--json", root.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the import is under way, the file is cut to its first megabyte (mid-line).
    let db = data.path().join("sled").join("db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&db).map_or(0, |meta| meta.len()) < 4 << 20 {
        assert!(import.try_wait().unwrap().is_none(), "the import ended before the file could be cut");
        assert!(std::time::Instant::now() < deadline, "the import never got going");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(1 << 20).unwrap();
    let output = import.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["shrank"][0][0], file.display().to_string(), "{report}");
    assert_eq!(report["shrank"][0][2], 1 << 20, "{report}");
    assert_eq!(report["revisions"], 1, "the cut file is a new revision: {report}");
    // What is archived as the file's current revision is what it holds now.
    let replayed = cclog(data.path(), &["import", "--verify-replay", root.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(stdout.contains("replay: every file gives back its exact bytes"), "{stdout}");
}
