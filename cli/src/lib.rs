//! The `cclog` command line: argument parsing, terminal rendering and exit codes. Thin by
//! design — every command opens the log through the engine and renders what it returns.
//!
//! # Layout
//! - `args`: the clap definitions, i.e. the whole command-line surface and its help.
//! - `commands`: one module per subcommand.
//! - `output`: terminal concerns (colour, progress, time and byte formatting).
//! - `json_style`: every `--json` in one style (struct fields in snake_case).
//!
//! Exit codes: 0 success; 1 error; 2 bad usage or bad input; 3 `verify` found damage;
//! 4 a compare-and-set (`kv set --expect-version`) found another version; 74 the disk is
//! full (nothing was written); 75 the data directory is in use by another process.

mod args;
mod commands;
mod json_style;
#[macro_use]
mod output;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;

/// Exit code of success.
pub const EXIT_OK: u8 = 0;
/// Exit code of a failure with no more specific code (a run that did not complete, say).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code when verification finds damage.
pub const EXIT_DAMAGED: u8 = 3;
/// Exit code for invalid input (a malformed line, say).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when the disk is full: the append was refused before anything was written
/// (EX_IOERR).
pub const EXIT_DISK_FULL: u8 = 74;
/// Exit code when another process owns the data directory (EX_TEMPFAIL).
pub const EXIT_LOCKED: u8 = 75;

/// An error that already knows its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Parses the command line, runs the command and maps failures to exit codes.
pub fn main() -> ExitCode {
    quiet_sled_panics();
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`cclog log | head`): as with `git log | head`, not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let code = exit_code(&error);
            eprintln!("cclog: {}", render_error(&error));
            ExitCode::from(code)
        }
    }
}

/// sled panics on some damaged files; the engine catches those panics and reports the
/// damage, so the default hook's message and backtrace would only bury the report.
fn quiet_sled_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_sled = info.location().is_some_and(|location| location.file().contains("/sled-"));
        if !in_sled {
            default(info);
        }
    }));
}

/// Whether the error comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(failure) = error.downcast_ref::<Failure>() {
        return failure.code;
    }
    if error.chain().any(|cause| engine_error(cause).is_some_and(cclog_engine::Error::is_disk_full)) {
        return EXIT_DISK_FULL;
    }
    if error.chain().any(|cause| matches!(engine_error(cause), Some(cclog_engine::Error::DamagedFiles { .. }))) {
        return EXIT_DAMAGED;
    }
    // An id that names nothing, or more than one thing, is bad input.
    let names_nothing = |cause: &(dyn std::error::Error + 'static)| {
        matches!(
            cause.downcast_ref::<cclog_projections::Error>(),
            Some(cclog_projections::Error::NotFound { .. } | cclog_projections::Error::Ambiguous { .. })
        )
    };
    if error.chain().any(names_nothing) {
        return EXIT_BAD_INPUT;
    }
    match error.downcast_ref::<cclog_engine::Error>() {
        Some(cclog_engine::Error::Locked { .. }) => EXIT_LOCKED,
        Some(cclog_engine::Error::InvalidEvent(_) | cclog_engine::Error::OutOfRange { .. }) => EXIT_BAD_INPUT,
        _ if matches!(
            error.downcast_ref::<cclog_ingest::Error>(),
            Some(
                cclog_ingest::Error::InvalidKv(_)
                    | cclog_ingest::Error::InvalidTeam(_)
                    | cclog_ingest::Error::Missing(_)
            )
        ) =>
        {
            EXIT_BAD_INPUT
        }
        _ => 1,
    }
}

/// The engine error a cause is, or wraps.
fn engine_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a cclog_engine::Error> {
    if let Some(error) = cause.downcast_ref::<cclog_engine::Error>() {
        return Some(error);
    }
    if let Some(error) = cause.downcast_ref::<cclog_ingest::Error>().and_then(cclog_ingest::Error::engine) {
        return Some(error);
    }
    match cause.downcast_ref::<cclog_projections::Error>() {
        Some(cclog_projections::Error::Engine(error)) => Some(error),
        _ => None,
    }
}

pub(crate) fn render_error(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    if let Some(cclog_engine::Error::Locked { .. }) = error.downcast_ref::<cclog_engine::Error>() {
        text.push_str("\n  hint: only one process may own a data directory; stop that process or pass --data DIR");
    }
    for cause in error.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}
