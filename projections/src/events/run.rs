//! A run's stream, `run/<id>`, holds `run.started`, one `run.message` per stream-json line
//! (the line as Claude Code printed it), `run.stderr` chunks, `run.session` once the
//! `system/init` message names the session, and `run.ended`.
//!
//! `run.started` has had two layouts: format 1 (no `mode`; a fork was `fork: true`, a
//! resume `fork: false`) and format 2, which says what was asked (`mode`) apart from whether
//! a new session branched off (`fork`), since a resume forks by default as CC Manager's do.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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

/// What a run was asked to do: CC Manager's `fresh`, `resume` and `fork`, and cclog's
/// `capture` for a run recorded from a pipe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunMode {
    #[default]
    Fresh,
    Resume,
    Fork,
    Capture,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Fresh => "fresh",
            RunMode::Resume => "resume",
            RunMode::Fork => "fork",
            RunMode::Capture => "capture",
        }
    }
}

/// Where a run is: CC Manager's `running`, `completed`, `error` and `cancelled`, and cclog's
/// `interrupted` for a run a stopped cclog could not see to its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    #[default]
    Running,
    Completed,
    Error,
    Cancelled,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Error => "error",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status a `run.ended` names. Older events say `failed` for `error`; a name cclog
    /// never wrote reads as `error`, so that such a run is never taken for a good one.
    pub fn from_recorded(name: &str) -> RunStatus {
        match name {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "cancelled" => RunStatus::Cancelled,
            "interrupted" => RunStatus::Interrupted,
            _ => RunStatus::Error,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
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
    /// Whether the run branches a new session off `resume` (`--fork-session`).
    pub fork: bool,
    pub mode: RunMode,
}

/// Format 1 of `run.started`: no mode, and `fork` meant a fork was asked for.
#[derive(Deserialize)]
struct RunStartedV1 {
    run: String,
    source: String,
    cwd: Option<String>,
    prompt: Option<String>,
    resume: Option<String>,
    fork: bool,
}

const RUN_STARTED_FORMAT: u8 = 2;

impl RunStarted {
    /// Format 2: the format byte, then postcard.
    pub fn encode(&self) -> Result<Vec<u8>> {
        super::encode_as(RUN_STARTED_FORMAT, self)
    }

    /// Reads either format.
    pub fn decode(bytes: &[u8]) -> Result<RunStarted> {
        match bytes.first() {
            Some(&RUN_STARTED_FORMAT) => super::decode_as(RUN_STARTED_FORMAT, KIND_RUN_STARTED, bytes),
            Some(&super::PAYLOAD_FORMAT) => {
                let old: RunStartedV1 = super::decode(KIND_RUN_STARTED, bytes)?;
                let mode = match (old.source.as_str(), &old.resume, old.fork) {
                    ("capture", _, _) => RunMode::Capture,
                    (_, None, _) => RunMode::Fresh,
                    (_, Some(_), false) => RunMode::Resume,
                    (_, Some(_), true) => RunMode::Fork,
                };
                Ok(RunStarted {
                    run: old.run,
                    source: old.source,
                    cwd: old.cwd,
                    prompt: old.prompt,
                    resume: old.resume,
                    fork: old.fork,
                    mode,
                })
            }
            Some(format) => {
                Err(Error::Payload { kind: KIND_RUN_STARTED, detail: format!("unknown payload format {format}") })
            }
            None => Err(Error::Payload { kind: KIND_RUN_STARTED, detail: "empty payload".into() }),
        }
    }
}

/// `run.session`: the session named by the run's `system/init` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSession {
    pub session: String,
}

/// `run.ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnded {
    /// A [`RunStatus`] name (`failed` in older events, for `error`).
    pub status: String,
    /// The `result` message's subtype, when there was one.
    pub result_type: Option<String>,
    /// Before format 2 of `run.started`, the CLI's own figure when there was a result; now
    /// the runner's wall time from start to end (the CLI's stays in the result message).
    pub duration_ms: Option<u64>,
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `run.started` as cclog wrote it before format 2.
    #[derive(Serialize)]
    struct FormatOne<'a> {
        run: &'a str,
        source: &'a str,
        cwd: Option<&'a str>,
        prompt: Option<&'a str>,
        resume: Option<&'a str>,
        fork: bool,
    }

    fn format_one(source: &str, resume: Option<&str>, fork: bool) -> RunStarted {
        let old = FormatOne { run: "r", source, cwd: Some("/w"), prompt: Some("p"), resume, fork };
        let bytes = crate::events::encode(&old).unwrap();
        assert_eq!(bytes[0], 1);
        RunStarted::decode(&bytes).unwrap()
    }

    #[test]
    fn format_one_reads_with_the_mode_it_meant() {
        assert_eq!(format_one("runner", None, false).mode, RunMode::Fresh);
        assert_eq!(format_one("capture", None, false).mode, RunMode::Capture);
        let resumed = format_one("runner", Some("s"), false);
        assert_eq!((resumed.mode, resumed.fork, resumed.resume.as_deref()), (RunMode::Resume, false, Some("s")));
        let forked = format_one("runner", Some("s"), true);
        assert_eq!((forked.mode, forked.fork), (RunMode::Fork, true));
        assert_eq!((forked.cwd.as_deref(), forked.prompt.as_deref()), (Some("/w"), Some("p")));
    }

    #[test]
    fn format_two_round_trips_and_unknown_formats_are_errors() {
        let started = RunStarted {
            run: "r".into(),
            source: "runner".into(),
            cwd: None,
            prompt: None,
            resume: Some("s".into()),
            fork: true,
            mode: RunMode::Resume,
        };
        let bytes = started.encode().unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(RunStarted::decode(&bytes).unwrap(), started);
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert!(RunStarted::decode(&unknown).is_err());
        assert!(RunStarted::decode(&[]).is_err());
    }

    #[test]
    fn recorded_statuses_read_in_cc_managers_words() {
        assert_eq!(RunStatus::from_recorded("failed"), RunStatus::Error, "older events say failed");
        for status in
            [RunStatus::Running, RunStatus::Completed, RunStatus::Error, RunStatus::Cancelled, RunStatus::Interrupted]
        {
            assert_eq!(RunStatus::from_recorded(status.as_str()), status);
        }
        assert_eq!(RunStatus::from_recorded("something new"), RunStatus::Error);
    }
}
