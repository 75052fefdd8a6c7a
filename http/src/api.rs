//! The REST API: CC Manager's routes (same paths, methods and request bodies) over the log,
//! and cclog's own — live streams (SSE), raw events, verify, fork trees, diffs and replay.
//! Handlers only read projections and the log, or hand work to the runner; errors become
//! `{"error":{"code","message"}}` through [`crate::Error`].

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cclog_engine::Log;
use cclog_ingest::runner::{Mode, RunOptions, RunRequest, Runner};
use cclog_projections::archive::{Archive, RunRecord};
use cclog_projections::events;
use cclog_projections::lineage::{self, Entry};
use cclog_projections::render::{self, Format, Style};
use cclog_projections::replay;
use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::server::Archiver;
use crate::views::{self, EventView, Message};
use crate::{Error, Result};

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
}

/// The whole router: `/`, `/health`, and `/api/...` behind the token check.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/runs", get(list_runs))
        .route("/runs/start", post(start))
        .route("/runs/resume", post(resume))
        .route("/runs/fork", post(fork))
        .route("/runs/active", get(active_runs))
        .route("/runs/{run}", get(get_run).delete(cancel_run))
        .route("/runs/{run}/messages", get(run_messages))
        .route("/runs/{run}/stream", get(run_stream))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", get(get_session))
        .route("/sessions/{id}/messages", get(session_messages))
        .route("/sessions/{id}/runs", get(session_runs))
        .route("/sessions/{id}/forks", get(session_forks))
        .route("/sessions/{id}/tree", get(session_tree))
        .route("/sessions/{a}/diff/{b}", get(session_diff))
        .route("/sessions/{id}/replay", get(session_replay))
        .route("/events", get(list_events))
        .route("/events/stream", get(event_stream))
        .route("/verify", get(verify))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .nest("/api", api)
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

async fn root() -> Json<Value> {
    Json(json!({
        "name": "cclog",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Claude Code runs, sessions and history on a hash-chained, append-only log",
        "health": "/health",
        "api": "/api",
        "endpoints": [
            "POST /api/runs/start", "POST /api/runs/resume", "POST /api/runs/fork",
            "GET /api/runs", "GET /api/runs/active", "GET /api/runs/:runId", "DELETE /api/runs/:runId",
            "GET /api/runs/:runId/messages", "GET /api/runs/:runId/stream",
            "GET /api/sessions", "GET /api/sessions/:id", "GET /api/sessions/:id/messages",
            "GET /api/sessions/:id/runs", "GET /api/sessions/:id/forks", "GET /api/sessions/:id/tree",
            "GET /api/sessions/:a/diff/:b", "GET /api/sessions/:id/replay",
            "GET /api/events", "GET /api/events/stream", "GET /api/verify",
        ],
    }))
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "events": state.log.len(),
        "activeRuns": state.runner.active_ids().len(),
    }))
}

// ---- runs ----

/// The body of start, resume and fork: CC Manager's fields, cclog's `wait`, and the CLI
/// options passed through.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunBody {
    cwd: Option<String>,
    prompt: Option<String>,
    session_id: Option<String>,
    /// `false`: answer 202 at once instead of when the run ends.
    wait: Option<bool>,
    #[serde(flatten)]
    options: RunOptions,
}

async fn start(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Start, body).await
}

async fn resume(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Resume, body).await
}

async fn fork(state: State<AppState>, JsonBody(body): JsonBody<RunBody>) -> Result<Response> {
    launch(state, Mode::Fork, body).await
}

async fn launch(State(state): State<AppState>, mode: Mode, body: RunBody) -> Result<Response> {
    let prompt = body.prompt.ok_or_else(|| Error::BadRequest("prompt is required".into()))?;
    match mode {
        Mode::Start if body.cwd.is_none() => return Err(Error::BadRequest("cwd is required".into())),
        Mode::Resume | Mode::Fork if body.session_id.is_none() => {
            return Err(Error::BadRequest("sessionId is required".into()))
        }
        _ => {}
    }
    let request =
        RunRequest { mode, cwd: body.cwd.map(Into::into), prompt, session: body.session_id, options: body.options };
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

#[derive(Deserialize)]
struct RunsQuery {
    active: Option<bool>,
}

async fn list_runs(State(state): State<AppState>, QueryParams(query): QueryParams<RunsQuery>) -> Result<Json<Value>> {
    Ok(Json(Value::Array(list_of_runs(&state.log, query.active.unwrap_or(false))?)))
}

/// Every run (or only the active ones), newest first, as the API shows them.
pub fn list_of_runs(log: &Log, active_only: bool) -> Result<Vec<Value>> {
    let mut runs = Archive::runs(log)?;
    runs.retain(|run| !active_only || run.is_active());
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_us));
    Ok(runs.iter().map(views::run).collect())
}

async fn active_runs(State(state): State<AppState>) -> Result<Json<Value>> {
    let mut runs = Vec::new();
    for id in state.runner.active_ids() {
        if let Some(run) = Archive::run(&state.log, &id)? {
            runs.push(views::run(&run));
        }
    }
    Ok(Json(Value::Array(runs)))
}

async fn get_run(State(state): State<AppState>, Path(run): Path<String>) -> Result<Json<Value>> {
    Ok(Json(views::run(&run_record(&state.log, &run)?)))
}

async fn cancel_run(State(state): State<AppState>, Path(run): Path<String>) -> Result<Json<Value>> {
    let handle = state.runner.cancel(&run)?;
    handle.finished().await;
    Ok(Json(views::run(&run_record(&state.log, &run)?)))
}

#[derive(Deserialize)]
struct PageQuery {
    /// Messages after this index.
    after: Option<u64>,
    limit: Option<usize>,
}

impl PageQuery {
    fn first(&self) -> u64 {
        self.after.map_or(0, |after| after.saturating_add(1))
    }
    fn limit(&self) -> usize {
        self.limit.unwrap_or(usize::MAX)
    }
}

fn messages_of(log: &Log, run: &str, from: u64, limit: usize) -> Result<Vec<Message>> {
    let mut messages = Vec::new();
    for (index, seq) in Archive::run_message_seqs(log, run, from, limit)? {
        let event = log.get(seq)?.ok_or(cclog_engine::Error::Corruption {
            at: Some(seq),
            detail: "an indexed run message is missing".into(),
        })?;
        messages.push(Message::from_event(index, event));
    }
    Ok(messages)
}

async fn run_messages(
    State(state): State<AppState>,
    Path(run): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Response> {
    run_record(&state.log, &run)?;
    Ok(Json(messages_of(&state.log, &run, page.first(), page.limit())?).into_response())
}

/// SSE: the run's recorded messages, then new ones as they are appended, then an `end`
/// event with the run once it has ended.
async fn run_stream(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    run_record(&state.log, &run)?;
    let log = Arc::clone(&state.log);
    let stream_name = events::run_stream(&run);
    let stream = async_stream(move |sender| async move {
        let mut subscription = log.subscribe(log.len());
        let mut next_index = 0u64;
        let mut last_seq = None;
        for message in messages_of(&log, &run, 0, usize::MAX).unwrap_or_default() {
            next_index = message.index + 1;
            last_seq = Some(message.seq);
            if !send_json(&sender, "message", &message).await {
                return;
            }
        }
        if let Ok(Some(record)) = Archive::run(&log, &run) {
            if !record.is_active() {
                let _ = send_json(&sender, "end", &views::run(&record)).await;
                return;
            }
        }
        while let Ok(event) = subscription.next().await {
            if event.stream() != stream_name || last_seq.is_some_and(|last| event.seq() <= last) {
                continue;
            }
            match event.kind() {
                events::KIND_RUN_MESSAGE => {
                    let message = Message::from_event(next_index, event);
                    next_index += 1;
                    if !send_json(&sender, "message", &message).await {
                        return;
                    }
                }
                events::KIND_RUN_ENDED => {
                    if let Ok(Some(record)) = Archive::run(&log, &run) {
                        let _ = send_json(&sender, "end", &views::run(&record)).await;
                    }
                    return;
                }
                _ => {}
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
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

async fn list_sessions(State(state): State<AppState>) -> Result<Json<Value>> {
    let mut sessions = Archive::sessions(&state.log)?;
    sessions.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(Value::Array(sessions.iter().map(views::session).collect())))
}

async fn get_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    Ok(Json(views::session(&Archive::session(&state.log, &id)?)))
}

/// The messages of every run of the session, numbered across them; a session cclog only
/// imported (no runs) answers with its transcript entries instead.
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

async fn session_runs(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let session = Archive::session(&state.log, &id)?;
    let mut runs = Vec::new();
    for run in &session.runs {
        if let Some(record) = Archive::run(&state.log, run)? {
            runs.push(views::run(&record));
        }
    }
    Ok(Json(Value::Array(runs)))
}

async fn session_forks(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let session = Archive::session(&state.log, &id)?;
    let forks: Vec<Value> = Archive::sessions(&state.log)?
        .iter()
        .filter(|other| other.parent.as_deref() == Some(session.id.as_str()))
        .map(views::session)
        .collect();
    Ok(Json(Value::Array(forks)))
}

async fn session_tree(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let session = Archive::session(&state.log, &id)?;
    let sessions = Archive::sessions(&state.log)?;
    let tree = lineage::fork_tree(&sessions, Some(&session.id));
    Ok(Json(serde_json::to_value(tree).map_err(|error| Error::BadRequest(error.to_string()))?))
}

async fn session_diff(State(state): State<AppState>, Path((a, b)): Path<(String, String)>) -> Result<Json<Value>> {
    let left = Archive::session(&state.log, &a)?;
    let right = Archive::session(&state.log, &b)?;
    let log = Arc::clone(&state.log);
    let diff = tokio::task::spawn_blocking(move || lineage::diff(&log, &left, &right))
        .await
        .map_err(|error| Error::BadRequest(error.to_string()))??;
    Ok(Json(serde_json::to_value(diff).map_err(|error| Error::BadRequest(error.to_string()))?))
}

#[derive(Deserialize)]
struct ReplayQuery {
    format: Option<String>,
    full: Option<bool>,
}

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

// ---- events and verify ----

#[derive(Deserialize)]
struct EventsQuery {
    from: Option<u64>,
    limit: Option<usize>,
    /// Only events of streams that start with this.
    stream: Option<String>,
}

async fn list_events(State(state): State<AppState>, QueryParams(query): QueryParams<EventsQuery>) -> Result<Response> {
    let limit = query.limit.unwrap_or(1000).min(EVENTS_PAGE_MAX);
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

/// SSE: every event from `from` (default: the end of the log) on, as it becomes durable.
async fn event_stream(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    let log = Arc::clone(&state.log);
    let stream = async_stream(move |sender| async move {
        let mut subscription = log.subscribe(query.from.unwrap_or_else(|| log.len()));
        let prefix = query.stream.map(|stream| stream.trim_end_matches('*').to_string());
        while let Ok(event) = subscription.next().await {
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

async fn verify(State(state): State<AppState>) -> Result<Json<Value>> {
    let log = Arc::clone(&state.log);
    let report = tokio::task::spawn_blocking(move || log.verify(0, &mut |_, _| {}))
        .await
        .map_err(|error| Error::BadRequest(error.to_string()))?;
    Ok(Json(json!({
        "intact": report.intact(),
        "checked": report.checked,
        "lastGood": report.last_good.as_ref().map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
        "damage": report.damage,
    })))
}
