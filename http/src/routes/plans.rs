//! `/api/plans/...`: plans — run one (its tasks in one Claude Code session, through this
//! server's runner, so `CCLOG_MAX_RUNS` applies), list, get (with each task's tokens, cost
//! and duration), resume, cancel, and a plan's steps and its tasks' messages live (SSE).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use cclog_engine::Log;
use cclog_ingest::plan::executor::Executor;
use cclog_ingest::plan::file::PlanFile;
use cclog_projections::events::plan::PlanStep;
use cclog_projections::plan_feed::{FeedItem, PlanFeed};
use cclog_projections::plans::PlanRegistry;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::blocking::blocking;
use crate::extract::{JsonBody, QueryParams};
use crate::sse::{self, SseSender};
use crate::state::AppState;
use crate::views;
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

/// `wait` of a request body (default `true`), taken out of it.
fn take_wait(fields: &mut serde_json::Map<String, Value>) -> Result<bool> {
    match fields.remove("wait") {
        None => Ok(true),
        Some(Value::Bool(wait)) => Ok(wait),
        Some(_) => Err(Error::BadRequest("wait must be true or false".into())),
    }
}

/// Drives a recorded plan: to its end before answering (200), or on after answering at
/// once (202).
async fn drive(state: &AppState, id: String, wait: bool) -> Result<(StatusCode, Json<PlanView>)> {
    let executor = executor(state);
    if wait {
        let record = tokio::spawn(async move { executor.drive(&id).await }).await??;
        return Ok((StatusCode::OK, Json(view(&record)?)));
    }
    let (log, plan) = (Arc::clone(&state.log), id.clone());
    tokio::spawn(async move {
        if let Err(error) = executor.drive(&id).await {
            tracing::error!(plan = %id, %error, "a plan stopped on an error");
        }
    });
    let record = blocking(move || PlanRegistry::get(&log, &plan)).await?;
    let record = record.ok_or_else(|| Error::Internal("a recorded plan is gone".into()))?;
    Ok((StatusCode::ACCEPTED, Json(view(&record)?)))
}

/// Runs a plan: answers when it ends (200), or once it is recorded with `"wait": false`
/// (202).
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
    let wait = take_wait(&mut fields)?;
    let plan: PlanFile =
        serde_json::from_value(Value::Object(fields)).map_err(|error| Error::BadRequest(error.to_string()))?;
    let ttl = state.plan_ttl;
    let spec = blocking(move || plan.resolve(None, ttl)).await?;
    let id = spec.id.clone();
    executor(&state).create(spec).await?;
    drive(&state, id, wait).await
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

/// One plan: its tasks, their runs and sessions, its counts, and `metrics` (each task's
/// tokens, cost and duration, and their total).
#[utoipa::path(
    get, path = "/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID)),
    responses((status = 200, body = PlanView, description = "The plan"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such plan"))
)]
pub async fn get_plan(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PlanView>> {
    let (log, prices) = (Arc::clone(&state.log), Arc::clone(&state.prices));
    let (record, metrics) = blocking(move || {
        let record = PlanRegistry::get(&log, &id)?.ok_or(cclog_projections::Error::NotFound { what: "plan", id })?;
        let metrics = PlanRegistry::metrics(&log, &record, &prices)?;
        Ok::<_, Error>((record, metrics))
    })
    .await?;
    let PlanView(mut plan) = view(&record)?;
    plan["metrics"] = serde_json::to_value(&metrics).map_err(|error| Error::Internal(error.to_string()))?;
    Ok(Json(PlanView(plan)))
}

/// Continues a plan at its first unfinished task: answers when it ends (200), or once the
/// resume is recorded with `{"wait": false}` (202).
#[utoipa::path(
    post, path = "/plans/{id}/resume", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID)), request_body(content = Option<ResumeBody>),
    responses((status = 200, body = PlanView, description = "The plan, ended again"),
        (status = 202, body = PlanView, description = "The plan, resumed"),
        (status = 400, body = ErrorBody, description = "No such plan, it has completed, or it is running"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn resume_plan(
    State(state): State<AppState>,
    Path(id): Path<String>,
    // Read whole, so that a client's body never leaves the connection half read.
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<PlanView>)> {
    let wait = if body.iter().all(u8::is_ascii_whitespace) {
        true
    } else {
        let body: ResumeBody =
            serde_json::from_slice(&body).map_err(|error| Error::BadRequest(format!("a resume's body: {error}")))?;
        body.wait.unwrap_or(true)
    };
    executor(&state).reopen(&id).await?;
    drive(&state, id, wait).await
}

/// The body of `POST /api/plans/:id/resume`, if any.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// `false`: answer 202 once the resume is recorded (default `true`: when the plan ends).
    wait: Option<bool>,
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

/// Events a plan's stream reads from each of its streams per blocking call while it
/// catches up.
const CATCH_UP_CHUNK: usize = 512;

/// Server-sent events of a plan — history first, then live: `step` for each of its events
/// (`{seq, at, step}`, `step` being `{kind, change}`), `message` for each message of its
/// tasks' runs (`{seq, task, run, message}`, the SDK message as the CLI wrote it), and, once
/// the plan has ended with nothing after, `end` with the plan.
#[utoipa::path(
    get, path = "/plans/{id}/stream", tag = "plans", security(("bearer" = [])),
    params(("id" = String, Path, description = PLAN_ID), PlanStreamQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`step` and `message` events, then `end`"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such plan"))
)]
pub async fn plan_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PlanStreamQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let (log, closing) = (Arc::clone(&state.log), state.closing.clone());
    let plan = id.clone();
    let known = blocking(move || PlanRegistry::get(&log, &plan)).await?.is_some();
    if !known {
        return Err(cclog_projections::Error::NotFound { what: "plan", id }.into());
    }
    let log = Arc::clone(&state.log);
    let mut feed = PlanFeed::new(&id, query.from.unwrap_or(0));
    let stream = sse::producer_stream(move |sender| async move {
        // Each page, and each event that may be the plan's, is read on a blocking thread;
        // the feed goes there and back.
        let mut more = true;
        let mut subscription = None;
        loop {
            let reader = Arc::clone(&log);
            let read = if more {
                closing
                    .until_closed(blocking(move || {
                        let page = feed.page(&reader, CATCH_UP_CHUNK)?;
                        Ok::<_, Error>((feed, page))
                    }))
                    .await
            } else {
                let subscription = subscription.get_or_insert_with(|| log.subscribe(feed.next()));
                let event = loop {
                    match closing.until_closed(subscription.next()).await {
                        Some(Ok(event)) if feed.wants(&event) => break event,
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                };
                closing
                    .until_closed(blocking(move || {
                        let items = feed.take(&reader, &event)?;
                        Ok::<_, Error>((feed, (items, false)))
                    }))
                    .await
            };
            let (items, more_history) = match read {
                Some(Ok((returned, page))) => {
                    feed = returned;
                    page
                }
                Some(Err(error)) => {
                    tracing::error!(%error, "reading a plan's feed failed");
                    return;
                }
                None => return,
            };
            more = more && more_history;
            for item in items {
                match send_item(&log, &feed, &sender, item).await {
                    Sent::Delivered => {}
                    Sent::Gone | Sent::Ended => return,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The data of a `message` event.
#[derive(Serialize)]
struct TaskMessage<'a> {
    seq: u64,
    task: &'a str,
    run: &'a str,
    message: &'a RawValue,
}

enum Sent {
    Delivered,
    /// The client has gone.
    Gone,
    /// The plan has ended; `end` was sent.
    Ended,
}

/// Sends one item of a plan's feed, and `end` after a step that ended the plan.
async fn send_item(log: &Arc<Log>, feed: &PlanFeed, sender: &SseSender, item: FeedItem) -> Sent {
    let sent = match &item {
        FeedItem::Step { seq, at_us, step } => {
            sse::send_json(sender, "step", &json!({"seq": seq, "at": views::timestamp(*at_us), "step": step})).await
        }
        FeedItem::Message { seq, task, run, message } => {
            // A line the CLI wrote that is not JSON goes as a string.
            let message = serde_json::from_slice::<Box<RawValue>>(message)
                .or_else(|_| serde_json::value::to_raw_value(&String::from_utf8_lossy(message)));
            let Ok(message) = message else { return Sent::Delivered };
            sse::send_json(sender, "message", &TaskMessage { seq: *seq, task, run, message: &message }).await
        }
    };
    if !sent {
        return Sent::Gone;
    }
    let FeedItem::Step { seq, step: PlanStep::Ended(_), .. } = item else { return Sent::Delivered };
    let (reader, feed) = (Arc::clone(log), feed.clone());
    match blocking(move || Ok::<_, Error>(feed.ended(&reader, seq)?)).await {
        Ok(Some(record)) => {
            let _ = sse::send_json(sender, "end", &record).await;
            Sent::Ended
        }
        Ok(None) => Sent::Delivered,
        Err(error) => {
            tracing::error!(%error, "reading a plan for its stream failed");
            Sent::Gone
        }
    }
}
