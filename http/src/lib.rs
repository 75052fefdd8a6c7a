//! cclog's network surfaces: the REST API with SSE and its generated OpenAPI document, and
//! the MCP server (rmcp, stdio and Streamable HTTP), so that one crate owns every protocol.
//! It depends on ingest for the services it exposes and on the engine for reads, tails and
//! verification; `cclog serve` in the cli crate only wires it to a listener.
//!
//! Nothing is built here yet: the server arrives with the run-manager and coordinator work
//! (see ARCHITECTURE.md). The crate exists now so that the dependency order is fixed.
