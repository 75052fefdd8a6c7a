//! Team sessions' vocabulary. A team is a named set of Claude Code agents, each in its own
//! container, all shown in one tmux session; every change to a team is an event on
//! `team/<name>`: its creation with everything needed to recreate it ([`TeamSpec`]), each
//! container's and the tmux session's changes as cclog made or found them, each agent's
//! Claude Code session, resumes, stops, health findings, exports and the clean-up.

use serde::{Deserialize, Serialize};

/// Stream of one team's events.
pub fn team_stream(team: &str) -> String {
    format!("team/{team}")
}

/// The team's name, if `stream` is a team's.
pub fn team_name(stream: &str) -> Option<&str> {
    stream.strip_prefix("team/")
}

/// The team was created (or created again with `--force`): a [`TeamSpec`].
pub const KIND_CREATED: &str = "team.created";
/// One agent's container changed: a [`ContainerChange`].
pub const KIND_CONTAINER: &str = "team.container";
/// The tmux session changed: a [`TmuxChange`].
pub const KIND_TMUX: &str = "team.tmux";
/// An agent's Claude Code session was started or resumed: an [`AgentSession`].
pub const KIND_AGENT_SESSION: &str = "team.agent.session";
/// An agent was dropped from the team (`cleanup --fix-broken --drop-missing`): an
/// [`AgentDropped`]. Its transcripts stay in the log.
pub const KIND_AGENT_DROPPED: &str = "team.agent.dropped";
/// The team was resumed (containers started, tmux recreated): a [`Note`].
pub const KIND_RESUMED: &str = "team.resumed";
/// The team was stopped (containers stopped, tmux closed): a [`Note`].
pub const KIND_STOPPED: &str = "team.stopped";
/// A health check found the registry and the live world differ: a [`HealthFindings`].
pub const KIND_HEALTH: &str = "team.health";
/// The team was exported: an [`Exported`].
pub const KIND_EXPORTED: &str = "team.exported";
/// The team's containers, tmux session and agent directories were removed: a [`Note`].
/// Its events and its agents' transcripts stay in the log.
pub const KIND_REMOVED: &str = "team.removed";

/// A bind mount into every agent's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// Everything a team's containers and tmux windows are made from, so that `resume` can
/// recreate a missing container exactly as it was.
///
/// Host variables (`ANTHROPIC_*`, `CLAUDE_CODE_*`) are recorded by name only: their values
/// (API keys among them) are read from the host each time a container is made, and never
/// written to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSpec {
    /// Agent names, in window order.
    pub agents: Vec<String>,
    pub image: String,
    /// Memory limit in bytes, and CPUs in billionths.
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    /// The project directory, mounted at the same path in every container.
    pub cwd: String,
    /// `--env KEY=VALUE`, as given.
    pub env: Vec<(String, String)>,
    /// Names of host variables passed through.
    pub host_env: Vec<String>,
    /// `bridge`, `host` or `none`.
    pub network: String,
    /// The container's long-lived command; `None`: the image's own.
    pub keepalive: Option<Vec<String>>,
    /// What each agent's tmux window runs in its container (`claude` by default).
    pub agent_command: Vec<String>,
    /// Extra bind mounts (`--mount SRC:DST[:ro]`).
    pub mounts: Vec<Mount>,
    /// The home directory inside the containers; each agent's is a host directory under
    /// `agents_dir`.
    pub container_home: String,
    /// The host directory holding one home per agent (`<agents_dir>/<agent>`).
    pub agents_dir: String,
    /// Whether every agent's Claude Code has cclog's session coordinator registered.
    pub coordinator: bool,
    /// The coordinator's URL as the containers reach it (`--mcp-url`); `None`: the URL the
    /// running `cclog serve` advertises, which containers on the host network reach.
    pub coordinator_url: Option<String>,
}

impl TeamSpec {
    /// The container of `agent`.
    pub fn container_name(team: &str, agent: &str) -> String {
        format!("{team}-{agent}")
    }

    /// The host directory that is `agent`'s home in its container.
    pub fn agent_home(&self, agent: &str) -> std::path::PathBuf {
        std::path::Path::new(&self.agents_dir).join(agent)
    }
}

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerEvent {
    Created,
    Started,
    Stopped,
    /// Found missing by a health check or a resume.
    Missing,
    Removed,
}

/// The payload of `team.container`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerChange {
    pub agent: String,
    pub event: ContainerEvent,
    /// The engine's id of the container, when it exists.
    pub id: Option<String>,
}

/// What happened to the tmux session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TmuxEvent {
    Created,
    Killed,
    /// Found gone by a health check or a resume.
    Missing,
}

/// The payload of `team.tmux`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmuxChange {
    pub event: TmuxEvent,
    /// The tmux server socket name (`-L`), when not the default.
    pub socket: Option<String>,
}

/// The payload of `team.agent.session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSession {
    pub agent: String,
    /// The Claude Code session resumed; `None` for a fresh session.
    pub session: Option<String>,
    /// Why a resume started fresh instead, when it did.
    pub note: Option<String>,
}

/// The payload of `team.agent.dropped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentDropped {
    pub agent: String,
}

/// The payload of `team.resumed`, `team.stopped` and `team.removed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub note: Option<String>,
}

/// The payload of `team.health`: each problem in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFindings {
    pub problems: Vec<String>,
}

/// The payload of `team.exported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    pub output: String,
    pub sessions: u64,
    /// BLAKE3 (hex) of the export's `manifest.json`, so the chain vouches for it.
    pub manifest_blake3: String,
}
