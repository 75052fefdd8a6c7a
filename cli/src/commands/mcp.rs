//! `cclog mcp`: the session coordinator as an MCP server on stdio — what
//! `claude mcp add cclog -- cclog mcp` registers. sled allows one process per data
//! directory, so this process owns nothing: it relays each JSON-RPC message from stdin to
//! the `/mcp` endpoint of the `cclog serve` that owns the directory (starting one in the
//! background when none runs) and writes the answers to stdout, one per line.
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
use std::time::{Duration, Instant};

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
    let server = match Server::find(data)? {
        Some(server) => server,
        None => start_server(data)?,
    };
    let endpoint = format!("{}/mcp", server.url);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut signed_on: Option<String> = None;
    let mut session = McpSession {
        id: None,
        protocol_version: None,
        machine: config.machine.value.clone(),
        project: config.project.value.clone(),
        lease_seconds: config.lease_seconds.value,
    };
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let mut message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(error) => {
                let reply = serde_json::json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": -32700, "message": format!("parse error: {error}")}});
                writeln!(stdout, "{reply}")?;
                stdout.flush()?;
                continue;
            }
        };
        let calls_sign_on = is_tool_call(&message, "sign_on");
        if let Some(instance) = &signed_on {
            add_session_id(&mut message, instance);
        }
        for reply in server.post_mcp(&endpoint, &message, &mut session)? {
            if calls_sign_on {
                if let Some(instance) = reply.pointer("/result/structuredContent/session_id").and_then(Value::as_str) {
                    signed_on = Some(instance.to_string());
                }
            }
            writeln!(stdout, "{reply}")?;
            stdout.flush()?;
        }
    }
    Ok(EXIT_OK)
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

/// Starts `cclog serve` on `data` in the background and waits until it answers. When
/// several relays race to start one, whichever wins serves them all.
fn start_server(data: &Path) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("finding the cclog binary")?;
    cclog_engine::create_data_dir(data)?;
    let log = std::fs::File::create(data.join("serve.log")).context("creating serve.log")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // Its own session: it outlives this relay and the terminal's signals.
        command.process_group(0);
    }
    command.spawn().context("starting cclog serve")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(server) = Server::find(data)? {
            return Ok(server);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "cclog serve did not start on {} (see {})",
            data.display(),
            data.join("serve.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
