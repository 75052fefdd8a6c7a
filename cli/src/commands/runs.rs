//! `cclog run start|resume|fork|cancel` and `cclog runs`. When `cclog serve` owns the data
//! directory (it advertises itself in `server.json`) they go through its API; otherwise
//! `run` starts the CLI in this process and `runs` reads the log directly. Either way each
//! message prints the moment it is recorded: the SDK message as one JSON line on stdout,
//! a summary on stderr at the end (`--json`: the run as JSON on stdout instead).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use cclog_http::views::{self, Run};
use cclog_ingest::archiver::Archiver;
use cclog_ingest::runner::{Mode, RunOptions, RunRequest, Runner, RunnerConfig};
use cclog_projections::events;
use cclog_projections::messages;
use serde_json::{json, Value};

use super::client::{api_error, Server};
use crate::args::{RunCommand, RunFlags, RunsArgs};
use crate::output::{self, Column, Table};
use crate::{EXIT_FAILURE, EXIT_OK};

pub fn run(data: &Path, command: RunCommand) -> anyhow::Result<u8> {
    let (mode, in_place, cwd, prompt, session, flags) = match command {
        RunCommand::Start { cwd, prompt, options } => (Mode::Start, false, Some(cwd), prompt, None, options),
        RunCommand::Resume { session, prompt, in_place, options } => {
            (Mode::Resume, in_place, None, prompt, Some(session), options)
        }
        RunCommand::Fork { session, prompt, options } => (Mode::Fork, false, None, prompt, Some(session), options),
        RunCommand::Cancel { run, json } => return cancel(data, &run, json),
    };
    let cwd =
        cwd.map(|cwd| std::fs::canonicalize(&cwd).with_context(|| format!("cwd {}", cwd.display()))).transpose()?;
    let request = RunRequest { mode, in_place, cwd, prompt, session, options: options_of(&flags) };
    let record = match Server::find(data)? {
        Some(server) => server.run(&request)?,
        None => run_here(data, request)?,
    };
    finish(&record, flags.json)
}

fn options_of(flags: &RunFlags) -> RunOptions {
    let list = |tools: &Vec<String>| (!tools.is_empty()).then(|| tools.clone());
    RunOptions {
        model: flags.model.clone(),
        permission_mode: flags.permission_mode.clone(),
        allowed_tools: list(&flags.allowed_tools),
        disallowed_tools: list(&flags.disallowed_tools),
        append_system_prompt: flags.append_system_prompt.clone(),
        max_turns: flags.max_turns,
    }
}

fn finish(run: &Run, json: bool) -> anyhow::Result<u8> {
    if json {
        crate::outln!("{}", crate::json_style::line(run)?);
    } else {
        crate::errln!(
            "run {} {} (session {}{}, {} messages{})",
            run.id,
            run.status,
            run.session_id.as_deref().unwrap_or("none"),
            run.parent_session_id.as_deref().map(|parent| format!(", branched off {parent}")).unwrap_or_default(),
            run.message_count,
            run.error.as_deref().map(|error| format!("; {error}")).unwrap_or_default(),
        );
    }
    Ok(if run.status == "completed" { EXIT_OK } else { EXIT_FAILURE })
}

/// Runs the CLI in this process, printing its messages as they are recorded; Ctrl-C
/// cancels the run.
fn run_here(data: &Path, request: RunRequest) -> anyhow::Result<Run> {
    let log = super::open_log(data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let stop = crate::output::stop_flag()?;
    runtime.block_on(async {
        let runner = Runner::new(Arc::clone(&log), RunnerConfig::from_env()?);
        runner.recover().await?;
        let mut subscription = log.subscribe(log.len());
        let handle = runner.start(request).await?;
        let (id, stream) = (handle.id.clone(), events::run_stream(&handle.id));
        let mut out = crate::output::Stdout;
        let mut cancelled = false;
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_millis(200), subscription.next()).await;
            if stop.load(Ordering::Relaxed) && !cancelled {
                cancelled = true;
                let _ = runner.cancel(&id);
            }
            let Ok(event) = next else { continue };
            let event = event?;
            if event.stream() != stream {
                continue;
            }
            match event.kind() {
                events::KIND_RUN_MESSAGE => {
                    out.write_all(&event.payload)?;
                    out.write_all(b"\n")?;
                    out.flush()?;
                }
                events::KIND_RUN_ENDED => break,
                _ => {}
            }
        }
        handle.finished().await;
        if let Some(projects) = cclog_ingest::import::default_projects_dir() {
            Archiver::new(Arc::clone(&log), vec![projects]).import_now().await;
        }
        Ok(views::run(&messages::run_detail(&log, &id)?))
    })
}

fn cancel(data: &Path, run: &str, json: bool) -> anyhow::Result<u8> {
    let Some(server) = Server::find(data)? else {
        anyhow::bail!(
            "no `cclog serve` is running on {}: a run started by `cclog run` is cancelled with Ctrl-C in its terminal",
            data.display()
        );
    };
    let (status, body) = server.call("DELETE", &format!("/api/runs/{run}"), None)?;
    if status != 200 {
        anyhow::bail!("{}", api_error(&body));
    }
    finish(&serde_json::from_value(body)?, json).map(|_| EXIT_OK)
}

pub fn list(data: &Path, args: RunsArgs) -> anyhow::Result<u8> {
    let runs: Vec<Run> = match Server::find(data)? {
        Some(server) => {
            let path = if args.active { "/api/runs?active=true" } else { "/api/runs" };
            let (status, body) = server.call("GET", path, None)?;
            if status != 200 {
                anyhow::bail!("{}", api_error(&body));
            }
            serde_json::from_value(body).context("the server's list of runs")?
        }
        None => {
            super::require_store(data)?;
            let log = super::open_log_to_read(data)?;
            messages::runs_newest_first(&log, args.active)?.iter().map(views::run).collect()
        }
    };
    if args.json {
        crate::outln!("{}", crate::json_style::line(&runs)?);
        return Ok(EXIT_OK);
    }
    if runs.is_empty() {
        crate::outln!("no runs (`cclog run start PROMPT` starts one, `cclog capture` records one from a pipe)");
        return Ok(EXIT_OK);
    }
    let zone = args.zone.zone()?;
    let short = |id: &str| if args.wide { id.to_string() } else { id.get(..8).unwrap_or(id).to_string() };
    let rows = runs
        .iter()
        .map(|run| {
            vec![
                short(&run.id),
                output::local_time(&run.created_at, &zone, false),
                run.status.clone(),
                run.mode.clone(),
                output::grouped(run.message_count),
                run.session_id.as_deref().map(short).unwrap_or_else(|| "-".to_string()),
                cclog_projections::lineage::shorten(run.prompt.as_deref().unwrap_or(""), usize::MAX),
            ]
        })
        .collect();
    let table = Table {
        columns: vec![
            Column::text("ID"),
            Column::text(&output::time_heading("STARTED", &zone)),
            Column::text("STATUS"),
            Column::text("MODE").droppable(2),
            Column::number("MSGS"),
            Column::text("SESSION").droppable(1),
            Column::text("PROMPT").flexible(20),
        ],
        rows,
        ..Table::default()
    };
    table.print(output::table_width(args.wide));
    Ok(EXIT_OK)
}

impl Server {
    /// Starts the run through the API and prints its messages from the run's SSE stream;
    /// Ctrl-C cancels it on the server.
    fn run(&self, request: &RunRequest) -> anyhow::Result<Run> {
        let (path, mut body) = match request.mode {
            Mode::Start => {
                ("/api/runs/start", json!({ "cwd": request.cwd.as_ref().map(|cwd| cwd.display().to_string()) }))
            }
            Mode::Resume => {
                ("/api/runs/resume", json!({ "sessionId": request.session, "forkSession": !request.in_place }))
            }
            Mode::Fork => ("/api/runs/fork", json!({ "sessionId": request.session })),
        };
        body["prompt"] = json!(request.prompt);
        body["wait"] = json!(false);
        if let (Value::Object(body), Value::Object(options)) = (&mut body, options_json(&request.options)) {
            body.extend(options);
        }
        let (status, started) = self.call("POST", path, Some(&body))?;
        if status != 202 {
            anyhow::bail!("{}", api_error(&started));
        }
        let id = started["id"].as_str().context("the server answered without a run id")?.to_string();
        let stop = crate::output::stop_flag()?;
        let canceller = {
            let server = self.clone();
            let id = id.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let _ = server.call("DELETE", &format!("/api/runs/{id}"), None);
            })
        };
        drop(canceller);
        let mut out = crate::output::Stdout;
        let ended = self.follow_events(&format!("/api/runs/{id}/stream"), |event, data| {
            match event {
                "message" => {
                    let message: MessageData = serde_json::from_str(data)?;
                    writeln!(out, "{}", message.message.get())?;
                    out.flush()?;
                }
                "end" => return Ok(ControlFlow::Break(serde_json::from_str(data)?)),
                _ => {}
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(run) = ended {
            return Ok(run);
        }
        let (_, run) = self.call("GET", &format!("/api/runs/{id}"), None)?;
        Ok(serde_json::from_value(run)?)
    }
}

#[derive(serde::Deserialize)]
struct MessageData {
    message: Box<serde_json::value::RawValue>,
}

fn options_json(options: &RunOptions) -> Value {
    json!({
        "model": options.model,
        "permissionMode": options.permission_mode,
        "allowedTools": options.allowed_tools,
        "disallowedTools": options.disallowed_tools,
        "appendSystemPrompt": options.append_system_prompt,
        "maxTurns": options.max_turns,
    })
}
