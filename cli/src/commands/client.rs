//! The client of a running `cclog serve`: finds it through the address it advertises in the
//! data directory, calls its API, and runs commands on it (`POST /api/cli`) so that every
//! command keeps working while the server owns the directory.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use cclog_http::forward::{self, Channel, CommandRequest};
use cclog_http::server::Advertisement;
use serde_json::Value;

use crate::args::Command;
use crate::output;

/// A running `cclog serve` on the data directory.
#[derive(Clone)]
pub struct Server {
    pub url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Server {
    /// The server advertised in `data`, if it answers.
    pub fn find(data: &Path) -> anyhow::Result<Option<Server>> {
        let Some(advertised) = Advertisement::read(data) else { return Ok(None) };
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let server = Server { url: advertised.url, token: advertised.token, agent };
        match server.call("GET", "/health", None) {
            Ok((200, _)) => Ok(Some(server)),
            // A stale advertisement: whoever owned the directory is gone.
            _ => Ok(None),
        }
    }

    /// The server advertised in `data`, or one started there in the background (`cclog serve
    /// --addr 127.0.0.1:0`, logging to `serve.log`) and waited for; that one exits after
    /// `idle_exit` with no connection and no run (`None`: it stays). When several clients race
    /// to start one, whichever wins serves them all.
    pub fn find_or_start(data: &Path, idle_exit: Option<std::time::Duration>) -> anyhow::Result<Server> {
        if let Some(server) = Server::find(data)? {
            return Ok(server);
        }
        let exe = std::env::current_exe().context("finding the cclog binary")?;
        cclog_engine::create_data_dir(data)?;
        let log = std::fs::File::create(data.join("serve.log")).context("creating serve.log")?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("--data")
            .arg(data)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(idle_exit.map(|idle| format!("--idle-exit={}", humantime::format_duration(idle))))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            // Its own session: it outlives this client and the terminal's signals.
            command.process_group(0);
        }
        command.spawn().context("starting cclog serve")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(server) = Server::find(data)? {
                return Ok(server);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "cclog serve did not start on {} (see {})",
                data.display(),
                data.join("serve.log").display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `request` with the bearer token, when the server wants one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    pub fn request(&self, method: &str, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let url = format!("{}{path}", self.url);
        self.authorized(if method == "DELETE" { self.agent.delete(&url) } else { self.agent.get(&url) })
    }

    /// Follows the event stream at `path`, calling `each` with every event's name and data
    /// until it answers `Break` (its value is returned) or the stream ends (`None`).
    pub fn follow_events<T>(
        &self,
        path: &str,
        each: impl FnMut(&str, &str) -> anyhow::Result<std::ops::ControlFlow<T>>,
    ) -> anyhow::Result<Option<T>> {
        let mut response = self.request("GET", path).call().with_context(|| format!("calling {}{path}", self.url))?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            anyhow::bail!("{}", api_error(&body));
        }
        read_sse(response.body_mut().as_reader(), each).with_context(|| format!("reading {}{path}", self.url))
    }

    /// One JSON call; the status and the parsed body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let response = match (method, body) {
            ("POST", Some(body)) => {
                let url = format!("{}{path}", self.url);
                self.authorized(self.agent.post(&url)).header("Content-Type", "application/json").send(body.to_string())
            }
            _ => self.request(method, path).call(),
        };
        let mut response = response.with_context(|| format!("calling {}{path}", self.url))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().context("reading the answer")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// Posts one JSON-RPC message to the MCP endpoint within `session` (the server's session
    /// id and the negotiated protocol version, which this updates), handing `each` every
    /// message that answers it as it arrives (none for a notification; a request the server
    /// answers on an event stream may bring notifications before its result).
    pub fn post_mcp(
        &self,
        endpoint: &str,
        message: &Value,
        session: &mut McpSession,
        mut each: impl FnMut(Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let request = self.mcp_request(self.agent.post(endpoint), session, Some(message));
        let mut response = request.send(message.to_string()).with_context(|| format!("calling {endpoint}"))?;
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string);
        if let Some(id) = header("mcp-session-id") {
            session.id = Some(id);
        }
        let mut note_version = |reply: &Value| {
            if let Some(version) = reply.pointer("/result/protocolVersion").and_then(Value::as_str) {
                session.protocol_version = Some(version.to_string());
            }
        };
        if header("content-type").is_some_and(|value| value.starts_with("text/event-stream")) {
            return read_sse_messages(response.body_mut().as_reader(), |reply| {
                note_version(&reply);
                each(reply)
            })
            .with_context(|| format!("reading the MCP answer from {endpoint}"));
        }
        let text = response.body_mut().read_to_string().context("reading the MCP answer")?;
        if status == 202 || text.trim().is_empty() {
            return Ok(());
        }
        let reply = serde_json::from_str(&text)
            .with_context(|| format!("{endpoint} answered {status} with something not JSON: {text}"))?;
        note_version(&reply);
        each(reply)
    }

    /// Opens the session's stream of server-initiated messages (`GET` on the endpoint) and
    /// hands `each` every message until the stream ends; `false` when the server offers none
    /// (no session, or a protocol revision without one).
    pub fn listen_mcp(
        &self,
        endpoint: &str,
        session: &McpSession,
        each: impl FnMut(Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<bool> {
        let request = self.mcp_request(self.agent.get(endpoint), session, None);
        let mut response = request.call().with_context(|| format!("calling {endpoint}"))?;
        let event_stream = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if response.status().as_u16() != 200 || !event_stream {
            return Ok(false);
        }
        read_sse_messages(response.body_mut().as_reader(), each)
            .with_context(|| format!("reading the MCP stream from {endpoint}"))?;
        Ok(true)
    }

    /// `request` with the token, the MCP headers and who the relay's client is. A message of
    /// the 2026-07-28 revision names its protocol version in its `_meta`, and HTTP wants it,
    /// the method and the name it acts on as headers too (SEP-2243), as an HTTP client sends.
    fn mcp_request<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        session: &McpSession,
        message: Option<&Value>,
    ) -> ureq::RequestBuilder<B> {
        let mut request = self
            .authorized(request)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(id) = &session.id {
            request = request.header("Mcp-Session-Id", id);
        }
        let stated_version = message
            .and_then(|message| message.pointer("/params/_meta"))
            .and_then(|meta| meta.get(PROTOCOL_VERSION_META_KEY))
            .and_then(Value::as_str);
        if let Some(version) = stated_version.or(session.protocol_version.as_deref()) {
            request = request.header("MCP-Protocol-Version", version);
        }
        if let Some(method) = message.and_then(|message| message["method"].as_str()) {
            request = request.header("Mcp-Method", method);
            let name_field = match method {
                "tools/call" | "prompts/get" => Some("name"),
                "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
                "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
                _ => None,
            };
            let name = name_field.and_then(|field| message?.pointer(&format!("/params/{field}"))?.as_str());
            if let Some(name) = name {
                request = request.header("Mcp-Name", &header_value(name));
            }
        }
        request
            .header(cclog_http::mcp::MACHINE_HEADER, &session.machine)
            .header(cclog_http::mcp::PROJECT_HEADER, &session.project)
            .header(cclog_http::mcp::LEASE_HEADER, session.lease_seconds.to_string())
    }

    /// Runs `command` on the server, printing what it prints, as it prints it; its exit
    /// status.
    pub fn forward(&self, command: &Command) -> anyhow::Result<u8> {
        let request = CommandRequest {
            command: serde_json::to_value(command)?,
            colour: output::colour_stdout(),
            colour_stderr: output::colour_stderr(),
            // The system's zone by its IANA name (`TZ` honoured); a POSIX `TZ` rule has none.
            time_zone: jiff::tz::TimeZone::system().iana_name().map(str::to_string),
        };
        let url = format!("{}/api/cli", self.url);
        let mut response = self
            .authorized(self.agent.post(&url))
            .header("Content-Type", "application/json")
            .send(serde_json::to_string(&request)?)
            .with_context(|| format!("calling {url}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            anyhow::bail!("`cclog serve` at {} refused the command: {}", self.url, api_error(&body));
        }
        let mut frames = response.into_body().into_reader();
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
        loop {
            match forward::read_frame(&mut frames).context("reading the command's output from the server")? {
                Some((Channel::Stdout, bytes)) => {
                    // A closed pipe (`cclog log | head`) is the reader saying it has enough.
                    if stdout.write_all(&bytes).and_then(|()| stdout.flush()).is_err() {
                        return Ok(crate::EXIT_OK);
                    }
                }
                Some((Channel::Stderr, bytes)) => {
                    let _ = stderr.write_all(&bytes);
                }
                Some((Channel::Exit, status)) => return Ok(status.first().copied().unwrap_or(crate::EXIT_FAILURE)),
                None => anyhow::bail!("`cclog serve` at {} ended the command without an exit status", self.url),
            }
        }
    }
}

/// Reads an event stream, calling `each` with every event's name and data until it answers
/// `Break` (its value is returned) or the stream ends (`None`).
fn read_sse<T>(
    reader: impl std::io::Read,
    mut each: impl FnMut(&str, &str) -> anyhow::Result<std::ops::ControlFlow<T>>,
) -> anyhow::Result<Option<T>> {
    use std::io::BufRead;
    let (mut event, mut data) = (String::new(), String::new());
    for line in std::io::BufReader::new(reader).lines() {
        let line = line?;
        if line.is_empty() {
            if !data.is_empty() {
                if let std::ops::ControlFlow::Break(value) = each(&event, &data)? {
                    return Ok(Some(value));
                }
            }
            event.clear();
            data.clear();
        } else if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(more) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(more.strip_prefix(' ').unwrap_or(more));
        }
    }
    Ok(None)
}

/// Hands `each` the JSON message of every event of an MCP event stream as it arrives
/// (events without JSON data — keep-alives, priming events — are skipped).
fn read_sse_messages(
    reader: impl std::io::Read,
    mut each: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read_sse(reader, |_, data| {
        if let Ok(message) = serde_json::from_str(data) {
            each(message)?;
        }
        Ok(std::ops::ControlFlow::<()>::Continue(()))
    })?;
    Ok(())
}

/// Where a 2026-07-28 message states its protocol version, in `params._meta`.
const PROTOCOL_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// `value` as an MCP header carries it: as it is when it is printable ASCII without
/// surrounding blanks, else Base64 between `=?base64?` and `?=` (SEP-2243).
fn header_value(value: &str) -> String {
    use base64::Engine;
    let plain = value.bytes().all(|byte| (0x20..=0x7e).contains(&byte))
        && !value.starts_with([' ', '\t'])
        && !value.ends_with([' ', '\t']);
    if plain {
        value.to_string()
    } else {
        format!("=?base64?{}?=", base64::prelude::BASE64_STANDARD.encode(value))
    }
}

/// What an MCP relay keeps between messages.
#[derive(Debug, Clone)]
pub struct McpSession {
    /// `Mcp-Session-Id`, when the server runs a session (protocol revisions before 2026-07-28).
    pub id: Option<String>,
    pub protocol_version: Option<String>,
    /// Who the relay's client is: this machine, and the project of its working directory.
    pub machine: String,
    pub project: String,
    /// How long its instance stays its own after each call.
    pub lease_seconds: u64,
}

/// `text` for a URL's query: every byte but the unreserved ones percent-encoded.
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The message of an API error body.
pub fn api_error(body: &Value) -> String {
    body["error"]["message"].as_str().map_or_else(|| body.to_string(), str::to_string)
}
