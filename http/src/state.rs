//! What every handler shares: the log, the runner, the archiver, who may call, the
//! commands clients forward, the shutdown signal, the run feeds, the coordinator's
//! scope writes and its identity. Cloning it clones handles, never the things they point at.

use std::sync::Arc;

use cclog_engine::Log;
use cclog_ingest::archiver::Archiver;
use cclog_ingest::coordinator::Identity;
use cclog_ingest::kv_watch::CoordinatorWrites;
use cclog_ingest::runner::Runner;
use cclog_projections::pricing::PriceTable;

use crate::auth::AccessPolicy;
use crate::feeds::Feeds;
use crate::forward::CommandRunner;
use crate::shutdown::Closing;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<Log>,
    pub runner: Arc<Runner>,
    pub archiver: Arc<Archiver>,
    /// Which hosts, origins and token the server accepts.
    pub access: Arc<AccessPolicy>,
    /// Runs the commands clients forward (`POST /api/cli`); `None`: this server does not.
    pub commands: Option<CommandRunner>,
    /// Turns true when the server shuts down: streams end, forwarded commands stop.
    pub closing: Closing,
    /// One log reader per followed run, fanning its messages out.
    pub feeds: Arc<Feeds>,
    /// The one log reader that tells coordinator waiters and watchers which scopes are written.
    pub coordinator_writes: Arc<CoordinatorWrites>,
    /// The machine and project the MCP coordinator at `/mcp` serves.
    pub coordinator: Arc<Identity>,
    /// A request body that sends nothing for this long is abandoned (the header timeout's
    /// counterpart once the head is in).
    pub body_idle_timeout: std::time::Duration,
    /// The price table costs are computed from (`--pricing`).
    pub prices: Arc<PriceTable>,
    /// The `cclog` binary a team's tmux windows run (`cclog team attach`).
    pub cclog_bin: Arc<std::path::PathBuf>,
    /// A plan's session TTL when the plan names none.
    pub plan_ttl: std::time::Duration,
}
