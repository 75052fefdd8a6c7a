//! `/api/events`, `/api/events/stream` and `/api/verify`: the log itself — its events in
//! order with their hashes and payloads, a live tail, and verification of the whole chain.
//! Every read runs on a blocking thread; a stream filter with a trailing `*` reads through
//! the stream index, so a prefix that matches little costs little.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cclog_engine::{Event, Log};
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::blocking::blocking;
use crate::extract::QueryParams;
use crate::sse;
use crate::state::AppState;
use crate::views::EventView;
use crate::{Error, ErrorBody, Result};

/// The most events one `GET /api/events` answers with.
const EVENTS_PAGE_MAX: usize = 10_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The first sequence number (default: 0; for the stream, the end of the log).
    from: Option<u64>,
    /// At most this many events (default 1,000; more than 10,000 answers 10,000).
    limit: Option<u64>,
    /// Only this stream; with a trailing `*`, every stream that starts with what precedes it.
    stream: Option<String>,
}

/// Which streams a request asks for: `stream=NAME` one, `stream=PREFIX*` every stream that
/// starts with PREFIX, no `stream` (or `*`) all of them.
#[derive(Clone)]
pub(crate) enum StreamFilter {
    All,
    Exact(String),
    Prefix(String),
}

impl StreamFilter {
    pub(crate) fn new(stream: Option<&str>) -> StreamFilter {
        match stream {
            None | Some("" | "*") => StreamFilter::All,
            Some(stream) => match stream.strip_suffix('*') {
                Some(prefix) => StreamFilter::Prefix(prefix.to_string()),
                None => StreamFilter::Exact(stream.to_string()),
            },
        }
    }

    /// Whether events of `stream` pass the filter.
    fn matches(&self, stream: &str) -> bool {
        match self {
            StreamFilter::All => true,
            StreamFilter::Exact(wanted) => stream == wanted,
            StreamFilter::Prefix(prefix) => stream.starts_with(prefix.as_str()),
        }
    }

    /// Up to `limit` durable events from `from` on that match, and the seq to read on
    /// from: past the last one returned, or the durable head when fewer than `limit` were.
    fn page(&self, log: &Log, from: u64, limit: usize) -> Result<(Vec<Event>, u64)> {
        let head = log.len();
        let events: Vec<Event> = match self {
            StreamFilter::All => log.range(from).take(limit).collect::<cclog_engine::Result<_>>()?,
            StreamFilter::Exact(stream) => log.stream(stream, from).take(limit).collect::<cclog_engine::Result<_>>()?,
            StreamFilter::Prefix(prefix) => {
                log.streams_starting_with(prefix, from)?.take(limit).collect::<cclog_engine::Result<_>>()?
            }
        };
        let next = match events.last() {
            Some(last) if events.len() >= limit => last.seq() + 1,
            _ => head.max(from),
        };
        Ok((events, next))
    }
}

/// Events of the log in order, with their hashes and payloads.
#[utoipa::path(
    get, path = "/events", tag = "log", security(("bearer" = [])), params(EventsQuery),
    responses((status = 200, body = Vec<EventView>, description = "The events, in order"), (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn list_events(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Response> {
    let limit = usize::try_from(query.limit.unwrap_or(1000)).unwrap_or(EVENTS_PAGE_MAX).min(EVENTS_PAGE_MAX);
    let filter = StreamFilter::new(query.stream.as_deref());
    let body = blocking(move || -> Result<Vec<u8>> {
        let (events, _) = filter.page(&state.log, query.from.unwrap_or(0), limit)?;
        let views: Vec<EventView<'_>> = events.iter().map(EventView::new).collect();
        serde_json::to_vec(&views).map_err(|error| Error::Internal(format!("events do not serialise: {error}")))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Events an event stream reads from the log per blocking call while it catches up.
const CATCH_UP_CHUNK: usize = 1024;

/// Server-sent events: every event from `from` (default: the end of the log) on, as it
/// becomes durable (`event`, carrying an EventView).
#[utoipa::path(
    get, path = "/events/stream", tag = "log", security(("bearer" = [])), params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`event` events"),
        (status = 400, body = ErrorBody, description = "Malformed query parameters"), (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn event_stream(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    follow(&state, query.from, StreamFilter::new(query.stream.as_deref()))
}

/// Server-sent events of the streams `filter` takes, from `from` (default: the end of the
/// log) on: what is already there, a chunk at a time, then each new event as it becomes
/// durable; each an `event` carrying its [`EventView`].
pub(crate) fn follow(
    state: &AppState,
    from: Option<u64>,
    filter: StreamFilter,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    follow_rendered(state, from, filter, |_, event| {
        serde_json::to_string(&EventView::new(event)).ok().map(|json| ("event", json))
    })
}

/// [`follow`], each event sent as `render` makes it: an SSE event's name and JSON data, or
/// nothing for an event it leaves out.
pub(crate) fn follow_rendered(
    state: &AppState,
    from: Option<u64>,
    filter: StreamFilter,
    render: impl Fn(&Log, &Event) -> Option<(&'static str, String)> + Send + Sync + 'static,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    let log = Arc::clone(&state.log);
    let closing = state.closing.clone();
    let stream = sse::producer_stream(move |sender| async move {
        // Catch up on blocking threads, a chunk at a time, until the head is reached...
        let mut next = from.unwrap_or_else(|| log.len());
        loop {
            let (reader, chunk_filter) = (Arc::clone(&log), filter.clone());
            let Some(read) =
                closing.until_closed(blocking(move || chunk_filter.page(&reader, next, CATCH_UP_CHUNK))).await
            else {
                return;
            };
            let (events, after) = match read {
                Ok(read) => read,
                Err(error) => {
                    tracing::error!(%error, "reading the log for an event stream failed");
                    return;
                }
            };
            for event in &events {
                if let Some((name, json)) = render(&log, event) {
                    if !sse::send_text(&sender, name, json).await {
                        return;
                    }
                }
            }
            next = after;
            if events.len() < CATCH_UP_CHUNK {
                break;
            }
        }
        // ...then follow the tail: each new event is read once as it becomes durable.
        let mut subscription = log.subscribe(next);
        while let Some(Ok(event)) = closing.until_closed(subscription.next()).await {
            if !filter.matches(event.stream()) {
                continue;
            }
            if let Some((name, json)) = render(&log, &event) {
                if !sse::send_text(&sender, name, json).await {
                    return;
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// What `GET /api/verify` answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
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
pub async fn verify(State(state): State<AppState>) -> Result<Json<VerifyReport>> {
    let report = blocking(move || Ok::<_, Error>(state.log.verify(0, &mut |_, _| {}))).await?;
    Ok(Json(VerifyReport {
        intact: report.intact(),
        checked: report.checked,
        last_good: report.last_good.as_ref().map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
        damage: report.damage.as_ref().and_then(|damage| serde_json::to_value(damage).ok()),
    }))
}
