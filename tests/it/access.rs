//! Who may reach `cclog serve`, over raw HTTP on loopback (so that `Host` and `Origin` are
//! exactly what the test writes): every documented route and `/mcp` refuse a foreign `Host`,
//! a foreign `Origin` and both with 403 — and nothing is started or written — while a
//! same-origin browser request and a plain client still work; `--allowed-host` and
//! `--allow-origin` let named ones in (with CORS); the token scheme is matched in any case;
//! a short token off loopback is refused; `server.json` is 0600 whatever was there; and
//! 200 idle sockets with 5 slowloris clients and a stalled body cannot keep `/health` from
//! answering in a server limited to 256 descriptors, and are closed by the timeouts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::Server;
use crate::support::cclog_bin;

/// One HTTP/1.1 exchange on a fresh connection, with exactly these headers (and
/// `Connection: close`): the status, the status line with the headers, and the body.
fn exchange(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    (status, head.to_string(), body.to_string())
}

/// [`exchange`]'s status and body.
pub fn raw_request(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (status, _, body) = exchange(url, method, path, headers, body);
    (status, body)
}

/// [`exchange`]'s status line and headers, for a request without a body.
fn raw_request_headers(url: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    exchange(url, method, path, headers, "").1
}

/// The log's length, as `/health` reports it.
fn events(server: &Server) -> u64 {
    server.ok("GET", "/health", None)["events"].as_u64().unwrap()
}

/// Every operation of the OpenAPI document, with its path parameters filled in, and `/mcp`.
fn every_operation(server: &Server) -> Vec<(String, String, String)> {
    let document = server.ok("GET", "/api/openapi.json", None);
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let concrete = path.replace("{run}", "run-x").replace("{id}", "s").replace("{a}", "s").replace("{b}", "t");
            let body = match concrete.as_str() {
                "/api/runs/start" => r#"{"cwd":"/tmp","prompt":"hi","permissionMode":"bypassPermissions"}"#,
                "/api/runs/resume" | "/api/runs/fork" => r#"{"sessionId":"s","prompt":"hi"}"#,
                "/api/cli" => r#"{"command":{"Kv":{"Set":{"scope":"a","key":"b","value":"1","json":false}}}}"#,
                _ => "",
            };
            operations.push((method.to_uppercase(), concrete, body.to_string()));
        }
    }
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    operations.push(("POST".into(), "/mcp".into(), initialize.into()));
    assert!(operations.len() >= 23, "{operations:?}");
    operations
}

#[test]
fn foreign_hosts_and_origins_are_refused_on_every_route_and_nothing_happens() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let env =
        vec![("CCLOG_CLAUDE_BIN", "/nonexistent/claude".to_string()), ("HOME", home.path().display().to_string())];
    let server = Server::start(data.path(), &env, &["--no-archive"]);
    let own_host = server.url.trim_start_matches("http://").to_string();
    let before = events(&server);
    let foreign: [&[(&str, &str)]; 4] = [
        &[("Host", "evil.example.com")],
        &[("Host", "evil.example.com:3000")],
        &[("Host", own_host.as_str()), ("Origin", "http://evil.example.com")],
        &[("Host", "evil.example.com"), ("Origin", "http://evil.example.com")],
    ];
    for (method, path, body) in every_operation(&server) {
        for headers in foreign {
            let (status, text) = raw_request(&server.url, &method, &path, headers, &body);
            assert_eq!(status, 403, "{method} {path} {headers:?}: {text}");
            let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
            assert_eq!(error["error"]["code"], "forbidden", "{text}");
        }
    }
    // Nothing was started and nothing written: no run, no kv, not one event.
    assert_eq!(events(&server), before);
    assert_eq!(server.ok("GET", "/api/runs", None), serde_json::json!([]));

    // A same-origin browser request and a plain client (no Origin) are served.
    let same_origin = format!("http://{own_host}");
    let headers = [("Host", own_host.as_str()), ("Origin", same_origin.as_str())];
    assert_eq!(raw_request(&server.url, "GET", "/api/runs", &headers, "").0, 200);
    assert_eq!(raw_request(&server.url, "GET", "/api/sessions", &[("Host", "localhost:1")], "").0, 200);
    let curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/health", server.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "200");
    // The refusal is the only CORS answer: no Access-Control header for a foreign origin.
    let preflight = raw_request_headers(
        &server.url,
        "OPTIONS",
        "/api/runs/start",
        &[
            ("Host", own_host.as_str()),
            ("Origin", "http://evil.example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
    );
    assert!(!preflight.to_ascii_lowercase().contains("access-control-allow-origin"), "{preflight}");
    server.stop();
}

#[test]
fn allowed_hosts_and_origins_are_let_in_with_cors_and_tokens_are_matched_as_the_scheme_says() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let token = "a-token-of-32-bytes-for-the-test";
    let env = vec![("HOME", home.path().display().to_string()), ("CCLOG_TOKEN", token.to_string())];
    let server = Server::start(
        data.path(),
        &env,
        &["--no-archive", "--allowed-host", "cclog.internal", "--allow-origin", "http://app.test:5173"],
    );
    let own_host = server.url.trim_start_matches("http://").to_string();
    let bearer = format!("bearer {token}");
    let auth = ("Authorization", bearer.as_str());
    assert_eq!(raw_request(&server.url, "GET", "/api/runs", &[("Host", "cclog.internal:8080"), auth], "").0, 200);
    assert_eq!(raw_request(&server.url, "GET", "/api/runs", &[("Host", "other.internal"), auth], "").0, 403);
    let cors = raw_request_headers(
        &server.url,
        "GET",
        "/api/runs",
        &[("Host", own_host.as_str()), ("Origin", "http://app.test:5173"), auth],
    );
    assert!(cors.starts_with("HTTP/1.1 200"), "{cors}");
    assert!(cors.to_ascii_lowercase().contains("access-control-allow-origin: http://app.test:5173"), "{cors}");
    let preflight = raw_request_headers(
        &server.url,
        "OPTIONS",
        "/api/runs/start",
        &[("Host", own_host.as_str()), ("Origin", "http://app.test:5173"), ("Access-Control-Request-Method", "POST")],
    );
    assert!(preflight.to_ascii_lowercase().contains("access-control-allow-methods"), "{preflight}");
    // The scheme in any case, the token exactly.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!("{scheme} {token}");
        assert_eq!(
            raw_request(
                &server.url,
                "GET",
                "/api/sessions",
                &[("Host", own_host.as_str()), ("Authorization", &value)],
                ""
            )
            .0,
            200,
            "{scheme}"
        );
    }
    assert_eq!(
        raw_request(
            &server.url,
            "GET",
            "/api/sessions",
            &[("Host", own_host.as_str()), ("Authorization", "Bearer a-token")],
            ""
        )
        .0,
        401
    );
    server.stop();
}

#[test]
fn tokens_stay_out_of_sight_and_short_ones_are_refused_off_loopback() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // Off loopback: no token, or one under 16 bytes, is refused before binding.
    for (token, says) in [(None, "without a token"), (Some("short-token"), "at least 16")] {
        let mut command = Command::new(cclog_bin());
        command.arg("--data").arg(data.path()).args(["serve", "--addr", "0.0.0.0:0", "--no-archive"]);
        command.env_remove("CCLOG_TOKEN").env("HOME", home.path());
        if let Some(token) = token {
            command.env("CCLOG_TOKEN", token);
        }
        let refused = command.output().unwrap();
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains(says), "{refused:?}");
    }
    // A stale, world-readable staging file does not make the advertised token readable.
    std::fs::write(data.path().join("server.json.tmp"), "stale").unwrap();
    std::fs::set_permissions(data.path().join("server.json.tmp"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "from-a-file-0123456789\n").unwrap();
    let env = vec![("HOME", home.path().display().to_string())];
    let server = Server::start(data.path(), &env, &["--no-archive", "--token-file", token_file.to_str().unwrap()]);
    assert_eq!(server.token.as_deref(), Some("from-a-file-0123456789"));
    let mode = std::fs::metadata(data.path().join("server.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(server.call("GET", "/api/runs", None).0, 200);
    server.stop();
    // `--token` on the command line works, with a warning that says why not to.
    let output = serve_briefly(data.path(), home.path(), &["--token", "on-the-command-line-0123"]);
    assert!(output.contains("visible to every user"), "{output}");
    assert!(!output.contains("on-the-command-line-0123"), "the token was printed: {output}");
}

/// Starts `cclog serve` with `extra`, waits for it to advertise itself, stops it, and
/// returns what it wrote on stderr.
fn serve_briefly(data: &Path, home: &Path, extra: &[&str]) -> String {
    let _ = std::fs::remove_file(data.join("server.json"));
    let child = Command::new(cclog_bin())
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0", "--no-archive"])
        .args(extra)
        .env_remove("CCLOG_TOKEN")
        .env("HOME", home)
        .env("LOG_LEVEL", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("server.json").exists() {
        assert!(Instant::now() < deadline, "the server did not advertise itself");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn idle_sockets_and_slowloris_clients_cannot_starve_health_and_are_closed_by_the_timeout() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let env = vec![("HOME", home.path().display().to_string())];
    let server = Server::start_limited(data.path(), &env, &["--no-archive", "--header-timeout", "3s"], 256);
    let address = server.url.trim_start_matches("http://").to_string();
    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&address).unwrap()).collect();
    let mut slow: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
            stream
        })
        .collect();
    // And one that sends a whole head, then a body that never comes: the body's idle
    // timeout ends it.
    let mut stalled_body = TcpStream::connect(&address).unwrap();
    stalled_body
        .write_all(b"POST /api/cli HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"command\"")
        .unwrap();
    // While they hang on, /health answers every 100 ms or so, each within 100 ms.
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while opened.elapsed() < Duration::from_millis(2500) {
        for stream in &mut slow {
            let _ = stream.write_all(b"X-Slow: 1\r\n");
        }
        let started = Instant::now();
        let (status, body) = raw_request(&server.url, "GET", "/health", &[("Host", "127.0.0.1")], "");
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        slowest = slowest.max(took);
        probes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(probes >= 10, "{probes} probes");
    assert!(slowest < Duration::from_millis(100), "/health took {slowest:?} under 205 hanging sockets");
    // The header timeout closes every one of them: each read ends (EOF or a reset) before
    // a deadline well past the 3 s timeout.
    let deadline = opened + Duration::from_secs(12);
    for mut stream in idle.into_iter().chain(slow).chain([stalled_body]) {
        let mut buffer = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            stream.set_read_timeout(Some(left)).unwrap();
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    panic!("a socket was still open {:?} after it was opened", opened.elapsed())
                }
                Err(_) => break,
            }
        }
        assert!(opened.elapsed() > Duration::from_secs(2), "closed before the timeout");
    }
    server.stop();
}
