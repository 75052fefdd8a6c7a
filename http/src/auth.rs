//! Who may use the API. `cclog serve` starts Claude Code with any prompt in any directory, so
//! every route — `/api`, `/mcp`, `/health` and every page — is closed to other origins:
//!
//! - **Host**: a request must be addressed to this server by a name it answers to — the
//!   bound address, `localhost`, `127.0.0.1`, `[::1]`, or a name given with
//!   `--allowed-host`. A server bound to every interface (`0.0.0.0`, `[::]`) also answers
//!   to any IP address. This is what defeats DNS rebinding: a page on `evil.example` whose
//!   name is made to resolve to 127.0.0.1 still sends `Host: evil.example`.
//! - **Origin**: a request that carries a browser `Origin` must come from this server's own
//!   origin (`http://` and the request's `Host`) or from one given with `--allow-origin`;
//!   CORS answers are on only for the latter. Programs that are not browsers (curl, the
//!   `cclog` client, MCP clients) send no `Origin` and are not affected.
//! - **Token**: with `--token`, every `/api` and `/mcp` request needs
//!   `Authorization: Bearer <token>` (the scheme in any case), compared in constant time.
//!
//! Refusals are `403 forbidden` (or `401 unauthorized`) in the API's JSON error format, and
//! are logged without the token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Error;

/// The shortest token a server bound off loopback accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a request must satisfy to be served.
///
/// # Invariants
/// Host names are stored lower-case, without a port, IPv6 addresses without brackets.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    hosts: Vec<String>,
    any_ip_host: bool,
    origins: Vec<String>,
    token: Option<String>,
}

impl AccessPolicy {
    /// The policy of a server bound to `bound`: loopback names, the bound address and
    /// `extra_hosts`; its own origin and `extra_origins`; `token` when set.
    pub fn new(bound: SocketAddr, extra_hosts: &[String], extra_origins: &[String], token: Option<String>) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        if !bound.ip().is_unspecified() {
            hosts.push(bound.ip().to_string());
        }
        hosts.extend(extra_hosts.iter().map(|host| host_name(host)));
        AccessPolicy {
            hosts,
            any_ip_host: bound.ip().is_unspecified(),
            origins: extra_origins.iter().map(|origin| origin.trim_end_matches('/').to_ascii_lowercase()).collect(),
            token: token.filter(|token| !token.is_empty()),
        }
    }

    /// The origins `--allow-origin` named, for the CORS layer.
    pub fn extra_origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether `host` (a `Host` header's value) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        self.hosts.contains(&name) || (self.any_ip_host && name.parse::<IpAddr>().is_ok())
    }

    /// Whether a browser on `origin` may call this server, reached as `host`.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = host.map(|host| format!("http://{}", host.to_ascii_lowercase()));
        own.as_deref() == Some(origin.as_str()) || self.origins.contains(&origin)
    }

    /// Why `request` may not be served, if it may not.
    pub fn refusal(&self, request: &Request) -> Option<String> {
        let host = request.headers().get(header::HOST).map(|value| value.to_str().unwrap_or("\u{fffd}"));
        if let Some(host) = host {
            if !self.host_allowed(host) {
                return Some(format!(
                    "requests to this server must be addressed to it by a name it answers to, not Host {host:?} \
                     (start it with --allowed-host NAME to add one)"
                ));
            }
        }
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("\u{fffd}");
            if !self.origin_allowed(origin, host) {
                return Some(format!(
                    "requests from web pages on other origins are refused, and {origin:?} is not this server's \
                     (start it with --allow-origin ORIGIN to let one in)"
                ));
            }
        }
        None
    }

    /// Whether `request` carries the token, when one is required.
    pub fn token_accepted(&self, request: &Request) -> bool {
        let Some(token) = &self.token else { return true };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, given)| given.trim_start());
        given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
    }
}

/// A host's name without port or IPv6 brackets, lower-case and without a trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.bytes().all(|byte| byte.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware on every route: refuses foreign `Host`s and `Origin`s before anything runs.
pub async fn refuse_other_origins(State(policy): State<Arc<AccessPolicy>>, request: Request, next: Next) -> Response {
    if let Some(reason) = policy.refusal(&request) {
        tracing::warn!(method = %request.method(), path = request.uri().path(), %reason, "refused a request");
        return Error::Forbidden(reason).into_response();
    }
    next.run(request).await
}

/// Middleware on `/api` and `/mcp`: the bearer token, when the server has one.
pub async fn require_token(State(policy): State<Arc<AccessPolicy>>, request: Request, next: Next) -> Response {
    if !policy.token_accepted(&request) {
        return Error::Unauthorized.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri("/api/runs");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).expect("a request")
    }

    #[test]
    fn loopback_names_and_configured_hosts_are_accepted_and_others_refused() {
        let bound: SocketAddr = "127.0.0.1:3000".parse().expect("an address");
        let policy = AccessPolicy::new(bound, &["Cclog.Internal".into()], &[], None);
        for host in ["127.0.0.1:3000", "localhost", "LOCALHOST:1", "[::1]:3000", "cclog.internal:80", "localhost."] {
            assert!(policy.host_allowed(host), "{host}");
        }
        for host in ["evil.example.com", "evil.example.com:3000", "10.0.0.1", "localhost.evil.example", "[::2]"] {
            assert!(!policy.host_allowed(host), "{host}");
        }
        let everywhere = AccessPolicy::new("0.0.0.0:3000".parse().expect("an address"), &[], &[], None);
        assert!(everywhere.host_allowed("10.0.0.1:3000") && !everywhere.host_allowed("evil.example"));
    }

    #[test]
    fn only_the_servers_own_origin_and_configured_ones_pass() {
        let policy = AccessPolicy::new(
            "127.0.0.1:3000".parse().expect("an address"),
            &[],
            &["http://app.test:5173/".into()],
            None,
        );
        assert!(policy.refusal(&request(&[("host", "127.0.0.1:3000")])).is_none());
        assert!(policy.refusal(&request(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")])).is_none());
        assert!(policy.refusal(&request(&[("host", "127.0.0.1:3000"), ("origin", "http://app.test:5173")])).is_none());
        for origin in ["http://evil.example.com", "null", "http://127.0.0.1:3001", "https://127.0.0.1:3000"] {
            assert!(policy.refusal(&request(&[("host", "127.0.0.1:3000"), ("origin", origin)])).is_some(), "{origin}");
        }
        assert!(policy
            .refusal(&request(&[("host", "evil.example.com"), ("origin", "http://evil.example.com")]))
            .is_some());
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case_and_the_token_exactly() {
        let policy = AccessPolicy::new(
            "127.0.0.1:1".parse().expect("an address"),
            &[],
            &[],
            Some("s3cret-s3cret-s3cret".into()),
        );
        for value in ["Bearer s3cret-s3cret-s3cret", "bearer s3cret-s3cret-s3cret", "BEARER  s3cret-s3cret-s3cret"] {
            assert!(policy.token_accepted(&request(&[("authorization", value)])), "{value}");
        }
        for value in ["Bearer s3cret", "Basic s3cret-s3cret-s3cret", "s3cret-s3cret-s3cret", "Bearer"] {
            assert!(!policy.token_accepted(&request(&[("authorization", value)])), "{value}");
        }
        assert!(!policy.token_accepted(&request(&[])));
    }
}
