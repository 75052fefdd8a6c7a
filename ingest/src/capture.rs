//! Live capture of `claude -p --output-format stream-json --verbose` output: every line is
//! appended raw as a `run.message` of a new run, as it arrives, optionally echoed to an
//! output so that capture can sit in a pipe. The run is tied to the session its
//! `system/init` message names; its messages carry the same `uuid`s as the session's
//! transcript entries, which is how the archive links the two.
//!
//! A reader thread hands lines to the appender, which appends whatever has queued up as
//! one batch: a fast producer gets group commit, a slow one gets each line durable as it
//! comes.

use std::io::{BufRead, Write};
use std::sync::mpsc;

use cclog_engine::{Log, NewEvent};
use cclog_projections::events::{self, RunEnded, RunMode, RunSession, RunStarted, RunStatus};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a capture recorded.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureReport {
    pub run: String,
    pub session: Option<String>,
    pub messages: u64,
    pub status: String,
    pub result_type: Option<String>,
    pub duration_ms: Option<u64>,
}

/// The fields of a stream-json message capture looks at.
#[derive(Deserialize)]
struct MessageFacts {
    #[serde(rename = "type")]
    kind: Option<String>,
    subtype: Option<String>,
    session_id: Option<String>,
    is_error: Option<bool>,
}

/// Milliseconds since `began`.
pub(crate) fn elapsed_ms(began: std::time::Instant) -> u64 {
    u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A new run id: 128 random bits as a UUID-shaped string.
pub fn new_run_id() -> String {
    let bits: u128 = rand::random();
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Records `input` as a run; with `echo`, writes every line to it as read. While the log
/// refuses appends (a full disk, a failed write), the capture waits (`patient`): `paused`
/// is told why, reading stops once 4,096 lines are queued, and nothing is lost.
pub fn capture(
    log: &Log,
    input: impl BufRead + Send + 'static,
    mut echo: Option<&mut dyn Write>,
    paused: &mut dyn FnMut(&cclog_engine::Error),
) -> Result<CaptureReport> {
    let run = new_run_id();
    let mut recorder = Recorder::new(&run);
    let stream = recorder.stream.clone();
    let began = std::time::Instant::now();
    let started = RunStarted {
        run: run.clone(),
        source: "capture".into(),
        cwd: None,
        prompt: None,
        resume: None,
        fork: false,
        mode: RunMode::Capture,
    };
    log.append_blocking(vec![NewEvent::new(&stream, events::KIND_RUN_STARTED, started.encode()?)])?;

    let (lines_tx, lines_rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4096);
    let reader = std::thread::spawn(move || {
        let mut input = input;
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if lines_tx.send(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    let _ = lines_tx.send(Err(error));
                    break;
                }
            }
        }
    });

    let mut failure = None;
    while let Ok(first) = lines_rx.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Ok(mut line) => {
                    if let Some(out) = echo.as_deref_mut() {
                        out.write_all(&line)
                            .and_then(|()| out.flush())
                            .map_err(|source| Error::Io { path: "stdout".into(), source })?;
                    }
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        recorder.line(line, &mut batch)?;
                    }
                }
                Err(error) => failure = Some(error.to_string()),
            }
            next = lines_rx.try_recv().ok();
        }
        if !batch.is_empty() {
            crate::patient::append_blocking(log, batch, paused)?;
        }
    }
    let _ = reader.join();
    let status = match (&failure, &recorder.outcome) {
        (Some(_), _) => RunStatus::Error,
        (None, Some((status, _))) => *status,
        (None, None) => RunStatus::Interrupted,
    };
    let duration_ms = Some(elapsed_ms(began));
    crate::patient::append_blocking(log, vec![recorder.ended(status, failure, duration_ms)?], paused)?;
    let result_type = recorder.outcome.and_then(|(_, kind)| kind);
    Ok(CaptureReport {
        run,
        session: recorder.session,
        messages: recorder.messages,
        status: status.as_str().to_string(),
        result_type,
        duration_ms,
    })
}

/// Turns stream-json lines into a run's events and keeps what the run's end needs: the
/// session from `system/init`, the outcome from `result`. Shared by capture and the runner.
pub(crate) struct Recorder {
    pub stream: String,
    pub session: Option<String>,
    pub messages: u64,
    /// From the `result` message: `completed` or `error`, with its subtype.
    pub outcome: Option<(RunStatus, Option<String>)>,
}

impl Recorder {
    pub fn new(run: &str) -> Recorder {
        Recorder { stream: events::run_stream(run), session: None, messages: 0, outcome: None }
    }

    /// The events for one line (without its newline): the raw message, and the session
    /// assignment when it is the first `system/init`.
    pub fn line(&mut self, line: Vec<u8>, batch: &mut Vec<NewEvent>) -> Result<()> {
        let facts = serde_json::from_slice::<MessageFacts>(&line).ok();
        batch.push(NewEvent::new(&self.stream, events::KIND_RUN_MESSAGE, line));
        self.messages += 1;
        let Some(facts) = facts else { return Ok(()) };
        match (facts.kind.as_deref(), facts.subtype.as_deref()) {
            (Some("system"), Some("init")) => {
                if let Some(session) = facts.session_id.filter(|_| self.session.is_none()) {
                    batch.push(NewEvent::new(
                        &self.stream,
                        events::KIND_RUN_SESSION,
                        events::encode(&RunSession { session: session.clone() })?,
                    ));
                    self.session = Some(session);
                }
            }
            (Some("result"), subtype) => {
                let failed = facts.is_error.unwrap_or(false) || subtype.is_some_and(|subtype| subtype != "success");
                let status = if failed { RunStatus::Error } else { RunStatus::Completed };
                self.outcome = Some((status, subtype.map(str::to_string)));
            }
            _ => {}
        }
        Ok(())
    }

    /// `run.ended` with `status`, the wall time the run took, and the result's subtype when
    /// there was one.
    pub fn ended(&self, status: RunStatus, detail: Option<String>, duration_ms: Option<u64>) -> Result<NewEvent> {
        let result_type = self.outcome.as_ref().and_then(|(_, kind)| kind.clone());
        let ended = RunEnded { status: status.as_str().to_string(), result_type, duration_ms, detail };
        Ok(NewEvent::new(&self.stream, events::KIND_RUN_ENDED, events::encode(&ended)?))
    }
}
