//! The Claude Code runner: starts, resumes and forks headless runs of the Claude Code CLI
//! (`-p --output-format stream-json --verbose`, the prompt on stdin) and records each as a
//! `run/<id>` stream — `run.started`, every stdout line raw as `run.message` the moment it
//! arrives, `run.session` from the init message, stderr as `run.stderr`, and `run.ended`
//! with the outcome. Cancelling sends SIGINT to the run's process group, then SIGTERM, then
//! SIGKILL after grace periods; whatever was recorded stays. At most `max_runs` run at once.
//!
//! A resume branches a new session off the resumed one (`--fork-session`) unless it is asked
//! to continue in place; a resume in place is refused while another active run writes that
//! session ([`Error::SessionBusy`]). The working directory is made absolute before the run
//! starts, and `run.ended` carries the run's wall time.
//!
//! A run is a tokio task; the runner keeps only the handles of active runs. Everything
//! else — status, messages, sessions — is read back from the archive projection, so a
//! restarted server knows every run, and [`Runner::recover`] marks the ones a crash left
//! `running` as `interrupted`. The CLI dies with the process that started it (a parent-death
//! signal), and `recover` kills what an interrupted run left running — every process whose
//! environment carries the run's id, as everything the CLI started does. A cancel does the
//! same once the CLI has exited, so that no tool outlives a cancelled run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cclog_engine::{Log, NewEvent};
use cclog_projections::archive::{Archive, RunRecord};
use cclog_projections::events::{self, RunMode, RunStarted, RunStatus};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::capture::{elapsed_ms, new_run_id, Recorder};
use crate::patient::PatientAppender;

/// Lines of a run's output that may await durability at once.
const IN_FLIGHT: usize = 64;
use crate::{Error, Result};

/// How much of a run's stderr is kept; the rest is counted in the run's end detail.
const STDERR_LIMIT: usize = 1 << 20;
/// How long to wait for stdout to close after the CLI exited (a tool's child may hold it).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pieces of output read ahead of the recorder; when it waits for the log, the readers
/// stop at this many and the CLI waits on its pipe.
const OUTPUT_QUEUE: usize = 64;

/// A piece of what the CLI printed, from a reader to the recorder.
enum Output {
    Line(Vec<u8>),
    Stderr(Vec<u8>),
}

/// How runs are started and stopped.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The Claude Code CLI (`CCLOG_CLAUDE_BIN`, default `claude` on PATH).
    pub claude_bin: PathBuf,
    /// Runs at once (`CCLOG_MAX_RUNS`, default 4).
    pub max_runs: usize,
    /// Time between SIGINT and SIGTERM on cancel.
    pub interrupt_grace: Duration,
    /// Time between SIGTERM and SIGKILL on cancel.
    pub terminate_grace: Duration,
}

impl RunnerConfig {
    /// The defaults, with `CCLOG_CLAUDE_BIN` and `CCLOG_MAX_RUNS` applied.
    pub fn from_env() -> Result<RunnerConfig> {
        let claude_bin = std::env::var_os("CCLOG_CLAUDE_BIN").map_or_else(|| PathBuf::from("claude"), PathBuf::from);
        let max_runs = match std::env::var("CCLOG_MAX_RUNS") {
            Ok(value) => value
                .parse::<usize>()
                .ok()
                .filter(|runs| *runs > 0)
                .ok_or_else(|| Error::InvalidRun(format!("CCLOG_MAX_RUNS={value:?} is not a positive number")))?,
            Err(_) => 4,
        };
        Ok(RunnerConfig {
            claude_bin,
            max_runs,
            interrupt_grace: Duration::from_secs(5),
            terminate_grace: Duration::from_secs(5),
        })
    }
}

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Start,
    Resume,
    Fork,
}

/// Options passed through to the CLI, named as in CC Manager's request bodies.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub disallowed_tools: Option<Vec<String>>,
    pub append_system_prompt: Option<String>,
    pub max_turns: Option<u32>,
}

impl RunOptions {
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: String| {
            args.push(flag.to_string());
            args.push(value);
        };
        if let Some(model) = &self.model {
            push("--model", model.clone());
        }
        if let Some(mode) = &self.permission_mode {
            push("--permission-mode", mode.clone());
        }
        if let Some(tools) = &self.allowed_tools {
            push("--allowedTools", tools.join(","));
        }
        if let Some(tools) = &self.disallowed_tools {
            push("--disallowedTools", tools.join(","));
        }
        if let Some(prompt) = &self.append_system_prompt {
            push("--append-system-prompt", prompt.clone());
        }
        if let Some(turns) = self.max_turns {
            push("--max-turns", turns.to_string());
        }
        args
    }
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub mode: Mode,
    /// A resume that continues the session itself instead of branching a new one off it
    /// (CC Manager's `forkSession: false`). Refused while another run writes that session.
    pub in_place: bool,
    /// Required to start; for resume and fork it defaults to the session's directory. A
    /// relative path is taken from this process's directory.
    pub cwd: Option<PathBuf>,
    pub prompt: String,
    /// The session to resume or fork (a unique prefix is enough).
    pub session: Option<String>,
    pub options: RunOptions,
}

/// A started run: its id, and a way to wait for its end.
pub struct RunHandle {
    pub id: String,
    done: watch::Receiver<bool>,
}

impl RunHandle {
    /// Waits until the run has ended and its end is durable.
    pub async fn finished(mut self) {
        let _ = self.done.wait_for(|done| *done).await;
    }
}

struct Active {
    cancel: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    /// The session the run appends to: known at once for an in-place resume, from the init
    /// message for the others.
    writes: Arc<OnceLock<String>>,
}

/// What the CLI of a validated run is started with.
struct Launch {
    cwd: PathBuf,
    prompt: String,
    /// The session to `--resume`, and whether to `--fork-session` off it.
    resume: Option<(String, bool)>,
    options: RunOptions,
}

/// Starts, tracks and cancels runs.
pub struct Runner {
    log: Arc<Log>,
    config: RunnerConfig,
    active: Mutex<HashMap<String, Active>>,
}

impl Runner {
    pub fn new(log: Arc<Log>, config: RunnerConfig) -> Arc<Runner> {
        Arc::new(Runner { log, config, active: Mutex::new(HashMap::new()) })
    }

    /// Marks runs a previous process left `running` as `interrupted`; returns their ids.
    /// Call it before starting runs, while this process owns the data directory.
    pub async fn recover(&self) -> Result<Vec<String>> {
        let mut recovered = Vec::new();
        for run in Archive::runs(&self.log)?.into_iter().filter(RunRecord::is_active) {
            if self.is_active(&run.id) {
                continue;
            }
            // Its CLI died with the cclog that ran it; tools it started may still be running,
            // unrecorded.
            let killed = crate::process::kill_run_processes(&run.id);
            if killed > 0 {
                tracing::warn!(run = %run.id, processes = killed, "killed what an interrupted run left running");
            }
            let detail = Some("cclog stopped while the run was active".to_string());
            let ended = Recorder::new(&run.id).ended(RunStatus::Interrupted, detail, None)?;
            self.log.append(vec![ended]).await?;
            recovered.push(run.id);
        }
        Ok(recovered)
    }

    /// The ids of the runs going on now.
    pub fn active_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn is_active(&self, run: &str) -> bool {
        self.lock().contains_key(run)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Validates `request`, records `run.started` and starts the CLI. A CLI that cannot be
    /// started still makes a run: one that failed, with the reason recorded.
    pub async fn start(self: &Arc<Self>, request: RunRequest) -> Result<RunHandle> {
        if request.prompt.trim().is_empty() {
            return Err(Error::InvalidRun("prompt must not be empty".into()));
        }
        if request.in_place && request.mode != Mode::Resume {
            return Err(Error::InvalidRun("only a resume continues a session in place".into()));
        }
        if request.options.max_turns == Some(0) {
            return Err(Error::InvalidRun("maxTurns must be at least 1".into()));
        }
        let session = match (request.mode, &request.session) {
            (Mode::Start, _) => None,
            (_, None) => return Err(Error::InvalidRun("sessionId is required to resume or fork".into())),
            (_, Some(id)) => Some(Archive::session(&self.log, id)?),
        };
        let cwd = match (&request.cwd, &session) {
            (Some(cwd), _) => cwd.clone(),
            (None, Some(session)) => self.session_cwd(session)?.ok_or_else(|| {
                Error::InvalidRun(format!("session {} has no known working directory; give cwd", session.id))
            })?,
            (None, None) => return Err(Error::InvalidRun("cwd is required".into())),
        };
        // Absolute and without symlinks, as Claude Code records its own directory.
        let cwd = std::fs::canonicalize(&cwd)
            .ok()
            .filter(|cwd| cwd.is_dir())
            .ok_or_else(|| Error::InvalidRun(format!("cwd {} is not a directory", cwd.display())))?;
        let fork = match request.mode {
            Mode::Start => false,
            Mode::Resume => !request.in_place,
            Mode::Fork => true,
        };
        let id = new_run_id();
        let (cancel, cancelled) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let writes = Arc::new(OnceLock::new());
        {
            let mut active = self.lock();
            if let Some(session) = session.as_ref().filter(|_| request.in_place) {
                if active.values().any(|run| run.writes.get() == Some(&session.id)) {
                    return Err(Error::SessionBusy(session.id.clone()));
                }
                let _ = writes.set(session.id.clone());
            }
            if active.len() >= self.config.max_runs {
                return Err(Error::Busy { limit: self.config.max_runs });
            }
            active.insert(id.clone(), Active { cancel, done: done.clone(), writes: Arc::clone(&writes) });
        }
        let started = RunStarted {
            run: id.clone(),
            source: "runner".into(),
            cwd: Some(cwd.to_string_lossy().into_owned()),
            prompt: Some(request.prompt.clone()),
            resume: session.as_ref().map(|session| session.id.clone()),
            fork,
            mode: match request.mode {
                Mode::Start => RunMode::Fresh,
                Mode::Resume => RunMode::Resume,
                Mode::Fork => RunMode::Fork,
            },
        };
        let stream = events::run_stream(&id);
        let appended = async {
            self.log.append(vec![NewEvent::new(&stream, events::KIND_RUN_STARTED, started.encode()?)]).await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = appended {
            self.lock().remove(&id);
            return Err(error);
        }
        let runner = Arc::clone(self);
        let run = id.clone();
        tokio::spawn(async move {
            let resume = session.map(|session| (session.id, fork));
            let launch = Launch { cwd, prompt: request.prompt, resume, options: request.options };
            let drive = runner.drive(&run, launch, cancelled, &writes);
            if let Err(error) = drive.await {
                tracing::error!(run = %run, %error, "recording the run failed");
            }
            runner.lock().remove(&run);
            let _ = done_tx.send(true);
        });
        Ok(RunHandle { id, done })
    }

    /// The directory a session ran in: its transcript's, else its latest run's.
    fn session_cwd(&self, session: &cclog_projections::archive::SessionRecord) -> Result<Option<PathBuf>> {
        if let Some(cwd) = &session.cwd {
            return Ok(Some(PathBuf::from(cwd)));
        }
        for run in session.runs.iter().rev() {
            if let Some(cwd) = Archive::run(&self.log, run)?.and_then(|run| run.cwd) {
                return Ok(Some(PathBuf::from(cwd)));
            }
        }
        Ok(None)
    }

    /// Asks an active run to stop; `run` may be a unique prefix of its id. A run that has
    /// ended is [`Error::RunEnded`].
    pub fn cancel(&self, run: &str) -> Result<RunHandle> {
        let record = Archive::run_by_prefix(&self.log, run)?;
        if let Some(active) = self.lock().get(&record.id) {
            let _ = active.cancel.send(true);
            return Ok(RunHandle { id: record.id.clone(), done: active.done.clone() });
        }
        Err(Error::RunEnded { run: record.id, status: record.status })
    }

    /// Waits until no run is active; with `cancel`, cancels each first.
    pub async fn finish_all(&self, cancel: bool) {
        let handles: Vec<RunHandle> = self
            .lock()
            .iter()
            .map(|(id, active)| {
                if cancel {
                    let _ = active.cancel.send(true);
                }
                RunHandle { id: id.clone(), done: active.done.clone() }
            })
            .collect();
        for handle in handles {
            handle.finished().await;
        }
    }

    async fn drive(
        &self,
        run: &str,
        launch: Launch,
        mut cancelled: watch::Receiver<bool>,
        writes: &OnceLock<String>,
    ) -> Result<()> {
        let Launch { cwd, prompt, resume, options } = launch;
        let began = Instant::now();
        let mut recorder = Recorder::new(run);
        let mut command = tokio::process::Command::new(&self.config.claude_bin);
        command.args(["-p", "--output-format", "stream-json", "--verbose"]);
        if let Some((session, fork)) = &resume {
            command.args(["--resume", session]);
            if *fork {
                command.arg("--fork-session");
            }
        }
        command
            .args(options.args())
            .current_dir(&cwd)
            // Inherited by everything the CLI starts: how a later cclog finds what this run
            // left running (see `process`).
            .env(crate::process::RUN_ENV, run)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a cancel reaches the tools it started too.
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: between fork and exec the closure only calls async-signal-safe functions
        // (prctl, getppid, kill on itself) and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // The CLI dies with this process, even when this process is killed: a
                // Claude Code that outlived cclog would go on running tools unrecorded.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // This process may have died before the prctl took effect.
                if libc::getppid() as u32 != parent {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                Ok(())
            });
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let hint = if error.kind() == std::io::ErrorKind::NotFound {
                    " — install Claude Code (`npm install -g @anthropic-ai/claude-code`), or set CCLOG_CLAUDE_BIN \
                     to its path"
                } else {
                    ""
                };
                let detail = format!("could not start {}: {error}{hint}", self.config.claude_bin.display());
                self.log.append(vec![recorder.ended(RunStatus::Error, Some(detail), Some(elapsed_ms(began)))?]).await?;
                return Ok(());
            }
        };
        let group = child.id().and_then(|pid| i32::try_from(pid).ok());
        if let Some(mut stdin) = child.stdin.take() {
            // A CLI that exits without reading its prompt shows up in its exit status.
            let _ = stdin.write_all(prompt.as_bytes()).await;
        }
        let stdout = child.stdout.take().map(BufReader::new);
        let stderr = child.stderr.take();

        // Two readers hand what the CLI prints to one recorder, which appends it in order.
        // While the log refuses appends (a full disk), the recorder waits and the readers
        // fill the queue and stop reading: the CLI waits on its pipe, and the run pauses.
        let (output_tx, mut output) = tokio::sync::mpsc::channel::<Output>(OUTPUT_QUEUE);
        let read_stdout = {
            let output_tx = output_tx.clone();
            async move {
                let Some(mut stdout) = stdout else { return Ok::<_, Error>(()) };
                loop {
                    let mut line = Vec::new();
                    let read = stdout
                        .read_until(b'\n', &mut line)
                        .await
                        .map_err(|source| Error::Io { path: "claude stdout".into(), source })?;
                    if read == 0 || output_tx.send(Output::Line(line)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        };
        let read_stderr = async move {
            let Some(mut stderr) = stderr else { return Vec::new() };
            let (mut kept, mut tail) = (0usize, Vec::new());
            let mut buffer = vec![0; 64 << 10];
            loop {
                let read = stderr.read(&mut buffer).await.unwrap_or(0);
                if read == 0 {
                    return tail;
                }
                let chunk = &buffer[..read];
                tail.extend_from_slice(chunk);
                if tail.len() > 4096 {
                    tail.drain(..tail.len() - 4096);
                }
                if kept < STDERR_LIMIT {
                    let take = read.min(STDERR_LIMIT - kept);
                    kept += take;
                    if output_tx.send(Output::Stderr(chunk[..take].to_vec())).await.is_err() {
                        return tail;
                    }
                }
            }
        };
        let record = async {
            // Each line is submitted as it arrives; up to IN_FLIGHT of them await their
            // fsync at once, so a burst of output is recorded at the writer's pace rather
            // than one disk round trip per line. All are durable before the run ends.
            let mut appender = PatientAppender::new(Arc::clone(&self.log), format!("run {run}"), IN_FLIGHT);
            while let Some(printed) = output.recv().await {
                let mut batch = Vec::with_capacity(2);
                match printed {
                    Output::Line(mut line) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        recorder.line(line, &mut batch)?;
                        if let Some(session) = &recorder.session {
                            if writes.get().is_none() {
                                let _ = writes.set(session.clone());
                            }
                        }
                    }
                    Output::Stderr(chunk) => {
                        batch.push(NewEvent::new(&recorder.stream, events::KIND_RUN_STDERR, chunk))
                    }
                }
                appender.push(batch).await?;
            }
            appender.finish().await
        };
        let (exited_tx, mut exited) = watch::channel(false);
        let stop = async {
            let mut was_cancelled = false;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    changed = async { cancelled.wait_for(|cancel| *cancel).await.is_ok() }, if !was_cancelled => {
                        if changed {
                            was_cancelled = true;
                            if let Some(group) = group {
                                let status = self.stop_group(group, &mut child).await;
                                // What the CLI started in groups of their own goes with it.
                                crate::process::kill_run_processes(run);
                                break status;
                            }
                        }
                    }
                }
            };
            let _ = exited_tx.send(true);
            (status, was_cancelled)
        };
        // The pipes close when the CLI and everything it started exit; a grandchild that
        // keeps them open is waited for only DRAIN_TIMEOUT beyond the CLI's own exit. What
        // was read by then is recorded however long the log makes the recorder wait.
        let drained = async {
            let both = async { tokio::join!(read_stdout, read_stderr) };
            tokio::select! {
                both = both => both,
                _ = async {
                    let _ = exited.wait_for(|exited| *exited).await;
                    tokio::time::sleep(DRAIN_TIMEOUT).await;
                } => (Ok(()), Vec::new()),
            }
        };
        let ((status, was_cancelled), (read, stderr_tail), recorded) = tokio::join!(stop, drained, record);
        read?;
        recorded?;
        let (status, detail) = if was_cancelled {
            (RunStatus::Cancelled, Some("cancelled on request".to_string()))
        } else if let Some((status, _)) = &recorder.outcome {
            (*status, None)
        } else {
            let exit = match &status {
                Ok(status) => status.to_string(),
                Err(error) => format!("an unknown status ({error})"),
            };
            let stderr = String::from_utf8_lossy(&stderr_tail).trim().to_string();
            let detail = if stderr.is_empty() {
                format!("claude ended ({exit}) without a result message")
            } else {
                format!("claude ended ({exit}) without a result message; stderr: {stderr}")
            };
            (RunStatus::Error, Some(detail))
        };
        let ended = recorder.ended(status, detail, Some(elapsed_ms(began)))?;
        PatientAppender::append(Arc::clone(&self.log), format!("run {run}"), vec![ended]).await
    }

    /// SIGINT, then SIGTERM, then SIGKILL to the run's process group, each after a grace
    /// period in which the CLI did not exit.
    async fn stop_group(
        &self,
        group: i32,
        child: &mut tokio::process::Child,
    ) -> std::io::Result<std::process::ExitStatus> {
        let steps = [
            (libc::SIGINT, self.config.interrupt_grace),
            (libc::SIGTERM, self.config.terminate_grace),
            (libc::SIGKILL, Duration::from_secs(3600)),
        ];
        for (signal, grace) in steps {
            // SAFETY: kill(2) with a negative pid signals the process group the child leads.
            unsafe { libc::kill(-group, signal) };
            if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
                return status;
            }
        }
        child.wait().await
    }
}
