//! `cclog plan`: run a plan file's tasks in one Claude Code session, resume a plan, cancel
//! one, list plans, show one with each task's tokens, cost and duration, and the stats
//! across plans. The tasks run through a runner in the process that owns the log (this
//! one, or the `cclog serve` whose API the command calls); as the log records them, each
//! step prints on stderr and each task's messages as JSON lines on stdout, as `cclog run`
//! prints a run's.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use cclog_ingest::plan::executor::Executor;
use cclog_ingest::plan::file::{PlanFile, DEFAULT_TTL};
use cclog_ingest::runner::{Runner, RunnerConfig};
use cclog_projections::events::plan::{PlanStep, TaskEvent};
use cclog_projections::plan_feed::{FeedItem, PlanFeed};
use cclog_projections::plans::{PlanRecord, PlanRegistry, PlanStatus, TaskMetrics, TaskStatus};
use serde_json::json;

use super::client::{api_error, Server};
use crate::args::PlanCommand;
use crate::json_style::Snake;
use crate::output::{self, Column, Table};
use crate::{Failure, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK};

pub fn run(data: &Path, command: PlanCommand) -> anyhow::Result<u8> {
    match command {
        PlanCommand::Run { file, cwd, ttl, json } => {
            let bad = |message: String| Failure { code: EXIT_BAD_INPUT, message };
            let ttl_value = ttl
                .as_deref()
                .map(|ttl| humantime::parse_duration(ttl).map_err(|error| bad(format!("--ttl {ttl:?}: {error}"))))
                .transpose()?;
            let mut plan = PlanFile::load(&file).map_err(|error| bad(error.to_string()))?;
            // The plan's directory, the client's: made absolute here.
            let cwd = match plan.cwd.take().or(cwd) {
                Some(cwd) => cwd,
                None => std::env::current_dir()?,
            };
            plan.cwd = Some(std::path::absolute(cwd)?);
            // Without --ttl (or CCLOG_PLAN_TTL), a server applies its own default.
            plan.ttl = plan.ttl.or(ttl);
            let spec =
                plan.clone().resolve(None, ttl_value.unwrap_or(DEFAULT_TTL)).map_err(|error| bad(error.to_string()))?;
            plan.id = Some(spec.id.clone());
            if let Some(server) = Server::find(data)? {
                let mut body = serde_json::to_value(&plan)?;
                body["wait"] = serde_json::Value::Bool(false);
                crate::errln!("plan {}: running through {}", spec.id, server.url);
                through(&server, "POST", "/api/plans", Some(&body))?;
                return finish(&follow(&server, &spec.id, 0)?, json);
            }
            let id = spec.id.clone();
            let record = execute(data, &id, move |executor| Box::pin(async move { executor.run(spec).await }))?;
            finish(&record, json)
        }
        PlanCommand::Resume { id, json } => {
            if let Some(server) = Server::find(data)? {
                let before = through(&server, "GET", &format!("/api/plans/{id}"), None)?;
                through(&server, "POST", &format!("/api/plans/{id}/resume"), Some(&json!({"wait": false})))?;
                return finish(&follow(&server, &id, before.last_seq + 1)?, json);
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
                crate::outln!("{}", crate::json_style::line(&record)?);
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
                crate::outln!("{}", crate::json_style::line(&plans)?);
            } else if plans.is_empty() {
                crate::outln!("no plans yet; `cclog plan run FILE` runs one");
            } else {
                plans_table(&plans).print(output::table_width(false));
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
                crate::outln!("{}", crate::json_style::line(&stats)?);
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
        PlanCommand::Show { id, json, pricing } => {
            super::require_store(data)?;
            let prices = super::price_table(&pricing)?;
            let log = super::open_log_to_read(data)?;
            let record = PlanRegistry::get(&log, &id)?.ok_or_else(|| Failure {
                code: EXIT_FAILURE,
                message: format!("no plan {id}; `cclog plan list` shows the plans"),
            })?;
            let metrics = PlanRegistry::metrics(&log, &record, &prices)?;
            if json {
                let spec = PlanRegistry::spec(&log, &record)?;
                crate::outln!(
                    "{}",
                    crate::json_style::line(
                        &json!({"plan": Snake(&record), "spec": Snake(&spec), "metrics": Snake(&metrics)})
                    )?
                );
                return Ok(EXIT_OK);
            }
            crate::outln!("{}", summary(&record));
            for (task, used) in record.tasks.iter().zip(&metrics.tasks) {
                crate::outln!(
                    "  {:<16} {:<9} session {}  runs {}  {}{}",
                    task.id,
                    format!("{:?}", task.status).to_lowercase(),
                    task.session.as_deref().unwrap_or("-"),
                    if task.runs.is_empty() { "-".to_string() } else { task.runs.join(", ") },
                    usage_line(used),
                    task.reason.as_deref().map(|reason| format!("  ({reason})")).unwrap_or_default()
                );
            }
            crate::outln!("  {:<16} {}", "total", usage_line(&metrics.total));
            Ok(EXIT_OK)
        }
    }
}

/// Tokens, cost and wall time of a task or a plan.
fn usage_line(metrics: &TaskMetrics) -> String {
    let unpriced = if metrics.unpriced_models.is_empty() {
        String::new()
    } else {
        format!(" (not priced: {})", metrics.unpriced_models.join(", "))
    };
    format!(
        "{} tokens  {}{unpriced}  {}",
        crate::output::grouped(metrics.total_tokens),
        crate::output::dollars(metrics.cost_usd, 2),
        humantime::format_duration(std::time::Duration::from_millis(metrics.duration_ms / 100 * 100))
    )
}

/// What a command asks of the executor.
type Running<'e> = std::pin::Pin<Box<dyn std::future::Future<Output = cclog_ingest::Result<PlanRecord>> + 'e>>;

/// Runs `work` on an executor over this process's log and a runner of its own, printing
/// plan `id` as it goes (its steps on stderr, its tasks' messages on stdout); Ctrl-C
/// cancels the plan.
fn execute(
    data: &Path,
    id: &str,
    work: impl for<'e> FnOnce(&'e Executor) -> Running<'e>,
) -> anyhow::Result<PlanRecord> {
    let log = super::open_log(data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let stop = crate::output::stop_flag()?;
    runtime.block_on(async {
        let runner = Runner::new(Arc::clone(&log), RunnerConfig::from_env()?);
        runner.recover().await?;
        let executor = Executor::new(Arc::clone(&log), runner);
        let mut feed = PlanFeed::new(id, log.len());
        let mut subscription = log.subscribe(log.len());
        // Events printed so far: those before this seq.
        let mut printed = log.len();
        let canceller = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            crate::errln!("plan {id}: cancelling");
            if let Err(error) = executor.cancel(id).await {
                crate::errln!("plan {id}: {error}");
            }
            std::future::pending::<()>().await;
        };
        tokio::pin!(canceller);
        let work = work(&executor);
        tokio::pin!(work);
        // The plan as it ended, and the log's length then: what it wrote up to there is
        // printed before the plan is returned, so its last steps are never cut off.
        let mut finished: Option<(PlanRecord, u64)> = None;
        loop {
            if let Some((_, end)) = &finished {
                if printed >= *end {
                    break;
                }
            }
            tokio::select! {
                done = &mut work, if finished.is_none() => finished = Some((done?, log.len())),
                event = subscription.next() => {
                    let Ok(event) = event else { anyhow::bail!("the log closed while the plan ran") };
                    printed = event.seq() + 1;
                    if feed.wants(&event) {
                        for item in feed.take(&log, &event)? {
                            print_item(item)?;
                        }
                    }
                }
                () = &mut canceller => unreachable!("the canceller never ends"),
            }
        }
        Ok(finished.map(|(plan, _)| plan).expect("the loop ends once the plan has"))
    })
}

/// One item of a plan's feed: a step on stderr, a task's message as a JSON line on stdout.
fn print_item(item: FeedItem) -> anyhow::Result<()> {
    match item {
        FeedItem::Step { step, .. } => report(&step),
        FeedItem::Message { message, .. } => {
            let mut out = crate::output::Stdout;
            out.write_all(&message)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
    Ok(())
}

/// One plan step on stderr.
fn report(step: &PlanStep) {
    match step {
        PlanStep::Created(spec) => crate::errln!("plan {}: {} tasks in {}", spec.id, spec.tasks.len(), spec.cwd),
        PlanStep::Task(change) => {
            let what = match &change.event {
                TaskEvent::Started { run, fallback } => {
                    format!("started (run {run}{})", if *fallback { ", with the plan so far" } else { "" })
                }
                TaskEvent::Completed { .. } => "completed".to_string(),
                TaskEvent::Failed { reason, .. } => format!("failed: {reason}"),
                TaskEvent::Retried { new_session, reason } => {
                    format!("retried{}: {reason}", if *new_session { " in a new session" } else { "" })
                }
                TaskEvent::Skipped { reason } => format!("skipped: {reason}"),
            };
            crate::errln!("task {}: {what}", change.task);
        }
        PlanStep::Session(change) => crate::errln!(
            "session {}: {}{}",
            format!("{:?}", change.event).to_lowercase(),
            change.session.as_deref().unwrap_or("-"),
            change.reason.as_deref().map(|reason| format!(" ({reason})")).unwrap_or_default()
        ),
        PlanStep::Resumed(_) => crate::errln!("plan resumed"),
        PlanStep::Ended(_) => {}
    }
}

/// Follows a plan the server runs from seq `from` until it ends — its steps on stderr, its
/// tasks' messages on stdout — and Ctrl-C cancels it there; the plan as it ended.
fn follow(server: &Server, id: &str, from: u64) -> anyhow::Result<PlanRecord> {
    #[derive(serde::Deserialize)]
    struct StepData {
        step: PlanStep,
    }
    #[derive(serde::Deserialize)]
    struct MessageData {
        message: Box<serde_json::value::RawValue>,
    }
    let stop = crate::output::stop_flag()?;
    {
        let (server, id) = (server.clone(), id.to_string());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            crate::errln!("plan {id}: cancelling");
            let _ = server.call("DELETE", &format!("/api/plans/{id}"), None);
        });
    }
    let mut out = crate::output::Stdout;
    let ended = server.follow_events(&format!("/api/plans/{id}/stream?from={from}"), |event, data| {
        match event {
            "step" => report(&serde_json::from_str::<StepData>(data)?.step),
            "message" => {
                writeln!(out, "{}", serde_json::from_str::<MessageData>(data)?.message.get())?;
                out.flush()?;
            }
            "end" => return Ok(ControlFlow::Break(serde_json::from_str::<PlanRecord>(data)?)),
            _ => {}
        }
        Ok(ControlFlow::Continue(()))
    })?;
    match ended {
        Some(record) => Ok(record),
        None => {
            let record = through(server, "GET", &format!("/api/plans/{id}"), None)?;
            if record.status == PlanStatus::Running {
                anyhow::bail!("the server's stream of plan {id} ended while the plan runs; `cclog plan show {id}` shows where it is");
            }
            Ok(record)
        }
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

/// Plans, one a row: id, start in the local zone, status, tasks done, sessions, resumes
/// (failed), expired sessions, retries.
fn plans_table(plans: &[PlanRecord]) -> Table {
    let zone = output::time_zone();
    let rows = plans
        .iter()
        .map(|plan| {
            let done = plan.tasks.iter().filter(|task| task.status == TaskStatus::Completed).count();
            let started = jiff::Timestamp::from_microsecond(i64::try_from(plan.created_us).unwrap_or(i64::MAX))
                .map(|at| output::local_time(&at.to_string(), &zone, false))
                .unwrap_or_default();
            vec![
                plan.id.clone(),
                started,
                format!("{:?}", plan.status).to_lowercase(),
                format!("{done}/{}", plan.tasks.len()),
                plan.sessions.len().to_string(),
                format!("{} ({} failed)", plan.resumes, plan.failed_resumes),
                plan.expired.to_string(),
                plan.retries.to_string(),
            ]
        })
        .collect();
    Table {
        columns: vec![
            Column::text("PLAN").flexible(12),
            Column::text(&output::time_heading("STARTED", &zone)).droppable(3),
            Column::text("STATUS"),
            Column::number("TASKS"),
            Column::number("SESSIONS").droppable(2),
            Column::text("RESUMES").droppable(1),
            Column::number("EXPIRED").droppable(4),
            Column::number("RETRIES"),
        ],
        rows,
        ..Table::default()
    }
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

/// The end of `plan run` and `plan resume`: the summary on stderr, or with `--json` the plan
/// as the last line on stdout.
fn finish(record: &PlanRecord, json: bool) -> anyhow::Result<u8> {
    if json {
        crate::outln!("{}", crate::json_style::line(record)?);
    } else {
        crate::errln!("{}", summary(record));
    }
    Ok(if record.status == PlanStatus::Completed { EXIT_OK } else { EXIT_FAILURE })
}
