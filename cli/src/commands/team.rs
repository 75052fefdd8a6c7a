//! `cclog team`: teams of Claude Code agents in containers and one tmux session — create,
//! resume, stop, list, health, clean-up, and `attach`, the interactive exec each tmux window
//! runs. Each subcommand parses, calls the team service (`cclog_ingest::team`) and renders.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use cclog_ingest::team::engine::{ContainerEngine, LiveState};
use cclog_ingest::team::{attach, export, CreateRequest, Endpoint, HostEnv, Started, TeamStatus, Teams};
use serde_json::json;

use crate::args::{TeamArgs, TeamCleanupArgs, TeamCommand, TeamCreateArgs};
use crate::json_style::Snake;
use crate::output::{self, paint, Column, Table};
use crate::{Failure, EXIT_BAD_INPUT, EXIT_DAMAGED, EXIT_FAILURE, EXIT_OK};

pub fn run(data: &Path, args: TeamArgs) -> anyhow::Result<u8> {
    let host = args.client_env.unwrap_or_else(HostEnv::from_process);
    if let TeamCommand::Attach { container, cwd, command } = args.command {
        return attach_here(&host, &container, cwd.as_deref(), command);
    }
    if let TeamCommand::CheckExport { dir, json } = &args.command {
        return check_export(data, dir, *json);
    }
    if super::require_store(data).is_err() {
        // No log yet: no teams to list, check, resume or stop; only a create makes one.
        match &args.command {
            TeamCommand::List { json, .. } => {
                print_list(&[], *json, false)?;
                return Ok(EXIT_OK);
            }
            TeamCommand::Create(_) => {}
            _ => super::require_store(data)?,
        }
    }
    let log = super::open_log_waiting(data)?;
    let cclog = std::env::current_exe()?;
    let server = cclog_http::server::Advertisement::read(data)
        .map(|advertised| Endpoint { url: advertised.url, token: advertised.token });
    let teams = Teams::new(&log, data, cclog, host).with_coordinator(server);
    match args.command {
        TeamCommand::Create(create) => {
            let json = create.json;
            let started = teams.create(&create_request(*create)?)?;
            print_started(&started, json, "created")?;
        }
        TeamCommand::Resume { name, json } => print_started(&teams.resume(&name)?, json, "resumed")?,
        TeamCommand::Stop { name, json } => {
            let status = teams.stop(&name)?;
            if json {
                crate::outln!("{}", crate::json_style::line(&status)?);
            } else {
                crate::outln!(
                    "team {name} stopped: {} containers kept, tmux session closed; `cclog team resume {name}` brings it back",
                    status.total
                );
            }
        }
        TeamCommand::List { verbose, all, json } => {
            print_list(&teams.list(all)?, json, verbose)?;
        }
        TeamCommand::Health { name, json } => {
            let health = teams.health(&name)?;
            if json {
                crate::outln!(
                    "{}",
                    json!({"healthy": health.healthy(), "team": Snake(&health.team), "problems": Snake(&health.problems)})
                );
            } else if health.healthy() {
                crate::outln!(
                    "team {name} is healthy: {}/{} containers running, tmux session {}",
                    health.team.running,
                    health.team.total,
                    if health.team.tmux { "open" } else { "closed (stopped team)" }
                );
            } else {
                let colour = output::colour_stdout();
                crate::outln!("{}", paint(colour, output::RED, &format!("team {name} is broken:")));
                for problem in &health.problems {
                    crate::outln!("  {}\n    fix: {}", problem.problem, problem.fix);
                }
            }
            if !health.healthy() {
                return Ok(EXIT_DAMAGED);
            }
        }
        TeamCommand::Cleanup(cleanup) => return clean_up(&teams, cleanup),
        TeamCommand::Export { name, output, json } => {
            let report = export::export(&log, &name, &output)?;
            if json {
                crate::outln!("{}", crate::json_style::line(&report)?);
            } else {
                crate::outln!(
                    "team {name} exported to {}: {} files, {} sessions; manifest {} (recorded in the log)",
                    report.output.display(),
                    report.files,
                    report.sessions,
                    report.manifest_blake3
                );
            }
        }
        TeamCommand::Attach { .. } | TeamCommand::CheckExport { .. } => unreachable!("handled above"),
    }
    Ok(EXIT_OK)
}

/// `team check-export`: the files against the manifest, and the manifest against the log
/// when this data directory holds one.
fn check_export(data: &Path, dir: &Path, json: bool) -> anyhow::Result<u8> {
    let log = match super::require_store(data) {
        Ok(()) => Some(super::open_log_to_read(data)?),
        Err(_) => None,
    };
    let report = export::check(dir, log.as_ref().map(|log| &***log))?;
    if json {
        crate::outln!("{}", crate::json_style::line(&json!({"intact": report.intact(), "report": Snake(&report)}))?);
    } else if report.intact() {
        crate::outln!(
            "export of team {} is intact: {} files match the manifest{}",
            report.team,
            report.files,
            match report.recorded_in_log {
                Some(true) => ", and the log records this manifest",
                _ => " (no log here to confirm the manifest against)",
            }
        );
    } else {
        for path in &report.damaged {
            crate::outln!("damaged or missing: {path}");
        }
        for path in &report.unlisted {
            crate::outln!("not in the manifest: {path}");
        }
        if report.recorded_in_log == Some(false) {
            crate::outln!("the log records no export of team {} with this manifest", report.team);
        }
    }
    Ok(if report.intact() { EXIT_OK } else { EXIT_DAMAGED })
}

fn create_request(args: TeamCreateArgs) -> anyhow::Result<CreateRequest> {
    let cwd = match args.cwd {
        Some(cwd) => cwd,
        None => std::env::current_dir()?,
    };
    Ok(CreateRequest {
        name: args.name,
        agents: args.agents,
        image: args.image,
        memory: args.container_memory,
        cpus: args.container_cpus,
        cwd,
        env: args.env,
        host_env: !args.no_host_env,
        network: args.network,
        keepalive: args.keepalive,
        agent_command: args.agent_command,
        mounts: args.mounts,
        container_home: args.container_home,
        tmux_socket: args.tmux_socket,
        coordinator: !args.no_coordinator,
        coordinator_url: args.mcp_url,
        force: args.force,
    })
}

fn attach_here(host: &HostEnv, container: &str, cwd: Option<&str>, command: Vec<String>) -> anyhow::Result<u8> {
    let command = if command.is_empty() { vec!["claude".to_string()] } else { command };
    let engine = ContainerEngine::connect(host.docker_host.as_deref())?;
    let code = attach::attach(&engine, container, &command, cwd)?;
    Ok(u8::try_from(code).unwrap_or(EXIT_FAILURE))
}

fn print_started(started: &Started, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        crate::outln!("{}", crate::json_style::line(started)?);
        return Ok(());
    }
    crate::outln!("team {} {what}:", started.team);
    for agent in &started.agents {
        crate::outln!(
            "  {:<12} container {} ({}), {}",
            agent.agent,
            agent.container,
            agent.container_action,
            agent
                .session
                .as_deref()
                .map_or("fresh Claude Code session".to_string(), |id| format!("resuming session {id}"))
        );
    }
    for note in &started.notes {
        crate::errln!("note: {note}");
    }
    if started.tmux_created {
        crate::outln!("attach with: {}", started.attach);
    }
    Ok(())
}

fn state_word(state: Option<LiveState>) -> &'static str {
    state.map_or("unknown", LiveState::as_str)
}

fn print_list(teams: &[TeamStatus], json: bool, verbose: bool) -> anyhow::Result<()> {
    if json {
        crate::outln!("{}", crate::json_style::line(&teams)?);
        return Ok(());
    }
    if teams.is_empty() {
        crate::errln!("no teams; `cclog team create NAME` makes one");
        return Ok(());
    }
    if let Some(error) = teams.iter().find_map(|team| team.engine_error.as_deref()) {
        crate::errln!("cclog: container states unknown: {error}");
    }
    let zone = output::time_zone();
    let teams_table = Table {
        columns: vec![
            Column::text("TEAM"),
            Column::text(&output::time_heading("CREATED", &zone)).droppable(2),
            Column::text("PHASE"),
            Column::number("RUNNING"),
            Column::text("TMUX").droppable(1),
            Column::text("IMAGE").flexible(12),
        ],
        rows: teams
            .iter()
            .map(|team| {
                vec![
                    team.name.clone(),
                    output::local_time(&team.created_at, &zone, false),
                    format!("{:?}", team.phase).to_lowercase(),
                    format!("{}/{}", team.running, team.total),
                    if team.tmux { "open" } else { "closed" }.to_string(),
                    team.image.clone(),
                ]
            })
            .collect(),
        ..Table::default()
    };
    teams_table.print(output::table_width(false));
    if verbose {
        // Each agent: its container, the container's state and the session it resumes.
        let agents = Table {
            columns: vec![
                Column::text("TEAM"),
                Column::text("AGENT"),
                Column::text("CONTAINER").droppable(1),
                Column::text("STATE"),
                Column::text("SESSION").flexible(8),
            ],
            rows: teams
                .iter()
                .flat_map(|team| {
                    team.agents.iter().map(|agent| {
                        vec![
                            team.name.clone(),
                            agent.agent.clone(),
                            agent.container.clone(),
                            state_word(agent.state).to_string(),
                            agent.session.clone().unwrap_or_else(|| "-".to_string()),
                        ]
                    })
                })
                .collect(),
            ..Table::default()
        };
        crate::outln!();
        agents.print(output::table_width(false));
    }
    Ok(())
}

/// The teams a clean-up is about: by name, glob, or with no container running.
fn chosen(teams: &Teams<'_>, args: &TeamCleanupArgs) -> anyhow::Result<Vec<TeamStatus>> {
    let pattern = args
        .pattern
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
        .map_err(|error| Failure { code: EXIT_BAD_INPUT, message: format!("--pattern: {error}") })?;
    let listed = teams.list(false)?;
    if let Some(name) = &args.remove {
        if !listed.iter().any(|team| &team.name == name) {
            return Err(Failure {
                code: EXIT_FAILURE,
                message: format!("no team {name}; `cclog team list` shows the teams"),
            }
            .into());
        }
    }
    Ok(listed
        .into_iter()
        .filter(|team| args.remove.as_ref().is_none_or(|name| &team.name == name))
        .filter(|team| pattern.as_ref().is_none_or(|pattern| pattern.matches(&team.name)))
        .filter(|team| !args.stopped_only || team.running == 0)
        .collect())
}

fn clean_up(teams: &Teams<'_>, args: TeamCleanupArgs) -> anyhow::Result<u8> {
    let interactive_terminal = std::io::stdin().is_terminal();
    if args.interactive && !interactive_terminal {
        return Err(Failure {
            code: EXIT_BAD_INPUT,
            message: "--interactive asks on a terminal and stdin is not one; choose teams with --remove, --pattern \
                      or --stopped-only and confirm with --yes"
                .into(),
        }
        .into());
    }
    let chosen = chosen(teams, &args)?;
    let mut done = Vec::new();
    let mut plans = Vec::new();
    let act = args.yes || args.interactive;
    // With --json, stdout holds only the JSON; what is done is told on stderr.
    let say = |line: String| if args.json { crate::errln!("{line}") } else { crate::outln!("{line}") };
    for team in &chosen {
        let broken: Vec<&str> = team
            .agents
            .iter()
            .filter(|agent| agent.state == Some(LiveState::Missing))
            .map(|agent| agent.container.as_str())
            .collect();
        let plan = if args.fix_broken {
            if broken.is_empty() {
                continue;
            }
            let verb = if args.drop_missing { "drop the agents of" } else { "recreate" };
            format!("{verb} {} of team {}", broken.join(", "), team.name)
        } else {
            format!(
                "remove team {}: containers {}, tmux session {}, and its agents' directories (its events and transcripts stay in the log)",
                team.name,
                team.agents.iter().map(|agent| agent.container.as_str()).collect::<Vec<_>>().join(", "),
                team.name
            )
        };
        plans.push(plan.clone());
        if !act {
            say(format!("would {plan}"));
            continue;
        }
        if args.interactive && !ask(&format!("{plan}? [y/N] "))? {
            continue;
        }
        if args.fix_broken {
            let fixed = teams.fix_broken(&team.name, args.drop_missing)?;
            let verb = if args.drop_missing { "dropped agents" } else { "recreated" };
            say(format!("team {}: {verb} {}", team.name, fixed.join(", ")));
        } else {
            teams.remove(&team.name)?;
            say(format!("team {} removed; its history stays in the log", team.name));
        }
        done.push(team.name.clone());
    }
    if args.json {
        crate::outln!(
            "{}",
            json!({"done": done, "dry_run": !act, "plans": Snake(&plans), "chosen": chosen.iter().map(|team| &team.name).collect::<Vec<_>>()})
        );
    }
    if !act && !chosen.is_empty() {
        crate::errln!("nothing was changed; add --yes to do it");
    } else if chosen.is_empty() {
        crate::errln!("no team matches");
    }
    Ok(EXIT_OK)
}

fn ask(question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
