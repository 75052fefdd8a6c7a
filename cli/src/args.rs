//! The command-line surface: every subcommand, flag and help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cclog — the complete, verifiable archive of your Claude Code history.
///
/// Every event is a hash-chained append to one log; `verify` proves nothing was altered.
#[derive(Debug, Parser)]
#[command(name = "cclog", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Data directory holding the log [default: the platform data dir, e.g. ~/.local/share/cclog]
    #[arg(long, global = true, env = "CCLOG_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Append JSON lines from stdin, one event per line; prints `<seq> <hash>` per event once durable
    ///
    /// Each line is stored byte for byte. A line that is not JSON stops the command with its
    /// line number (exit 2); the lines before it stay appended.
    Append(AppendArgs),
    /// List events
    Log(LogArgs),
    /// Check every hash and link; exit 0 when intact, 3 with the first bad seq when damaged
    Verify(VerifyArgs),
    /// Events, streams, head hash, and payload bytes against bytes on disk
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Stream the events belong to, e.g. `session/<id>`
    #[arg(long, short)]
    pub stream: String,
    /// Kind of every event, e.g. `message`
    #[arg(long, short)]
    pub kind: String,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// First seq to list
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// List at most this many events
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only this stream's events
    #[arg(long)]
    pub stream: Option<String>,
    /// One JSON object per line, payload embedded as JSON when it is JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Start at this seq (its link to the event before it is checked too)
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print the statistics as JSON
    #[arg(long)]
    pub json: bool,
}
