//! `cclog plan`: run a plan file's tasks in one Claude Code session, resume a plan, list
//! plans and show one. The tasks run through a runner in the process that owns the log
//! (this one, or the `cclog serve` the command is forwarded to); each step is printed on
//! stderr as the log records it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cclog_ingest::plan::executor::Executor;
use cclog_ingest::plan::file::PlanFile;
use cclog_ingest::runner::{Runner, RunnerConfig};
use cclog_projections::events::plan::{self as vocabulary, SessionChange, TaskChange, TaskEvent};
use cclog_projections::plans::{PlanRecord, PlanRegistry, PlanStatus, TaskStatus};
use serde_json::json;

use super::client::{api_error, Server};
use crate::args::PlanCommand;
use crate::{Failure, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK};

pub fn run(data: &Path, command: PlanCommand) -> anyhow::Result<u8> {
    match command {
        PlanCommand::Run { file, cwd, ttl, json } => {
            let bad = |message: String| Failure { code: EXIT_BAD_INPUT, message };
            let ttl_value = humantime::parse_duration(&ttl).map_err(|error| bad(format!("--ttl {ttl:?}: {error}")))?;
            let mut plan = PlanFile::load(&file).map_err(|error| bad(error.to_string()))?;
            // The plan's directory, the client's: made absolute here.
            let cwd = match plan.cwd.take().or(cwd) {
                Some(cwd) => cwd,
                None => std::env::current_dir()?,
            };
            plan.cwd = Some(std::path::absolute(cwd)?);
            plan.ttl = plan.ttl.or(Some(ttl));
            let spec = plan.clone().resolve(None, ttl_value).map_err(|error| bad(error.to_string()))?;
            plan.id = Some(spec.id.clone());
            if let Some(server) = Server::find(data)? {
                let mut body = serde_json::to_value(&plan)?;
                body["wait"] = serde_json::Value::Bool(false);
                crate::errln!("plan {}: running through {}", spec.id, server.url);
                through(&server, "POST", "/api/plans", Some(&body))?;
                return finish(&watch(&server, &spec.id)?, json);
            }
            let id = spec.id.clone();
            let record = execute(data, &id, move |executor| Box::pin(async move { executor.run(spec).await }))?;
            finish(&record, json)
        }
        PlanCommand::Resume { id, json } => {
            if let Some(server) = Server::find(data)? {
                let body = json!({});
                return finish(&through(&server, "POST", &format!("/api/plans/{id}/resume"), Some(&body))?, json);
            }
            super::require_store(data)?;
            let plan = id.clone();
            let record = execute(data, &id, move |executor| Box::pin(async move { executor.resume(&plan).await }))?;
            finish(&record, json)
        }
        PlanCommand::Cancel { id, json } => {
            let record = match Server::find(data)? {
                Some(server) => through(&server, "DELETE", &format!("/api/plans/{id}"), None)?,
                None => {
                    super::require_store(data)?;
                    let plan = id.clone();
                    execute(data, &id, move |executor| Box::pin(async move { executor.cancel(&plan).await }))?
                }
            };
            if json {
                crate::outln!("{}", serde_json::to_string(&record)?);
            } else {
                crate::outln!("{}", summary(&record));
            }
            Ok(EXIT_OK)
        }
        PlanCommand::List { json } => {
            if super::require_store(data).is_err() {
                crate::outln!("{}", if json { "[]" } else { "no plans yet; `cclog plan run FILE` runs one" });
                return Ok(EXIT_OK);
            }
            let log = super::open_log_to_read(data)?;
            let plans = PlanRegistry::all(&log)?;
            if json {
                crate::outln!("{}", serde_json::to_string(&plans)?);
            } else if plans.is_empty() {
                crate::outln!("no plans yet; `cclog plan run FILE` runs one");
            }
            if !json {
                for plan in &plans {
                    crate::outln!("{}", summary(plan));
                }
            }
            Ok(EXIT_OK)
        }
        PlanCommand::Stats { json, pricing } => {
            if super::require_store(data).is_err() {
                crate::outln!("{}", if json { "{}" } else { "no plans yet" });
                return Ok(EXIT_OK);
            }
            let prices = super::price_table(&pricing)?;
            let log = super::open_log_to_read(data)?;
            let stats = PlanRegistry::stats(&log, &prices)?;
            if json {
                crate::outln!("{}", serde_json::to_string(&stats)?);
                return Ok(EXIT_OK);
            }
            let share = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{:.0}%", value * 100.0));
            let number = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{value:.2}"));
            crate::outln!("plans              {} ({} completed)", stats.plans, stats.completed_plans);
            crate::outln!("tasks              {} ({} completed)", stats.tasks, stats.completed_tasks);
            crate::outln!("tasks per session  {}", number(stats.tasks_per_session));
            crate::outln!(
                "session resumes    {} ({} failed; {} succeeded)",
                stats.resumes,
                stats.failed_resumes,
                share(stats.resume_success_rate)
            );
            crate::outln!("expired sessions   {}", stats.expired_sessions);
            crate::outln!("retries            {}", stats.retries);
            crate::outln!(
                "cost               {} ({} per completed task)",
                crate::output::dollars(stats.cost_usd, 4),
                crate::output::dollars(stats.cost_per_task_usd, 4)
            );
            Ok(EXIT_OK)
        }
        PlanCommand::Show { id, json } => {
            super::require_store(data)?;
            let log = super::open_log_to_read(data)?;
            let record = PlanRegistry::get(&log, &id)?.ok_or_else(|| Failure {
                code: EXIT_FAILURE,
                message: format!("no plan {id}; `cclog plan list` shows the plans"),
            })?;
            if json {
                crate::outln!("{}", json!({"plan": record, "spec": PlanRegistry::spec(&log, &record)?}));
                return Ok(EXIT_OK);
            }
            crate::outln!("{}", summary(&record));
            for task in &record.tasks {
                crate::outln!(
                    "  {:<16} {:<9} session {}  runs {}{}",
                    task.id,
                    format!("{:?}", task.status).to_lowercase(),
                    task.session.as_deref().unwrap_or("-"),
                    if task.runs.is_empty() { "-".to_string() } else { task.runs.join(", ") },
                    task.reason.as_deref().map(|reason| format!("  ({reason})")).unwrap_or_default()
                );
            }
            Ok(EXIT_OK)
        }
    }
}

/// What a command asks of the executor.
type Running<'e> = std::pin::Pin<Box<dyn std::future::Future<Output = cclog_ingest::Result<PlanRecord>> + 'e>>;

/// Runs `work` on an executor over this process's log and a runner of its own, printing
/// plan `id`'s steps on stderr as they are recorded.
fn execute(
    data: &Path,
    id: &str,
    work: impl for<'e> FnOnce(&'e Executor) -> Running<'e>,
) -> anyhow::Result<PlanRecord> {
    let log = super::open_log(data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let runner = Runner::new(Arc::clone(&log), RunnerConfig::from_env()?);
        runner.recover().await?;
        let executor = Executor::new(Arc::clone(&log), runner);
        let stream = vocabulary::plan_stream(id);
        let mut subscription = log.subscribe(log.len());
        let progress = async {
            while let Ok(event) = subscription.next().await {
                if event.stream() == stream {
                    report(&event);
                }
            }
        };
        tokio::select! {
            done = work(&executor) => Ok(done?),
            () = progress => anyhow::bail!("the log closed while the plan ran"),
        }
    })
}

/// One plan step on stderr.
fn report(event: &cclog_engine::Event) {
    match event.kind() {
        vocabulary::KIND_TASK => {
            if let Ok(change) = cclog_projections::events::decode::<TaskChange>("plan task", &event.payload) {
                let what = match change.event {
                    TaskEvent::Started { run, fallback } => {
                        format!("started (run {run}{})", if fallback { ", with the plan so far" } else { "" })
                    }
                    TaskEvent::Completed { .. } => "completed".to_string(),
                    TaskEvent::Failed { reason, .. } => format!("failed: {reason}"),
                    TaskEvent::Retried { new_session, reason } => {
                        format!("retried{}: {reason}", if new_session { " in a new session" } else { "" })
                    }
                    TaskEvent::Skipped { reason } => format!("skipped: {reason}"),
                };
                crate::errln!("task {}: {what}", change.task);
            }
        }
        vocabulary::KIND_SESSION => {
            if let Ok(change) = cclog_projections::events::decode::<SessionChange>("plan session", &event.payload) {
                crate::errln!(
                    "session {:?}: {}{}",
                    change.event,
                    change.session.as_deref().unwrap_or("-"),
                    change.reason.map(|reason| format!(" ({reason})")).unwrap_or_default()
                );
            }
        }
        _ => {}
    }
}

/// Follows a plan the server runs until it ends, printing each task's status as it
/// changes; the plan as it ended.
fn watch(server: &Server, id: &str) -> anyhow::Result<PlanRecord> {
    let mut shown: std::collections::BTreeMap<String, (TaskStatus, usize)> = std::collections::BTreeMap::new();
    loop {
        let record = through(server, "GET", &format!("/api/plans/{id}"), None)?;
        for task in &record.tasks {
            let now = (task.status, task.runs.len());
            let before = shown.insert(task.id.clone(), now);
            let fresh = before.is_none() && task.status == TaskStatus::Pending;
            if before != Some(now) && !fresh {
                let reason = task.reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default();
                crate::errln!("task {}: {}{reason}", task.id, format!("{:?}", task.status).to_lowercase());
            }
        }
        if record.status != PlanStatus::Running {
            return Ok(record);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// One call to the server's plan API; the plan it answers with.
fn through(server: &Server, method: &str, path: &str, body: Option<&serde_json::Value>) -> anyhow::Result<PlanRecord> {
    let (status, answer) = server.call(method, path, body)?;
    if !(200..300).contains(&status) {
        let code = if status == 400 { EXIT_BAD_INPUT } else { EXIT_FAILURE };
        return Err(Failure { code, message: api_error(&answer) }.into());
    }
    serde_json::from_value(answer).context("the server's answer")
}

fn summary(plan: &PlanRecord) -> String {
    let done = plan.tasks.iter().filter(|task| task.status == TaskStatus::Completed).count();
    format!(
        "plan {} {}: {done}/{} tasks, {} sessions, {} resumes ({} failed), {} expired, {} retries",
        plan.id,
        format!("{:?}", plan.status).to_lowercase(),
        plan.tasks.len(),
        plan.sessions.len(),
        plan.resumes,
        plan.failed_resumes,
        plan.expired,
        plan.retries
    )
}

fn finish(record: &PlanRecord, json: bool) -> anyhow::Result<u8> {
    if json {
        crate::outln!("{}", serde_json::to_string(record)?);
    } else {
        crate::outln!("{}", summary(record));
    }
    Ok(if record.status == PlanStatus::Completed { EXIT_OK } else { EXIT_FAILURE })
}
