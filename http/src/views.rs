//! The JSON the API answers with, camelCase like CC Manager's: runs, run messages (the SDK
//! message embedded exactly as it came, not re-serialised) and sessions.

use std::time::{Duration, UNIX_EPOCH};

use cclog_engine::Event;
use cclog_projections::archive::{RunRecord, SessionRecord};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// RFC 3339 with microseconds, UTC, from µs since the epoch.
pub fn timestamp(us: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_micros(us);
    humantime::format_rfc3339_micros(time).to_string()
}

/// A run as CC Manager shows one, plus cclog's extras.
pub fn run(run: &RunRecord) -> Value {
    json!({
        "id": run.id,
        "cwd": run.cwd,
        "sessionId": run.session,
        "parentSessionId": if run.fork { run.resumed.clone() } else { None },
        "resumedSessionId": if run.fork { None } else { run.resumed.clone() },
        "mode": run.mode(),
        "status": run.status,
        "prompt": run.prompt,
        "resultType": run.result_type,
        "result": run.result,
        "error": run.detail,
        "durationMs": run.duration_ms,
        "messageCount": run.messages,
        "source": run.source,
        "createdAt": timestamp(run.started_us),
        "endedAt": run.ended_us.map(timestamp),
    })
}

/// One recorded message: `{index, messageType, message, createdAt, seq}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub index: u64,
    pub message_type: String,
    /// The SDK message, byte for byte when it is JSON; a string when it is not.
    pub message: Box<RawValue>,
    pub created_at: String,
    pub seq: u64,
}

impl Message {
    pub fn from_event(index: u64, event: Event) -> Message {
        let message_type = serde_json::from_slice::<MessageType>(&event.payload)
            .ok()
            .and_then(|facts| facts.kind)
            .unwrap_or_else(|| "unknown".into());
        let text = String::from_utf8_lossy(&event.payload).into_owned();
        let message = RawValue::from_string(text.clone()).unwrap_or_else(|_| {
            // Not JSON (a malformed line is kept as evidence): a JSON string of it.
            let quoted = serde_json::to_string(&text).unwrap_or_else(|_| "null".into());
            RawValue::from_string(quoted).unwrap_or_else(|_| RawValue::NULL.to_owned())
        });
        Message { index, message_type, message, created_at: timestamp(event.header.ts_us), seq: event.header.seq }
    }
}

#[derive(serde::Deserialize)]
struct MessageType {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A session: what the archive knows of it.
pub fn session(session: &SessionRecord) -> Value {
    let usage = session.usage();
    json!({
        "id": session.id,
        "project": session.project,
        "cwd": session.cwd,
        "title": session.title,
        "parentSessionId": session.parent,
        "forkPoint": session.fork_point,
        "entries": session.entries,
        "ownEntries": session.own_entries,
        "userEntries": session.user_entries,
        "assistantEntries": session.assistant_entries,
        "createdAt": session.first_at,
        "updatedAt": session.last_at,
        "models": session.models,
        "usage": {
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "cacheCreationInputTokens": usage.cache_creation_input_tokens,
            "cacheReadInputTokens": usage.cache_read_input_tokens,
            "totalTokens": usage.total(),
        },
        "costUsd": session.cost_usd(),
        "runs": session.runs,
        "files": session.files,
        "subagents": session.subagents.keys().collect::<Vec<_>>(),
    })
}

/// One event of the log, as `cclog log --json` and `GET /api/events` show it: the envelope,
/// and the payload embedded as JSON when it is JSON, as text when it is UTF-8, else as hex.
#[derive(Serialize)]
pub struct EventView<'a> {
    pub seq: u64,
    pub ts: String,
    pub ts_us: u64,
    pub stream: &'a str,
    pub kind: &'a str,
    pub hash: String,
    pub prev: String,
    pub payload_hash: String,
    pub payload_len: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a RawValue>,
    /// Set when the payload is not JSON but is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_text: Option<&'a str>,
    /// Set when the payload is neither JSON nor UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a Event) -> EventView<'a> {
        let raw = serde_json::from_slice::<&RawValue>(&event.payload).ok();
        let text = if raw.is_none() { std::str::from_utf8(&event.payload).ok() } else { None };
        let hex = if raw.is_none() && text.is_none() {
            Some(event.payload.iter().map(|byte| format!("{byte:02x}")).collect())
        } else {
            None
        };
        EventView {
            seq: event.seq(),
            ts: timestamp(event.header.ts_us),
            ts_us: event.header.ts_us,
            stream: event.stream(),
            kind: event.kind(),
            hash: event.hash.to_hex(),
            prev: event.prev.to_hex(),
            payload_hash: event.payload_hash.to_hex(),
            payload_len: event.header.payload_len,
            payload: raw,
            payload_text: text,
            payload_hex: hex,
        }
    }
}
