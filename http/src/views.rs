//! The JSON the API answers with, camelCase like CC Manager's: runs, run messages (the SDK
//! message embedded exactly as it came, not re-serialised) and sessions.

use std::time::{Duration, UNIX_EPOCH};

use cclog_engine::Event;
use cclog_projections::archive::SessionRecord;
use cclog_projections::messages::{PagedMessage, RunDetail};
use cclog_projections::pricing::PriceTable;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// RFC 3339 with microseconds, UTC, from µs since the epoch.
pub fn timestamp(us: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_micros(us);
    humantime::format_rfc3339_micros(time).to_string()
}

/// A run as CC Manager shows one (`ccr_runs`'s columns), plus cclog's extras.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The run's id, a UUID; any unique prefix of it names the run too.
    pub id: String,
    /// The directory Claude Code ran in, absolute.
    pub cwd: Option<String>,
    /// The session the run wrote, once its init message named it: a new one for `fresh`, `fork`
    /// and a forking `resume`, the resumed one for a resume in place.
    pub session_id: Option<String>,
    /// The session the run's session branched from (`fork`, and `resume` with `forkSession`).
    pub parent_session_id: Option<String>,
    /// The session resumed or forked (`--resume`).
    pub resumed_session_id: Option<String>,
    /// `fresh`, `resume` or `fork` (CC Manager's), or `capture` for a run recorded from a pipe.
    #[schema(pattern = "^(fresh|resume|fork|capture)$")]
    pub mode: String,
    /// `running`, `completed`, `error` or `cancelled` (CC Manager's), or `interrupted`: cclog
    /// stopped while the run was going.
    #[schema(pattern = "^(running|completed|error|cancelled|interrupted)$")]
    pub status: String,
    pub prompt: Option<String>,
    /// The result message's subtype (`success`, `error_max_turns`, …).
    pub result_type: Option<String>,
    /// The result message's text.
    pub result: Option<String>,
    /// The SDK result message, byte for byte as Claude Code printed it (its own `duration_ms`,
    /// cost and usage included).
    #[schema(value_type = Option<Object>)]
    pub result_json: Option<Box<RawValue>>,
    /// Why the run failed, was cancelled or interrupted.
    pub error: Option<String>,
    /// Wall time from the run's start to its end.
    pub duration_ms: Option<u64>,
    pub message_count: u64,
    /// `runner` for runs cclog started, `capture` for piped ones.
    #[schema(pattern = "^(runner|capture)$")]
    pub source: String,
    pub created_at: String,
    pub ended_at: Option<String>,
}

/// The API's view of a run.
pub fn run(detail: &RunDetail) -> Run {
    let run = &detail.record;
    Run {
        id: run.id.clone(),
        cwd: run.cwd.clone(),
        session_id: run.session.clone(),
        parent_session_id: run.parent_session().map(str::to_string),
        resumed_session_id: run.resumed.clone(),
        mode: run.mode.as_str().to_string(),
        status: run.status.as_str().to_string(),
        prompt: run.prompt.clone(),
        result_type: run.result_type.clone(),
        result: run.result.clone(),
        result_json: detail.result_message.as_deref().map(embedded_json),
        error: run.detail.clone(),
        duration_ms: run.duration_ms,
        message_count: run.messages,
        source: run.source.clone(),
        created_at: timestamp(run.started_us),
        ended_at: run.ended_us.map(timestamp),
    }
}

/// Bytes as a JSON value: byte for byte when they are JSON, else a JSON string of them (a
/// line that is not JSON is kept as evidence).
fn embedded_json(bytes: &[u8]) -> Box<RawValue> {
    RawValue::from_string(String::from_utf8_lossy(bytes).into_owned()).unwrap_or_else(|_| {
        let quoted = serde_json::to_string(&String::from_utf8_lossy(bytes)).unwrap_or_else(|_| "null".into());
        RawValue::from_string(quoted).unwrap_or_else(|_| RawValue::NULL.to_owned())
    })
}

/// One recorded message, as CC Manager's `ccr_run_messages` rows are, plus cclog's `message`
/// (the same SDK message) and `seq`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Stable and unique among the messages of a run or session: the seq of the event that
    /// stores the message (for a fork's shared entry, the original's).
    pub id: u64,
    /// The run that recorded it; none for a transcript entry of a session cclog imported.
    pub run_id: Option<String>,
    /// Its position in the run, or in the session across its runs.
    pub index: u64,
    /// The SDK message's `type`; `unknown` when it has none.
    pub message_type: String,
    /// The SDK message, byte for byte when it is JSON; a JSON string of the line when it is not.
    #[schema(value_type = serde_json::Value)]
    pub message_json: Box<RawValue>,
    /// The same as `messageJson`.
    #[schema(value_type = serde_json::Value)]
    pub message: Box<RawValue>,
    pub created_at: String,
    /// The log event that holds it.
    pub seq: u64,
}

impl Message {
    /// A message of a page: a copied transcript entry shows the bytes its session has.
    pub fn from_paged(message: &PagedMessage) -> Message {
        let bytes = message.bytes();
        let message_type = serde_json::from_slice::<MessageType>(bytes)
            .ok()
            .and_then(|facts| facts.kind)
            .unwrap_or_else(|| "unknown".into());
        let json = embedded_json(bytes);
        Message {
            id: message.origin,
            run_id: message.run.clone(),
            index: message.index,
            message_type,
            message_json: json.clone(),
            message: json,
            created_at: timestamp(message.event.header.ts_us),
            seq: message.event.header.seq,
        }
    }
}

#[derive(serde::Deserialize)]
struct MessageType {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Token counts, summed over a session's API messages (each counted once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub total_tokens: u64,
}

/// A session: what the archive knows of it, from transcripts and runs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    /// Claude Code's project directory name.
    pub project: String,
    pub cwd: Option<String>,
    /// From `custom-title`, `ai-title` or `summary` entries, else the first line of the
    /// first prompt a person typed.
    pub title: Option<String>,
    /// Where `title` came from: `custom-title`, `ai-title`, `summary` or `first-prompt`.
    pub title_source: Option<String>,
    /// For a fork: the session it forked from.
    pub parent_session_id: Option<String>,
    /// For a fork: the uuid of the last entry it shares with its parent.
    pub fork_point: Option<String>,
    /// Transcript entries, shared prefix included; for a session whose transcript is not
    /// archived, the messages its runs recorded.
    pub entries: u64,
    /// Entries the session wrote itself (not copied from its parent).
    pub own_entries: u64,
    pub user_entries: u64,
    pub assistant_entries: u64,
    /// When it began: its first transcript entry or recorded message.
    pub created_at: Option<String>,
    /// When it was last active: its last transcript entry or recorded message.
    pub updated_at: Option<String>,
    pub models: Vec<String>,
    /// Tokens: each API message of its transcript counted once; without an archived
    /// transcript, what its runs' result messages reported.
    pub usage: Usage,
    /// `usage` priced per request from the server's price table; `null` when none of its
    /// models is priced.
    pub cost_usd: Option<f64>,
    /// Models with tokens the price table has no price for (not in `costUsd`).
    pub unpriced_models: Vec<String>,
    /// Runs of this session that cclog started or captured.
    pub runs: Vec<String>,
    /// Transcript files archived for it.
    pub files: Vec<String>,
    /// Subagent ids.
    pub subagents: Vec<String>,
}

/// The API's view of a session record.
pub fn session(session: &SessionRecord, prices: &PriceTable) -> Session {
    let usage = session.usage();
    let cost = session.cost(prices);
    let counts = session.entry_counts();
    Session {
        id: session.id.clone(),
        project: session.project.clone(),
        cwd: session.cwd.clone(),
        title: session.title.clone(),
        title_source: session.title_source.clone(),
        parent_session_id: session.parent.clone(),
        fork_point: session.fork_point.clone(),
        entries: counts.entries,
        own_entries: counts.own,
        user_entries: counts.user,
        assistant_entries: counts.assistant,
        created_at: session.first_at.clone(),
        updated_at: session.last_at.clone(),
        models: session.models.iter().cloned().collect(),
        usage: Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            total_tokens: usage.total(),
        },
        cost_usd: cost.usd,
        unpriced_models: cost.unpriced.into_iter().collect(),
        runs: session.runs.clone(),
        files: session.files.clone(),
        subagents: session.subagents.keys().cloned().collect(),
    }
}

/// One event of the log, as `cclog log --json` and `GET /api/events` show it: the envelope,
/// and the payload embedded as JSON when it is JSON, as text when it is UTF-8, else as hex.
#[derive(Serialize, ToSchema)]
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
    #[schema(value_type = Option<Object>)]
    pub payload: Option<&'a RawValue>,
    /// Set when the payload is not JSON but is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_text: Option<&'a str>,
    /// Set when the payload is neither JSON nor UTF-8, and for cclog's own typed payloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// cclog's own typed payload (a transcript revision, a key write, a team's container…)
    /// decoded, beside its bytes in `payload_hex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload_decoded: Option<serde_json::Value>,
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a Event) -> EventView<'a> {
        let raw = serde_json::from_slice::<&RawValue>(&event.payload).ok();
        let decoded = match raw {
            None => cclog_projections::events::payload_json(event.kind(), &event.payload),
            Some(_) => None,
        };
        let text = if raw.is_none() && decoded.is_none() { std::str::from_utf8(&event.payload).ok() } else { None };
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
            payload_decoded: decoded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::embedded_json;

    #[test]
    fn json_is_embedded_byte_for_byte_and_anything_else_as_a_string() {
        let spaced = br#"{ "type" : "result",  "n": 1.50 }"#;
        assert_eq!(embedded_json(spaced).get().as_bytes(), spaced);
        assert_eq!(embedded_json(b"not json {").get(), r#""not json {""#);
        assert_eq!(embedded_json(b"{\"a\":1} trailing").get(), r#""{\"a\":1} trailing""#);
        assert_eq!(embedded_json(b"\xff\"").get(), "\"\u{fffd}\\\"\"");
    }
}
