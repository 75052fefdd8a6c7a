//! The container engine, through the Docker Engine API (`bollard`): Docker, or any engine
//! that serves the same API, such as podman's `system service`. `DOCKER_HOST` names it
//! (`unix:///path/to.sock`, `tcp://host:port`); without it, Docker's default socket. The
//! caller passes the value in, so that a command `cclog serve` runs for a client reaches
//! the client's engine.
//!
//! Calls are made on a runtime of the engine's own, so the team service is plain
//! blocking code that the CLI and the HTTP layer's blocking pool both call.

use std::collections::HashMap;

use bollard::errors::Error as ApiError;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;

use crate::{Error, Result};

/// The label naming a container's team, and its agent.
pub const TEAM_LABEL: &str = "cclog.team";
pub const AGENT_LABEL: &str = "cclog.agent";

/// A container as the engine shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveState {
    Running,
    /// Created but not running, or exited.
    Stopped,
    Missing,
}

impl LiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Running => "running",
            LiveState::Stopped => "stopped",
            LiveState::Missing => "missing",
        }
    }
}

/// What one container is made from.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub labels: HashMap<String, String>,
    /// `SRC:DST` or `SRC:DST:ro`.
    pub binds: Vec<String>,
    pub network: String,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
}

/// A team container the engine lists.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub team: String,
    pub agent: String,
    pub state: LiveState,
}

/// How long one engine call may take (creating a container from a large image is slow).
const REQUEST_TIMEOUT_S: u64 = 120;

/// A connection to the container engine.
pub struct ContainerEngine {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
    /// Where it is, for messages.
    pub host: String,
}

impl ContainerEngine {
    /// Connects to the engine at `docker_host` (`DOCKER_HOST`'s form: `unix:///path`,
    /// `tcp://host:port`), else Docker's default socket, and checks that it answers.
    pub fn connect(docker_host: Option<&str>) -> Result<Self> {
        let host = docker_host.unwrap_or("unix:///var/run/docker.sock").to_string();
        let unreachable = |detail: String| Error::ContainerEngine {
            detail: format!(
                "no container engine answers at {host}{}: {detail}; start one (Docker, or `podman system service`) \
                 and name its socket in DOCKER_HOST, e.g. DOCKER_HOST=unix:///run/podman/podman.sock",
                if docker_host.is_none() { " (DOCKER_HOST is not set)" } else { " (DOCKER_HOST)" }
            ),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| unreachable(error.to_string()))?;
        let connected = if host.starts_with("unix://") || host.starts_with('/') {
            Docker::connect_with_socket(&host, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(unreachable("cclog speaks to unix:// and tcp:// engines only".into()));
        };
        let docker = connected.map_err(|error| unreachable(error.to_string()))?;
        let docker = runtime.block_on(async {
            match tokio::time::timeout(std::time::Duration::from_secs(10), docker.ping()).await {
                Ok(Ok(_)) => Ok(docker),
                Ok(Err(error)) => Err(unreachable(error.to_string())),
                Err(_) => Err(unreachable("it did not answer within 10 s".to_string())),
            }
        })?;
        Ok(ContainerEngine { docker, runtime, host })
    }

    fn failed(&self, what: &str, error: ApiError) -> Error {
        Error::ContainerEngine { detail: format!("{what}: {}", describe(error)) }
    }

    /// The container's state now.
    pub fn state(&self, name: &str) -> Result<LiveState> {
        let inspected = self.runtime.block_on(self.docker.inspect_container(name, None::<InspectContainerOptions>));
        match inspected {
            Ok(container) => {
                let status = container.state.and_then(|state| state.status);
                Ok(match status {
                    Some(ContainerStateStatusEnum::RUNNING) | Some(ContainerStateStatusEnum::RESTARTING) => {
                        LiveState::Running
                    }
                    _ => LiveState::Stopped,
                })
            }
            Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(LiveState::Missing),
            Err(error) => Err(self.failed(&format!("inspecting container {name}"), error)),
        }
    }

    /// Whether the engine has image `image` (by name or id).
    pub fn has_image(&self, image: &str) -> Result<bool> {
        match self.runtime.block_on(self.docker.inspect_image(image)) {
            Ok(_) => Ok(true),
            Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(error) => Err(self.failed(&format!("looking up image {image}"), error)),
        }
    }

    /// Creates the container (not started); its id.
    pub fn create(&self, config: &ContainerConfig) -> Result<String> {
        let body = ContainerCreateBody {
            image: Some(config.image.clone()),
            cmd: config.command.clone(),
            env: Some(config.env.clone()),
            working_dir: Some(config.working_dir.clone()),
            labels: Some(config.labels.clone()),
            host_config: Some(HostConfig {
                binds: Some(config.binds.clone()),
                network_mode: Some(config.network.clone()),
                memory: config.memory_bytes,
                nano_cpus: config.nano_cpus,
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptions { name: Some(config.name.clone()), ..CreateContainerOptions::default() };
        self.runtime
            .block_on(self.docker.create_container(Some(options), body))
            .map(|created| created.id)
            .map_err(|error| self.failed(&format!("creating container {} from {}", config.name, config.image), error))
    }

    pub fn start(&self, name: &str) -> Result<()> {
        match self.runtime.block_on(self.docker.start_container(name, None)) {
            // Already running.
            Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(self.failed(&format!("starting container {name}"), error)),
        }
    }

    /// Stops the container, killing it after `grace_s` seconds.
    pub fn stop(&self, name: &str, grace_s: i32) -> Result<()> {
        let options = StopContainerOptions { t: Some(grace_s), ..StopContainerOptions::default() };
        match self.runtime.block_on(self.docker.stop_container(name, Some(options))) {
            Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(self.failed(&format!("stopping container {name}"), error)),
        }
    }

    /// Removes the container, running or not; removing one already gone is not an error.
    pub fn remove(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptions { force: true, ..RemoveContainerOptions::default() };
        match self.runtime.block_on(self.docker.remove_container(name, Some(options))) {
            Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(error) => Err(self.failed(&format!("removing container {name}"), error)),
        }
    }

    /// Every container carrying a team label, stopped ones too.
    pub fn team_containers(&self) -> Result<Vec<Listed>> {
        let filters = HashMap::from([("label".to_string(), vec![TEAM_LABEL.to_string()])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..ListContainersOptions::default() };
        let listed = self
            .runtime
            .block_on(self.docker.list_containers(Some(options)))
            .map_err(|error| self.failed("listing containers", error))?;
        Ok(listed
            .into_iter()
            .filter_map(|container| {
                let labels = container.labels.unwrap_or_default();
                let name = container.names?.first()?.trim_start_matches('/').to_string();
                let running = matches!(
                    container.state,
                    Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                        | Some(bollard::models::ContainerSummaryStateEnum::RESTARTING)
                );
                Some(Listed {
                    name,
                    team: labels.get(TEAM_LABEL)?.clone(),
                    agent: labels.get(AGENT_LABEL).cloned().unwrap_or_default(),
                    state: if running { LiveState::Running } else { LiveState::Stopped },
                })
            })
            .collect())
    }

    /// The underlying client and runtime, for an attached exec.
    pub(crate) fn parts(&self) -> (&Docker, &tokio::runtime::Runtime) {
        (&self.docker, &self.runtime)
    }
}

/// The engine's own message, without bollard's wrapping.
fn describe(error: ApiError) -> String {
    match error {
        ApiError::DockerResponseServerError { status_code, message } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}
