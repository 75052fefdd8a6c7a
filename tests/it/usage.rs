//! Usage reports against the real ccusage (npm `ccusage`, pinned and installed by
//! `scripts/test`): a generated `~/.claude/projects` of several projects, models, 5-minute and
//! 1-hour cache writes, long-context requests, fast mode, subagents, streamed messages
//! written as several lines, an unpriced model and activity around midnight and a month's
//! end. Every session's, day's, month's and 5-hour block's tokens equal ccusage's, and its
//! cost is within $0.000001.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::serve::Server;
use crate::support::{cclog, cclog_command, cclog_json};

/// The ccusage `scripts/test` installs, or `CCLOG_TEST_CCUSAGE_BIN`.
fn ccusage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CCLOG_TEST_CCUSAGE_BIN") {
        return PathBuf::from(bin);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/ccusage/node_modules/.bin/ccusage");
    assert!(bin.exists(), "{} is missing: scripts/test installs the pinned ccusage from npm", bin.display());
    bin
}

const MODELS: &[&str] = &[
    "claude-opus-4-6",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-20250514",
];
const UNPRICED: &str = "claude-nonesuch-1";

/// One assistant request of a generated transcript.
fn assistant_line(rng: &mut StdRng, session: &str, at_ms: i64, model: &str, sidechain: bool, index: u64) -> Vec<Value> {
    let long_context = rng.random_bool(0.12);
    let input: u64 = if long_context { rng.random_range(150_000..420_000) } else { rng.random_range(1..6_000) };
    let cache_read: u64 = if long_context { rng.random_range(0..320_000) } else { rng.random_range(0..90_000) };
    let write_5m: u64 = rng.random_range(0..30_000);
    let write_1h: u64 = if rng.random_bool(0.5) { rng.random_range(0..60_000) } else { 0 };
    let mut usage = json!({
        "input_tokens": input,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": cache_read,
        "output_tokens": rng.random_range(1..4_000u64),
        "service_tier": "standard",
    });
    // Newer Claude Code records the split of cache writes; older releases only the sum.
    if rng.random_bool(0.8) {
        usage["cache_creation"] = json!({"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h});
    } else {
        usage["cache_creation_input_tokens"] = json!(write_5m);
    }
    if model == "claude-opus-4-6" && rng.random_bool(0.15) {
        usage["speed"] = json!("fast");
    }
    let id = format!("msg_{session}_{index}");
    let timestamp =
        jiff::Timestamp::from_millisecond(at_ms).expect("time").strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    // Claude Code writes a streamed message as one line per content block, each with the
    // message's id and usage.
    let blocks = rng.random_range(1..=3);
    (0..blocks)
        .map(|block| {
            json!({
                "parentUuid": null, "isSidechain": sidechain, "userType": "external", "cwd": "/home/dev/app",
                "sessionId": session, "version": "2.1.329", "type": "assistant",
                "uuid": format!("{session}-{index}-{block}"), "timestamp": timestamp,
                "requestId": format!("req_{session}_{index}"),
                "message": {"id": id, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "working on it"}], "stop_reason": null, "usage": usage},
            })
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[Value]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    let mut file = std::fs::File::create(path).expect("create");
    for line in lines {
        // Compact JSON, as Claude Code writes it.
        writeln!(file, "{}", serde_json::to_string(line).expect("json")).expect("write");
    }
}

/// Writes the projects tree; returns the sessions' ids.
fn generate_history(projects: &Path) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(20261202);
    // 2026-10-29T22:00Z: the sessions run across the end of October and around midnights.
    let base_ms = 1_793_311_200_000_i64;
    let mut sessions = Vec::new();
    for number in 0..14u32 {
        let session = format!("5e55{number:04x}-0000-4000-8000-{:012x}", 0xabc000 + number);
        let project = ["-home-dev-alpha", "-home-dev-beta", "-home-dev-gamma"][number as usize % 3];
        let mut at_ms = base_ms + i64::from(number) * 9 * 3_600_000 + rng.random_range(0..3_600_000);
        let mut model = if number == 13 { UNPRICED } else { MODELS[number as usize % MODELS.len()] };
        let mut lines = vec![json!({
            "parentUuid": null, "isSidechain": false, "type": "user", "sessionId": session, "cwd": "/home/dev/app",
            "uuid": format!("{session}-prompt"), "version": "2.1.329",
            "timestamp": jiff::Timestamp::from_millisecond(at_ms).expect("time").to_string(),
            "message": {"role": "user", "content": format!("Task {number}")},
        })];
        for index in 0..rng.random_range(8..40u64) {
            // Mostly minutes apart; now and then a pause of hours (a new 5-hour block, or a gap).
            at_ms += if rng.random_bool(0.08) {
                rng.random_range(3..9) * 3_600_000
            } else {
                rng.random_range(5_000..1_500_000)
            };
            if number != 13 && rng.random_bool(0.1) {
                model = MODELS[rng.random_range(0..MODELS.len())];
            }
            lines.extend(assistant_line(&mut rng, &session, at_ms, model, false, index));
        }
        write_lines(&projects.join(project).join(format!("{session}.jsonl")), &lines);
        if number % 3 == 0 {
            // A subagent: its own file under the session's folder, its usage the session's.
            let mut agent_lines = Vec::new();
            for index in 0..rng.random_range(3..10u64) {
                at_ms += rng.random_range(5_000..300_000);
                let model = "claude-haiku-4-5-20251001";
                agent_lines.extend(assistant_line(&mut rng, &session, at_ms, model, true, 1000 + index));
            }
            let agent = projects.join(project).join(&session).join("subagents").join(format!("agent-a{number}.jsonl"));
            write_lines(&agent, &agent_lines);
        }
        sessions.push(session);
    }
    sessions
}

fn ccusage(config: &Path, scratch: &Path, report: &str) -> Value {
    let output = Command::new(ccusage_bin())
        .args(["claude", report, "--json", "--offline", "--timezone", "UTC"])
        .env("CLAUDE_CONFIG_DIR", config)
        .env("HOME", scratch)
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .env("TZ", "UTC")
        .output()
        .expect("ccusage runs");
    assert!(output.status.success(), "ccusage {report}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("ccusage prints JSON")
}

const TOKEN_FIELDS: &[&str] = &["inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens"];

fn by<'a>(rows: &'a Value, key: &str) -> BTreeMap<String, &'a Value> {
    rows.as_array().expect("rows").iter().map(|row| (row[key].as_str().expect("a key").to_string(), row)).collect()
}

/// `ours` and `theirs` have the same rows, tokens and (within a millionth of a dollar) costs.
fn assert_same_rows(what: &str, ours: &Value, theirs: &Value, key: &str, fields: &[&str], cost: &str) {
    let (ours, theirs) = (by(ours, key), by(theirs, key));
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{what}: the same rows");
    for (label, their) in &theirs {
        let our = ours[label];
        for field in fields {
            let pointer = format!("/{}", field.replace('.', "/"));
            assert_eq!(our.pointer(&pointer), their.pointer(&pointer), "{what} {label}: {field}");
        }
        let their_cost = their[cost].as_f64().expect("ccusage's cost");
        // ccusage prices an unknown model at $0; cclog leaves it out (null when nothing is priced).
        let our_cost = our[cost].as_f64().unwrap_or(0.0);
        assert!(
            (our_cost - their_cost).abs() < 1e-6,
            "{what} {label}: cost ${our_cost} against ccusage's ${their_cost}"
        );
    }
}

#[test]
fn reports_equal_ccusages_to_the_millionth_of_a_dollar() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join(".claude");
    let sessions = generate_history(&config.join("projects"));
    let data = home.path().join("data");
    cclog(&data, &["import", config.join("projects").to_str().expect("utf-8")]);

    let theirs = ccusage(&config, home.path(), "session");
    let ours = cclog_json(&data, &["usage", "session", "--json"]);
    assert_eq!(ours["sessions"].as_array().map(Vec::len), Some(sessions.len()));
    assert_same_rows("session", &ours["sessions"], &theirs["sessions"], "sessionId", TOKEN_FIELDS, "totalCost");
    for (field, their) in theirs["totals"].as_object().expect("totals") {
        if field != "totalCost" {
            assert_eq!(&ours["totals"][field], their, "session totals: {field}");
        }
    }
    assert_eq!(ours["totals"]["unpricedModels"], json!([UNPRICED]));
    let unpriced = by(&ours["sessions"], "sessionId")[&sessions[13]].clone();
    assert_eq!(unpriced["totalCost"], Value::Null, "a session of an unpriced model has no cost");

    for (report, key) in [("daily", "date"), ("monthly", "month")] {
        let theirs = ccusage(&config, home.path(), report);
        let ours = cclog_json(&data, &["usage", report, "--json", "--timezone", "UTC"]);
        assert!(by(&theirs[report], key).len() >= if report == "daily" { 5 } else { 2 }, "{report}: {theirs}");
        assert_same_rows(report, &ours[report], &theirs[report], key, TOKEN_FIELDS, "totalCost");
        // Per model, too.
        for (label, their) in by(&theirs[report], key) {
            let our = by(&ours[report], key)[&label];
            let models = |row: &Value| by(&row["modelBreakdowns"], "modelName").into_keys().collect::<Vec<_>>();
            assert_eq!(models(our), models(their), "{report} {label}: models");
            let fields = &TOKEN_FIELDS[..4];
            assert_same_rows(report, &our["modelBreakdowns"], &their["modelBreakdowns"], "modelName", fields, "cost");
        }
    }

    let theirs = ccusage(&config, home.path(), "blocks");
    let ours = cclog_json(&data, &["usage", "blocks", "--json", "--timezone", "UTC"]);
    let fields = [
        "startTime",
        "endTime",
        "actualEndTime",
        "isGap",
        "entries",
        "tokenCounts.inputTokens",
        "tokenCounts.outputTokens",
        "tokenCounts.cacheCreationInputTokens",
        "tokenCounts.cacheReadInputTokens",
        "totalTokens",
    ];
    assert!(theirs["blocks"].as_array().is_some_and(|blocks| blocks.len() > 5), "{theirs}");
    assert_same_rows("block", &ours["blocks"], &theirs["blocks"], "id", &fields, "costUSD");

    // The same numbers over HTTP, and from `cclog usage` run by the server that owns the
    // directory.
    let server = Server::start(&data, &[], &["--no-archive"]);
    for (group, report) in [("day", "daily"), ("month", "monthly"), ("session", "session"), ("block", "blocks")] {
        let api = server.ok("GET", &format!("/api/usage?group={group}&timezone=UTC"), None);
        let cli = cclog_json(&data, &["usage", report, "--json", "--timezone", "UTC"]);
        let key = if report == "session" { "sessions" } else { report };
        assert_eq!(api[key], cli[key], "/api/usage?group={group}");
        assert_eq!(api["totals"], cli["totals"], "/api/usage?group={group}");
    }
    let (status, body) = server.json("GET", "/api/usage?group=week", None);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, _) = server.json("GET", "/api/usage?since=2026-02-30", None);
    assert_eq!(status, 400);
    server.stop();
}

#[test]
fn usage_reports_filter_and_refuse_what_is_not_a_date_or_zone() {
    let home = tempfile::tempdir().expect("tempdir");
    let projects = home.path().join("projects");
    generate_history(&projects);
    let data = home.path().join("data");
    cclog(&data, &["import", projects.to_str().expect("utf-8")]);

    let all = cclog_json(&data, &["usage", "daily", "--json", "--timezone", "UTC"]);
    let days: Vec<&str> =
        all["daily"].as_array().expect("days").iter().filter_map(|day| day["date"].as_str()).collect();
    let (second, third) = (days[1], days[2]);
    let some = cclog_json(
        &data,
        &["usage", "daily", "--json", "--timezone", "UTC", "--since", second, "--until", &third.replace('-', "")],
    );
    let kept: Vec<&str> =
        some["daily"].as_array().expect("days").iter().filter_map(|day| day["date"].as_str()).collect();
    assert_eq!(kept, vec![second, third]);

    // A project by a unique part of its name; its days hold only its sessions' usage.
    let beta = cclog_json(&data, &["usage", "monthly", "--json", "--project", "beta"]);
    let everything = cclog_json(&data, &["usage", "monthly", "--json"]);
    let tokens = |report: &Value| report["totals"]["totalTokens"].as_u64().expect("tokens");
    assert!(tokens(&beta) > 0 && tokens(&beta) < tokens(&everything));

    // Other time zones move requests to other days, never lose them.
    let tokyo = cclog_json(&data, &["usage", "daily", "--json", "--timezone", "Asia/Tokyo"]);
    assert_eq!(tokens(&tokyo), tokens(&all));
    assert_ne!(tokyo["daily"], all["daily"]);

    for (args, says) in [
        (&["usage", "daily", "--since", "2026-02-30"][..], "not a date"),
        (&["usage", "daily", "--timezone", "Mars/Olympus"][..], "not a time zone"),
        (&["usage", "daily", "--project", "dev"][..], "matches 3"),
        (&["usage", "daily", "--pricing", "/nonexistent/prices.json"][..], "cannot read"),
    ] {
        let output = cclog_command(&data, args).output().expect("cclog runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(says), "{args:?}: {stderr}");
    }

    // Every JSON line is read, spaces or not, and a message counts once even when one of
    // its lines lacks the requestId (ccusage counts both of those differently).
    let odd = home.path().join("odd").join("-home-dev-odd");
    std::fs::create_dir_all(&odd).expect("mkdir");
    let session = "0dd00000-0000-4000-8000-000000000001";
    let line = |uuid: &str, request: &str, output: u64| {
        format!(
            r#"{{"type": "assistant", "uuid": "{uuid}", "sessionId": "{session}", "timestamp": "2026-11-30T10:00:00.000Z",{request} "message": {{"id": "msg_odd", "model": "claude-sonnet-4", "role": "assistant", "content": [], "usage": {{"input_tokens": 4, "output_tokens": {output}}}}}}}"#
        )
    };
    let text = [line("a", r#" "requestId": "req_odd","#, 1), line("b", "", 99)].join(
        "
",
    ) + "
";
    std::fs::write(odd.join(format!("{session}.jsonl")), text).expect("write");
    let odd_data = home.path().join("odd-data");
    cclog(&odd_data, &["import", home.path().join("odd").to_str().expect("utf-8")]);
    let odd_report = cclog_json(&odd_data, &["usage", "session", "--json"]);
    assert_eq!(odd_report["totals"]["inputTokens"], 4, "{odd_report}");
    assert_eq!(odd_report["totals"]["outputTokens"], 99, "the last snapshot: {odd_report}");
    let undated_cost = odd_report["totals"]["totalCost"].as_f64().expect("claude-sonnet-4 is priced as its dated row");
    assert!((undated_cost - (4.0 * 3e-6 + 99.0 * 15e-6)).abs() < 1e-12, "{odd_report}");

    // A table of its own prices the same tokens differently; the text table fits 80 columns.
    let table = home.path().join("prices.json");
    std::fs::write(&table, r#"{"claude-opus-4-6": {"input_cost_per_token": 1e-3, "output_cost_per_token": 1e-3}}"#)
        .expect("write");
    let repriced = cclog_json(&data, &["usage", "monthly", "--json", "--pricing", table.to_str().expect("utf-8")]);
    assert_eq!(tokens(&repriced), tokens(&everything));
    assert_ne!(repriced["totals"]["totalCost"], everything["totals"]["totalCost"]);
    assert!(repriced["totals"]["unpricedModels"].as_array().is_some_and(|models| models.len() > 1));
    for report in ["daily", "monthly", "session", "blocks"] {
        let output = cclog(&data, &["usage", report, "--breakdown"]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.lines().all(|line| line.chars().count() <= 80), "{report}:\n{text}");
        // Nothing a row says is cut off: each (but a gap) ends with its cost, or names its project.
        let rows = text.lines().skip(1).filter(|line| !line.contains("times in") && !line.contains(" gap "));
        for line in rows {
            let cost = line.split_whitespace().find_map(|cell| cell.strip_prefix('$'));
            let whole = cost.is_some_and(|cost| {
                cost.split_once('.').is_some_and(|(dollars, cents)| {
                    !dollars.is_empty()
                        && cents.len() == 2
                        && cost.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.')
                })
            }) || line.contains(" unpriced");
            assert!(whole, "{report}: a row without its cost:\n{text}");
        }
        assert!(text.lines().last().is_some_and(|line| line.contains("times in")), "{report}:\n{text}");
    }
}
