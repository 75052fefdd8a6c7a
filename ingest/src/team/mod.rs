//! Team sessions: teams of Claude Code agents, each in a persistent container of its own
//! with its own home (and so its own `~/.claude`) kept in a host directory under the data
//! directory, all shown in one tmux session with a window per agent. Every change cclog
//! makes or finds is an event on `team/<name>` ([`cclog_projections::events::team`]); the
//! registry is the `teams` projection; each agent's transcripts are imported from its home
//! into the archive, so a team's history outlives its containers.
//!
//! # Layout
//! - [`engine`]: containers through the Docker Engine API (`DOCKER_HOST`).
//! - [`tmux`]: tmux through its command line, exact targets, optional private socket.
//! - [`attach`]: an agent's Claude Code on a terminal (what each tmux window runs).
//! - [`export`]: a team's history and transcripts in a directory, with a manifest.
//! - `coordinator`: cclog's MCP coordinator registered in each agent's Claude Code.
//! - this module: create, resume, stop, list, health and clean-up, each recorded.

pub mod attach;
mod coordinator;
pub mod engine;
pub mod export;
pub mod tmux;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cclog_engine::{Log, NewEvent};
use cclog_projections::archive::Archive;
use cclog_projections::events::team::{
    self, AgentSession, ContainerChange, ContainerEvent, HealthFindings, Mount, Note, TeamSpec, TmuxChange, TmuxEvent,
};
use cclog_projections::events::{self as vocabulary};
use cclog_projections::teams::{TeamPhase, TeamRecord, TeamRegistry};
use serde::Serialize;

use crate::import::Importer;
use crate::{Error, Result};
use engine::{ContainerConfig, ContainerEngine, LiveState};
use tmux::{shell_quote, Tmux};

/// The agents of a team created without `--agents`.
pub const DEFAULT_AGENTS: [&str; 3] = ["leader", "researcher", "writer"];

/// Prefixes of the host variables passed to every container unless `--no-host-env`.
pub const HOST_ENV_PREFIXES: [&str; 2] = ["ANTHROPIC_", "CLAUDE_CODE_"];

/// What `team create` is asked for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub agents: Vec<String>,
    pub image: String,
    /// `4g`, `512m`, or bytes.
    pub memory: Option<String>,
    /// `2`, `0.5`.
    pub cpus: Option<String>,
    pub cwd: PathBuf,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    pub host_env: bool,
    pub network: String,
    /// The container's long-lived command, split on whitespace.
    pub keepalive: Option<String>,
    /// What each agent's window runs in its container, split on whitespace.
    pub agent_command: String,
    /// `SRC:DST` or `SRC:DST:ro`.
    pub mounts: Vec<String>,
    pub container_home: String,
    pub tmux_socket: Option<String>,
    /// Register cclog's session coordinator in every agent's Claude Code.
    pub coordinator: bool,
    /// The coordinator's URL as the containers reach it, when not the advertised one.
    pub coordinator_url: Option<String>,
    pub force: bool,
}

/// What the team service takes from the environment of whoever asked: the engine's
/// address and the host variables passed to containers (their values never reach the log).
#[derive(Clone, Default, Serialize, serde::Deserialize)]
pub struct HostEnv {
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `ANTHROPIC_*` and `CLAUDE_CODE_*` variables, by name.
    pub passed: Vec<(String, String)>,
}

/// Names only: the values are secrets (API keys) and must not reach a log line.
impl std::fmt::Debug for HostEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostEnv")
            .field("docker_host", &self.docker_host)
            .field("passed", &self.passed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl HostEnv {
    /// This process's environment.
    pub fn from_process() -> Self {
        let mut passed: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(key, _)| HOST_ENV_PREFIXES.iter().any(|prefix| key.starts_with(prefix)))
            .collect();
        passed.sort();
        HostEnv { docker_host: std::env::var("DOCKER_HOST").ok().filter(|host| !host.is_empty()), passed }
    }
}

/// The team service on one log: where agents' homes live, the tmux server and how each
/// window reaches its container.
pub struct Teams<'a> {
    log: &'a Log,
    /// `<data>/teams`.
    root: PathBuf,
    /// The `cclog` binary each tmux window runs `team attach` with.
    cclog: PathBuf,
    host: HostEnv,
    /// The running `cclog serve` whose MCP coordinator the agents use, if one runs.
    coordinator: Option<Endpoint>,
}

/// Where a running `cclog serve` answers, and its bearer token.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://host:port`.
    pub url: String,
    pub token: Option<String>,
}

/// One agent of a listed team.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub agent: String,
    pub container: String,
    /// `running`, `stopped` or `missing`; `None` when the engine could not be asked.
    pub state: Option<LiveState>,
    pub session: Option<String>,
}

/// A team as the registry and the live world show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamStatus {
    pub name: String,
    pub created_at: String,
    pub phase: TeamPhase,
    pub image: String,
    pub cwd: String,
    pub agents: Vec<AgentStatus>,
    /// Whether the tmux session exists now.
    pub tmux: bool,
    pub tmux_socket: Option<String>,
    pub running: usize,
    pub total: usize,
    /// Why live states are unknown, when they are.
    pub engine_error: Option<String>,
}

/// One problem a health check found, and the command that fixes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub problem: String,
    pub fix: String,
}

/// What `team health` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub team: TeamStatus,
    pub problems: Vec<Problem>,
}

impl Health {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What create or resume did for each agent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub team: String,
    pub agents: Vec<AgentStart>,
    pub tmux_created: bool,
    /// The command that attaches a terminal to the team's tmux session.
    pub attach: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStart {
    pub agent: String,
    pub container: String,
    /// What was done to the container: `created`, `recreated`, `started`, `running`.
    pub container_action: String,
    /// The Claude Code session resumed, `None` for a fresh one.
    pub session: Option<String>,
}

/// The transcript directories of every team agent under data directory `data`
/// (`teams/<team>/agents/<agent>/.claude/projects`) that exist.
pub fn transcript_roots(data: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for team in std::fs::read_dir(data.join("teams")).into_iter().flatten().flatten() {
        for agent in std::fs::read_dir(team.path().join("agents")).into_iter().flatten().flatten() {
            let projects = agent.path().join(".claude").join("projects");
            if projects.is_dir() {
                roots.push(projects);
            }
        }
    }
    roots.sort();
    roots
}

/// Checks a team or agent name: letters, digits, `-`, `_`, `.`, not starting with `-` or
/// `.`, at most 64 characters.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidTeam(format!(
            "{what} name {name:?} is not valid: use letters, digits, '-', '_' and '.' (not first), at most 64"
        )))
    }
}

/// `4g`, `512m`, `100k` or bytes, as bytes.
pub fn parse_memory(text: &str) -> Result<i64> {
    let bad = || Error::InvalidTeam(format!("--container-memory {text:?} is not a size; use e.g. 4g, 512m or bytes"));
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().last() {
        Some((at, 'k')) => (&lower[..at], 1i64 << 10),
        Some((at, 'm')) => (&lower[..at], 1 << 20),
        Some((at, 'g')) => (&lower[..at], 1 << 30),
        _ => (lower, 1),
    };
    let amount: i64 = digits.parse().map_err(|_| bad())?;
    amount.checked_mul(unit).filter(|bytes| *bytes > 0).ok_or_else(bad)
}

/// `2` or `0.5` CPUs, in billionths.
pub fn parse_cpus(text: &str) -> Result<i64> {
    let cpus: f64 =
        text.trim().parse().ok().filter(|cpus: &f64| cpus.is_finite() && *cpus > 0.0 && *cpus <= 4096.0).ok_or_else(
            || Error::InvalidTeam(format!("--container-cpus {text:?} is not a number of CPUs, e.g. 2 or 0.5")),
        )?;
    // In range by the filter above, so the cast cannot overflow.
    Ok((cpus * 1e9).round() as i64)
}

fn parse_mount(text: &str) -> Result<Mount> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [source, target] => (*source, *target, false),
        [source, target, "ro"] => (*source, *target, true),
        [source, target, "rw"] => (*source, *target, false),
        _ => return Err(Error::InvalidTeam(format!("--mount {text:?} is not SRC:DST or SRC:DST:ro"))),
    };
    if !source.starts_with('/') || !target.starts_with('/') {
        return Err(Error::InvalidTeam(format!("--mount {text:?}: both paths must be absolute")));
    }
    Ok(Mount { source: source.to_string(), target: target.to_string(), read_only })
}

fn words(text: &str, what: &str) -> Result<Vec<String>> {
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if words.is_empty() {
        return Err(Error::InvalidTeam(format!("{what} is empty")));
    }
    Ok(words)
}

impl CreateRequest {
    /// The spec this request makes, checked; `agents_dir` holds the agents' homes.
    pub fn spec(&self, agents_dir: &Path, host: &HostEnv) -> Result<TeamSpec> {
        check_name("team", &self.name)?;
        if self.agents.is_empty() {
            return Err(Error::InvalidTeam("a team needs at least one agent".into()));
        }
        for (index, agent) in self.agents.iter().enumerate() {
            check_name("agent", agent)?;
            if self.agents[..index].contains(agent) {
                return Err(Error::InvalidTeam(format!("agent {agent:?} is named twice")));
            }
        }
        if !["bridge", "host", "none"].contains(&self.network.as_str()) {
            return Err(Error::InvalidTeam(format!("--network {:?}: use bridge, host or none", self.network)));
        }
        let mut env = Vec::new();
        for pair in &self.env {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => env.push((key.to_string(), value.to_string())),
                _ => return Err(Error::InvalidTeam(format!("--env {pair:?} is not KEY=VALUE"))),
            }
        }
        let cwd = std::path::absolute(&self.cwd).map_err(|source| Error::Io { path: self.cwd.clone(), source })?;
        if !cwd.is_dir() {
            return Err(Error::InvalidTeam(format!("--cwd {} is not a directory", cwd.display())));
        }
        if !self.container_home.starts_with('/') {
            return Err(Error::InvalidTeam(format!("--container-home {:?} must be absolute", self.container_home)));
        }
        let host_env =
            if self.host_env { host.passed.iter().map(|(name, _)| name.clone()).collect() } else { Vec::new() };
        Ok(TeamSpec {
            agents: self.agents.clone(),
            image: self.image.clone(),
            memory_bytes: self.memory.as_deref().map(parse_memory).transpose()?,
            nano_cpus: self.cpus.as_deref().map(parse_cpus).transpose()?,
            cwd: cwd.to_string_lossy().into_owned(),
            env,
            host_env,
            network: self.network.clone(),
            keepalive: self.keepalive.as_deref().map(|text| words(text, "--keepalive")).transpose()?,
            agent_command: words(&self.agent_command, "--agent-command")?,
            mounts: self.mounts.iter().map(|mount| parse_mount(mount)).collect::<Result<_>>()?,
            container_home: self.container_home.clone(),
            agents_dir: agents_dir.to_string_lossy().into_owned(),
            coordinator: self.coordinator,
            coordinator_url: self.coordinator_url.clone(),
        })
    }
}

/// The container config of one agent of `team`.
fn container_config(team: &str, spec: &TeamSpec, agent: &str, host: &HostEnv) -> ContainerConfig {
    let mut env = vec![format!("HOME={}", spec.container_home)];
    env.extend(spec.env.iter().map(|(key, value)| format!("{key}={value}")));
    for name in &spec.host_env {
        if let Some((_, value)) = host.passed.iter().find(|(passed, _)| passed == name) {
            env.push(format!("{name}={value}"));
        }
    }
    let mut binds = vec![
        format!("{}:{}", spec.cwd, spec.cwd),
        format!("{}:{}", spec.agent_home(agent).display(), spec.container_home),
    ];
    binds.extend(
        spec.mounts
            .iter()
            .map(|mount| format!("{}:{}{}", mount.source, mount.target, if mount.read_only { ":ro" } else { "" })),
    );
    ContainerConfig {
        name: TeamSpec::container_name(team, agent),
        image: spec.image.clone(),
        command: spec.keepalive.clone(),
        env,
        working_dir: spec.cwd.clone(),
        labels: HashMap::from([
            (engine::TEAM_LABEL.to_string(), team.to_string()),
            (engine::AGENT_LABEL.to_string(), agent.to_string()),
        ]),
        binds,
        network: spec.network.clone(),
        memory_bytes: spec.memory_bytes,
        nano_cpus: spec.nano_cpus,
    }
}

/// The team containers the engine lists, or why they are unknown.
fn live(engine: std::result::Result<&ContainerEngine, String>) -> (Option<Vec<engine::Listed>>, Option<String>) {
    match engine.and_then(|engine| engine.team_containers().map_err(|error| error.to_string())) {
        Ok(listed) => (Some(listed), None),
        Err(error) => (None, Some(error)),
    }
}

/// Makes an agent's home and, when it has no Claude Code state yet, the state that lets
/// its Claude Code start straight into the project: first-run setup done, the project (which
/// the user chose to mount) trusted, and the API key passed from the host approved (Claude
/// Code keeps its last 20 characters, as it does when one answers its question). A home
/// with state of its own is left alone.
fn seed_home(home: &Path, spec: &TeamSpec, host: &HostEnv) -> Result<()> {
    std::fs::create_dir_all(home).map_err(|source| Error::Io { path: home.to_path_buf(), source })?;
    let state = home.join(".claude.json");
    if state.exists() {
        return Ok(());
    }
    let mut seeded = serde_json::json!({
        "hasCompletedOnboarding": true,
        "projects": { spec.cwd.as_str(): { "hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true } },
    });
    const KEY: &str = "ANTHROPIC_API_KEY";
    let given = spec.env.iter().find(|(name, _)| name == KEY);
    let passed = host.passed.iter().find(|(name, _)| name == KEY && spec.host_env.iter().any(|passed| passed == KEY));
    if let Some((_, key)) = given.or(passed) {
        let suffix: String = key.chars().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        seeded["customApiKeyResponses"] = serde_json::json!({ "approved": [suffix], "rejected": [] });
    }
    let text = serde_json::to_vec_pretty(&seeded).map_err(|error| Error::InvalidTeam(error.to_string()))?;
    std::fs::write(&state, text).map_err(|source| Error::Io { path: state.clone(), source })
}

fn rfc3339_us(us: u64) -> String {
    i64::try_from(us)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map(|at| at.round(jiff::Unit::Second).map_or_else(|_| at.to_string(), |at| at.to_string()))
        .unwrap_or_default()
}

impl<'a> Teams<'a> {
    /// The service on `log`, keeping agents' homes under `<data>/teams`; tmux windows run
    /// `cclog` as `cclog` (the binary of this process, normally).
    pub fn new(log: &'a Log, data: &Path, cclog: PathBuf, host: HostEnv) -> Self {
        Teams { log, root: data.join("teams"), cclog, host, coordinator: None }
    }

    /// The running server whose coordinator (`/mcp`) the agents' Claude Code is given.
    pub fn with_coordinator(mut self, server: Option<Endpoint>) -> Self {
        self.coordinator = server;
        self
    }

    /// Registers (or points anew) cclog's coordinator in every agent's Claude Code: the
    /// server's URL may have changed since the team was made. A note when it cannot be.
    fn register_coordinator(&self, team: &str, spec: &TeamSpec, notes: &mut Vec<String>) -> Result<()> {
        if !spec.coordinator {
            return Ok(());
        }
        let Some(server) = &self.coordinator else {
            notes.push(format!(
                "no `cclog serve` is running, so the agents have no session coordinator; start one and \
                 `cclog team resume {team}` registers it"
            ));
            return Ok(());
        };
        let url = format!("{}/mcp", spec.coordinator_url.as_deref().unwrap_or(&server.url).trim_end_matches('/'));
        for agent in &spec.agents {
            coordinator::register(&spec.agent_home(agent), team, agent, &url, server.token.as_deref())?;
        }
        Ok(())
    }

    fn engine(&self) -> Result<ContainerEngine> {
        ContainerEngine::connect(self.host.docker_host.as_deref())
    }

    fn append(&self, team: &str, kind: &str, payload: Vec<u8>) -> Result<u64> {
        let appended = self.log.append_blocking(vec![NewEvent::new(team::team_stream(team), kind, payload)])?;
        Ok(appended.last().map_or(0, |event| event.seq))
    }

    fn record_container(&self, team: &str, agent: &str, event: ContainerEvent, id: Option<String>) -> Result<()> {
        let change = ContainerChange { agent: agent.to_string(), event, id };
        self.append(team, team::KIND_CONTAINER, vocabulary::encode(&change)?)?;
        Ok(())
    }

    /// Records that `agent`'s container was found missing, unless the registry knows.
    fn note_missing(&self, record: &TeamRecord, agent: &str) -> Result<()> {
        let known = record.agents.get(agent).and_then(|known| known.container);
        if known == Some(ContainerEvent::Missing) {
            return Ok(());
        }
        self.record_container(&record.name, agent, ContainerEvent::Missing, None)
    }

    fn record_tmux(&self, team: &str, event: TmuxEvent, socket: Option<String>) -> Result<()> {
        self.append(team, team::KIND_TMUX, vocabulary::encode(&TmuxChange { event, socket })?)?;
        Ok(())
    }

    fn record_note(&self, team: &str, kind: &str, note: Option<String>) -> Result<()> {
        self.append(team, kind, vocabulary::encode(&Note { note })?)?;
        Ok(())
    }

    /// The team's record, which must exist and not be removed.
    fn existing(&self, name: &str) -> Result<(TeamRecord, TeamSpec)> {
        check_name("team", name)?;
        let record = TeamRegistry::get(self.log, name)?.ok_or_else(|| Error::UnknownTeam(name.to_string()))?;
        if record.phase == TeamPhase::Removed {
            return Err(Error::InvalidTeam(format!(
                "team {name} was removed; its history is still in the log (`cclog log --stream team/{name}`); \
                 create it again with `cclog team create {name}`"
            )));
        }
        let spec = TeamRegistry::spec(self.log, &record)?;
        Ok((record, spec))
    }

    /// The shell command an agent's tmux window runs: its Claude Code, through the engine.
    fn window_command(&self, team: &str, spec: &TeamSpec, agent: &str, session: Option<&str>) -> String {
        let mut words = Vec::new();
        if let Some(host) = &self.host.docker_host {
            words.push("env".to_string());
            words.push(format!("DOCKER_HOST={host}"));
        }
        words.push(self.cclog.to_string_lossy().into_owned());
        words.extend(["team", "attach"].map(str::to_string));
        words.push(TeamSpec::container_name(team, agent));
        words.extend(["--cwd".to_string(), spec.cwd.clone(), "--".to_string()]);
        words.extend(spec.agent_command.iter().cloned());
        if let Some(session) = session {
            words.extend(["--resume".to_string(), session.to_string()]);
        }
        words.iter().map(|word| shell_quote(word)).collect::<Vec<_>>().join(" ")
    }

    /// Creates the team: one container per agent and a tmux session with a window per agent,
    /// each recorded as it is made.
    pub fn create(&self, request: &CreateRequest) -> Result<Started> {
        let agents_dir = self.root.join(&request.name).join("agents");
        let spec = request.spec(&agents_dir, &self.host)?;
        let engine = self.engine()?;
        if !engine.has_image(&spec.image)? {
            return Err(Error::InvalidTeam(format!(
                "the engine at {} has no image {}; pull or build it first (e.g. `docker pull {}`), or pass --image",
                engine.host, spec.image, spec.image
            )));
        }
        let tmux = Tmux::new(request.tmux_socket.clone());
        let mut taken = Vec::new();
        if tmux.has_session(&request.name)? {
            taken.push(format!("tmux session {}", request.name));
        }
        for agent in &spec.agents {
            let container = TeamSpec::container_name(&request.name, agent);
            if engine.state(&container)? != LiveState::Missing {
                taken.push(format!("container {container}"));
            }
        }
        if !taken.is_empty() && !request.force {
            return Err(Error::TeamExists(format!(
                "{} already exist{}; pass --force to replace {}",
                taken.join(", "),
                if taken.len() == 1 { "s" } else { "" },
                if taken.len() == 1 { "it" } else { "them" }
            )));
        }
        for agent in &spec.agents {
            seed_home(&spec.agent_home(agent), &spec, &self.host)?;
        }
        self.append(&request.name, team::KIND_CREATED, vocabulary::encode(&spec)?)?;
        let mut notes = Vec::new();
        self.register_coordinator(&request.name, &spec, &mut notes)?;
        if request.force && !taken.is_empty() {
            tmux.kill_session(&request.name)?;
            for agent in &spec.agents {
                engine.remove(&TeamSpec::container_name(&request.name, agent))?;
            }
            notes.push(format!("replaced {}", taken.join(", ")));
        }
        let mut agents = Vec::new();
        for agent in &spec.agents {
            let container = TeamSpec::container_name(&request.name, agent);
            let id = engine.create(&container_config(&request.name, &spec, agent, &self.host))?;
            self.record_container(&request.name, agent, ContainerEvent::Created, Some(id.clone()))?;
            engine.start(&container)?;
            self.record_container(&request.name, agent, ContainerEvent::Started, Some(id))?;
            agents.push(AgentStart {
                agent: agent.clone(),
                container,
                container_action: "created".into(),
                session: None,
            });
        }
        self.open_tmux(&tmux, &request.name, &spec, &agents)?;
        Ok(Started {
            team: request.name.clone(),
            agents,
            tmux_created: true,
            attach: tmux.attach_command(&request.name),
            notes,
        })
    }

    /// Creates the team's tmux session with each agent's window and records it, and each
    /// agent's session.
    fn open_tmux(&self, tmux: &Tmux, team: &str, spec: &TeamSpec, agents: &[AgentStart]) -> Result<()> {
        let windows: Vec<(String, String)> = agents
            .iter()
            .map(|start| (start.agent.clone(), self.window_command(team, spec, &start.agent, start.session.as_deref())))
            .collect();
        tmux.create_session(team, &spec.cwd, &windows)?;
        self.record_tmux(team, TmuxEvent::Created, tmux.socket.clone())?;
        for start in agents {
            let session = AgentSession { agent: start.agent.clone(), session: start.session.clone(), note: None };
            self.append(team, team::KIND_AGENT_SESSION, vocabulary::encode(&session)?)?;
        }
        Ok(())
    }

    /// Gives every agent of an open tmux session a live window again: a missing window is
    /// added, one whose program exited is respawned; agents whose windows still run are left
    /// as they are.
    fn repair_windows(
        &self,
        tmux: &Tmux,
        team: &str,
        spec: &TeamSpec,
        agents: &[AgentStart],
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let windows = tmux.windows(team)?;
        for start in agents {
            let command = self.window_command(team, spec, &start.agent, start.session.as_deref());
            match windows.iter().find(|window| window.name == start.agent) {
                Some(window) if !window.exited => {
                    notes.push(format!("{}: its tmux window is still running; left as it is", start.agent));
                    continue;
                }
                Some(_) => tmux.respawn(team, &start.agent, &spec.cwd, &command)?,
                None => tmux.add_window(team, &start.agent, &spec.cwd, &command)?,
            }
            let session = AgentSession { agent: start.agent.clone(), session: start.session.clone(), note: None };
            self.append(team, team::KIND_AGENT_SESSION, vocabulary::encode(&session)?)?;
        }
        Ok(())
    }

    /// The agent's latest Claude Code session that can be resumed: its transcripts are
    /// imported from its home first, and the session must still have its file there.
    fn last_session(&self, spec: &TeamSpec, agent: &str) -> Result<Option<String>> {
        let projects = spec.agent_home(agent).join(".claude").join("projects");
        if !projects.is_dir() {
            return Ok(None);
        }
        Importer::new(self.log).import(std::slice::from_ref(&projects), &|_| {})?;
        let mut latest: Option<(String, String)> = None;
        for file in Archive::files_under(self.log, &projects)? {
            let path = Path::new(&file.path);
            if file.deleted || file.file.agent.is_some() || !path.is_file() {
                continue;
            }
            let session = Archive::session(self.log, &file.file.session)?;
            let at = session.last_at.unwrap_or_default();
            if latest.as_ref().is_none_or(|(last, _)| at > *last) {
                latest = Some((at, session.id));
            }
        }
        Ok(latest.map(|(_, id)| id))
    }

    /// Brings the team back where it was: stopped containers started, missing ones
    /// recreated from the spec, and the tmux session recreated if it is gone, each agent in
    /// its last Claude Code session.
    pub fn resume(&self, name: &str) -> Result<Started> {
        let (record, spec) = self.existing(name)?;
        let engine = self.engine()?;
        let tmux = Tmux::new(record.tmux_socket.clone());
        let mut agents = Vec::new();
        let mut notes = Vec::new();
        self.register_coordinator(name, &spec, &mut notes)?;
        for agent in &spec.agents {
            let container = TeamSpec::container_name(name, agent);
            let action = match engine.state(&container)? {
                LiveState::Running => "running",
                LiveState::Stopped => {
                    engine.start(&container)?;
                    self.record_container(name, agent, ContainerEvent::Started, None)?;
                    "started"
                }
                LiveState::Missing => {
                    self.note_missing(&record, agent)?;
                    let id = engine.create(&container_config(name, &spec, agent, &self.host))?;
                    self.record_container(name, agent, ContainerEvent::Created, Some(id.clone()))?;
                    engine.start(&container)?;
                    self.record_container(name, agent, ContainerEvent::Started, Some(id))?;
                    "recreated"
                }
            };
            let session = self.last_session(&spec, agent)?;
            if session.is_none() {
                notes.push(format!("{agent}: no earlier Claude Code session to resume; it starts a fresh one"));
            }
            agents.push(AgentStart { agent: agent.clone(), container, container_action: action.into(), session });
        }
        let tmux_created = !tmux.has_session(name)?;
        if tmux_created {
            if record.tmux == Some(TmuxEvent::Created) {
                self.record_tmux(name, TmuxEvent::Missing, tmux.socket.clone())?;
            }
            self.open_tmux(&tmux, name, &spec, &agents)?;
        } else {
            self.repair_windows(&tmux, name, &spec, &agents, &mut notes)?;
        }
        self.record_note(name, team::KIND_RESUMED, None)?;
        Ok(Started { team: name.to_string(), agents, tmux_created, attach: tmux.attach_command(name), notes })
    }

    /// Stops every container (kept, not removed) and closes the tmux session.
    pub fn stop(&self, name: &str) -> Result<TeamStatus> {
        let (record, spec) = self.existing(name)?;
        let engine = self.engine()?;
        let tmux = Tmux::new(record.tmux_socket.clone());
        if tmux.has_session(name)? {
            tmux.kill_session(name)?;
            self.record_tmux(name, TmuxEvent::Killed, tmux.socket.clone())?;
        }
        for agent in &spec.agents {
            let container = TeamSpec::container_name(name, agent);
            match engine.state(&container)? {
                LiveState::Running => {
                    engine.stop(&container, 10)?;
                    self.record_container(name, agent, ContainerEvent::Stopped, None)?;
                }
                LiveState::Stopped => {}
                LiveState::Missing => self.note_missing(&record, agent)?,
            }
        }
        self.record_note(name, team::KIND_STOPPED, None)?;
        self.status(name, &engine)
    }

    /// One team's status, its live states from `engine`.
    pub fn status(&self, name: &str, engine: &ContainerEngine) -> Result<TeamStatus> {
        check_name("team", name)?;
        let record = TeamRegistry::get(self.log, name)?.ok_or_else(|| Error::UnknownTeam(name.to_string()))?;
        let (listed, engine_error) = live(Ok(engine));
        self.describe(&record, listed.as_deref(), engine_error)
    }

    fn describe(
        &self,
        record: &TeamRecord,
        listed: Option<&[engine::Listed]>,
        engine_error: Option<String>,
    ) -> Result<TeamStatus> {
        let spec = TeamRegistry::spec(self.log, record)?;
        let agents: Vec<AgentStatus> = spec
            .agents
            .iter()
            .map(|agent| {
                let container = TeamSpec::container_name(&record.name, agent);
                let state = listed.map(|listed| {
                    listed.iter().find(|live| live.name == container).map_or(LiveState::Missing, |live| live.state)
                });
                let session = record.agents.get(agent).and_then(|known| known.session.clone());
                AgentStatus { agent: agent.clone(), container, state, session }
            })
            .collect();
        let tmux = Tmux::new(record.tmux_socket.clone()).has_session(&record.name)?;
        Ok(TeamStatus {
            name: record.name.clone(),
            created_at: rfc3339_us(record.created_us),
            phase: record.phase,
            image: spec.image,
            cwd: spec.cwd,
            running: agents.iter().filter(|agent| agent.state == Some(LiveState::Running)).count(),
            total: agents.len(),
            agents,
            tmux,
            tmux_socket: record.tmux_socket.clone(),
            engine_error,
        })
    }

    /// Every team not removed (`all`: removed ones too), with live states when the engine
    /// answers.
    pub fn list(&self, all: bool) -> Result<Vec<TeamStatus>> {
        let engine = self.engine();
        let (listed, engine_error) = live(engine.as_ref().map_err(Error::to_string));
        TeamRegistry::all(self.log)?
            .iter()
            .filter(|record| all || record.phase != TeamPhase::Removed)
            .map(|record| self.describe(record, listed.as_deref(), engine_error.clone()))
            .collect()
    }

    /// Compares the registry with the live containers and tmux session, names each problem
    /// with the command that fixes it, and records what it found that differs.
    pub fn health(&self, name: &str) -> Result<Health> {
        let (record, spec) = self.existing(name)?;
        let engine = self.engine()?;
        let status = self.status(name, &engine)?;
        let stopped = record.phase == TeamPhase::Stopped;
        let mut problems = Vec::new();
        for agent in &status.agents {
            match agent.state {
                Some(LiveState::Missing) => {
                    self.note_missing(&record, &agent.agent)?;
                    problems.push(Problem {
                        problem: format!("container {} of agent {} is missing", agent.container, agent.agent),
                        fix: format!(
                            "cclog team cleanup --fix-broken --remove {name} --yes  (or: cclog team resume {name})"
                        ),
                    });
                }
                Some(LiveState::Stopped) if !stopped => problems.push(Problem {
                    problem: format!("container {} of agent {} is stopped", agent.container, agent.agent),
                    fix: format!("cclog team resume {name}"),
                }),
                _ => {}
            }
        }
        if !stopped {
            let windows = Tmux::new(record.tmux_socket.clone()).windows(name)?;
            if !status.tmux {
                if record.tmux == Some(TmuxEvent::Created) {
                    self.record_tmux(name, TmuxEvent::Missing, record.tmux_socket.clone())?;
                }
                problems.push(Problem {
                    problem: format!("tmux session {name} is gone"),
                    fix: format!("cclog team resume {name}"),
                });
            } else {
                for agent in &spec.agents {
                    let problem = match windows.iter().find(|window| &window.name == agent) {
                        None => format!("tmux session {name} has no window for agent {agent}"),
                        Some(window) if window.exited => {
                            format!("agent {agent}'s program in tmux window {agent} has exited")
                        }
                        Some(_) => continue,
                    };
                    problems.push(Problem { problem, fix: format!("cclog team resume {name}") });
                }
            }
        }
        // Findings are recorded when they change (a team that turns healthy again records
        // an empty finding), so checking a team often does not fill its history.
        let findings = HealthFindings { problems: problems.iter().map(|problem| problem.problem.clone()).collect() };
        let last = match record.health_seq {
            Some(seq) => match self.log.get(seq)? {
                Some(event) => Some(vocabulary::decode::<HealthFindings>(team::KIND_HEALTH, &event.payload)?),
                None => None,
            },
            None => None,
        };
        let changed = match &last {
            Some(last) => last != &findings,
            None => !findings.problems.is_empty(),
        };
        if changed {
            self.append(name, team::KIND_HEALTH, vocabulary::encode(&findings)?)?;
        }
        let team = self.status(name, &engine)?;
        Ok(Health { team, problems })
    }

    /// Removes the team's containers, tmux session and agents' home directories; its events
    /// and its agents' transcripts (imported first) stay in the log.
    pub fn remove(&self, name: &str) -> Result<()> {
        let (record, spec) = self.existing(name)?;
        for agent in &spec.agents {
            // What the agents wrote since the last import is archived before it goes.
            let projects = spec.agent_home(agent).join(".claude").join("projects");
            if projects.is_dir() {
                Importer::new(self.log).import(&[projects], &|_| {})?;
            }
        }
        let engine = self.engine()?;
        let tmux = Tmux::new(record.tmux_socket.clone());
        if tmux.has_session(name)? {
            tmux.kill_session(name)?;
            self.record_tmux(name, TmuxEvent::Killed, tmux.socket.clone())?;
        }
        for agent in &spec.agents {
            let container = TeamSpec::container_name(name, agent);
            if engine.state(&container)? != LiveState::Missing {
                engine.remove(&container)?;
                self.record_container(name, agent, ContainerEvent::Removed, None)?;
            }
        }
        let agents_dir = PathBuf::from(&spec.agents_dir);
        if agents_dir.starts_with(&self.root) && agents_dir.exists() {
            std::fs::remove_dir_all(&agents_dir).map_err(|source| Error::Io { path: agents_dir.clone(), source })?;
        }
        self.record_note(name, team::KIND_REMOVED, None)?;
        Ok(())
    }

    /// Recreates the team's missing containers from its spec, recording each — or, with
    /// `drop_missing`, drops their agents from the team (their windows closed, their
    /// transcripts kept); the containers recreated or the agents dropped.
    pub fn fix_broken(&self, name: &str, drop_missing: bool) -> Result<Vec<String>> {
        let (record, spec) = self.existing(name)?;
        let engine = self.engine()?;
        let mut fixed = Vec::new();
        for agent in &spec.agents {
            let container = TeamSpec::container_name(name, agent);
            if engine.state(&container)? == LiveState::Missing {
                self.note_missing(&record, agent)?;
                if drop_missing {
                    Tmux::new(record.tmux_socket.clone()).kill_window(name, agent)?;
                    let dropped = team::AgentDropped { agent: agent.clone() };
                    self.append(name, team::KIND_AGENT_DROPPED, vocabulary::encode(&dropped)?)?;
                    fixed.push(agent.clone());
                    continue;
                }
                let id = engine.create(&container_config(name, &spec, agent, &self.host))?;
                self.record_container(name, agent, ContainerEvent::Created, Some(id.clone()))?;
                engine.start(&container)?;
                self.record_container(name, agent, ContainerEvent::Started, Some(id))?;
                fixed.push(container);
            }
        }
        Ok(fixed)
    }
}
