//! `/api/teams/...`: teams of Claude Code agents in containers and a tmux session — list,
//! create, one team with its health, resume, stop, remove, and a team's events live (SSE).
//! Each handler hands the work to the team service (`cclog_ingest::team`) on a blocking
//! thread; the server's own environment names the container engine (`DOCKER_HOST`) and
//! the host variables passed to containers.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::Json;
use cclog_engine::Log;
use cclog_ingest::team::{CreateRequest, Endpoint, HostEnv, Teams, DEFAULT_AGENTS};
use cclog_projections::events::team::team_stream;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::events::{follow, StreamFilter};
use crate::blocking::blocking;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::{ErrorBody, Result};

const TEAM_NAME: &str = "The team's name";

/// A team as the registry and the live world show it: `name`, `createdAt`, `phase`
/// (`Created`, `Resumed`, `Stopped`, `Removed`), `image`, `cwd`, `agents` (each `agent`,
/// `container`, `state`: `running`, `stopped`, `missing` or null when the engine could not
/// be asked, and `session`), `tmux`, `tmuxSocket`, `running`, `total`, `engineError`.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct TeamView(Value);

/// What create and resume did: `team`, `agents` (each `agent`, `container`,
/// `containerAction`, `session`), `tmuxCreated`, `attach` (the command that attaches a
/// terminal), `notes`.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct StartedView(Value);

/// A team with its health: `healthy`, `team` (a TeamView), `problems` (each `problem` and
/// the `fix` command).
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct HealthView(Value);

fn view<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|error| crate::Error::Internal(error.to_string()))
}

/// The team service on the server's log; tmux windows run `cclog_bin`.
fn service(log: &Log, cclog_bin: std::path::PathBuf) -> Teams<'_> {
    let server = crate::server::Advertisement::read(log.dir())
        .map(|advertised| Endpoint { url: advertised.url, token: advertised.token });
    Teams::new(log, log.dir(), cclog_bin, HostEnv::from_process()).with_coordinator(server)
}

/// Runs `work` on the team service on a blocking thread; what it returned.
async fn on_teams<T: Serialize + Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Teams<'_>) -> cclog_ingest::Result<T> + Send + 'static,
) -> Result<T> {
    let (log, bin) = (Arc::clone(&state.log), (*state.cclog_bin).clone());
    blocking(move || work(&service(&log, bin))).await
}

/// `?all=true`: removed teams too.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    all: Option<bool>,
}

/// Every team, with each agent's container state and whether its tmux session is open.
#[utoipa::path(
    get, path = "/teams", tag = "teams", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, body = Vec<TeamView>, description = "Teams by name"),
        (status = 400, body = ErrorBody, description = "Malformed query parameters"),
        (status = 401, body = ErrorBody, description = "A token is required"),
    )
)]
pub async fn list_teams(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Vec<TeamView>>> {
    let teams = on_teams(&state, move |teams| teams.list(query.all.unwrap_or(false))).await?;
    Ok(Json(teams.iter().map(|team| view(team).map(TeamView)).collect::<Result<_>>()?))
}

/// The body of `POST /api/teams`: `team create`'s options.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    /// Letters, digits, `-`, `_` and `.`.
    name: String,
    /// Agent names in window order (default leader, researcher, writer).
    agents: Option<Vec<String>>,
    /// The image every agent's container is made from.
    image: String,
    /// The project directory on the server's host, mounted at the same path.
    cwd: String,
    /// Memory per container: `4g`, `512m`, or bytes.
    container_memory: Option<String>,
    /// CPUs per container: `2`, `0.5`.
    container_cpus: Option<String>,
    /// `KEY=VALUE` for every container (recorded in the log).
    env: Option<Vec<String>>,
    /// Pass the server's `ANTHROPIC_*` and `CLAUDE_CODE_*` variables (default true; their
    /// values are never recorded).
    host_env: Option<bool>,
    /// `bridge` (default), `host` or `none`.
    network: Option<String>,
    /// The containers' long-lived command (default: the image's).
    keepalive: Option<String>,
    /// What each agent's window runs in its container (default `claude`).
    agent_command: Option<String>,
    /// Extra bind mounts, `SRC:DST` or `SRC:DST:ro`.
    mounts: Option<Vec<String>>,
    /// The home directory inside the containers (default `/root`).
    container_home: Option<String>,
    /// A private tmux server socket name.
    tmux_socket: Option<String>,
    /// Register this server's session coordinator in the agents' Claude Code (default true).
    coordinator: Option<bool>,
    /// The coordinator's URL as the containers reach it (default: this server's).
    mcp_url: Option<String>,
    /// Replace a tmux session or containers of the same names.
    force: Option<bool>,
}

impl CreateBody {
    fn request(self) -> CreateRequest {
        CreateRequest {
            name: self.name,
            agents: self.agents.unwrap_or_else(|| DEFAULT_AGENTS.map(str::to_string).to_vec()),
            image: self.image,
            memory: self.container_memory,
            cpus: self.container_cpus,
            cwd: self.cwd.into(),
            env: self.env.unwrap_or_default(),
            host_env: self.host_env.unwrap_or(true),
            network: self.network.unwrap_or_else(|| "bridge".into()),
            keepalive: self.keepalive,
            agent_command: self.agent_command.unwrap_or_else(|| "claude".into()),
            mounts: self.mounts.unwrap_or_default(),
            container_home: self.container_home.unwrap_or_else(|| "/root".into()),
            tmux_socket: self.tmux_socket,
            coordinator: self.coordinator.unwrap_or(true),
            coordinator_url: self.mcp_url,
            force: self.force.unwrap_or(false),
        }
    }
}

/// Creates a team: a container per agent, started, and a tmux session with a window per
/// agent; each step is recorded on `team/<name>`.
#[utoipa::path(
    post, path = "/teams", tag = "teams", security(("bearer" = [])), request_body = CreateBody,
    responses(
        (status = 201, body = StartedView, description = "The team, created"),
        (status = 400, body = ErrorBody, description = "A bad name, limit, mount or directory"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 409, body = ErrorBody, description = "Its tmux session or containers exist (`force` replaces them)"),
        (status = 502, body = ErrorBody, description = "The container engine or tmux cannot be reached or refused"),
    )
)]
pub async fn create_team(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<StartedView>)> {
    let started = on_teams(&state, move |teams| teams.create(&body.request())).await?;
    Ok((StatusCode::CREATED, Json(StartedView(view(&started)?))))
}

/// One team, checked against its containers and tmux session; what differs from the last
/// check is recorded.
#[utoipa::path(
    get, path = "/teams/{name}", tag = "teams", security(("bearer" = [])),
    params(("name" = String, Path, description = TEAM_NAME)),
    responses(
        (status = 200, body = HealthView, description = "The team and its health"),
        (status = 400, body = ErrorBody, description = "Not a team name, or a removed team"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such team"),
        (status = 502, body = ErrorBody, description = "The container engine or tmux cannot be reached or refused"),
    )
)]
pub async fn get_team(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<HealthView>> {
    let health = on_teams(&state, move |teams| teams.health(&name)).await?;
    let mut body = view(&health)?;
    body["healthy"] = Value::Bool(health.healthy());
    Ok(Json(HealthView(body)))
}

/// Brings a team back: stopped containers started, missing ones recreated as they were
/// made, the tmux session reopened, each agent in its last Claude Code session.
#[utoipa::path(
    post, path = "/teams/{name}/resume", tag = "teams", security(("bearer" = [])),
    params(("name" = String, Path, description = TEAM_NAME)),
    responses(
        (status = 200, body = StartedView, description = "What was done for each agent"),
        (status = 400, body = ErrorBody, description = "Not a team name, or a removed team"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such team"),
        (status = 502, body = ErrorBody, description = "The container engine or tmux cannot be reached or refused"),
    )
)]
pub async fn resume_team(
    State(state): State<AppState>,
    Path(name): Path<String>,
    // A body, if the client sends one, is read and ignored: an unread body would make
    // the server close the connection under the client's next request.
    _ignored: axum::body::Bytes,
) -> Result<Json<StartedView>> {
    let started = on_teams(&state, move |teams| teams.resume(&name)).await?;
    Ok(Json(StartedView(view(&started)?)))
}

/// Stops a team's containers (kept) and closes its tmux session.
#[utoipa::path(
    post, path = "/teams/{name}/stop", tag = "teams", security(("bearer" = [])),
    params(("name" = String, Path, description = TEAM_NAME)),
    responses(
        (status = 200, body = TeamView, description = "The team, stopped"),
        (status = 400, body = ErrorBody, description = "Not a team name, or a removed team"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such team"),
        (status = 502, body = ErrorBody, description = "The container engine or tmux cannot be reached or refused"),
    )
)]
pub async fn stop_team(
    State(state): State<AppState>,
    Path(name): Path<String>,
    // A body, if the client sends one, is read and ignored: an unread body would make
    // the server close the connection under the client's next request.
    _ignored: axum::body::Bytes,
) -> Result<Json<TeamView>> {
    let stopped = on_teams(&state, move |teams| teams.stop(&name)).await?;
    Ok(Json(TeamView(view(&stopped)?)))
}

/// Removes a team's containers, tmux session and agents' directories; its events and its
/// agents' transcripts stay in the log.
#[utoipa::path(
    delete, path = "/teams/{name}", tag = "teams", security(("bearer" = [])),
    params(("name" = String, Path, description = TEAM_NAME)),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, body = ErrorBody, description = "Not a team name, or a removed team"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such team"),
        (status = 502, body = ErrorBody, description = "The container engine or tmux cannot be reached or refused"),
    )
)]
pub async fn remove_team(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode> {
    on_teams(&state, move |teams| teams.remove(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?from=SEQ`: where the stream starts (default: the team's first event).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamStreamQuery {
    from: Option<u64>,
}

/// Server-sent events of a team's history, then each new event as it is written (`event`,
/// carrying an EventView).
#[utoipa::path(
    get, path = "/teams/{name}/stream", tag = "teams", security(("bearer" = [])),
    params(("name" = String, Path, description = TEAM_NAME), TeamStreamQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`event` events"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn team_events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryParams(query): QueryParams<TeamStreamQuery>,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    follow(&state, Some(query.from.unwrap_or(0)), StreamFilter::new(Some(&team_stream(&name))))
}
