//! A fake Anthropic Messages API on 127.0.0.1, so the real Claude Code CLI can be driven
//! offline and deterministically. It answers `POST /v1/messages` with the SSE stream the CLI
//! expects (`message_start`, `content_block_start`, `content_block_delta`,
//! `content_block_stop`, `message_delta`, `message_stop`) and `count_tokens` with a count.
//!
//! Replies are scripted by conversation position, not by arrival order: the reply to a
//! request is `script[n]`, where `n` is the number of assistant messages already in the
//! request. A turn, its tool round trips and a later `--resume` therefore always get the
//! same answers, however many other requests the CLI makes. Past the end of the script the
//! answer is a short text.
//!
//! [`FakeApi::by_prompt`] scripts by the prompt instead: the reply is chosen by a word in
//! the latest user prompt and by how many assistant messages follow that prompt, so a
//! resumed session or two forks of one can each be told to do something different.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One scripted assistant reply.
#[derive(Debug, Clone)]
pub enum Reply {
    Text(String),
    ToolUse {
        name: String,
        input: Value,
    },
    /// Hold the request this long before answering with a short text: a run that is
    /// still going, for cancel and crash tests.
    Wait(std::time::Duration),
}

/// How replies are chosen.
#[derive(Debug, Clone)]
enum Script {
    /// `replies[n]`, n = assistant messages in the whole conversation.
    ByPosition(Vec<Reply>),
    /// The first `(word, replies)` whose word is in the latest user prompt;
    /// `replies[n]`, n = assistant messages after that prompt.
    ByPrompt(Vec<(String, Vec<Reply>)>),
}

#[derive(Clone)]
struct Shared {
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// A running fake API; it stops when dropped.
pub struct FakeApi {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Value>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeApi {
    pub fn start(script: Vec<Reply>) -> FakeApi {
        Self::serve(Script::ByPosition(script))
    }

    /// Replies chosen by a word of the latest user prompt (see the module docs).
    pub fn by_prompt(routes: Vec<(&str, Vec<Reply>)>) -> FakeApi {
        Self::serve(Script::ByPrompt(routes.into_iter().map(|(word, replies)| (word.to_string(), replies)).collect()))
    }

    fn serve(script: Script) -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { script: Arc::new(script), requests: Arc::clone(&requests) };
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .with_state(shared);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { addr, requests, runtime: Some(runtime) }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `/v1/messages` request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn count_tokens() -> Json<Value> {
    Json(json!({ "input_tokens": 12 }))
}

async fn messages(State(shared): State<Shared>, Json(request): Json<Value>) -> Response {
    let conversation = request["messages"].as_array().cloned().unwrap_or_default();
    let assistant_turns = conversation.iter().filter(|message| message["role"] == "assistant").count();
    shared.requests.lock().unwrap().push(request.clone());
    let reply = match &*shared.script {
        Script::ByPosition(replies) => replies.get(assistant_turns).cloned(),
        Script::ByPrompt(routes) => {
            let prompt_at = conversation.iter().rposition(is_prompt).unwrap_or(0);
            let prompt = conversation.get(prompt_at).map(prompt_text).unwrap_or_default();
            let step = conversation[prompt_at..].iter().filter(|message| message["role"] == "assistant").count();
            routes
                .iter()
                .find(|(word, _)| prompt.contains(word.as_str()))
                .and_then(|(_, replies)| replies.get(step).cloned())
        }
    }
    .unwrap_or_else(|| Reply::Text("Done.".into()));
    let reply = match reply {
        Reply::Wait(duration) => {
            tokio::time::sleep(duration).await;
            Reply::Text("Waited.".into())
        }
        reply => reply,
    };
    let model = request["model"].as_str().unwrap_or("claude-fake").to_string();
    let message_id = format!("msg_fake_{assistant_turns:04}_{}", shared.requests.lock().unwrap().len());
    let mut events = vec![sse(
        "message_start",
        json!({"type": "message_start", "message": {"id": message_id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    )];
    let stop_reason = match reply {
        Reply::Text(text) => {
            events.push(sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            events.push(sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            ));
            "end_turn"
        }
        Reply::Wait(_) => unreachable!("waited above"),
        Reply::ToolUse { name, input } => {
            let id = format!("toolu_fake_{assistant_turns:04}");
            events.push(sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            ));
            events.push(sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
            ));
            "tool_use"
        }
    };
    events.push(sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    events.push(sse(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 7}}),
    ));
    events.push(sse("message_stop", json!({"type": "message_stop"})));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/event-stream")], Body::from(events.concat())).into_response()
}

/// A user message that is a prompt rather than tool results.
fn is_prompt(message: &Value) -> bool {
    message["role"] == "user" && !prompt_text(message).is_empty()
}

/// The text a user message carries, whether its content is a string or blocks; tool
/// results do not count. The CLI adds `<system-reminder>` blocks, which are skipped.
fn prompt_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|block| block["type"] == "text")
            .filter_map(|block| block["text"].as_str())
            .filter(|text| !text.starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn sse(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}
