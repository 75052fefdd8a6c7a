//! cclog's network surfaces: the REST API with SSE (CC Manager's routes over the log, and
//! cclog's own), the MCP session coordinator (rmcp, Streamable HTTP; its stdio side is the
//! `cclog mcp` relay), and the server that owns a data directory while it runs. One crate
//! owns every protocol; `cclog serve` in the cli crate only wires it to a listener and
//! signals. No domain logic lives here: a handler parses, calls one function of
//! `projections` or `ingest`, and renders.
//!
//! # Layout
//! - [`app`]: the one router — every route, the OpenAPI document built from the same list,
//!   the layers every request passes.
//! - [`routes`]: the handlers, one file per part of the path (`runs`, `sessions`, `events`,
//!   `service`).
//! - [`auth`]: the Host/Origin check on every route and the bearer token.
//! - [`state`], [`shutdown`]: what handlers share, and the signal long answers end on.
//! - [`extract`], [`sse`], [`blocking`]: JSON/query extractors with API errors, SSE
//!   producers, log work off the async workers.
//! - [`views`]: the JSON of runs, messages, sessions and events.
//! - [`feeds`]: one log reader per followed run, fanning its messages out to every SSE
//!   subscriber.
//! - [`forward`]: commands clients forward to the server (`POST /api/cli`) and the frames
//!   their output streams back in.
//! - [`mcp`]: the session coordinator over MCP — tools, resources, prompts.
//! - [`connections`]: accepting connections with a cap and a header-read timeout.
//! - [`server`]: binding, token policy, the address advertisement, transcript archiving,
//!   graceful shutdown.

pub mod app;
pub mod auth;
pub mod blocking;
pub mod connections;
mod error;
pub mod extract;
pub mod feeds;
pub mod forward;
pub mod mcp;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod state;
pub mod views;

pub use error::{Error, ErrorBody, ErrorDetail, Result};
