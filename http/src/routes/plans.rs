//! `/api/plans/...`: plans — run one (its tasks in one Claude Code session, through this
//! server's runner, so `CCLOG_MAX_RUNS` applies), list, get, resume, cancel, and a plan's
//! events live (SSE).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::Json;
use cclog_ingest::plan::executor::Executor;
use cclog_ingest::plan::file::{PlanFile, DEFAULT_TTL};
use cclog_projections::events::plan::plan_stream;
use cclog_projections::plans::PlanRegistry;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::events::{follow, StreamFilter};
use crate::blocking::blocking;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::{Error, ErrorBody, Result};

const PLAN_ID: &str = "The plan's id";

/// A plan as the registry has it: `id`, `status` (`Running`, `Completed`, `Failed`,
/// `Cancelled`), `tasks` (each `id`, `status`, `runs`, `session`, `fallback`, `retries`,
/// `reason`), `session`, `sessions`, and the counts `resumes`, `failed_resumes`, `expired`,
/// `changed`, `retries`, `resumed`.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct PlanView(Value);

/// The body of `POST /api/plans`: a plan as a plan file has it (`id`, `cwd`, `model`,
/// `permissionMode`, `allowedTools`, `maxTurns`, `appendSystemPrompt`, `ttl`,
/// `maxSessionRetries`, `maxTaskRetries`, `continueOnError`, `tasks`: each `id`, `prompt`,
/// `type` and its own options), and `wait` (`false`: answer 202 at once).
#[derive(Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct PlanBody(Value);

fn view<T: Serialize>(value: &T) -> Result<PlanView> {
    serde_json::to_value(value).map(PlanView).map_err(|error| Error::Internal(error.to_string()))
}

fn executor(state: &AppState) -> Executor {
    Executor::new(Arc::clone(&state.log), Arc::clone(&state.runner))
}

/// Runs a plan: answers when it ends (200), or at once with `"wait": false` (202).
#[utoipa::path(
    post, path = "/plans", tag = "plans", security(("bearer" = [])), request_body = PlanBody,
    responses(
        (status = 200, body = PlanView, description = "The plan, ended"),
        (status = 202, body = PlanView, description = "The plan, started"),
        (status = 400, body = ErrorBody, description = "A bad plan: the message names the field or task"),
        (status = 401, body = ErrorBody, description = "A token is required"),
    )
)]
pub async fn run_plan(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PlanBody>,
) -> Result<(StatusCode, Json<PlanView>)> {
    let PlanBody(Value::Object(mut fields)) = body else {
        return Err(Error::BadRequest("a plan is a JSON object".into()));
    };
    let wait = match fields.remove("wait") {
        None => true,
        Some(Value::Bool(wait)) => wait,
        Some(_) => return Err(Error::BadRequest("wait must be true or false".into())),
    };
    let plan: PlanFile =
        serde_json::from_value(Value::Object(fields)).map_err(|error| Error::BadRequest(error.to_string()))?;
    let spec = blocking(move || plan.resolve(None, DEFAULT_TTL)).await?;
    let id = spec.id.clone();
    let running = {
        let executor = executor(&state);
        tokio::spawn(async move { executor.run(spec).await })
    };
    if wait {
        let record = running.await??;
        return Ok((StatusCode::OK, Json(view(&record)?)));
    }
    // Answer once the plan is recorded (or refused), while its tasks go on.
    for _ in 0..200 {
        let (log, plan) = (Arc::clone(&state.log), id.clone());
        if let Some(record) = blocking(move || PlanRegistry::get(&log, &plan)).await? {
            return Ok((StatusCode::ACCEPTED, Json(view(&record)?)));
        }
        if running.is_finished() {
            running.await??;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(Error::Internal(format!("plan {id} was not recorded")))
}

/// `?from=SEQ`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanStreamQuery {
    /// Where the stream starts (default: the plan's first event).
    from: Option<u64>,
}

/// Every plan, by id.
#[utoipa::path(
    get, path = "/plans", tag = "plans", security(("bearer" = [])),
    responses((status = 200, body = Vec<PlanView>, description = "Plans by id"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn list_plans(State(state): State<AppState>) -> Result<Json<Vec<PlanView>>> {
    let log = Arc::clone(&state.log);
    let plans = blocking(move || PlanRegistry::all(&log)).await?;
    Ok(Json(plans.iter().map(view).collect::<Result<_>>()?))
}

/// One plan: its tasks, their runs and sessions, and its counts.
#[utoipa::path(
    get, path = "/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID)),
    responses((status = 200, body = PlanView, description = "The plan"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such plan"))
)]
pub async fn get_plan(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PlanView>> {
    let log = Arc::clone(&state.log);
    let plan = id.clone();
    let record = blocking(move || PlanRegistry::get(&log, &plan)).await?;
    let record = record.ok_or(cclog_projections::Error::NotFound { what: "plan", id })?;
    Ok(Json(view(&record)?))
}

/// Continues a plan at its first unfinished task; answers when it ends.
#[utoipa::path(
    post, path = "/plans/{id}/resume", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID)),
    responses((status = 200, body = PlanView, description = "The plan, ended again"),
        (status = 400, body = ErrorBody, description = "No such plan, or it has completed"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn resume_plan(
    State(state): State<AppState>,
    Path(id): Path<String>,
    // A body, if the client sends one, is read and ignored: an unread body would make
    // the server close the connection under the client's next request.
    _ignored: axum::body::Bytes,
) -> Result<Json<PlanView>> {
    let executor = executor(&state);
    let record = tokio::spawn(async move { executor.resume(&id).await }).await??;
    Ok(Json(view(&record)?))
}

/// Cancels a running plan (its running task's run) and marks it cancelled.
#[utoipa::path(
    delete, path = "/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID)),
    responses((status = 200, body = PlanView, description = "The plan, cancelled"),
        (status = 400, body = ErrorBody, description = "No such plan, or it has ended"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn cancel_plan(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PlanView>> {
    let record = executor(&state).cancel(&id).await?;
    Ok(Json(view(&record)?))
}

/// Server-sent events of a plan's history, then each new event as it is written.
#[utoipa::path(
    get, path = "/plans/{id}/stream", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID), PlanStreamQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`event` events"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn plan_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PlanStreamQuery>,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    follow(&state, Some(query.from.unwrap_or(0)), StreamFilter::new(Some(&plan_stream(&id))))
}
