//! A run's stream, `run/<id>`, holds `run.started`, one `run.message` per stream-json line
//! (the line as Claude Code printed it), `run.stderr` chunks, `run.session` once the
//! `system/init` message names the session, and `run.ended`.

use serde::{Deserialize, Serialize};

pub const KIND_RUN_STARTED: &str = "run.started";
pub const KIND_RUN_MESSAGE: &str = "run.message";
pub const KIND_RUN_SESSION: &str = "run.session";
pub const KIND_RUN_ENDED: &str = "run.ended";
/// A chunk of a run's stderr, raw.
pub const KIND_RUN_STDERR: &str = "run.stderr";

const RUN_PREFIX: &str = "run/";

/// The stream of one run.
pub fn run_stream(run: &str) -> String {
    format!("{RUN_PREFIX}{run}")
}

/// The run id of a run stream.
pub fn run_id(stream: &str) -> Option<&str> {
    stream.strip_prefix(RUN_PREFIX)
}

/// `run.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    pub run: String,
    /// Where the messages come from: `capture` (stdin) or `runner`.
    pub source: String,
    pub cwd: Option<String>,
    pub prompt: Option<String>,
    /// Session resumed or forked, if any.
    pub resume: Option<String>,
    pub fork: bool,
}

/// `run.session`: the session named by the run's `system/init` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSession {
    pub session: String,
}

/// `run.ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnded {
    /// `completed`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    /// The `result` message's subtype, when there was one.
    pub result_type: Option<String>,
    pub duration_ms: Option<u64>,
    pub detail: Option<String>,
}
