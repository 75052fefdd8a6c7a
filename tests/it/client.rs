//! Every command keeps working while `cclog serve` owns the data directory: the client finds
//! the server through `server.json`, the server runs the command on its own log and streams
//! the output back. What a command prints through the server is what it prints on its own;
//! a client that goes away stops its command, and a server shutting down ends long-running
//! commands and event streams instead of waiting for them forever.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::serve::Server;
use crate::support::cclog_bin;
use crate::watch::{append, entries, Running, SESSION};

fn cclog_in(dir: &Path, data: &Path, args: &[&str]) -> Output {
    cclog_in_zone(dir, data, "UTC", args)
}

/// [`cclog_in`] with `TZ` set to `zone`.
fn cclog_in_zone(dir: &Path, data: &Path, zone: &str, args: &[&str]) -> Output {
    let mut command = Command::new(cclog_bin());
    command.current_dir(dir).arg("--data").arg(data).args(args).env("NO_COLOR", "1").env("TZ", zone);
    command.output().unwrap()
}

fn ok(output: Output, what: &str) -> Vec<u8> {
    assert!(output.status.success(), "{what}: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[test]
fn commands_run_through_the_server_and_print_what_they_print_alone() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let projects = home.path().join("projects/-home-dev-app");
    std::fs::create_dir_all(&projects).unwrap();
    let transcript = projects.join(format!("{SESSION}.jsonl"));
    append(&transcript, &entries(SESSION, 0, 6));
    let server = Server::start(
        data.path(),
        &[("HOME", home.path().display().to_string()), ("TZ", "UTC".to_string())],
        &["--no-archive"],
    );
    let d = data.path();
    let h = home.path();

    // A relative path is the client's: it is resolved before the command travels.
    let imported: Value =
        serde_json::from_slice(&ok(cclog_in(h, d, &["import", "projects", "--json"]), "import")).unwrap();
    assert_eq!(imported["new_entries"], 6, "{imported}");
    let sessions: Value = serde_json::from_slice(&ok(cclog_in(h, d, &["sessions", "--json"]), "sessions")).unwrap();
    assert_eq!(sessions[0]["id"], SESSION);
    assert_eq!(sessions[0]["entries"], 6);
    let replayed = ok(cclog_in(h, d, &["replay", &SESSION[..8], "--format", "jsonl"]), "replay");
    assert_eq!(replayed, std::fs::read(&transcript).unwrap(), "replay through the server is byte for byte");
    let verified: Value = serde_json::from_slice(&ok(cclog_in(h, d, &["verify", "--json"]), "verify")).unwrap();
    assert_eq!(verified["intact"], true);
    // Errors keep their message and exit code.
    let missing = cclog_in(h, d, &["show", "nope"]);
    assert_eq!(missing.status.code(), Some(2), "an id that names nothing is bad input");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session matches \"nope\""));
    // A command that reads this process's stdin is not sent; it says who owns the directory.
    let append_here = cclog_in(h, d, &["append", "--stream", "s", "--kind", "k"]);
    assert_eq!(append_here.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&append_here.stderr).contains(&server.url));

    // --follow through the server: what is written to the transcript arrives here.
    let mut follow = Running::spawn(d, &["replay", SESSION, "--format", "jsonl", "--follow"]);
    for _ in 0..6 {
        follow.next_line("the recorded entries");
    }
    append(&transcript, &entries(SESSION, 6, 7));
    let new_line = follow.next_line("the appended entry");
    assert!(new_line.contains(&format!("{SESSION}-0006")), "{new_line}");
    // The client goes away: the server stops its command (else shutting down would wait).
    follow.interrupt_or_die();

    // One follow and one event stream still open while the server shuts down: both end.
    let mut lingering = Running::spawn(d, &["replay", SESSION, "--format", "jsonl", "--follow"]);
    lingering.next_line("the lingering follow's first entry");
    let events = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    {
        use std::io::Write;
        let mut events = &events;
        write!(events, "GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut status = String::new();
        BufReader::new(events).read_line(&mut status).unwrap();
        assert!(status.contains("200"), "{status}");
    }
    // Times are the client's: its zone travels with the command.
    let forwarded_sessions = ok(cclog_in_zone(h, d, "Asia/Tokyo", &["sessions"]), "sessions table");
    assert!(String::from_utf8_lossy(&forwarded_sessions).contains("LAST (Asia/Tokyo)"));
    let forwarded_tree = ok(cclog_in(h, d, &["tree", "--json"]), "tree");
    server.stop();
    let status = lingering.wait_for_exit(Duration::from_secs(30));
    assert!(status.is_some(), "the follow did not end when the server shut down");

    // The same commands on their own print the same bytes.
    assert_eq!(ok(cclog_in_zone(h, d, "Asia/Tokyo", &["sessions"]), "sessions alone"), forwarded_sessions);
    assert_eq!(ok(cclog_in(h, d, &["tree", "--json"]), "tree alone"), forwarded_tree);
    let alone: Value = serde_json::from_slice(&ok(cclog_in(h, d, &["sessions", "--json"]), "sessions")).unwrap();
    assert_eq!(alone[0]["entries"], 7, "the followed entry was archived once");
    crate::support::verify_intact(d);
}
