//! `/api/sessions/...`: every session — recorded by runs here or imported from transcripts —
//! with its messages, runs, forks, fork tree, branch diffs and replay.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cclog_projections::archive::Archive;
use cclog_projections::lineage;
use cclog_projections::messages;
use cclog_projections::render::{self, Format, Style};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::PageQuery;
use crate::blocking::blocking;
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::views::{self, Message, Run, Session};
use crate::{Error, ErrorBody, Result};

/// Every session — run here or imported from transcripts — most recently active first.
#[utoipa::path(
    get, path = "/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Session>, description = "The sessions", links(
            ("get_session" = (operation_id = "get_session", parameters(("id" = "$response.body#/0/id")))),
            ("session_messages" = (operation_id = "session_messages", parameters(("id" = "$response.body#/0/id")))),
            ("session_runs" = (operation_id = "session_runs", parameters(("id" = "$response.body#/0/id")))),
            ("session_forks" = (operation_id = "session_forks", parameters(("id" = "$response.body#/0/id")))),
            ("session_tree" = (operation_id = "session_tree", parameters(("id" = "$response.body#/0/id")))),
            ("session_replay" = (operation_id = "session_replay", parameters(("id" = "$response.body#/0/id")))),
            ("session_diff" = (operation_id = "session_diff", parameters(("a" = "$response.body#/0/id"), ("b" = "$response.body#/0/id")))),
        )),
        (status = 401, body = ErrorBody, description = "A token is required"),
    )
)]
pub async fn list_sessions(State(state): State<AppState>) -> Result<Json<Vec<Session>>> {
    let prices = std::sync::Arc::clone(&state.prices);
    let sessions = blocking(move || messages::sessions_recent_first(&state.log)).await?;
    Ok(Json(sessions.iter().map(|session| views::session(session, &prices)).collect()))
}

/// One session.
#[utoipa::path(
    get, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Session, description = "The session"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
pub async fn get_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Session>> {
    let prices = std::sync::Arc::clone(&state.prices);
    Ok(Json(views::session(&blocking(move || Archive::session(&state.log, &id)).await?, &prices)))
}

/// The messages of every run of the session, numbered across them; a session cclog only
/// imported (no runs) answers with its transcript entries instead.
#[utoipa::path(
    get, path = "/sessions/{id}/messages", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it"), PageQuery),
    responses((status = 200, body = Vec<Message>, description = "The messages, in order"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
pub async fn session_messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Vec<Message>>> {
    let page = blocking(move || -> Result<_> {
        let session = Archive::session(&state.log, &id)?;
        Ok(messages::session_messages(&state.log, &session, page.first(), page.limit())?)
    })
    .await?;
    Ok(Json(page.iter().map(Message::from_paged).collect()))
}

/// The runs of a session, oldest first.
#[utoipa::path(
    get, path = "/sessions/{id}/runs", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Vec<Run>, description = "The runs"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
pub async fn session_runs(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<Run>>> {
    let runs = blocking(move || -> Result<_> {
        let session = Archive::session(&state.log, &id)?;
        Ok(messages::session_runs(&state.log, &session)?)
    })
    .await?;
    Ok(Json(runs.iter().map(views::run).collect()))
}

/// The sessions forked directly from this one.
#[utoipa::path(
    get, path = "/sessions/{id}/forks", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Vec<Session>, description = "The sessions"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
pub async fn session_forks(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<Session>>> {
    let prices = std::sync::Arc::clone(&state.prices);
    let forks = blocking(move || -> Result<_> {
        let session = Archive::session(&state.log, &id)?;
        Ok(messages::session_forks(&state.log, &session)?)
    })
    .await?;
    Ok(Json(forks.iter().map(|session| views::session(session, &prices)).collect()))
}

/// The fork tree this session belongs to, from its root: each node's session, fork point and
/// children.
#[utoipa::path(
    get, path = "/sessions/{id}/tree", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Value, description = "The fork tree"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
pub async fn session_tree(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let tree = blocking(move || lineage::tree_of(&state.log, &id)).await?;
    Ok(Json(to_json(&tree)?))
}

/// Two sessions compared: their lowest common ancestor in the fork tree, the fork point, and
/// both divergent branches (messages, tool calls, files touched, token and cost difference).
#[utoipa::path(
    get, path = "/sessions/{a}/diff/{b}", tag = "sessions", security(("bearer" = [])),
    params(("a" = String, Path, description = "One session (id or unique prefix)"),
        ("b" = String, Path, description = "The other session (id or unique prefix)")),
    responses((status = 200, body = Value, description = "The diff: ancestor, fork_point, left and right"),
        (status = 400, body = ErrorBody, description = "A prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
pub async fn session_diff(State(state): State<AppState>, Path((a, b)): Path<(String, String)>) -> Result<Json<Value>> {
    let diff = blocking(move || lineage::diff_of(&state.log, &a, &b, &state.prices)).await?;
    Ok(Json(to_json(&diff)?))
}

/// A domain value as JSON; one that does not serialise is a bug.
fn to_json(value: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|error| Error::Internal(format!("a response does not serialise: {error}")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// `text` (default), `markdown`, or `jsonl`: the transcript byte for byte.
    #[param(pattern = "^(text|markdown|jsonl)$")]
    format: Option<String>,
    /// Show long tool results whole instead of shortened.
    full: Option<bool>,
}

/// The session's transcript: readable (`text`, `markdown`) or exactly as Claude Code wrote it
/// (`jsonl`; a fork's shared prefix is rebuilt through its pointer).
#[utoipa::path(
    get, path = "/sessions/{id}/replay", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it"), ReplayQuery),
    responses(
        (status = 200, description = "The replay", content(
            (String = "text/plain"), (String = "text/markdown"), (String = "application/x-ndjson"))),
        (status = 400, body = ErrorBody, description = "An unknown format, or a prefix that names several sessions"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session, or no transcript archived for it"),
    )
)]
pub async fn session_replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<ReplayQuery>,
) -> Result<Response> {
    let format = query.format.unwrap_or_else(|| "text".into());
    let style = match format.as_str() {
        "text" => Some(Format::Text),
        "markdown" => Some(Format::Markdown),
        "jsonl" => None,
        other => return Err(Error::BadRequest(format!("format {other:?}: use text, markdown or jsonl"))),
    }
    .map(|format| Style::plain(format, query.full.unwrap_or(false)));
    let body = blocking(move || -> Result<_> {
        let session = Archive::session(&state.log, &id)?;
        Ok(render::session_replay(&state.log, &session, style.as_ref(), &state.prices)?)
    })
    .await?;
    let content_type = match format.as_str() {
        "jsonl" => "application/x-ndjson",
        "markdown" => "text/markdown; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
