//! Accepting connections so that slow or idle clients cannot take the server down: a cap on
//! concurrent connections (below the process's descriptor limit, so `accept` never runs out
//! and the log, its projections and Claude Code's pipes always have descriptors left), and
//! a header-read timeout that closes both a client that trickles its request head
//! (slowloris) and a keep-alive connection that sends nothing. HTTP/1.1, as every client of
//! this API speaks it. A graceful shutdown stops accepting, closes idle connections at once
//! and waits for the requests in flight.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Descriptors kept back from the connection cap: sled's files, the runtime's, standard
/// streams, Claude Code runs' pipes and the transcript files an import has open.
pub const RESERVED_DESCRIPTORS: usize = 48;

/// How the server treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection that has not sent a whole request head this long after it opened (or
    /// after its previous answer) is closed.
    pub header_timeout: Duration,
    /// The most connections served at once; more wait in the listen queue. `None`: the
    /// descriptor limit less [`RESERVED_DESCRIPTORS`].
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { header_timeout: Duration::from_secs(10), max_connections: None }
    }
}

impl ConnectionLimits {
    /// The cap in force: the configured one, else what the descriptor limit leaves. The soft
    /// limit is raised to the hard one first, as servers do, so a low default does not cap
    /// a machine that allows more.
    pub fn connection_cap(&self) -> usize {
        if let Some(max) = self.max_connections {
            return max.max(1);
        }
        let descriptors = raise_descriptor_limit();
        descriptors.saturating_sub(RESERVED_DESCRIPTORS).clamp(8, 65_536)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and returns the soft limit now in force.
fn raise_descriptor_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// How many connections are open, and since when none has been.
#[derive(Debug)]
pub struct Activity {
    open: std::sync::Mutex<(usize, std::time::Instant)>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { open: std::sync::Mutex::new((0, std::time::Instant::now())) }
    }
}

impl Activity {
    fn opened(&self) {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0 += 1;
    }

    fn closed(&self) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if open.0 == 0 {
            open.1 = std::time::Instant::now();
        }
    }

    /// How long no connection has been open; `None` while one is.
    pub fn quiet_for(&self) -> Option<Duration> {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (open.0 == 0).then(|| open.1.elapsed())
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then shuts down gracefully;
/// `activity` counts the open connections.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let cap = limits.connection_cap();
    tracing::debug!(connections = cap, header_timeout = ?limits.header_timeout, "accepting connections");
    let permits = Arc::new(Semaphore::new(cap));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors or a connection reset before it was accepted: wait a
                // moment rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        activity.opened();
        let activity = Arc::clone(&activity);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
            activity.closed();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
