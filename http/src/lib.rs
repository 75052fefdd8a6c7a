//! cclog's network surfaces: the REST API with SSE (CC Manager's routes over the log, and
//! cclog's own) and the server that owns a data directory while it runs. The MCP server
//! (rmcp, stdio and Streamable HTTP) comes with the coordinator. One crate owns every
//! protocol; `cclog serve` in the cli crate only wires it to a listener and signals.
//!
//! # Layout
//! - [`api`]: the router and its handlers.
//! - [`views`]: the JSON of runs, messages, sessions and events.
//! - [`feeds`]: one log reader per followed run, fanning its messages out to every SSE
//!   subscriber.
//! - [`forward`]: commands clients forward to the server (`POST /api/cli`) and the frames
//!   their output streams back in.
//! - [`server`]: binding, token policy, the address advertisement, transcript archiving,
//!   graceful shutdown.

pub mod api;
mod error;
pub mod feeds;
pub mod forward;
pub mod mcp;
pub mod server;
pub mod views;

pub use error::{Error, ErrorBody, ErrorDetail, Result};
