//! A malicious web page in a real browser (Debian's headless Chromium, installed by
//! `scripts/test`) against `cclog serve`, by DNS rebinding — the attack behind the MCP
//! Inspector and Ollama advisories. The page is loaded from `http://rebind.test:P/`, whose
//! name Chromium resolves to 127.0.0.1 (`--host-resolver-rules`); then the page's server
//! goes away and `cclog serve` takes its port, so the page's *same-origin* requests reach
//! cclog, as they would after the attacker's DNS answer changed. They carry
//! `Host: rebind.test:P` and must be refused: no run started, no key written, no session
//! read. The page also tries plain cross-origin requests to `127.0.0.1:P`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::Server;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The attack page: waits for the go-ahead, then calls the API it now shares an origin
/// with, and reports every outcome to `report`.
fn attack_page(report: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>attack</title><script>
const report = "{report}";
async function attempt(name, call) {{
  try {{
    const response = await call();
    let body = "";
    try {{ body = await response.text(); }} catch (error) {{ body = "unreadable: " + error; }}
    return {{name, outcome: "response", status: response.status, type: response.type, body}};
  }} catch (error) {{
    return {{name, outcome: "blocked", error: String(error)}};
  }}
}}
async function main() {{
  for (;;) {{
    try {{ if ((await (await fetch(report + "/go")).text()) === "go") break; }} catch (error) {{}}
    await new Promise(resolve => setTimeout(resolve, 100));
  }}
  const json = {{"Content-Type": "application/json"}};
  const other = "http://127.0.0.1:" + location.port;
  const results = [
    await attempt("same-origin start", () => fetch("/api/runs/start", {{method: "POST", headers: json,
      body: JSON.stringify({{cwd: "/tmp", prompt: "rm -rf ~", permissionMode: "bypassPermissions"}})}})),
    await attempt("same-origin kv set", () => fetch("/api/cli", {{method: "POST", headers: json,
      body: JSON.stringify({{command: {{Kv: {{Set: {{scope: "a", key: "b", value: "1", json: false}}}}}}}})}})),
    await attempt("same-origin sessions", () => fetch("/api/sessions")),
    await attempt("same-origin mcp", () => fetch("/mcp", {{method: "POST",
      headers: {{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}},
      body: JSON.stringify({{jsonrpc: "2.0", id: 1, method: "initialize", params: {{protocolVersion: "2025-06-18",
        capabilities: {{}}, clientInfo: {{name: "page", version: "1"}}}}}})}})),
    await attempt("cross-origin sessions", () => fetch(other + "/api/sessions")),
    await attempt("cross-origin start", () => fetch(other + "/api/runs/start", {{method: "POST", mode: "no-cors",
      headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{cwd: "/tmp", prompt: "hi"}})}})),
  ];
  await fetch(report + "/report", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
    body: JSON.stringify(results)}});
}}
main();
</script>"#
    )
}

/// The test's own report server: `GET /go` answers `wait` until the test says go (with
/// CORS, so the page can read it); `POST /report` keeps the body.
struct Reports {
    url: String,
    go: Arc<Mutex<bool>>,
    report: Arc<Mutex<Option<String>>>,
}

impl Reports {
    fn start() -> Reports {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (go, report) = (Arc::new(Mutex::new(false)), Arc::new(Mutex::new(None)));
        let (thread_go, thread_report) = (Arc::clone(&go), Arc::clone(&report));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (request, body) = read_request(&stream);
                let answer = if request.starts_with("POST /report") {
                    *thread_report.lock().unwrap() = Some(body);
                    "ok"
                } else if *thread_go.lock().unwrap() {
                    "go"
                } else {
                    "wait"
                };
                respond(stream, "text/plain", answer);
            }
        });
        Reports { url, go, report }
    }
}

/// The request line and body of one HTTP/1.1 request.
fn read_request(stream: &TcpStream) -> (String, String) {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let _ = reader.read_line(&mut request);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    (request, String::from_utf8_lossy(&body).into_owned())
}

fn respond(mut stream: TcpStream, content_type: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn chromium(profile: &Path, url: &str) -> std::process::Child {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: scripts/test installs Debian's chromium");
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP rebind.test 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium")
}

#[test]
fn a_page_in_a_real_browser_cannot_start_a_run_write_a_key_or_read_a_session() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let reports = Reports::start();

    // The attacker's server, on the port cclog will take.
    let page_server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = page_server.local_addr().unwrap().port();
    let mut browser = chromium(profile.path(), &format!("http://rebind.test:{port}/attack.html"));
    let page = attack_page(&reports.url);
    page_server.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match page_server.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                let (request, _) = read_request(&stream);
                if request.starts_with("GET /attack.html") {
                    respond(stream, "text/html", &page);
                    break;
                }
                respond(stream, "text/plain", "");
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "chromium never asked for the page");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    drop(page_server);

    // "The DNS answer changes": the same host and port now lead to cclog.
    let env =
        vec![("CCLOG_CLAUDE_BIN", "/nonexistent/claude".to_string()), ("HOME", home.path().display().to_string())];
    let server = Server::start_at(data.path(), &env, &["--no-archive"], &format!("127.0.0.1:{port}"));
    let before = server.ok("GET", "/health", None)["events"].as_u64().unwrap();
    *reports.go.lock().unwrap() = true;
    let report = loop {
        if let Some(report) = reports.report.lock().unwrap().clone() {
            break report;
        }
        assert!(Instant::now() < deadline, "the page never reported");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = browser.kill();
    let _ = browser.wait();

    let results: Vec<Value> = serde_json::from_str(&report).unwrap_or_else(|error| panic!("{error}: {report}"));
    let by_name = |name: &str| results.iter().find(|result| result["name"] == name).cloned().unwrap();
    for name in ["same-origin start", "same-origin kv set", "same-origin sessions", "same-origin mcp"] {
        let result = by_name(name);
        assert_eq!(result["status"], 403, "{name}: {result}");
        let body: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{name}: {result}");
    }
    // Across origins the browser cannot read the answer at all.
    assert_eq!(by_name("cross-origin sessions")["outcome"], "blocked", "{report}");
    assert_eq!(by_name("cross-origin start")["type"], "opaque", "{report}");
    // And on the server nothing happened: no run, no key, not one event.
    assert_eq!(server.ok("GET", "/health", None)["events"].as_u64().unwrap(), before);
    assert_eq!(server.ok("GET", "/api/runs", None), serde_json::json!([]));
    server.stop();
}
