//! The CLI's tables as people read them, on a fixed archive: `cclog sessions` at 80 columns
//! against its snapshot (`tests/it/snapshots/`; `CCLOG_BLESS=1` rewrites it after a change
//! that is meant), newest first, `TZ` honoured, sorting, limits, time windows, and what bad
//! input and an empty match say; `cclog log` rows within 80 columns, cclog's own payloads
//! decoded.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::support::{cclog, cclog_command, cclog_json};

/// One fixed session: `title` is a custom-title line's; `messages` alternate user and
/// assistant, seven minutes apart from `start`.
struct Fixture {
    id: &'static str,
    cwd: &'static str,
    title: Option<&'static str>,
    prompt: &'static str,
    model: &'static str,
    start: &'static str,
    messages: u64,
}

const fn fixture(
    id: &'static str,
    cwd: &'static str,
    title: Option<&'static str>,
    prompt: &'static str,
    model: &'static str,
    start: &'static str,
    messages: u64,
) -> Fixture {
    Fixture { id, cwd, title, prompt, model, start, messages }
}

const SESSIONS: [Fixture; 4] = [
    fixture(
        "0b7c6a1e-5d4f-4e3a-9b2c-1d0e9f8a7b61",
        "/home/dev/src/handy-cli",
        Some("Refactor the argument parser so that subcommands share their global flags"),
        "refactor the parser",
        "claude-sonnet-4-5-20250929",
        "2026-12-01T10:00:00.000Z",
        6,
    ),
    fixture(
        "1c8d7b2f-6e5a-4f4b-8c3d-2e1f0a9b8c72",
        "/home/dev/work/a-very-long-project-directory-name",
        None,
        "why does the build fail on CI but not on my machine?\nmore detail on the second line",
        "claude-sonnet-4-5-20250929",
        "2026-11-20T08:15:00.000Z",
        4,
    ),
    fixture(
        "2d9e8c3a-7f6b-4a5c-9d4e-3f2a1b0c9d83",
        "/srv/app",
        None,
        "ship it",
        "claude-opus-4-1-20250805",
        "2026-11-30T23:30:00.000Z",
        4,
    ),
    fixture(
        "3e0f9d4b-8a7c-4b6d-8e5f-4a3b2c1d0e94",
        "/tmp",
        None,
        "hello",
        "<synthetic>",
        "2026-10-01T12:00:00.000Z",
        2,
    ),
];

fn timestamp(start: &str, minutes: u64) -> String {
    let start: jiff::Timestamp = start.parse().expect("time");
    (start + jiff::SignedDuration::from_mins(minutes as i64)).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Writes the fixed `~/.claude/projects` and imports it into a new data directory.
fn archive(root: &Path) -> std::path::PathBuf {
    let projects = root.join("projects");
    for Fixture { id: session, cwd, title, prompt, model, start, messages } in SESSIONS {
        let folder: String = cwd.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let path = projects.join(folder).join(format!("{session}.jsonl"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut lines: Vec<Value> = Vec::new();
        let mut parent = Value::Null;
        for index in 0..messages {
            let uuid = format!("{}{index:02}", &session[..34]);
            let at = timestamp(start, index * 7);
            let mut line = json!({
                "parentUuid": parent, "isSidechain": false, "userType": "external", "cwd": cwd,
                "sessionId": session, "version": "2.1.329", "uuid": uuid, "timestamp": at,
            });
            if index % 2 == 0 {
                line["type"] = json!("user");
                line["message"] = json!({"role": "user", "content": if index == 0 { prompt } else { "go on" }});
            } else {
                line["type"] = json!("assistant");
                line["message"] = json!({
                    "id": format!("msg_{}_{index}", &session[..8]), "type": "message", "role": "assistant",
                    "model": model, "content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn",
                    "usage": {"input_tokens": 1_200 * (index + 1), "output_tokens": 850 * (index + 1),
                        "cache_creation_input_tokens": 14_000, "cache_read_input_tokens": 120_000 * index},
                });
            }
            parent = json!(uuid);
            lines.push(line);
        }
        if let Some(title) = title {
            lines.push(json!({"type": "custom-title", "customTitle": title, "sessionId": session}));
        }
        let mut file = std::fs::File::create(&path).expect("create");
        for line in &lines {
            writeln!(file, "{}", serde_json::to_string(line).expect("json")).expect("write");
        }
    }
    let data = root.join("data");
    cclog(&data, &["import", projects.to_str().expect("utf-8")]);
    data
}

/// `text` fits 80 columns and equals `tests/it/snapshots/NAME.txt` (`CCLOG_BLESS=1` writes it).
fn matches_snapshot(name: &str, text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{name}: {} columns: {line}", line.chars().count());
    }
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/it/snapshots/{name}.txt"));
    if std::env::var_os("CCLOG_BLESS").is_some() {
        std::fs::write(&snapshot, text).expect("write the snapshot");
    }
    let expected = std::fs::read_to_string(&snapshot).expect("the snapshot (CCLOG_BLESS=1 writes it)");
    assert_eq!(text, expected, "{name} changed; if that is meant, run with CCLOG_BLESS=1\n{text}");
}

/// What `cclog ARGS` prints in an 80-column terminal's environment, in UTC, without colour.
fn at_80_columns(data: &Path, args: &[&str]) -> String {
    let output = cclog_command(data, args).env("COLUMNS", "80").env("TZ", "UTC").env("NO_COLOR", "1").output();
    let output = output.expect("run cclog");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// `cclog sessions ARGS` in an 80-column terminal's environment, in `zone`.
fn sessions(data: &Path, zone: &str, args: &[&str]) -> (i32, String) {
    let mut command = cclog_command(data, &[&["sessions"], args].concat());
    command.env("COLUMNS", "80").env("TZ", zone).env("NO_COLOR", "1");
    let output = command.output().expect("run cclog");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn ids(data: &Path, args: &[&str]) -> Vec<String> {
    let listed = cclog_json(data, &[&["sessions", "--json"], args].concat());
    listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|session| session["id"].as_str().expect("id")[..2].to_string())
        .collect()
}

#[test]
fn the_session_table_fits_80_columns_newest_first_with_totals() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let (code, table) = sessions(&data, "UTC", &[]);
    assert_eq!(code, 0, "{table}");
    matches_snapshot("sessions_80", &table);
    // Full width keeps what 80 columns dropped.
    let (_, wide) = sessions(&data, "UTC", &["--wide"]);
    assert!(wide.contains("0b7c6a1e-5d4f-4e3a-9b2c-1d0e9f8a7b61"), "{wide}");
    assert!(wide.contains("/home/dev/work/a-very-long-project-directory-name"), "{wide}");
    assert!(wide.contains("Refactor the argument parser so that subcommands share their global flags"), "{wide}");
    assert!(wide.lines().next().expect("header").contains("TOKENS"), "{wide}");
}

#[test]
fn sessions_sort_limit_and_keep_to_a_window_in_the_local_zone() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    assert_eq!(ids(&data, &[]), ["0b", "2d", "1c", "3e"], "newest first");
    assert_eq!(ids(&data, &["--reverse"]), ["3e", "1c", "2d", "0b"]);
    assert_eq!(ids(&data, &["--sort", "messages"]), ["0b", "1c", "2d", "3e"]);
    // Opus costs more per token: its one message outweighs the others' several.
    let by_cost = ids(&data, &["--sort", "cost"]);
    assert_eq!(by_cost[0], "2d", "{by_cost:?}");
    assert_eq!(ids(&data, &["--sort", "tokens", "-n", "1"]), ["0b"]);
    assert_eq!(ids(&data, &["--project", "handy"]), ["0b"]);
    // `/srv/app` started at 23:30 UTC on 2026-11-30: that is 2026-12-01 in Tokyo.
    assert_eq!(ids(&data, &["--since", "2026-12-01", "--utc"]), ["0b"]);
    let (code, tokyo) = sessions(&data, "Asia/Tokyo", &["--since", "20261201"]);
    assert_eq!(code, 0, "{tokyo}");
    assert!(tokyo.starts_with("ID         LAST (Asia/Tokyo)"), "{tokyo}");
    assert!(tokyo.contains("2d9e8c3a   2026-12-01 08:51"), "{tokyo}");
    assert!(!tokyo.contains("1c8d7b2f"), "{tokyo}");
    let (_, named) = sessions(&data, "UTC", &["--since", "20261201", "--timezone", "Asia/Tokyo"]);
    assert_eq!(named, tokyo, "--timezone is TZ's equal");
    assert_eq!(ids(&data, &["--until", "2026-11-20"]), ["1c", "3e"]);
    assert_eq!(ids(&data, &["--since", "100000d"]).len(), 4);
    assert!(ids(&data, &["--since", "1m"]).is_empty());
    // A limit cuts the rows, not the totals.
    let (_, limited) = sessions(&data, "UTC", &["-n", "1"]);
    assert!(limited.contains("TOTAL      4 sessions"), "{limited}");
    assert!(limited.contains("1 of 4 shown"), "{limited}");
}

#[test]
fn bad_windows_are_refused_and_an_empty_match_says_what_exists() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    refused(&data, &["sessions", "--since", "last tuesday"], "neither a date");
    refused(&data, &["sessions", "--sort", "size"], "invalid value 'size'");
    refused(&data, &["sessions", "--timezone", "Mars/Olympus"], "not a time zone");
    let (code, said) = sessions(&data, "UTC", &["--project", "nothing-like-it"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("no session matches; 4 sessions archived"), "{said}");
    let (code, said) = sessions(&root.path().join("empty"), "UTC", &[]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("`cclog import` archives your Claude Code history"), "{said}");
}

#[test]
fn log_rows_fit_80_columns_and_show_typed_payloads_decoded() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let mut command = cclog_command(&data, &["log"]);
    let output = command.env("COLUMNS", "80").env("TZ", "UTC").output().expect("run cclog");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    assert!(table.starts_with("    SEQ  TIME (UTC)  STREAM"), "{table}");
    for line in table.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.chars().count());
    }
    // The first event is the first file's revision: postcard, shown as the JSON it means.
    let first = table.lines().nth(1).expect("a row");
    assert!(first.contains("transcript/") && first.contains("revision") && first.contains(r#"{"file":"#), "{first}");
    assert!(!table.contains("\\u{"), "no escaped control bytes: {table}");
    let listed = cclog(&data, &["log", "--limit", "1", "--json"]);
    let event: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(event["payload_decoded"]["revision"], 0, "{event}");
    assert!(event["payload_hex"].is_string() && event.get("payload_text").is_none(), "{event}");

    // Times in the local zone, named in the heading: its abbreviation where its name does
    // not fit the column; at full width RFC 3339 with the offset.
    let at: jiff::Timestamp = event["ts"].as_str().expect("ts").parse().expect("a time");
    let india = jiff::tz::TimeZone::get("Asia/Kolkata").expect("zone");
    let output = cclog_command(&data, &["log", "--limit", "1"]).env("COLUMNS", "80").env("TZ", "Asia/Kolkata").output();
    let table = String::from_utf8(output.expect("run cclog").stdout).expect("utf-8");
    assert!(table.starts_with("    SEQ  TIME (IST)  STREAM"), "{table}");
    let clock = at.to_zoned(india.clone()).strftime("%H:%M:%S").to_string();
    assert!(table.lines().nth(1).expect("a row").contains(&clock), "{clock} in {table}");
    let utc = cclog_command(&data, &["log", "--limit", "1", "--utc"]).env("TZ", "Asia/Kolkata").output();
    let table = String::from_utf8(utc.expect("run cclog").stdout).expect("utf-8");
    assert!(table.starts_with("    SEQ  TIME (UTC)"), "{table}");
    let wide = cclog(&data, &["log", "--limit", "1", "-w", "-z", "Asia/Kolkata"]).stdout;
    let full = at.to_zoned(india).strftime("%Y-%m-%dT%H:%M:%S%.6f+05:30").to_string();
    assert!(String::from_utf8_lossy(&wide).contains(&full), "{full}: {}", String::from_utf8_lossy(&wide));
    refused(&data, &["log", "-z", "Mars/Olympus"], "is not a time zone");
}

#[test]
fn a_session_is_named_by_any_case_of_its_id_or_by_its_transcript() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let id = SESSIONS[0].id;
    let file = format!("{id}.jsonl");
    let tail = format!("-home-dev-src-handy-cli/{file}");
    let path = root.path().join("projects").join(&tail);
    for name in [&id[..8].to_uppercase(), &file, &tail, &path.display().to_string()] {
        let shown = cclog_json(&data, &["show", "--json", "--", name]);
        assert_eq!(shown["id"], id, "{name}");
    }
    refused(&data, &["show", "nothing-like-it"], "no session matches");
    refused(&data, &["show", ""], "matches 4 sessions");
}

/// Runs `cclog ARGS`, which must refuse them as bad input (exit 2) saying `said`.
fn refused(data: &Path, args: &[&str], said: &str) {
    let output = cclog_command(data, args).output().expect("run cclog");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?} is bad input: {stderr}");
    assert!(stderr.contains(said), "{args:?}: {stderr}");
}

#[test]
fn replay_takes_md_and_json_and_says_which_agents_and_revisions_exist() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let id = &SESSIONS[0].id[..8];
    let markdown = cclog(&data, &["replay", id, "-f", "md"]).stdout;
    assert!(String::from_utf8_lossy(&markdown).starts_with("# Refactor the argument parser"), "md is markdown");
    assert_eq!(cclog(&data, &["replay", id, "--json"]).stdout, cclog(&data, &["replay", id, "-f", "jsonl"]).stdout);
    // Each entry's time in the local zone, named, as every table has it.
    let local = cclog_command(&data, &["replay", id]).env("TZ", "Asia/Kolkata").output().expect("run cclog");
    let local = String::from_utf8(local.stdout).expect("utf-8");
    assert!(local.contains("── User 2026-12-01 15:30:00 IST"), "{local}");
    let utc = String::from_utf8(cclog(&data, &["replay", id, "--utc"]).stdout).expect("utf-8");
    assert!(utc.contains("── User 2026-12-01 10:00:00 UTC"), "{utc}");
    refused(&data, &["replay", id, "--agent", "zz"], "has no subagents");
    refused(&data, &["replay", id, "--revision", "1"], "has no revision 1: it has only revision 0");
}

#[test]
fn replay_pages_on_a_terminal_and_never_into_a_pipe() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let paged = root.path().join("paged.txt");
    let pager = format!("cat > {}", paged.display());
    let replay =
        format!("{} --data {} replay {}", crate::support::cclog_bin().display(), data.display(), &SESSIONS[0].id[..8]);
    // `script` (util-linux) gives the command a terminal of its own.
    let on_terminal = std::process::Command::new("script")
        .args(["-qec", &replay, "/dev/null"])
        .env("CCLOG_PAGER", &pager)
        .output()
        .expect("script(1) runs");
    assert!(on_terminal.status.success(), "{on_terminal:?}");
    let through_pager = std::fs::read_to_string(&paged).expect("the pager got the conversation");
    assert!(through_pager.contains("refactor the parser"), "{through_pager}");
    assert!(through_pager.contains("\u{1b}["), "colour, as on the terminal it pages to");
    std::fs::remove_file(&paged).unwrap();
    let piped = cclog_command(&data, &["replay", &SESSIONS[0].id[..8]]).env("CCLOG_PAGER", &pager).output().unwrap();
    assert!(String::from_utf8_lossy(&piped.stdout).contains("refactor the parser"));
    assert!(!paged.exists(), "no pager into a pipe");
}

/// A tool-heavy session: a slash command, a prompt with a heading in it, Edit, MultiEdit,
/// TodoWrite and Bash calls with their results (one holding a code fence).
fn tool_heavy(root: &Path) -> (std::path::PathBuf, &'static str) {
    const ID: &str = "4f1a0e5c-9b8d-4c7e-8f6a-5b4c3d2e1f05";
    let at = |minute: u64| timestamp("2026-12-02T09:00:00.000Z", minute);
    let base = |uuid: &str, kind: &str, minute: u64| {
        json!({"type": kind, "uuid": uuid, "parentUuid": null, "sessionId": ID, "cwd": "/home/dev/src/handy-cli",
            "timestamp": at(minute), "isSidechain": false, "userType": "external", "version": "2.1.329"})
    };
    let user = |uuid: &str, minute: u64, content: Value| {
        let mut line = base(uuid, "user", minute);
        line["message"] = json!({"role": "user", "content": content});
        line
    };
    let call = |uuid: &str, minute: u64, id: &str, name: &str, input: Value| {
        let mut line = base(uuid, "assistant", minute);
        line["message"] = json!({"id": format!("msg_{uuid}"), "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "tool_use", "id": id, "name": name, "input": input}],
            "usage": {"input_tokens": 1000, "output_tokens": 200}});
        line
    };
    let result = |uuid: &str, minute: u64, id: &str, text: &str| {
        user(uuid, minute, json!([{"type": "tool_result", "tool_use_id": id, "content": text}]))
    };
    let mut reply = base("a0", "assistant", 2);
    reply["message"] = json!({"id": "msg_a0", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "## Plan\n\nFirst the parser, then the tests."}],
        "usage": {"input_tokens": 10, "output_tokens": 20}});
    let mut meta = user("m0", 0, json!("Expanded text of the command, written by Claude Code"));
    meta["isMeta"] = json!(true);
    let lines = vec![
        user("c0", 0, json!("<command-message>review</command-message>\n<command-name>/review</command-name>\n<command-args>src/args.rs</command-args>")),
        meta,
        user("p0", 1, json!("## Goal\n\nMake `--json` work on every command.")),
        reply,
        call("a1", 3, "t1", "Edit", json!({"file_path": "/home/dev/src/handy-cli/src/args.rs", "old_string": "let json = false;", "new_string": "let json = args.json;"})),
        result("r1", 3, "t1", "The file has been updated."),
        call("a2", 4, "t2", "MultiEdit", json!({"file_path": "/home/dev/src/handy-cli/src/main.rs", "edits": [
            {"old_string": "fn a() {}", "new_string": "fn a() -> u8 { 0 }"},
            {"old_string": "fn b() {}", "new_string": "fn b() -> u8 { 1 }"}]})),
        result("r2", 4, "t2", "Applied 2 edits."),
        call("a3", 5, "t3", "TodoWrite", json!({"todos": [
            {"content": "Parse --json", "status": "completed", "activeForm": "Parsing"},
            {"content": "Test every command", "status": "in_progress", "activeForm": "Testing"},
            {"content": "Document it", "status": "pending", "activeForm": "Documenting"}]})),
        result("r3", 5, "t3", "Todos have been modified successfully."),
        call("a4", 6, "t4", "Bash", json!({"command": "cargo test"})),
        result("r4", 6, "t4", "running 3 tests\n```\nnot a fence of ours\n```\n# not a heading\ntest result: ok"),
        user("p1", 7, json!("thanks")),
    ];
    let path = root.join("projects/-home-dev-src-handy-cli").join(format!("{ID}.jsonl"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(&path, text).expect("write");
    (path, ID)
}

#[test]
fn markdown_replay_reads_as_a_document_a_parser_agrees_with() {
    use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let (_, id) = tool_heavy(root.path());
    cclog(&data, &["import", root.path().join("projects").to_str().expect("utf-8")]);
    let markdown = String::from_utf8(cclog(&data, &["replay", &id[..8], "-f", "md"]).stdout).expect("utf-8");
    assert!(!markdown.contains("<command-"), "no raw tags: {markdown}");
    assert!(!markdown.contains("Expanded text of the command"), "a command's expansion is not a prompt");
    let mut headings: Vec<(HeadingLevel, String)> = Vec::new();
    let mut code_blocks: Vec<(String, String)> = Vec::new();
    let (mut links, mut checked, mut unchecked, mut html) = (0, 0, 0, 0);
    let mut in_heading: Option<HeadingLevel> = None;
    let mut in_code: Option<String> = None;
    for event in Parser::new_ext(&markdown, Options::ENABLE_TASKLISTS) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                in_heading = Some(level);
                headings.push((level, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => in_heading = None,
            Event::Start(Tag::CodeBlock(kind)) => {
                let language = match kind {
                    CodeBlockKind::Fenced(language) => language.to_string(),
                    CodeBlockKind::Indented => "indented".to_string(),
                };
                in_code = Some(language.clone());
                code_blocks.push((language, String::new()));
            }
            Event::End(TagEnd::CodeBlock) => in_code = None,
            Event::Text(text) | Event::Code(text) => {
                if in_heading.is_some() {
                    headings.last_mut().expect("open heading").1.push_str(&text);
                }
                if in_code.is_some() {
                    code_blocks.last_mut().expect("open block").1.push_str(&text);
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) if dest_url.starts_with('#') => links += 1,
            Event::TaskListMarker(done) => {
                if done {
                    checked += 1
                } else {
                    unchecked += 1
                }
            }
            Event::Html(_) | Event::InlineHtml(_) => html += 1,
            _ => {}
        }
    }
    assert_eq!(in_code, None, "every code block is closed");
    assert_eq!(html, 0, "no raw HTML: {markdown}");
    let outline: Vec<String> = headings.iter().map(|(level, text)| format!("{level:?} {text}")).collect();
    assert_eq!(
        outline,
        [
            "H1 Goal",
            "H2 Contents",
            "H2 1. Command · 09:00:00",
            "H2 2. Prompt · 09:01:00",
            "H4 Goal",
            "H3 Assistant · 09:02:00",
            "H4 Plan",
            "H2 3. Prompt · 09:07:00",
        ],
        "{markdown}"
    );
    assert_eq!(links, 3, "the contents link every prompt");
    assert_eq!((checked, unchecked), (1, 2), "TodoWrite as a checklist");
    let diffs: Vec<&String> =
        code_blocks.iter().filter(|(language, _)| language == "diff").map(|(_, text)| text).collect();
    assert_eq!(diffs.len(), 2, "Edit and MultiEdit as diffs: {code_blocks:?}");
    assert!(diffs[0].contains("-let json = false;\n+let json = args.json;"), "{}", diffs[0]);
    assert!(diffs[1].contains("+fn b() -> u8 { 1 }"), "{}", diffs[1]);
    assert!(
        code_blocks.iter().any(|(_, text)| text.contains("not a fence of ours\n```\n# not a heading")),
        "{code_blocks:?}"
    );
    assert!(markdown.contains("- **Models** claude-sonnet-4-5-20250929"), "{markdown}");
    // --depth user: only what a person typed.
    let prompts = String::from_utf8(cclog(&data, &["replay", &id[..8], "-f", "md", "--depth", "user"]).stdout).unwrap();
    assert!(!prompts.contains("### Assistant") && prompts.contains("## 3. Prompt"), "{prompts}");
    let replies =
        String::from_utf8(cclog(&data, &["replay", &id[..8], "-f", "md", "--depth", "assistant"]).stdout).unwrap();
    assert!(replies.contains("First the parser") && !replies.contains("**Edit**"), "{replies}");
}

/// The session of the run [`capture_run`] records.
const CAPTURED_SESSION: &str = "5a2b1c0d-0e9f-4a8b-9c7d-6e5f4a3b2c10";

/// Records a one-answer run with `cclog capture`; its summary.
fn capture_run(data: &Path) -> Value {
    let session = CAPTURED_SESSION;
    let stream = [
        json!({"type": "system", "subtype": "init", "session_id": session, "model": "claude-sonnet-4-5-20250929", "cwd": "/srv/app"}),
        json!({"type": "assistant", "session_id": session, "message": {"id": "msg_1", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "4"}]}}),
        json!({"type": "result", "subtype": "success", "is_error": false, "result": "4", "session_id": session,
            "duration_ms": 2360, "num_turns": 1, "total_cost_usd": 0.01,
            "usage": {"input_tokens": 10, "output_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            "modelUsage": {"claude-sonnet-4-5-20250929": {"inputTokens": 10, "outputTokens": 25}}}),
    ];
    let mut capture = cclog_command(data, &["capture", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cclog capture");
    let mut stdin = capture.stdin.take().expect("stdin");
    for line in &stream {
        writeln!(stdin, "{line}").expect("write");
    }
    drop(stdin);
    let captured = capture.wait_with_output().expect("capture ends");
    assert!(captured.status.success());
    serde_json::from_slice(&captured.stdout).expect("the capture's summary")
}

/// Every key of `value` that is not in snake_case, as a path; what is data (a key-value's
/// value, Claude Code's own result message) is not looked into.
fn keys_not_in_snake_case(value: &Value, path: &str, found: &mut Vec<String>) {
    const DATA: [&str; 4] = ["value", "result_json", "message", "payload"];
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let at = format!("{path}.{key}");
                if key.chars().any(|c| c.is_ascii_uppercase()) {
                    found.push(at.clone());
                }
                if !DATA.contains(&key.as_str()) {
                    keys_not_in_snake_case(inner, &at, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys_not_in_snake_case(item, &format!("{path}[]"), found)),
        _ => {}
    }
}

/// One JSON style for every `--json` (snake_case, as `sessions --json` has it), runs and
/// teams included though the API names them in camelCase; data keeps its own keys. `usage`
/// alone speaks ccusage's JSON, for the tools that read ccusage's.
#[test]
fn every_json_output_names_its_fields_in_snake_case_and_keeps_data_as_it_is() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let session = CAPTURED_SESSION;
    let run = capture_run(&data);
    cclog(&data, &["kv", "set", "dev:app:team", "plan", r#"{"nextStep": "ship", "ownerId": 7}"#]);
    cclog(&data, &["kv", "set", "dev:app:team", "plan", r#"{"nextStep": "done"}"#]);
    let first = SESSIONS[0].id;
    let projects = root.path().join("projects");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sessions"],
        vec!["show", first],
        vec!["show", session],
        vec!["tree"],
        vec!["diff", first, SESSIONS[1].id],
        vec!["log", "--limit", "40"],
        vec!["stats"],
        vec!["verify"],
        vec!["rebuild"],
        vec!["runs"],
        vec!["kv", "scopes"],
        vec!["kv", "ls", "dev:app:team"],
        vec!["kv", "get", "dev:app:team", "plan"],
        vec!["kv", "history", "dev:app:team", "plan"],
        vec!["plan", "list"],
        vec!["team", "list"],
        vec!["mcp", "--check-config"],
        vec!["import", projects.to_str().expect("utf-8")],
    ];
    let mut printed = vec![("capture".to_string(), run)];
    for args in commands {
        let output = cclog(&data, &[args.as_slice(), &["--json"]].concat());
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        assert!(!stdout.trim().is_empty(), "{args:?} printed nothing");
        for line in stdout.lines() {
            let value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{args:?}: {error}: {line}"));
            printed.push((args.join(" "), value));
        }
    }
    let mut found = Vec::new();
    for (command, value) in &printed {
        keys_not_in_snake_case(value, command, &mut found);
    }
    assert!(found.is_empty(), "keys not in snake_case: {found:#?}");

    // Data keeps its keys: Claude Code's result message, and a key-value's value.
    let runs = cclog_json(&data, &["runs", "--json"]);
    let result = &runs[0]["result_json"];
    assert_eq!(result["modelUsage"]["claude-sonnet-4-5-20250929"]["inputTokens"], 10, "{runs}");
    assert_eq!(runs[0]["session_id"], session, "{runs}");
    let history = cclog_json(&data, &["kv", "history", "dev:app:team", "plan", "--json"]);
    assert_eq!(history[0]["value"]["nextStep"], "ship", "{history}");
    assert_eq!(history[0]["value"]["ownerId"], 7, "{history}");
    // `usage` is ccusage's JSON, field for field.
    let usage = cclog_json(&data, &["usage", "daily", "--json"]);
    assert!(usage["totals"]["totalTokens"].is_u64(), "{usage}");
}

/// Every table people read, at 80 columns, against its snapshot: usage reports (with a
/// model breakdown), a session, the fork tree, a diff, runs, a key's history and the log —
/// what depends on when the test runs (a run's id and start, import times) masked.
#[test]
fn every_table_fits_80_columns_and_matches_its_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let data = archive(root.path());
    let first = SESSIONS[0].id;
    for (name, args) in [
        ("usage_daily_80", vec!["usage", "daily", "--breakdown", "--timezone", "UTC"]),
        ("usage_monthly_80", vec!["usage", "monthly", "--timezone", "UTC"]),
        ("usage_session_80", vec!["usage", "session", "--timezone", "UTC"]),
        ("usage_blocks_80", vec!["usage", "blocks", "--timezone", "UTC"]),
        ("show_80", vec!["show", first]),
        ("tree_80", vec!["tree"]),
        ("diff_80", vec!["diff", first, SESSIONS[2].id]),
    ] {
        matches_snapshot(name, &at_80_columns(&data, &args));
    }

    let run = capture_run(&data);
    let listed = cclog_json(&data, &["runs", "--json"]);
    let started = listed[0]["created_at"].as_str().expect("a start");
    let started = jiff::Timestamp::from_str(started).expect("a time").strftime("%Y-%m-%d %H:%M").to_string();
    let run_id = &run["run"].as_str().expect("a run id")[..8];
    let runs = at_80_columns(&data, &["runs"]).replace(run_id, "RUN-ID..").replace(&started, "YYYY-MM-DD HH:MM");
    matches_snapshot("runs_80", &runs);

    cclog(&data, &["kv", "set", "dev:app:team", "plan", r#"{"next": "ship the parser refactor", "owner": "a"}"#]);
    cclog(&data, &["kv", "rm", "dev:app:team", "plan"]);
    let history = at_80_columns(&data, &["kv", "history", "dev:app:team", "plan"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].starts_with("VERSION  AT (UTC)") && lines[0].contains("SEQ") && lines[0].ends_with("VALUE"),
        "{history}"
    );
    assert!(lines[1].contains("cli@") && lines[1].contains(r#"{"next":"ship the parser"#), "{history}");
    assert!(lines[2].contains("(deleted)"), "{history}");
    assert!(history.lines().all(|line| line.chars().count() <= 80), "{history}");

    let events = cclog(&data, &["log", "--limit", "12", "--json"]).stdout;
    let mut log = at_80_columns(&data, &["log", "--limit", "12"]);
    for event in String::from_utf8_lossy(&events).lines() {
        let event: Value = serde_json::from_str(event).expect("json");
        let at = jiff::Timestamp::from_str(event["ts"].as_str().expect("ts")).expect("a time");
        log = log.replace(&at.strftime("%H:%M:%S").to_string(), "HH:MM:SS");
    }
    matches_snapshot("log_80", &log);
}
