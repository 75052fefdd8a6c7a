//! The service itself: `/` (what this is and where to go), `/health` (liveness, the log's
//! length, active runs), `/api/openapi.json` (the document, built from the same list the
//! router is) and `POST /api/cli`, which runs a forwarded `cclog` command on this server's
//! log.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::JsonBody;
use crate::forward::{self, CommandRequest};
use crate::state::AppState;
use crate::{Error, ErrorBody, Result};

/// What `GET /` answers: the service and where to go next.
#[derive(Serialize, ToSchema)]
pub struct Index {
    name: &'static str,
    version: &'static str,
    description: &'static str,
    health: &'static str,
    api: &'static str,
    openapi: &'static str,
}

/// The service and where its API and OpenAPI document are.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = Index, description = "The service")))]
pub async fn root() -> Json<Index> {
    Json(Index {
        name: "cclog",
        version: env!("CARGO_PKG_VERSION"),
        description: "Claude Code runs, sessions and history on a hash-chained, append-only log",
        health: "/health",
        api: "/api",
        openapi: "/api/openapi.json",
    })
}

/// What `GET /health` answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`; `degraded` while the log refuses appends (reads are still served), with
    /// `reason` saying why and what to do.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    version: &'static str,
    /// Events in the log.
    events: u64,
    active_runs: usize,
}

/// Liveness, the log's length, how many runs are active, and whether the log takes appends
/// (`degraded` when it does not). Never needs the token.
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, body = Health, description = "The service is up")))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let reason = match state.log.health() {
        cclog_engine::Health::Ok => None,
        cclog_engine::Health::DiskFull { free, needed } => Some(format!(
            "disk full: {} free, appends need {}; they resume on their own once space is freed",
            cclog_engine::describe_bytes(free),
            cclog_engine::describe_bytes(needed)
        )),
        cclog_engine::Health::OutOfInodes { free } => Some(format!(
            "disk full: {free} free inodes (files) left; appends resume on their own once files are deleted"
        )),
        cclog_engine::Health::Failed(reason) => {
            Some(format!("a write failed ({reason}); the server reopens the log, cut back to its last acknowledged event, as soon as the fault clears"))
        }
    };
    Json(Health {
        status: if reason.is_some() { "degraded" } else { "ok" },
        reason,
        version: env!("CARGO_PKG_VERSION"),
        events: state.log.len(),
        active_runs: state.runner.active_ids().len(),
    })
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "service", security(("bearer" = [])),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn openapi_document(axum::Extension(document): axum::Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    match document.to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => Error::Internal(format!("the OpenAPI document does not serialise: {error}")).into_response(),
    }
}

/// Runs a `cclog` command on this server's log for a client — how `cclog sessions`,
/// `replay`, `verify` and the rest work while `cclog serve` owns the data directory. The
/// answer streams the command's stdout, stderr and exit status as frames (see
/// `cclog_http::forward`); closing the connection stops the command.
#[utoipa::path(
    post, path = "/cli", tag = "service", security(("bearer" = [])), request_body = CommandRequest,
    responses(
        (status = 200, content_type = "application/vnd.cclog.frames",
            description = "Frames: a channel byte (1 stdout, 2 stderr, 3 exit status), three zero bytes, a big-endian u32 length, the bytes"),
        (status = 400, body = ErrorBody, description = "Malformed JSON, a command this server does not know or does not run, or a server that runs none"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 413, body = ErrorBody, description = "The body is over 1 MiB"),
    )
)]
pub async fn forward_command(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CommandRequest>,
) -> Result<Response> {
    let runner =
        state.commands.as_ref().ok_or_else(|| Error::BadRequest("this server does not run cclog commands".into()))?;
    let command = runner(request.command.clone()).map_err(Error::BadRequest)?;
    let stop = state.closing.command_stop();
    let frames = forward::start(command, Arc::clone(&state.log), &request, stop);
    Ok(([(header::CONTENT_TYPE, forward::CONTENT_TYPE)], axum::body::Body::from_stream(frames)).into_response())
}
