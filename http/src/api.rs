//! The REST API: CC Manager's routes (same paths, methods and request bodies) over the log,
//! and cclog's own — live streams (SSE), raw events, verify, fork trees, diffs and replay.
//! Handlers only read projections and the log, or hand work to the runner; errors become
//! `{"error":{"code","message"}}` through [`crate::Error`].

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use cclog_engine::Log;
use cclog_ingest::runner::{Mode, RunOptions, RunRequest, Runner};
use cclog_projections::archive::{Archive, RunRecord};
use cclog_projections::lineage::{self, Entry};
use cclog_projections::render::{self, Format, Style};
use cclog_projections::replay;
use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::feeds::{FeedItem, Feeds};
use crate::forward::{self, CommandRequest, CommandRunner};
use crate::server::Archiver;
use crate::views::{self, EventView, Message, Run, Session};
use crate::{Error, ErrorBody, Result};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;
/// The most events one `GET /api/events` answers with.
const EVENTS_PAGE_MAX: usize = 10_000;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<Log>,
    pub runner: Arc<Runner>,
    pub archiver: Arc<Archiver>,
    /// The bearer token `/api` requires, if any.
    pub token: Option<String>,
    /// Runs the commands clients forward (`POST /api/cli`); `None`: this server does not.
    pub commands: Option<CommandRunner>,
    /// Turns true when the server shuts down: streams end, forwarded commands stop.
    pub closing: Closing,
    /// One log reader per followed run, fanning its messages out.
    pub feeds: Arc<Feeds>,
    /// The machine and project the MCP coordinator at `/mcp` serves.
    pub coordinator: Arc<crate::mcp::Identity>,
}

/// Tells long-lived answers (event streams, forwarded commands) that the server is shutting
/// down, so that a graceful shutdown does not wait for them forever.
#[derive(Clone)]
pub struct Closing {
    signal: tokio::sync::watch::Receiver<bool>,
    /// The stop flags of forwarded commands still running.
    commands: Arc<std::sync::Mutex<Vec<std::sync::Weak<AtomicBool>>>>,
}

impl Closing {
    /// A closing signal, and what fires it.
    pub fn new() -> (Closing, impl FnOnce()) {
        let (sender, signal) = tokio::sync::watch::channel(false);
        let closing = Closing { signal, commands: Arc::default() };
        let commands = Arc::clone(&closing.commands);
        let fire = move || {
            let _ = sender.send(true);
            let commands = commands.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for stop in commands.iter().filter_map(std::sync::Weak::upgrade) {
                stop.store(true, Ordering::Relaxed);
            }
        };
        (closing, fire)
    }

    /// Resolves once the server is shutting down.
    pub async fn closed(&self) {
        let mut signal = self.signal.clone();
        let _ = signal.wait_for(|closing| *closing).await;
    }

    /// A stop flag for a forwarded command, set when the server shuts down.
    fn command_stop(&self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(*self.signal.borrow()));
        let mut commands = self.commands.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        commands.retain(|stop| stop.strong_count() > 0);
        commands.push(Arc::downgrade(&stop));
        stop
    }
}

/// The OpenAPI document's fixed parts; every path is added by the router from its handler.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "cclog",
        description = "Claude Code runs, sessions and history on a hash-chained, append-only log. \
            CC Manager's routes (same paths, methods and bodies) plus live streams, raw events, verify, \
            fork trees, diffs and replay. Errors are `{\"error\":{\"code\",\"message\"}}`.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "runs", description = "Start, resume, fork and cancel Claude Code runs; their messages"),
        (name = "sessions", description = "Sessions from runs and archived transcripts; forks, trees, diffs, replay"),
        (name = "log", description = "The log itself: events, live tail, verification"),
        (name = "service", description = "The service: health, index, this document"),
    )
)]
struct ApiDoc;

/// Declares the bearer scheme `--token` enables; every `/api` operation lists it.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Required on every /api route when the server runs with --token"))
                    .build(),
            ),
        );
    }
}

/// The routes with their OpenAPI operations, before state is attached; with `state`, `/api`
/// is guarded by its token.
fn documented_routes(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(start))
        .routes(routes!(resume))
        .routes(routes!(fork))
        .routes(routes!(active_runs))
        .routes(routes!(get_run, cancel_run))
        .routes(routes!(run_messages))
        .routes(routes!(run_stream))
        .routes(routes!(list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(session_messages))
        .routes(routes!(session_runs))
        .routes(routes!(session_forks))
        .routes(routes!(session_tree))
        .routes(routes!(session_diff))
        .routes(routes!(session_replay))
        .routes(routes!(list_events))
        .routes(routes!(event_stream))
        .routes(routes!(verify))
        .routes(routes!(openapi_document))
        .routes(routes!(forward_command));
    if let Some(state) = state {
        api = api.route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    }
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(root))
        .routes(routes!(health))
        .nest("/api", api)
}

/// The OpenAPI 3.1 document of this API, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = documented_routes(None).into_openapi();
    utoipa::Modify::modify(&RunLinks, &mut document);
    document
}

/// The whole router: `/`, `/health`, and `/api/...` behind the token check.
pub fn router(state: AppState) -> Router {
    let (routes, mut document) = documented_routes(Some(&state)).split_for_parts();
    utoipa::Modify::modify(&RunLinks, &mut document);
    // MCP (Streamable HTTP) at /mcp, behind the same token as /api.
    let cancel = tokio_util::sync::CancellationToken::new();
    let closing = state.closing.clone();
    let cancel_on_close = cancel.clone();
    tokio::spawn(async move {
        closing.closed().await;
        cancel_on_close.cancel();
    });
    let mcp = Router::new()
        .nest_service("/mcp", crate::mcp::http_service(Arc::clone(&state.log), Arc::clone(&state.coordinator), cancel))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    routes
        .merge(mcp)
        .layer(axum::Extension(Arc::new(document)))
        .fallback(
            |request: Request| async move { Error::NoRoute(format!("{} {}", request.method(), request.uri().path())) },
        )
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
            return Error::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON body whose rejections answer in the API's error format.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::BytesRejection(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Error::TooLarge(BODY_LIMIT))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(Error::BadRequest("send the body as JSON with Content-Type: application/json".into()))
            }
            Err(rejection) => Err(Error::BadRequest(rejection.body_text())),
        }
    }
}

/// Query parameters whose rejections answer in the API's error format.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| QueryParams(query.0))
            .map_err(|rejection: QueryRejection| Error::BadRequest(rejection.body_text()))
    }
}

/// What `GET /` answers: the service and where to go next.
#[derive(Serialize, ToSchema)]
struct Index {
    name: &'static str,
    version: &'static str,
    description: &'static str,
    health: &'static str,
    api: &'static str,
    openapi: &'static str,
}

/// The service and where its API and OpenAPI document are.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = Index, description = "The service")))]
async fn root() -> Json<Index> {
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
struct Health {
    /// Always `ok` when the server answers.
    status: &'static str,
    version: &'static str,
    /// Events in the log.
    events: u64,
    active_runs: usize,
}

/// Liveness, the log's length and how many runs are active. Never needs the token.
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, body = Health, description = "The service is up")))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
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
async fn openapi_document(axum::Extension(document): axum::Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    match document.to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => Error::Config(format!("the OpenAPI document does not serialise: {error}")).into_response(),
    }
}

// ---- runs ----

/// The body of start, resume and fork: CC Manager's fields, cclog's `wait`, and the CLI
/// options passed through.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RunBody {
    /// The directory to run in (start; resume and fork default to the session's).
    cwd: Option<String>,
    /// The prompt, sent to Claude Code on stdin; required, and not blank.
    #[schema(value_type = String, required = true, pattern = "\\S")]
    prompt: Option<String>,
    /// The session to resume or fork; a unique prefix is enough.
    session_id: Option<String>,
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
enum LaunchResponses {
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
    /// The body is over 1 MiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// CCLOG_MAX_RUNS runs are active already
    #[response(status = 429)]
    TooManyRuns(ErrorBody),
}

/// Links a launched run (`200`, `202`) to reading, paging and cancelling it, so that tools
/// that follow links (Schemathesis's stateful phase) reach real runs.
struct RunLinks;

impl utoipa::Modify for RunLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        use utoipa::openapi::RefOr;
        for mode in ["start", "resume", "fork"] {
            let Some(item) = openapi.paths.paths.get_mut(&format!("/api/runs/{mode}")) else { continue };
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
async fn start(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Start, body).await
}

/// Continues session `sessionId` with `prompt` (`--resume`). Answers when the run has ended, or at once (202) with `"wait": false`;
/// `sessionId` and `prompt` are required.
#[utoipa::path(
    post, path = "/runs/resume", tag = "runs", security(("bearer" = [])), request_body = RunBody,
    responses(LaunchResponses)
)]
async fn resume(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Resume, body).await
}

/// Forks session `sessionId` into a new session with `prompt` (`--resume --fork-session`). Answers when the run has ended, or at once (202) with `"wait": false`;
/// `sessionId` and `prompt` are required.
#[utoipa::path(
    post, path = "/runs/fork", tag = "runs", security(("bearer" = [])), request_body = RunBody,
    responses(LaunchResponses)
)]
async fn fork(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
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
        _ => {}
    }
    let request = RunRequest { mode, cwd: body.cwd.map(Into::into), prompt, session: body.session_id, options };
    let handle = state.runner.start(request).await?;
    let id = handle.id.clone();
    // When the run ends, its transcript is archived at once, so that its session, fork
    // pointer and tree are there as soon as the run is.
    let archiver = Arc::clone(&state.archiver);
    let archived = tokio::spawn(async move {
        handle.finished().await;
        archiver.import_now().await;
    });
    if body.wait.unwrap_or(true) {
        let _ = archived.await;
        return Ok(Json(views::run(&run_record(&state.log, &id)?)).into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(views::run(&run_record(&state.log, &id)?))).into_response())
}

fn run_record(log: &Log, id: &str) -> Result<RunRecord> {
    Archive::run(log, id)?.ok_or_else(|| cclog_ingest::Error::UnknownRun(id.to_string()).into())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only runs that are still going.
    active: Option<bool>,
}

/// Every run, newest first.
#[utoipa::path(
    get, path = "/runs", tag = "runs", security(("bearer" = [])), params(RunsQuery),
    responses((status = 200, body = Vec<Run>, description = "The runs"), (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
async fn list_runs(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<RunsQuery>,
) -> Result<Json<Vec<Run>>> {
    Ok(Json(list_of_runs(&state.log, query.active.unwrap_or(false))?))
}

/// Every run (or only the active ones), newest first, as the API shows them.
pub fn list_of_runs(log: &Log, active_only: bool) -> Result<Vec<Run>> {
    let mut runs = Archive::runs(log)?;
    runs.retain(|run| !active_only || run.is_active());
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_us));
    Ok(runs.iter().map(views::run).collect())
}

/// The runs this server is running now.
#[utoipa::path(
    get, path = "/runs/active", tag = "runs", security(("bearer" = [])),
    responses((status = 200, body = Vec<Run>, description = "The runs"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
async fn active_runs(State(state): State<AppState>) -> Result<Json<Vec<Run>>> {
    let mut runs = Vec::new();
    for id in state.runner.active_ids() {
        if let Some(run) = Archive::run(&state.log, &id)? {
            runs.push(views::run(&run));
        }
    }
    Ok(Json(runs))
}

/// One run.
#[utoipa::path(
    get, path = "/runs/{run}", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = "The run's id")),
    responses((status = 200, body = Run, description = "The run"), (status = 401, body = ErrorBody, description = "A token is required"), (status = 404, body = ErrorBody, description = "No such run"))
)]
async fn get_run(State(state): State<AppState>, Path(run): Path<String>) -> Result<Json<Run>> {
    Ok(Json(views::run(&run_record(&state.log, &run)?)))
}

/// Cancels a run: SIGINT, then SIGTERM, then SIGKILL after grace periods. Answers with the
/// run once it has ended, `cancelled`; its messages so far stay.
#[utoipa::path(
    delete, path = "/runs/{run}", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = "The run's id")),
    responses(
        (status = 200, body = Run, description = "The run, cancelled"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such run"),
        (status = 409, body = ErrorBody, description = "The run has ended already; the message names its status"),
    )
)]
async fn cancel_run(State(state): State<AppState>, Path(run): Path<String>) -> Result<Json<Run>> {
    let handle = state.runner.cancel(&run)?;
    handle.finished().await;
    Ok(Json(views::run(&run_record(&state.log, &run)?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Only messages after this index.
    after: Option<u64>,
    /// At most this many messages (default: all).
    limit: Option<u64>,
}

impl PageQuery {
    fn first(&self) -> u64 {
        self.after.map_or(0, |after| after.saturating_add(1))
    }
    fn limit(&self) -> usize {
        self.limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX))
    }
}

/// The run's messages from index `from`, up to the log's durable head: the index is
/// updated with the write, a moment before the fsync that makes an event readable, so the
/// newest entries may not be readable yet; they are the next page's.
fn messages_of(log: &Log, run: &str, from: u64, limit: usize) -> Result<Vec<Message>> {
    let durable = log.len();
    let mut messages = Vec::new();
    for (index, seq) in Archive::run_message_seqs(log, run, from, limit)? {
        if seq >= durable {
            break;
        }
        let event = log.get(seq)?.ok_or(cclog_engine::Error::Corruption {
            at: Some(seq),
            detail: "an indexed run message is missing".into(),
        })?;
        messages.push(Message::from_event(index, event));
    }
    Ok(messages)
}

/// The run's messages, each the SDK message exactly as Claude Code printed it.
#[utoipa::path(
    get, path = "/runs/{run}/messages", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = "The run's id"), PageQuery),
    responses((status = 200, body = Vec<Message>, description = "The messages, in order"), (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such run"))
)]
async fn run_messages(
    State(state): State<AppState>,
    Path(run): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Response> {
    run_record(&state.log, &run)?;
    Ok(Json(messages_of(&state.log, &run, page.first(), page.limit())?).into_response())
}

/// Server-sent events: the run's recorded messages (`message`), then new ones as they are
/// appended, then `end` with the run once it has ended.
#[utoipa::path(
    get, path = "/runs/{run}/stream", tag = "runs", security(("bearer" = [])),
    params(("run" = String, Path, description = "The run's id")),
    responses((status = 200, content_type = "text/event-stream", description = "`message` events carrying a Message, then one `end` event carrying the Run"),
        (status = 401, body = ErrorBody, description = "A token is required"), (status = 404, body = ErrorBody, description = "No such run"))
)]
async fn run_stream(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    run_record(&state.log, &run)?;
    let (log, closing) = (Arc::clone(&state.log), state.closing.clone());
    // Join the run's feed before reading what is recorded, so nothing falls in between.
    let mut feed = state.feeds.follow(&run);
    let stream = async_stream(move |sender| async move {
        let mut next_index = 0u64;
        let mut last_seq = None;
        if !send_recorded(&log, &run, &sender, &mut next_index, &mut last_seq).await {
            return;
        }
        let send_end = || async {
            if let Ok(Some(record)) = Archive::run(&log, &run) {
                let _ = send_json(&sender, "end", &views::run(&record)).await;
            }
        };
        if Archive::run(&log, &run).ok().flatten().is_some_and(|record| !record.is_active()) {
            return send_end().await;
        }
        while let Some(item) = until_closed(&closing, feed.recv()).await {
            match item {
                Ok(item) => match &*item {
                    FeedItem::Message { seq, .. } if last_seq.is_some_and(|last| *seq <= last) => {}
                    FeedItem::Message { index, seq, json } => {
                        next_index = index + 1;
                        last_seq = Some(*seq);
                        if sender.send(Ok(SseEvent::default().event("message").data(json))).await.is_err() {
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
/// notes the last one sent; false once the client has gone.
async fn send_recorded(
    log: &Log,
    run: &str,
    sender: &SseSender,
    next_index: &mut u64,
    last_seq: &mut Option<u64>,
) -> bool {
    for message in messages_of(log, run, *next_index, usize::MAX).unwrap_or_default() {
        *next_index = message.index + 1;
        *last_seq = Some(message.seq);
        if !send_json(sender, "message", &message).await {
            return false;
        }
    }
    true
}

/// `next`'s output, or `None` once the server is shutting down.
async fn until_closed<T>(closing: &Closing, next: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        value = next => Some(value),
        () = closing.closed() => None,
    }
}

type SseSender = tokio::sync::mpsc::Sender<std::result::Result<SseEvent, Infallible>>;

/// Sends one SSE event; false once the client has gone.
async fn send_json(sender: &SseSender, name: &str, value: &impl serde::Serialize) -> bool {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    sender.send(Ok(SseEvent::default().event(name).data(data))).await.is_ok()
}

/// A stream fed by a producer task, which stops when the client disconnects.
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = std::result::Result<SseEvent, Infallible>>
where
    F: FnOnce(SseSender) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(256);
    tokio::spawn(produce(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

// ---- sessions ----

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
async fn list_sessions(State(state): State<AppState>) -> Result<Json<Vec<Session>>> {
    let mut sessions = Archive::sessions(&state.log)?;
    sessions.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(sessions.iter().map(views::session).collect()))
}

/// One session.
#[utoipa::path(
    get, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Session, description = "The session"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
async fn get_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Session>> {
    Ok(Json(views::session(&Archive::session(&state.log, &id)?)))
}

/// The messages of every run of the session, numbered across them; a session cclog only
/// imported (no runs) answers with its transcript entries instead.
#[utoipa::path(
    get, path = "/sessions/{id}/messages", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it"), PageQuery),
    responses((status = 200, body = Vec<Message>, description = "The messages, in order"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
async fn session_messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Vec<Message>>> {
    let session = Archive::session(&state.log, &id)?;
    let (first, limit) = (page.first(), page.limit());
    let mut messages = Vec::new();
    let mut offset = 0u64;
    if session.runs.is_empty() {
        let log = Arc::clone(&state.log);
        let lines = tokio::task::spawn_blocking(move || lineage::session_entries(&log, &session))
            .await
            .map_err(|error| Error::BadRequest(error.to_string()))??;
        for (index, entry) in lines.into_iter().enumerate().skip_while(|(index, _)| (*index as u64) < first) {
            if messages.len() >= limit {
                break;
            }
            let Some(event) = state.log.get(entry.line.seq)? else { continue };
            let mut message = Message::from_event(index as u64, event);
            if entry.line.copied {
                // A copied entry's bytes are rebuilt through its fork pointer.
                message = with_bytes(message, &entry);
            }
            messages.push(message);
        }
        return Ok(Json(messages));
    }
    for run in &session.runs {
        let Some(record) = Archive::run(&state.log, run)? else { continue };
        let end = offset + record.messages;
        if end > first && messages.len() < limit {
            let from = first.saturating_sub(offset);
            for mut message in messages_of(&state.log, run, from, limit - messages.len())? {
                message.index += offset;
                messages.push(message);
            }
        }
        offset = end;
    }
    Ok(Json(messages))
}

fn with_bytes(mut message: Message, entry: &Entry) -> Message {
    if let Ok(raw) = serde_json::value::RawValue::from_string(String::from_utf8_lossy(&entry.line.bytes).into_owned()) {
        message.message = raw;
    }
    message
}

/// The runs of a session, oldest first.
#[utoipa::path(
    get, path = "/sessions/{id}/runs", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Vec<Run>, description = "The runs"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
async fn session_runs(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<Run>>> {
    let session = Archive::session(&state.log, &id)?;
    let mut runs = Vec::new();
    for run in &session.runs {
        if let Some(record) = Archive::run(&state.log, run)? {
            runs.push(views::run(&record));
        }
    }
    Ok(Json(runs))
}

/// The sessions forked directly from this one.
#[utoipa::path(
    get, path = "/sessions/{id}/forks", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Vec<Session>, description = "The sessions"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
async fn session_forks(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<Session>>> {
    let session = Archive::session(&state.log, &id)?;
    let forks = Archive::sessions(&state.log)?
        .iter()
        .filter(|other| other.parent.as_deref() == Some(session.id.as_str()))
        .map(views::session)
        .collect();
    Ok(Json(forks))
}

/// The fork tree this session belongs to, from its root: each node's session, fork point and
/// children.
#[utoipa::path(
    get, path = "/sessions/{id}/tree", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "The session's id or a unique prefix of it")),
    responses((status = 200, body = Value, description = "The fork tree"), (status = 400, body = ErrorBody, description = "The prefix names several sessions"), (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No such session"))
)]
async fn session_tree(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let session = Archive::session(&state.log, &id)?;
    let sessions = Archive::sessions(&state.log)?;
    let tree = lineage::fork_tree(&sessions, Some(&session.id));
    Ok(Json(serde_json::to_value(tree).map_err(|error| Error::BadRequest(error.to_string()))?))
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
async fn session_diff(State(state): State<AppState>, Path((a, b)): Path<(String, String)>) -> Result<Json<Value>> {
    let left = Archive::session(&state.log, &a)?;
    let right = Archive::session(&state.log, &b)?;
    let log = Arc::clone(&state.log);
    let diff = tokio::task::spawn_blocking(move || lineage::diff(&log, &left, &right))
        .await
        .map_err(|error| Error::BadRequest(error.to_string()))??;
    Ok(Json(serde_json::to_value(diff).map_err(|error| Error::BadRequest(error.to_string()))?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReplayQuery {
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
async fn session_replay(
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
    .map(|format| Style { format, colour: false, full: query.full.unwrap_or(false) });
    let session = Archive::session(&state.log, &id)?;
    let log = Arc::clone(&state.log);
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let path = session.main_file().ok_or_else(|| {
            Error::Projections(cclog_projections::Error::NotFound {
                what: "transcript of session",
                id: session.id.clone(),
            })
        })?;
        let file = Archive::file(&log, path)?.ok_or_else(|| {
            Error::Projections(cclog_projections::Error::NotFound { what: "archived file", id: path.to_string() })
        })?;
        let mut out = Vec::new();
        match style {
            None => replay::write_file(&log, &file, None, &mut out)?,
            Some(style) => replay::for_each_line(&log, &file, None, |line| {
                out.extend_from_slice(render::render_entry(&Entry::from_line(line), &style).as_bytes());
                Ok(())
            })?,
        }
        Ok(out)
    })
    .await
    .map_err(|error| Error::BadRequest(error.to_string()))??;
    let content_type = match format.as_str() {
        "jsonl" => "application/x-ndjson",
        "markdown" => "text/markdown; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

// ---- commands forwarded by the cli ----

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
async fn forward_command(
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

// ---- events and verify ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// The first sequence number (default: 0; for the stream, the end of the log).
    from: Option<u64>,
    /// At most this many events (default 1,000; more than 10,000 answers 10,000).
    limit: Option<u64>,
    /// Only this stream; with a trailing `*`, every stream that starts with what precedes it.
    stream: Option<String>,
}

/// Events of the log in order, with their hashes and payloads.
#[utoipa::path(
    get, path = "/events", tag = "log", security(("bearer" = [])), params(EventsQuery),
    responses((status = 200, body = Vec<EventView>, description = "The events, in order"), (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
async fn list_events(State(state): State<AppState>, QueryParams(query): QueryParams<EventsQuery>) -> Result<Response> {
    let limit = query.limit.unwrap_or(1000).min(EVENTS_PAGE_MAX as u64) as usize;
    let from = query.from.unwrap_or(0);
    let mut body = Vec::from(&b"["[..]);
    let mut count = 0;
    let events: Box<dyn Iterator<Item = cclog_engine::Result<cclog_engine::Event>>> = match &query.stream {
        Some(stream) if !stream.ends_with('*') && !stream.is_empty() => Box::new(state.log.stream(stream, from)),
        _ => Box::new(state.log.range(from)),
    };
    let prefix = query.stream.as_deref().map(|stream| stream.trim_end_matches('*'));
    for event in events {
        let event = event?;
        if prefix.is_some_and(|prefix| !event.stream().starts_with(prefix)) {
            continue;
        }
        if count > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &EventView::new(&event))
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        count += 1;
        if count >= limit {
            break;
        }
    }
    body.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Server-sent events: every event from `from` (default: the end of the log) on, as it
/// becomes durable (`event`, carrying an EventView).
#[utoipa::path(
    get, path = "/events/stream", tag = "log", security(("bearer" = [])), params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`event` events"),
        (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
async fn event_stream(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    let log = Arc::clone(&state.log);
    let closing = state.closing.clone();
    let stream = async_stream(move |sender| async move {
        let mut subscription = log.subscribe(query.from.unwrap_or_else(|| log.len()));
        let prefix = query.stream.map(|stream| stream.trim_end_matches('*').to_string());
        while let Some(Ok(event)) = until_closed(&closing, subscription.next()).await {
            if prefix.as_deref().is_some_and(|prefix| !event.stream().starts_with(prefix)) {
                continue;
            }
            if !send_json(&sender, "event", &EventView::new(&event)).await {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// What `GET /api/verify` answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VerifyReport {
    /// Whether every event up to the head verified.
    intact: bool,
    /// How many events were checked.
    checked: u64,
    /// The last event that verified: `{seq, hash}`.
    #[schema(value_type = Option<Object>)]
    last_good: Option<Value>,
    /// The first damage found, if any.
    #[schema(value_type = Option<Object>)]
    damage: Option<Value>,
}

/// Walks the whole hash chain up to the durable head as of the request, and says whether it
/// is intact and where the first damage is.
#[utoipa::path(
    get, path = "/verify", tag = "log", security(("bearer" = [])),
    responses((status = 200, body = VerifyReport, description = "What verification found"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
async fn verify(State(state): State<AppState>) -> Result<Json<VerifyReport>> {
    let log = Arc::clone(&state.log);
    let report = tokio::task::spawn_blocking(move || log.verify(0, &mut |_, _| {}))
        .await
        .map_err(|error| Error::BadRequest(error.to_string()))?;
    Ok(Json(VerifyReport {
        intact: report.intact(),
        checked: report.checked,
        last_good: report.last_good.as_ref().map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
        damage: report.damage.as_ref().and_then(|damage| serde_json::to_value(damage).ok()),
    }))
}
