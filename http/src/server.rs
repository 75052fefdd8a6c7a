//! `cclog serve`'s server: binds (loopback unless a token is set), marks runs a crash left
//! `running` as interrupted, advertises its address in the data directory so that other
//! `cclog` commands become its clients, keeps archiving Claude Code's transcripts, and on
//! shutdown stops accepting, cancels or finishes runs as configured, and removes the
//! advertisement once everything is durable. When a write fails and the log stops taking
//! appends, it reopens the log every [`REOPEN_INTERVAL`] until that works (the fault
//! cleared: space freed, the device back), so the server recovers without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cclog_engine::Log;
use cclog_ingest::archiver::Archiver;
use cclog_ingest::coordinator::Identity;
use cclog_ingest::runner::{Runner, RunnerConfig};
use cclog_projections::pricing::PriceTable;
use serde::{Deserialize, Serialize};

use crate::auth::{AccessPolicy, MIN_TOKEN_LEN};
use crate::connections::{serve_connections, Activity, ConnectionLimits};
use crate::feeds::Feeds;
use crate::forward::CommandRunner;
use crate::shutdown::Closing;
use crate::state::AppState;
use crate::{Error, Result};

/// The file in the data directory that names the running server.
pub const ADVERTISEMENT: &str = "server.json";

/// What `server.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advertisement {
    /// `http://host:port`.
    pub url: String,
    pub pid: u32,
    /// The bearer token, when the server requires one (the file is readable by its owner only).
    pub token: Option<String>,
}

impl Advertisement {
    /// The server advertised in `data`, if the file is there and readable.
    pub fn read(data: &Path) -> Option<Advertisement> {
        let bytes = std::fs::read(data.join(ADVERTISEMENT)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes `server.json` readable by its owner only, whatever was there before: the
    /// staging file is made anew (a stale one, of any mode, is removed first), set to 0600,
    /// written, synced and renamed over the old advertisement.
    fn write(&self, data: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = data.join(ADVERTISEMENT);
        let staging = data.join(format!("{ADVERTISEMENT}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|error| Error::Internal(error.to_string()))?;
        let io = |source| Error::Io { context: format!("writing {}", path.display()), source };
        match std::fs::remove_file(&staging) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(io(error)),
            _ => {}
        }
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staging).map_err(io)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(io)?;
        drop(file);
        std::fs::rename(&staging, &path).map_err(io)
    }
}

/// How soon a failed log is first reopened; each failed attempt doubles the wait, up to
/// [`REOPEN_INTERVAL_MAX`].
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);
pub const REOPEN_INTERVAL_MAX: Duration = Duration::from_secs(30);

/// Reopens the log whenever a write has failed ([`cclog_engine::Log::reopen`]: once the disk
/// takes writes again, cut back to the last acknowledged event, the tail verified again),
/// retrying with a doubling wait; says once per distinct reason why an attempt failed.
async fn reopen_failed_log(log: Arc<Log>) {
    let mut last_failure = None;
    let mut wait = REOPEN_INTERVAL;
    loop {
        tokio::time::sleep(wait).await;
        if !matches!(log.health(), cclog_engine::Health::Failed(_)) {
            continue;
        }
        let reopening = Arc::clone(&log);
        match tokio::task::spawn_blocking(move || reopening.reopen()).await {
            Ok(Ok(Some(recovery))) => {
                tracing::warn!(recovery = %recovery.describe(), "reopened the log after a failed write");
                last_failure = None;
                wait = REOPEN_INTERVAL;
            }
            Ok(Ok(None)) => wait = REOPEN_INTERVAL,
            Ok(Err(error)) => {
                wait = (wait * 2).min(REOPEN_INTERVAL_MAX);
                let failure = error.to_string();
                if last_failure.as_ref() != Some(&failure) {
                    tracing::warn!(error = %failure, "the log cannot be reopened yet; retrying");
                    last_failure = Some(failure);
                }
            }
            Err(panicked) => tracing::error!(error = %panicked, "reopening the log panicked"),
        }
    }
}

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub token: Option<String>,
    /// Transcript directories to keep archiving (empty: none).
    pub archive_roots: Vec<PathBuf>,
    pub archive_interval: Duration,
    /// On shutdown, cancel active runs (true) or let them finish (false).
    pub cancel_on_shutdown: bool,
    pub runner: RunnerConfig,
    /// Runs the commands `cclog` clients forward while this server owns the directory.
    pub commands: Option<CommandRunner>,
    /// The machine and project of the MCP coordinator at `/mcp`.
    pub coordinator: Identity,
    /// Host names besides the loopback ones and the bound address that requests may be
    /// addressed to (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// Browser origins besides the server's own that may call it, with CORS
    /// (`--allow-origin`).
    pub allowed_origins: Vec<String>,
    pub limits: ConnectionLimits,
    /// The price table of the API's costs.
    pub prices: Arc<PriceTable>,
    /// The `cclog` binary a team's tmux windows run (`cclog team attach`).
    pub cclog_bin: PathBuf,
    /// A plan's session TTL when the plan names none (`--plan-ttl`).
    pub plan_ttl: Duration,
    /// Shut down once no connection has been open and no run active this long
    /// (`--idle-exit`); `None`: serve until stopped.
    pub idle_exit: Option<Duration>,
}

/// Serves until `shutdown` resolves, then shuts down gracefully. `ready` is called with the
/// bound address once the server accepts connections.
pub async fn serve(
    log: Arc<Log>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    check_token_policy(options.addr, options.token.as_deref())?;
    let runner = Runner::new(Arc::clone(&log), options.runner.clone());
    let recovered = runner.recover().await?;
    if !recovered.is_empty() {
        tracing::warn!(runs = ?recovered, "marked runs left running by a previous process as interrupted");
    }
    let archiver = Arc::new(Archiver::new(Arc::clone(&log), options.archive_roots.clone()));
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| Error::Io { context: format!("binding {}", options.addr), source })?;
    let bound = listener.local_addr().map_err(|source| Error::Io { context: "local address".into(), source })?;
    let advertisement =
        Advertisement { url: format!("http://{bound}"), pid: std::process::id(), token: options.token.clone() };
    advertisement.write(log.dir())?;

    let background = {
        let archiver = Arc::clone(&archiver);
        let interval = options.archive_interval;
        tokio::spawn(async move {
            loop {
                archiver.import_now().await;
                tokio::time::sleep(interval).await;
            }
        })
    };
    let reopener = tokio::spawn(reopen_failed_log(Arc::clone(&log)));
    let (closing, close) = Closing::new();
    let access = AccessPolicy::new(bound, &options.allowed_hosts, &options.allowed_origins, options.token.clone());
    let state = AppState {
        log: Arc::clone(&log),
        runner: Arc::clone(&runner),
        archiver,
        access: Arc::new(access),
        commands: options.commands.clone(),
        feeds: Arc::new(Feeds::new(Arc::clone(&log), closing.clone())),
        closing,
        coordinator_writes: cclog_ingest::kv_watch::CoordinatorWrites::new(Arc::clone(&log)),
        coordinator: Arc::new(options.coordinator.clone()),
        body_idle_timeout: options.limits.header_timeout,
        prices: Arc::clone(&options.prices),
        cclog_bin: Arc::new(options.cclog_bin.clone()),
        plan_ttl: options.plan_ttl,
    };
    let activity = Arc::new(Activity::default());
    let idle = until_idle(options.idle_exit, Arc::clone(&activity), Arc::clone(&runner));
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            () = idle => {}
        }
        close();
    };
    tracing::info!(url = %advertisement.url, "serving");
    ready(bound);
    serve_connections(listener, crate::app::app(state), options.limits, activity, shutdown).await;
    background.abort();
    reopener.abort();
    runner.finish_all(options.cancel_on_shutdown).await;
    let _ = std::fs::remove_file(log.dir().join(ADVERTISEMENT));
    Ok(())
}

/// Resolves once the server has had no open connection and no active run for `after`;
/// never without it.
async fn until_idle(after: Option<Duration>, activity: Arc<Activity>, runner: Arc<Runner>) {
    let Some(after) = after else { return std::future::pending().await };
    // A run keeps the server busy too: its end restarts the quiet period.
    let mut busy_until = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(after.min(Duration::from_secs(5))).await;
        if !runner.active_ids().is_empty() {
            busy_until = tokio::time::Instant::now();
            continue;
        }
        let quiet_for = activity.quiet_for().unwrap_or_default().min(busy_until.elapsed());
        if quiet_for >= after {
            tracing::info!(idle = %humantime::format_duration(after), "no client and no run for the idle period; exiting");
            return;
        }
    }
}

/// A server off loopback must have a token, and one long enough not to be guessed.
fn check_token_policy(addr: SocketAddr, token: Option<&str>) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    match token.filter(|token| !token.is_empty()) {
        None => Err(Error::Config(format!(
            "refusing to listen on {addr} without a token: this API runs code on this host. Set CCLOG_TOKEN or \
             --token-file, or bind 127.0.0.1"
        ))),
        Some(token) if token.len() < MIN_TOKEN_LEN => Err(Error::Config(format!(
            "refusing to listen on {addr} with a token of {} bytes: off loopback it must be at least \
             {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
            token.len()
        ))),
        Some(_) => Ok(()),
    }
}
