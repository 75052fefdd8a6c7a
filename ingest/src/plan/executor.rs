//! Running a plan: its tasks in order, through the run manager, in one Claude Code session —
//! the first task starts it, each next task resumes it in place (`--resume <id>`). Every
//! step is recorded on `plan/<id>` before the next is taken, so a plan continues after a
//! crash at its first unfinished task.
//!
//! - **TTL**: a session unused for the plan's `ttl` has expired; the next task starts a new
//!   one, its prompt led by the fallback context (each completed task's prompt, result and
//!   the files it wrote, from the log).
//! - **Session failures** (a resume that ends before any message names a session: "No
//!   conversation found", a transcript gone) replace the session and retry the task in a new
//!   one with the fallback context, up to `max_session_retries` times.
//! - **Task failures** (a run that ends in error on its own merits) retry the task in the
//!   same session `max_task_retries` times; then the plan fails, or, with
//!   `continue_on_error`, goes on.
//! - The session id is taken from each run; when a resume continues in another session the
//!   plan follows it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cclog_engine::{Log, NewEvent};
use cclog_projections::archive::Archive;
use cclog_projections::events::plan::{
    self, PlanEnd, PlanOutcome, PlanSpec, Resumed, SessionChange, SessionEvent, TaskChange, TaskEvent,
};
use cclog_projections::events::{self as vocabulary, RunStatus};
use cclog_projections::plans::{PlanRecord, PlanRegistry, PlanStatus, TaskRecord, TaskStatus};

use crate::runner::{Mode, RunOptions, RunRequest, Runner};
use crate::{Error, Result};

/// Tools whose `file_path` input names a file the task wrote.
const WRITING_TOOLS: [&str; 4] = ["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// Runs plans through a runner.
pub struct Executor {
    log: Arc<Log>,
    runner: Arc<Runner>,
}

fn append<T: serde::Serialize>(log: &Log, plan: &str, kind: &str, payload: &T) -> Result<()> {
    log.append_blocking(vec![NewEvent::new(plan::plan_stream(plan), kind, vocabulary::encode(payload)?)])?;
    Ok(())
}

fn now_us() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0)
}

impl Executor {
    pub fn new(log: Arc<Log>, runner: Arc<Runner>) -> Executor {
        Executor { log, runner }
    }

    fn record(&self, plan: &str) -> Result<PlanRecord> {
        PlanRegistry::get(&self.log, plan)?.ok_or_else(|| Error::InvalidPlan(format!("no plan {plan}")))
    }

    async fn task_event(&self, plan: &str, task: &str, event: TaskEvent) -> Result<()> {
        let log = Arc::clone(&self.log);
        let (plan, change) = (plan.to_string(), TaskChange { task: task.to_string(), event });
        tokio::task::spawn_blocking(move || append(&log, &plan, plan::KIND_TASK, &change))
            .await
            .map_err(|error| Error::InvalidPlan(format!("recording a task step panicked: {error}")))?
    }

    async fn session_event(
        &self,
        plan: &str,
        event: SessionEvent,
        session: Option<String>,
        reason: Option<String>,
    ) -> Result<()> {
        let log = Arc::clone(&self.log);
        let (plan, change) = (plan.to_string(), SessionChange { event, session, reason });
        tokio::task::spawn_blocking(move || append(&log, &plan, plan::KIND_SESSION, &change))
            .await
            .map_err(|error| Error::InvalidPlan(format!("recording a session change panicked: {error}")))?
    }

    async fn end(&self, plan: &str, outcome: PlanOutcome, reason: Option<String>) -> Result<PlanRecord> {
        let log = Arc::clone(&self.log);
        let id = plan.to_string();
        tokio::task::spawn_blocking(move || append(&log, &id, plan::KIND_ENDED, &PlanEnd { outcome, reason }))
            .await
            .map_err(|error| Error::InvalidPlan(format!("recording the plan's end panicked: {error}")))??;
        self.record(plan)
    }

    /// Records `spec` and runs it to its end.
    pub async fn run(&self, spec: PlanSpec) -> Result<PlanRecord> {
        let id = spec.id.clone();
        self.create(spec).await?;
        self.drive(&id).await
    }

    /// Records `spec` as a new plan, to be run by [`Executor::drive`].
    pub async fn create(&self, spec: PlanSpec) -> Result<()> {
        if PlanRegistry::get(&self.log, &spec.id)?.is_some() {
            return Err(Error::InvalidPlan(format!(
                "plan {} exists already; `cclog plan resume {}` continues it",
                spec.id, spec.id
            )));
        }
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || append(&log, &spec.id, plan::KIND_CREATED, &spec))
            .await
            .map_err(|error| Error::InvalidPlan(format!("recording the plan panicked: {error}")))?
    }

    /// Continues a plan at its first unfinished task (failed tasks run again).
    pub async fn resume(&self, plan: &str) -> Result<PlanRecord> {
        self.reopen(plan).await?;
        self.drive(plan).await
    }

    /// Records that a plan that has not completed is resumed, and that its failed tasks
    /// will run again; [`Executor::drive`] then continues it.
    pub async fn reopen(&self, plan: &str) -> Result<()> {
        let record = self.record(plan)?;
        if record.status == PlanStatus::Completed {
            return Err(Error::InvalidPlan(format!("plan {plan} has completed; nothing is left to run")));
        }
        let driven = |task: &&TaskRecord| {
            task.status == TaskStatus::Running && task.runs.last().is_some_and(|run| self.runner.is_active(run))
        };
        if let Some(task) = record.tasks.iter().find(driven) {
            return Err(Error::InvalidPlan(format!(
                "plan {plan} is running (task {}); `cclog plan cancel {plan}` stops it",
                task.id
            )));
        }
        let log = Arc::clone(&self.log);
        let id = plan.to_string();
        tokio::task::spawn_blocking(move || append(&log, &id, plan::KIND_RESUMED, &Resumed::default()))
            .await
            .map_err(|error| Error::InvalidPlan(format!("recording the resume panicked: {error}")))??;
        for task in record.tasks.iter().filter(|task| task.status == TaskStatus::Failed) {
            let reason = "the plan was resumed".to_string();
            self.task_event(plan, &task.id, TaskEvent::Retried { new_session: false, reason }).await?;
        }
        Ok(())
    }

    /// Cancels a running plan: its running task's run is cancelled (the plan then ends as
    /// cancelled when the run does); a plan whose runner is gone (its process died) is
    /// marked cancelled at once.
    pub async fn cancel(&self, plan: &str) -> Result<PlanRecord> {
        let record = self.record(plan)?;
        if record.status != PlanStatus::Running {
            return Err(Error::InvalidPlan(format!("plan {plan} has ended ({:?}); nothing to cancel", record.status)));
        }
        let running =
            record.tasks.iter().filter(|task| task.status == TaskStatus::Running).filter_map(|task| task.runs.last());
        for run in running {
            if self.runner.is_active(run) {
                self.runner.cancel(run)?.finished().await;
                // The plan's own loop records the end; wait for it.
                for _ in 0..100 {
                    let now = self.record(plan)?;
                    if now.status != PlanStatus::Running {
                        return Ok(now);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        self.end(plan, PlanOutcome::Cancelled, Some("cancelled".into())).await
    }

    /// Runs a recorded plan's unfinished tasks in order until it completes, fails or is
    /// cancelled.
    pub async fn drive(&self, plan: &str) -> Result<PlanRecord> {
        let spec = PlanRegistry::spec(&self.log, &self.record(plan)?)?;
        let mut session_retries: BTreeMap<String, u32> = BTreeMap::new();
        let mut task_retries: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            let record = self.record(plan)?;
            let Some(task) =
                record.tasks.iter().find(|task| matches!(task.status, TaskStatus::Pending | TaskStatus::Running))
            else {
                let failed = record.tasks.iter().filter(|task| task.status == TaskStatus::Failed).count();
                return if failed == 0 {
                    self.end(plan, PlanOutcome::Completed, None).await
                } else {
                    self.end(plan, PlanOutcome::Failed, Some(format!("{failed} tasks failed"))).await
                };
            };
            let task_id = task.id.clone();
            let Some(task_spec) = spec.tasks.iter().find(|candidate| candidate.id == task_id) else {
                return Err(Error::InvalidPlan(format!("plan {plan}'s task {task_id} is not in its spec")));
            };
            let mut session = record.session.clone();
            if let (Some(current), Some(used)) = (&session, record.session_used_us) {
                let ttl_us = spec.ttl_ms.saturating_mul(1000);
                if now_us().saturating_sub(used) > ttl_us {
                    let reason = format!("unused for longer than its TTL of {} ms", spec.ttl_ms);
                    self.session_event(plan, SessionEvent::Expired, Some(current.clone()), Some(reason)).await?;
                    session = None;
                }
            }
            let earlier_done = record.tasks.iter().any(|task| task.status == TaskStatus::Completed);
            let fallback = session.is_none() && earlier_done;
            let prompt = if fallback {
                format!("{}\n\n{}", fallback_context(&self.log, &record, &spec)?, task_spec.prompt)
            } else {
                task_spec.prompt.clone()
            };
            let options = task_spec.options.over(&spec.defaults);
            let request = RunRequest {
                mode: if session.is_some() { Mode::Resume } else { Mode::Start },
                in_place: session.is_some(),
                cwd: Some(PathBuf::from(&spec.cwd)),
                prompt,
                session: session.clone(),
                options: RunOptions {
                    model: options.model,
                    permission_mode: options.permission_mode,
                    allowed_tools: options.allowed_tools,
                    disallowed_tools: None,
                    append_system_prompt: options.append_system_prompt,
                    max_turns: options.max_turns,
                },
            };
            let handle = self.runner.start(request).await?;
            let run_id = handle.id.clone();
            self.task_event(plan, &task_id, TaskEvent::Started { run: run_id.clone(), fallback }).await?;
            handle.finished().await;
            let run = Archive::run(&self.log, &run_id)?
                .ok_or_else(|| Error::InvalidPlan(format!("run {run_id} of plan {plan} is not recorded")))?;
            match (&session, &run.session) {
                (None, Some(new)) => {
                    self.session_event(plan, SessionEvent::Assigned, Some(new.clone()), None).await?;
                }
                (Some(old), Some(new)) if old != new => {
                    let reason = format!("the resume of {old} continued in {new}");
                    self.session_event(plan, SessionEvent::Changed, Some(new.clone()), Some(reason)).await?;
                }
                _ => {}
            }
            if run.status == RunStatus::Cancelled {
                let reason = "its run was cancelled".to_string();
                self.task_event(plan, &task_id, TaskEvent::Failed { run: Some(run_id), reason }).await?;
                return self.end(plan, PlanOutcome::Cancelled, Some("cancelled".into())).await;
            }
            let succeeded = run.status == RunStatus::Completed && run.result_type.as_deref() == Some("success");
            if succeeded {
                self.task_event(plan, &task_id, TaskEvent::Completed { run: run_id }).await?;
                continue;
            }
            let why =
                run.detail.clone().or_else(|| run.result.clone()).unwrap_or_else(|| run.status.as_str().to_string());
            if session.is_some() && run.session.is_none() {
                // The resume never got going: the session itself failed.
                let reason = format!("resuming {} failed: {why}", session.as_deref().unwrap_or_default());
                self.session_event(plan, SessionEvent::Replaced, None, Some(reason.clone())).await?;
                let tries = session_retries.entry(task_id.clone()).or_default();
                if *tries < spec.max_session_retries {
                    *tries += 1;
                    self.task_event(plan, &task_id, TaskEvent::Retried { new_session: true, reason }).await?;
                    continue;
                }
                self.task_event(plan, &task_id, TaskEvent::Failed { run: Some(run_id), reason }).await?;
            } else {
                let tries = task_retries.entry(task_id.clone()).or_default();
                if *tries < spec.max_task_retries {
                    *tries += 1;
                    self.task_event(plan, &task_id, TaskEvent::Retried { new_session: false, reason: why }).await?;
                    continue;
                }
                self.task_event(plan, &task_id, TaskEvent::Failed { run: Some(run_id), reason: why.clone() }).await?;
            }
            if !spec.continue_on_error {
                return self.end(plan, PlanOutcome::Failed, Some(format!("task {task_id} failed"))).await;
            }
        }
    }
}

/// What a new session is told of the plan so far: each completed task's prompt, result and
/// the files its runs wrote, read from the log.
pub fn fallback_context(log: &Log, record: &PlanRecord, spec: &PlanSpec) -> Result<String> {
    let mut text = format!(
        "You are continuing plan {} in a new session; the earlier session is gone. What was done so far:\n",
        record.id
    );
    for task in record.tasks.iter().filter(|task| task.status == TaskStatus::Completed) {
        let prompt =
            spec.tasks.iter().find(|candidate| candidate.id == task.id).map_or("", |task| task.prompt.as_str());
        let mut result = String::new();
        let mut files: Vec<String> = Vec::new();
        for run_id in &task.runs {
            let Some(run) = Archive::run(log, run_id)? else { continue };
            if run.status == RunStatus::Completed {
                result = run.result.clone().unwrap_or_default();
            }
            for (_, seq) in Archive::run_message_seqs(log, run_id, 0, usize::MAX)? {
                if let Some(event) = log.get(seq)? {
                    written_files(&event.payload, &mut files);
                }
            }
        }
        text.push_str(&format!("\n- Task {}: {}\n  Result: {}\n", task.id, prompt.trim(), result.trim()));
        if !files.is_empty() {
            text.push_str(&format!("  Files written: {}\n", files.join(", ")));
        }
    }
    text.push_str("\nNow the next task:");
    Ok(text)
}

/// The `file_path` of every writing tool call in one stream-json message.
fn written_files(message: &[u8], files: &mut Vec<String>) {
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(message) else { return };
    let Some(blocks) = message["message"]["content"].as_array() else { return };
    for block in blocks {
        let writes =
            block["type"] == "tool_use" && block["name"].as_str().is_some_and(|name| WRITING_TOOLS.contains(&name));
        if let (true, Some(path)) = (writes, block["input"]["file_path"].as_str()) {
            if !files.iter().any(|known| known == path) {
                files.push(path.to_string());
            }
        }
    }
}
