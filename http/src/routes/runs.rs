//! `/api/runs/...`: CC Manager's run routes — start, resume, fork, list, get, cancel — and a
//! run's messages, paged or live (SSE). Launching and cancelling hand work to the runner;
//! everything else reads the archive projection.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cclog_engine::Log;
use cclog_ingest::runner::{Mode, RunOptions, RunRequest};
use cclog_projections::archive::Archive;
use cclog_projections::messages;
use futures_util::stream::Stream;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::PageQuery;
use crate::blocking::blocking;
use crate::extract::{JsonBody, QueryParams};
use crate::feeds::FeedItem;
use crate::sse::{self, SseSender};
use crate::state::AppState;
use crate::views::{self, Message, Run};
use crate::{Error, ErrorBody, Result};

/// The body of start, resume and fork: CC Manager's fields, cclog's `wait`, and the CLI
/// options passed through.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunBody {
    /// The directory to run in (start; resume and fork default to the session's).
    cwd: Option<String>,
    /// The prompt, sent to Claude Code on stdin; required, and not blank.
    #[schema(value_type = String, required = true, pattern = "\\S")]
    prompt: Option<String>,
    /// The session to resume or fork; a unique prefix is enough.
    session_id: Option<String>,
    /// Resume only. `true` (the default, as in CC Manager): the run continues in a new session
    /// branched off `sessionId`, so that history stays immutable; `false`: it continues
    /// `sessionId` itself, refused (409 `session_busy`) while another run writes that session.
    fork_session: Option<bool>,
    /// `false`: answer 202 at once with the run instead of when it ends.
    wait: Option<bool>,
    /// `--model`.
    model: Option<String>,
    /// `--permission-mode`.
    permission_mode: Option<String>,
    /// `--allowedTools`.
    allowed_tools: Option<Vec<String>>,
    /// `--disallowedTools`.
    disallowed_tools: Option<Vec<String>>,
    /// `--append-system-prompt`.
    append_system_prompt: Option<String>,
    /// `--max-turns`.
    #[schema(minimum = 1)]
    max_turns: Option<u32>,
}

impl RunBody {
    fn options(&self) -> RunOptions {
        RunOptions {
            model: self.model.clone(),
            permission_mode: self.permission_mode.clone(),
            allowed_tools: self.allowed_tools.clone(),
            disallowed_tools: self.disallowed_tools.clone(),
            append_system_prompt: self.append_system_prompt.clone(),
            max_turns: self.max_turns,
        }
    }
}

/// What start, resume and fork answer. (`RunLinks` adds the links from the run to its other
/// operations.)
#[allow(dead_code)] // only its OpenAPI description is used
#[derive(utoipa::IntoResponses)]
pub enum LaunchResponses {
    /// The run, ended
    #[response(status = 200)]
    Ended(Run),
    /// The run, started (`wait: false`)
    #[response(status = 202)]
    Started(Run),
    /// Malformed JSON, a missing field, or a cwd that is not a directory
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// A token is required
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such session
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A resume in place (`forkSession: false`) of a session another run is writing
    #[response(status = 409)]
    SessionBusy(ErrorBody),
    /// The body is over 1 MiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// CCLOG_MAX_RUNS runs are active already
    #[response(status = 429)]
    TooManyRuns(ErrorBody),
}

/// Links a launched run (`200`, `202`) to reading, paging and cancelling it, so that tools
/// that follow links (Schemathesis's stateful phase) reach real runs.
pub struct RunLinks;

impl utoipa::Modify for RunLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        use utoipa::openapi::RefOr;
        for operation in ["start", "resume", "fork"] {
            let Some(item) = openapi.paths.paths.get_mut(&format!("/api/runs/{operation}")) else { continue };
            let Some(operation) = item.post.as_mut() else { continue };
            for status in ["200", "202"] {
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else { continue };
                for (name, target) in
                    [("GetRun", "get_run"), ("RunMessages", "run_messages"), ("CancelRun", "cancel_run")]
                {
                    let link = LinkBuilder::new().operation_id(target).parameter("run", "$response.body#/id").build();
                    response.links.insert(name.to_string(), RefOr::T(link));
                }
            }
        }
    }
}

/// Starts Claude Code in `cwd` with `prompt`. Answers when the run has ended, or at once (202) with `"wait": false`;
/// `cwd` and `prompt` are required.
#[utoipa::path(
    post, path = "/runs/start", tag = "runs", security(("bearer" = [])), request_body = RunBody,
    responses(LaunchResponses)
)]
pub async fn start(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Start, body).await
}

/// Continues session `sessionId` with `prompt` (`--resume`): by default in a new session branched off it (`--fork-session`,
/// CC Manager's `forkSession: true`), with `"forkSession": false` in the session itself. Answers when the run has ended, or at
/// once (202) with `"wait": false`; `sessionId` and `prompt` are required.
#[utoipa::path(
    post, path = "/runs/resume", tag = "runs", security(("bearer" = [])), request_body = RunBody,
    responses(LaunchResponses)
)]
pub async fn resume(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Resume, body).await
}

/// Forks session `sessionId` into a new session with `prompt` (`--resume --fork-session`). Answers when the run has ended, or at once (202) with `"wait": false`;
/// `sessionId` and `prompt` are required.
#[utoipa::path(
    post, path = "/runs/fork", tag = "runs", security(("bearer" = [])), request_body = RunBody,
    responses(LaunchResponses)
)]
pub async fn fork(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Fork, body).await
}

async fn launch(State(state): State<AppState>, mode: Mode, body: RunBody) -> Result<Response> {
    let options = body.options();
    let prompt = body.prompt.ok_or_else(|| Error::BadRequest("prompt is required".into()))?;
    match mode {
        Mode::Start if body.cwd.is_none() => return Err(Error::BadRequest("cwd is required".into())),
        Mode::Resume | Mode::Fork if body.session_id.is_none() => {
            return Err(Error::BadRequest("sessionId is required".into()))
        }
        Mode::Fork if body.fork_session == Some(false) => {
            return Err(Error::BadRequest(
                "a fork always makes a new session; continue a session in place with /api/runs/resume and \
                 \"forkSession\": false"
                    .into(),
            ))
        }
        _ => {}
    }
    let in_place = mode == Mode::Resume && body.fork_session == Some(false);
    let request =
        RunRequest { mode, in_place, cwd: body.cwd.map(Into::into), prompt, session: body.session_id, options };
    let handle = state.runner.start(request).await?;
    let id = handle.id.clone();
    // When the run ends, its transcript is archived at once, so that its session, fork
    // pointer and tree are there as soon as the run is.
    let archiver = Arc::clone(&state.archiver);
    let archived = tokio::spawn(async move {
        handle.finished().await;
        archiver.import_now().await;
    });
    let wait = body.wait.unwrap_or(true);
    if wait {
        let _ = archived.await;
    }
    let run = views::run(&blocking(move || messages::run_detail(&state.log, &id)).await?);
    Ok(if wait { Json(run).into_response() } else { (StatusCode::ACCEPTED, Json(run)).into_response() })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs that are still going.
    active: Option<bool>,
}

/// Every run, newest first.
#[utoipa::path(
    get, path = "/runs", tag = "runs", security(("bearer" = [])), params(RunsQuery),
    responses((status = 200, body = Vec<Run>, description = "The runs"), (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn list_runs(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<RunsQuery>,
) -> Result<Json<Vec<Run>>> {
    let active_only = query.active.unwrap_or(false);
    let runs = blocking(move || messages::runs_newest_first(&state.log, active_only)).await?;
    Ok(Json(runs.iter().map(views::run).collect()))
}

/// The runs this server is running now.
#[utoipa::path(
    get, path = "/runs/active", tag = "runs", security(("bearer" = [])),
    responses((status = 200, body = Vec<Run>, description = "The runs"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn active_runs(State(state): State<AppState>) -> Result<Json<Vec<Run>>> {
    let runs = blocking(move || messages::run_details(&state.log, &state.runner.active_ids())).await?;
    Ok(Json(runs.iter().map(views::run).collect()))
}

/// One run.
#[utoipa::path(
    get, path = "/runs/{run}", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = RUN_ID)),
    responses((status = 200, body = Run, description = "The run"), (status = 400, body = ErrorBody, description = AMBIGUOUS),
        (status = 401, body = ErrorBody, description = "A token is required"), (status = 404, body = ErrorBody, description = "No such run"))
)]
pub async fn get_run(State(state): State<AppState>, Path(run): Path<String>) -> Result<Json<Run>> {
    Ok(Json(views::run(&blocking(move || messages::run_detail(&state.log, &run)).await?)))
}

const RUN_ID: &str = "The run's id, or a unique prefix of it";
const AMBIGUOUS: &str = "The prefix names more than one run (`ambiguous_id`)";

/// Cancels a run: SIGINT, then SIGTERM, then SIGKILL after grace periods. Answers with the
/// run once it has ended, `cancelled`; its messages so far stay.
#[utoipa::path(
    delete, path = "/runs/{run}", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = RUN_ID)),
    responses(
        (status = 200, body = Run, description = "The run, cancelled"),
        (status = 400, body = ErrorBody, description = AMBIGUOUS),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such run"),
        (status = 409, body = ErrorBody, description = "The run has ended already; the message names its status"),
    )
)]
pub async fn cancel_run(State(state): State<AppState>, Path(run): Path<String>) -> Result<Json<Run>> {
    let runner = Arc::clone(&state.runner);
    let handle = blocking(move || Ok::<_, Error>(runner.cancel(&run)?)).await?;
    let id = handle.id.clone();
    handle.finished().await;
    Ok(Json(views::run(&blocking(move || messages::run_detail(&state.log, &id)).await?)))
}

/// The run's messages, each the SDK message exactly as Claude Code printed it.
#[utoipa::path(
    get, path = "/runs/{run}/messages", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = RUN_ID), PageQuery),
    responses((status = 200, body = Vec<Message>, description = "The messages, in order"), (status = 400, body = ErrorBody, description = "Malformed query parameters, or a prefix that names more than one run"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such run"))
)]
pub async fn run_messages(
    State(state): State<AppState>,
    Path(run): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Vec<Message>>> {
    let page = blocking(move || -> Result<_> {
        let run = Archive::run_by_prefix(&state.log, &run)?;
        Ok(messages::run_messages(&state.log, &run.id, page.first(), page.limit())?)
    })
    .await?;
    Ok(Json(page.iter().map(Message::from_paged).collect()))
}

/// Server-sent events: the run's recorded messages (`message`), then new ones as they are
/// appended, then `end` with the run once it has ended.
#[utoipa::path(
    get, path = "/runs/{run}/stream", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = RUN_ID)),
    responses((status = 200, content_type = "text/event-stream", description = "`message` events carrying a Message, then one `end` event carrying the Run"),
        (status = 400, body = ErrorBody, description = AMBIGUOUS),
        (status = 401, body = ErrorBody, description = "A token is required"), (status = 404, body = ErrorBody, description = "No such run"))
)]
pub async fn run_stream(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let (log, closing) = (Arc::clone(&state.log), state.closing.clone());
    let (run, log) = blocking(move || Ok::<_, Error>((Archive::run_by_prefix(&log, &run)?.id, log))).await?;
    // Join the run's feed before reading what is recorded, so nothing falls in between.
    let mut feed = state.feeds.follow(&run);
    let stream = sse::producer_stream(move |sender| async move {
        let mut next_index = 0u64;
        let mut last_seq = None;
        if !send_recorded(&log, &run, &sender, &mut next_index, &mut last_seq).await {
            return;
        }
        let send_end = || async {
            let (log, run) = (Arc::clone(&log), run.clone());
            if let Ok(detail) = blocking(move || Ok::<_, Error>(messages::run_detail(&log, &run)?)).await {
                let _ = sse::send_json(&sender, "end", &views::run(&detail)).await;
            }
        };
        if Archive::run(&log, &run).ok().flatten().is_some_and(|record| !record.is_active()) {
            return send_end().await;
        }
        while let Some(item) = closing.until_closed(feed.recv()).await {
            match item {
                Ok(item) => match &*item {
                    FeedItem::Message { seq, .. } if last_seq.is_some_and(|last| *seq <= last) => {}
                    FeedItem::Message { index, seq, json } => {
                        next_index = index + 1;
                        last_seq = Some(*seq);
                        if !sse::send_text(&sender, "message", json.clone()).await {
                            return;
                        }
                    }
                    FeedItem::End => {
                        // Whatever the feed did not carry is in the log by now.
                        if send_recorded(&log, &run, &sender, &mut next_index, &mut last_seq).await {
                            send_end().await;
                        }
                        return;
                    }
                },
                // Fell behind the feed: catch up from the log, then go on with the feed.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !send_recorded(&log, &run, &sender, &mut next_index, &mut last_seq).await {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Sends the run's recorded messages from `*next_index` on, up to the durable head, and
/// notes the last one sent; false once the client has gone. The log is read on a blocking
/// thread.
async fn send_recorded(
    log: &Arc<Log>,
    run: &str,
    sender: &SseSender,
    next_index: &mut u64,
    last_seq: &mut Option<u64>,
) -> bool {
    let (log, run, from) = (Arc::clone(log), run.to_string(), *next_index);
    let recorded = match blocking(move || messages::run_messages(&log, &run, from, usize::MAX)).await {
        Ok(recorded) => recorded,
        Err(error) => {
            tracing::error!(%error, "reading a run's messages for its stream failed");
            return false;
        }
    };
    for message in &recorded {
        *next_index = message.index + 1;
        *last_seq = Some(message.event.seq());
        if !sse::send_json(sender, "message", &Message::from_paged(message)).await {
            return false;
        }
    }
    true
}
