//! The team registry: the `teams` projection folds every team's events on `team/<name>`
//! into one record per team — when and by which event it was created, each agent's
//! container as cclog last made or found it, each agent's Claude Code session, the tmux
//! session, whether the team is running, stopped or removed, and its last health finding.
//! The spec a team was made from stays in its `team.created` event ([`TeamRegistry::spec`]
//! reads it), so the registry holds positions, states and names, never payload copies.
//!
//! Keys: `T` ‖ team name → postcard([`TeamRecord`]).
//!
//! What the live world looks like (a container removed behind cclog's back, a tmux server
//! gone after a reboot) is not here: health compares this record with live inspection and
//! records what differs as events, which this fold then takes in.

use std::collections::BTreeMap;

use cclog_engine::{ApplyError, Event, Log, Projection, ProjectionState};
use serde::{Deserialize, Serialize};

use crate::events;
use crate::events::team::{
    self, AgentSession, ContainerChange, ContainerEvent, HealthFindings, TeamSpec, TmuxChange, TmuxEvent,
};
use crate::{Error, Result};

const NAME: &str = "teams";

/// Where a team is in its life, by its last `created`, `resumed`, `stopped` or `removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TeamPhase {
    Created,
    Resumed,
    Stopped,
    Removed,
}

/// One agent as the registry knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The engine's id of its container, while it exists.
    pub container_id: Option<String>,
    /// The last thing cclog did to, or found of, its container.
    pub container: Option<ContainerEvent>,
    /// The Claude Code session it last started or resumed (`None`: fresh or unknown).
    pub session: Option<String>,
    /// The event that said so.
    pub session_seq: Option<u64>,
}

/// One team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRecord {
    pub name: String,
    /// The `team.created` event, which holds the spec; and when it was written (µs).
    pub created_seq: u64,
    pub created_us: u64,
    pub phase: TeamPhase,
    /// Agents by name (the spec keeps their window order).
    pub agents: BTreeMap<String, AgentRecord>,
    /// The last thing cclog did to, or found of, the tmux session, and on which socket.
    pub tmux: Option<TmuxEvent>,
    pub tmux_socket: Option<String>,
    /// The last health finding: its event and how many problems it named.
    pub health_seq: Option<u64>,
    pub health_problems: u64,
    pub exports: u64,
    /// Every event of the team since it was created, and the last one.
    pub events: u64,
    pub last_seq: u64,
}

/// The `teams` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct TeamRegistry;

fn team_key(team: &str) -> Vec<u8> {
    [b"T", team.as_bytes()].concat()
}

impl Projection for TeamRegistry {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        let Some(name) = team::team_name(event.stream()) else { return Ok(()) };
        let key = team_key(name);
        if event.kind() == team::KIND_CREATED {
            let spec: TeamSpec = events::decode(team::KIND_CREATED, &event.payload)?;
            let record = TeamRecord {
                name: name.to_string(),
                created_seq: event.seq(),
                created_us: event.header.ts_us,
                phase: TeamPhase::Created,
                agents: spec.agents.iter().map(|agent| (agent.clone(), AgentRecord::default())).collect(),
                tmux: None,
                tmux_socket: None,
                health_seq: None,
                health_problems: 0,
                exports: 0,
                events: 1,
                last_seq: event.seq(),
            };
            state.insert(key, postcard::to_stdvec(&record)?);
            return Ok(());
        }
        // Anything before a team's creation cannot come from cclog; nothing to fold.
        let Some(bytes) = state.get(&key)? else { return Ok(()) };
        let mut record: TeamRecord = postcard::from_bytes(&bytes)?;
        fold(&mut record, event)?;
        record.events += 1;
        record.last_seq = event.seq();
        state.insert(key, postcard::to_stdvec(&record)?);
        Ok(())
    }
}

/// Folds one of a created team's later events into its record.
fn fold(record: &mut TeamRecord, event: &Event) -> std::result::Result<(), ApplyError> {
    match event.kind() {
        team::KIND_CONTAINER => {
            let change: ContainerChange = events::decode(team::KIND_CONTAINER, &event.payload)?;
            let agent = record.agents.entry(change.agent).or_default();
            agent.container = Some(change.event);
            match change.event {
                ContainerEvent::Missing | ContainerEvent::Removed => agent.container_id = None,
                _ => {
                    if change.id.is_some() {
                        agent.container_id = change.id;
                    }
                }
            }
        }
        team::KIND_TMUX => {
            let change: TmuxChange = events::decode(team::KIND_TMUX, &event.payload)?;
            record.tmux = Some(change.event);
            record.tmux_socket = change.socket;
        }
        team::KIND_AGENT_SESSION => {
            let session: AgentSession = events::decode(team::KIND_AGENT_SESSION, &event.payload)?;
            let agent = record.agents.entry(session.agent).or_default();
            agent.session = session.session;
            agent.session_seq = Some(event.seq());
        }
        team::KIND_AGENT_DROPPED => {
            let dropped: team::AgentDropped = events::decode(team::KIND_AGENT_DROPPED, &event.payload)?;
            record.agents.remove(&dropped.agent);
        }
        team::KIND_RESUMED => record.phase = TeamPhase::Resumed,
        team::KIND_STOPPED => record.phase = TeamPhase::Stopped,
        team::KIND_REMOVED => record.phase = TeamPhase::Removed,
        team::KIND_HEALTH => {
            let findings: HealthFindings = events::decode(team::KIND_HEALTH, &event.payload)?;
            record.health_seq = Some(event.seq());
            record.health_problems = u64::try_from(findings.problems.len()).unwrap_or(u64::MAX);
        }
        team::KIND_EXPORTED => record.exports += 1,
        _ => {}
    }
    Ok(())
}

impl TeamRegistry {
    fn view(log: &Log) -> Result<cclog_engine::ProjectionView> {
        log.projection(NAME).ok_or(Error::NotOpen(NAME))
    }

    /// One team's record, removed or not.
    pub fn get(log: &Log, team: &str) -> Result<Option<TeamRecord>> {
        Self::view(log)?.get(&team_key(team))?.map(|bytes| decode(&bytes)).transpose()
    }

    /// Every team ever created, by name, removed ones included.
    pub fn all(log: &Log) -> Result<Vec<TeamRecord>> {
        Self::view(log)?.scan_prefix(b"T").map(|item| decode(&item?.1)).collect()
    }

    /// The spec the team was created from, read from its `team.created` event, with the
    /// agents it has now (those dropped since are left out).
    pub fn spec(log: &Log, record: &TeamRecord) -> Result<TeamSpec> {
        let mut spec: TeamSpec =
            events::decode_at(log, record.created_seq, team::KIND_CREATED, &format!("team {}", record.name))?;
        spec.agents.retain(|agent| record.agents.contains_key(agent));
        Ok(spec)
    }
}

/// One archived transcript file of a team's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFile {
    pub agent: String,
    /// The file's path under the agent's `~/.claude/projects`.
    pub inside: std::path::PathBuf,
    pub file: crate::archive::FileState,
}

impl TeamRegistry {
    /// Every archived transcript file the team's agents wrote (their homes' transcripts),
    /// whether or not the files are still on disk.
    pub fn agent_files(log: &Log, record: &TeamRecord) -> Result<Vec<AgentFile>> {
        let spec = Self::spec(log, record)?;
        let agents_dir = std::path::PathBuf::from(&spec.agents_dir);
        let mut found = Vec::new();
        for file in crate::archive::Archive::files(log)? {
            let path = std::path::Path::new(&file.path);
            let Ok(relative) = path.strip_prefix(&agents_dir) else { continue };
            let mut parts = relative.components();
            let Some(agent) = parts.next().map(|agent| agent.as_os_str().to_string_lossy().into_owned()) else {
                continue;
            };
            let Ok(inside) = parts.as_path().strip_prefix(".claude/projects") else { continue };
            found.push(AgentFile { agent, inside: inside.to_path_buf(), file });
        }
        Ok(found)
    }

    /// The team and agent whose home holds one of `files` (a session's transcript files),
    /// if any team's does.
    pub fn member_of(log: &Log, files: &[String]) -> Result<Option<(String, String)>> {
        for record in Self::all(log)? {
            let spec = Self::spec(log, &record)?;
            for file in files {
                let Ok(relative) = std::path::Path::new(file).strip_prefix(&spec.agents_dir) else { continue };
                if let Some(agent) = relative.components().next() {
                    return Ok(Some((record.name, agent.as_os_str().to_string_lossy().into_owned())));
                }
            }
        }
        Ok(None)
    }

    /// The Claude Code sessions of the team's agents: session id → agent.
    pub fn agent_sessions(log: &Log, record: &TeamRecord) -> Result<BTreeMap<String, String>> {
        Ok(Self::agent_files(log, record)?
            .into_iter()
            .filter(|found| found.file.file.agent.is_none())
            .map(|found| (found.file.file.session, found.agent))
            .collect())
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|error| Error::Damaged { projection: NAME, detail: error.to_string() })
}
