//! `/api/kv/stream`: the coordinator's writes to one scope as they are recorded — each value
//! set, key deleted or scope deleted, with its version, writer, time and log position —
//! the server-sent-events form of `cclog kv watch`. It reads the scope's stream like any
//! other event stream, so it can start from any log position and misses nothing.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use cclog_ingest::coordinator::{check_name, KvStore};
use cclog_projections::events::coordinator::scope_stream;
use futures_util::stream::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use super::events::{follow_rendered, StreamFilter};
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::{ErrorBody, Result};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KvStreamQuery {
    /// The scope, in full (`machine:project:name` for what MCP clients store).
    scope: String,
    /// Only this key's writes (and deletions of the whole scope).
    key: Option<String>,
    /// The first log position to send from (default: the end of the log, i.e. only new writes).
    from: Option<u64>,
}

/// Server-sent events: each write to `scope` (`change` events: scope, key, change — `set`,
/// `delete` or `scope_delete` — version, value, writer, at, seq, expires_at) from `from` on,
/// as it becomes durable.
#[utoipa::path(
    get, path = "/kv/stream", tag = "coordinator", security(("bearer" = [])), params(KvStreamQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`change` events"),
        (status = 400, body = ErrorBody, description = "Malformed query parameters, or a scope or key that cannot exist"),
        (status = 401, body = ErrorBody, description = "A token is required"))
)]
pub async fn kv_stream(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<KvStreamQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    check_name("scope", &query.scope)?;
    if let Some(key) = &query.key {
        check_name("key", key)?;
    }
    let (scope, key) = (query.scope, query.key);
    let filter = StreamFilter::new(Some(&scope_stream(&scope)));
    Ok(follow_rendered(&state, query.from, filter, move |log, event| {
        let change = match KvStore::new(log).recorded_change(&scope, event) {
            Ok(change) => change?,
            Err(error) => {
                tracing::error!(%error, seq = event.seq(), "a coordinator write does not read back");
                return None;
            }
        };
        if key.is_some() && change.key.is_some() && change.key != key {
            return None;
        }
        serde_json::to_string(&change).ok().map(|json| ("change", json))
    }))
}
