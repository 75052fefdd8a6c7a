//! `cclog mcp`: the session coordinator as an MCP server on stdio — what
//! `claude mcp add cclog -- cclog mcp` registers. sled allows one process per data
//! directory, so this process owns nothing: it relays each JSON-RPC message from stdin to
//! the `/mcp` endpoint of the `cclog serve` that owns the directory (starting one in the
//! background when none runs) and writes the answers to stdout, one per line.
//!
//! Requests are relayed concurrently, each on its own thread, so a `wait_for_change` that
//! waits minutes holds up nothing else; only `initialize` and `sign_on`, whose answers
//! change what the relay sends next, are relayed one at a time. Once the server has given
//! the connection a session (handshake revisions, up to 2025-11-25), the relay also holds
//! the session's stream of server-initiated messages open and relays them too — how
//! `notifications/resources/updated` reach a subscribed client.
//!
//! Scopes belong to the machine and project of the relay's configuration and working
//! directory (sent as `X-Cclog-Machine` and `X-Cclog-Project`), not to wherever the server
//! was started, and its instance is leased for its configured `lease_seconds`
//! (`X-Cclog-Lease-Seconds`); see `coordinator_config` for where they come from.
//!
//! stdio is a connection; the current MCP revision's HTTP is not. The relay therefore keeps
//! the connection's state: it remembers the `session_id` that `sign_on` returned and adds it
//! to later tool calls that do not name one.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use serde_json::Value;

use super::client::{McpSession, Server};
use super::coordinator_config::CoordinatorConfig;
use crate::args::McpArgs;
use crate::EXIT_OK;

pub fn run(data: &Path, args: McpArgs) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("the working directory")?;
    let config = CoordinatorConfig::load(args.config.as_deref(), &cwd)?;
    if args.check_config {
        config.print(args.json)?;
        return Ok(EXIT_OK);
    }
    let server = Server::find_or_start(data, config.server_idle_exit())?;
    let endpoint = format!("{}/mcp", server.url);
    let stdout = Replies::default();
    let mut signed_on: Option<String> = None;
    let mut listening = false;
    let mut session = McpSession {
        id: None,
        protocol_version: None,
        machine: config.machine.value.clone(),
        project: config.project.value.clone(),
        lease_seconds: config.lease_seconds.value,
    };
    let mut in_flight = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let mut message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(error) => {
                stdout.send(&serde_json::json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": -32700, "message": format!("parse error: {error}")}}));
                continue;
            }
        };
        if let Some(instance) = &signed_on {
            add_session_id(&mut message, instance);
        }
        let calls_sign_on = is_tool_call(&message, "sign_on");
        if message["method"] == "initialize" || calls_sign_on {
            // In order: what they answer shapes the messages after them.
            relay(&server, &endpoint, &message, &mut session, &stdout, |reply| {
                if calls_sign_on {
                    if let Some(instance) =
                        reply.pointer("/result/structuredContent/session_id").and_then(Value::as_str)
                    {
                        signed_on = Some(instance.to_string());
                    }
                }
            });
        } else {
            let (server, endpoint, mut session, stdout) =
                (server.clone(), endpoint.clone(), session.clone(), stdout.clone());
            // A listen stream lasts as long as the client wants it; nothing waits for it.
            let listens = message["method"] == "subscriptions/listen";
            in_flight.retain(|(relayed, _): &(std::thread::JoinHandle<()>, bool)| !relayed.is_finished());
            let relayed = std::thread::spawn(move || {
                relay(&server, &endpoint, &message, &mut session, &stdout, |_| {});
            });
            in_flight.push((relayed, listens));
        }
        if !listening && session.id.is_some() {
            listening = true;
            let (server, endpoint, session, stdout) =
                (server.clone(), endpoint.clone(), session.clone(), stdout.clone());
            std::thread::spawn(move || {
                if let Err(error) = server.listen_mcp(&endpoint, &session, |message| {
                    stdout.send(&message);
                    Ok(())
                }) {
                    tracing::debug!(%error, "the MCP session's stream ended");
                }
            });
        }
    }
    // stdin closed: let the requests already sent be answered (a wait ends within its
    // timeout); listen streams end with the process.
    for (relayed, listens) in in_flight {
        if !listens {
            let _ = relayed.join();
        }
    }
    Ok(EXIT_OK)
}

/// Relays one message and writes what answers it; if the server cannot be reached, a
/// request gets a JSON-RPC error saying so instead of the relay ending.
fn relay(
    server: &Server,
    endpoint: &str,
    message: &Value,
    session: &mut McpSession,
    stdout: &Replies,
    mut seen: impl FnMut(&Value),
) {
    let relayed = server.post_mcp(endpoint, message, session, |reply| {
        seen(&reply);
        stdout.send(&reply);
        Ok(())
    });
    if let Err(error) = relayed {
        if let Some(id) = message.get("id").filter(|_| message.get("method").is_some()) {
            stdout.send(&serde_json::json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32603, "message": format!("cclog serve did not answer: {error:#}")}}));
        }
    }
}

/// stdout, shared by the threads that relay: one whole message a line.
#[derive(Clone, Default)]
struct Replies(Arc<Mutex<()>>);

impl Replies {
    fn send(&self, message: &Value) {
        let _one_at_a_time = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stdout = std::io::stdout().lock();
        // A closed stdout is the client gone; stdin's end stops the relay.
        let _ = writeln!(stdout, "{message}").and_then(|()| stdout.flush());
    }
}

fn is_tool_call(message: &Value, tool: &str) -> bool {
    message["method"] == "tools/call" && message.pointer("/params/name").and_then(Value::as_str) == Some(tool)
}

/// Adds `session_id` to a tool call (other than `sign_on`) that names none.
fn add_session_id(message: &mut Value, instance: &str) {
    if message["method"] != "tools/call" || is_tool_call(message, "sign_on") {
        return;
    }
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else { return };
    let arguments = params.entry("arguments").or_insert_with(|| Value::Object(Default::default()));
    if let Some(arguments) = arguments.as_object_mut() {
        arguments.entry("session_id").or_insert_with(|| Value::String(instance.to_string()));
    }
}
