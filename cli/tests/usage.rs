//! The binary's argument surface: help and usage errors. (Behaviour is tested end to end in
//! the workspace's `tests/`.)

use std::process::Command;

fn cclog(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cclog")).args(args).output().unwrap()
}

#[test]
fn help_lists_every_command() {
    let output = cclog(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["append", "log", "verify", "stats", "--data"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(cclog(&["append"]).status.code(), Some(2));
    assert_eq!(cclog(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn invalid_stream_names_are_refused_before_reading_input() {
    let dir = std::env::temp_dir().join(format!("cclog-usage-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_cclog"))
        .args(["--data"])
        .arg(&dir)
        .args(["append", "--stream", "", "--kind", "k"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("stream must not be empty"));
    assert!(!dir.exists(), "nothing is created for a refused command");
}
