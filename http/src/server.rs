//! `cclog serve`'s server: binds (loopback unless a token is set), marks runs a crash left
//! `running` as interrupted, advertises its address in the data directory so that other
//! `cclog` commands become its clients, keeps archiving Claude Code's transcripts, and on
//! shutdown stops accepting, cancels or finishes runs as configured, and removes the
//! advertisement once everything is durable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cclog_engine::Log;
use cclog_ingest::import::Importer;
use cclog_ingest::runner::{Runner, RunnerConfig};
use serde::{Deserialize, Serialize};

use crate::api::{self, AppState, Closing};
use crate::feeds::Feeds;
use crate::forward::CommandRunner;
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

    fn write(&self, data: &Path) -> Result<()> {
        let path = data.join(ADVERTISEMENT);
        let staging = data.join(format!("{ADVERTISEMENT}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|error| Error::Config(error.to_string()))?;
        let io = |source| Error::Io { context: format!("writing {}", path.display()), source };
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&staging)
                .map_err(io)?;
            file.write_all(&bytes).map_err(io)?;
        }
        std::fs::rename(&staging, &path).map_err(io)
    }
}

/// Keeps the archive of Claude Code's transcripts current: imports the roots every few
/// seconds and whenever a run ends, one import at a time.
pub struct Archiver {
    log: Arc<Log>,
    roots: Vec<PathBuf>,
    busy: tokio::sync::Mutex<()>,
}

impl Archiver {
    pub fn new(log: Arc<Log>, roots: Vec<PathBuf>) -> Archiver {
        Archiver { log, roots, busy: tokio::sync::Mutex::new(()) }
    }

    /// An incremental import of every root, now; problems are logged, never fatal.
    pub async fn import_now(&self) {
        if self.roots.is_empty() {
            return;
        }
        let _busy = self.busy.lock().await;
        let (log, roots) = (Arc::clone(&self.log), self.roots.clone());
        let imported = tokio::task::spawn_blocking(move || {
            let roots: Vec<PathBuf> = roots.into_iter().filter(|root| root.exists()).collect();
            Importer::new(&log).import(&roots, &|_| {})
        })
        .await;
        match imported {
            Ok(Ok(report)) if report.files_changed > 0 => {
                tracing::info!(files = report.files_changed, entries = report.new_entries, "archived transcripts");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "archiving transcripts failed"),
            Err(error) => tracing::warn!(%error, "archiving transcripts panicked"),
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
    pub coordinator: crate::mcp::Identity,
}

/// Serves until `shutdown` resolves, then shuts down gracefully. `ready` is called with the
/// bound address once the server accepts connections.
pub async fn serve(
    log: Arc<Log>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    if !options.addr.ip().is_loopback() && options.token.as_deref().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "refusing to listen on {} without a token: this API runs code on this host. Set --token or CCLOG_TOKEN, or bind 127.0.0.1",
            options.addr
        )));
    }
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
    let (closing, close) = Closing::new();
    let state = AppState {
        log: Arc::clone(&log),
        runner: Arc::clone(&runner),
        archiver,
        token: options.token.clone(),
        commands: options.commands.clone(),
        feeds: Arc::new(Feeds::new(Arc::clone(&log), closing.clone())),
        closing,
        coordinator: Arc::new(options.coordinator.clone()),
    };
    let shutdown = async move {
        shutdown.await;
        close();
    };
    tracing::info!(url = %advertisement.url, "serving");
    ready(bound);
    let served = axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown).await;
    background.abort();
    runner.finish_all(options.cancel_on_shutdown).await;
    let _ = std::fs::remove_file(log.dir().join(ADVERTISEMENT));
    served.map_err(|source| Error::Io { context: "serving".into(), source })
}
