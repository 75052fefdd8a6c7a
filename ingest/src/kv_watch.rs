//! Waiting for the coordinator's keys to change. One task reads the log's new events and
//! tells everyone watching which of the coordinator's streams — a scope's, or a project's
//! instance claims — was written ([`CoordinatorWrites`]); a waiter
//! ([`CoordinatorWrites::wait_for_change`]) joins first, then reads the key's state, and reads it
//! again on each write to its scope and when the value it saw expires — so it can miss
//! nothing, and it never takes the coordinator's write lock or the log's writer: a hundred
//! waiters cost a writer nothing but the one reader task. A write names its key, so a waiter
//! reads again only when its own key (or its whole scope) was written.
//!
//! The reader starts with the first watcher and stops when the last one has gone. A watcher
//! that falls behind its buffer just reads the key again: the projection, not the
//! notification, is what a waiter believes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cclog_engine::Log;
use tokio::sync::broadcast;

use cclog_projections::events::coordinator::{scope_stream, KeyWrite, KIND_KV_DELETE, KIND_KV_SET};

use crate::coordinator::{now_us, ChangeReason, KvStore, Version, Watched};
use crate::{Error, Result};

/// The longest a wait may last: five minutes.
pub const MAX_WAIT_SECONDS: f64 = 300.0;

/// Scope writes a watcher may fall behind by before it re-reads instead.
const WRITES_BUFFER: usize = 1024;

/// How long a waiter waits: 0 (only look) to [`MAX_WAIT_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeout(Duration);

impl WaitTimeout {
    /// A timeout of `seconds`, refused outside the limits with a message that names them.
    pub fn seconds(seconds: f64) -> Result<WaitTimeout> {
        if !(0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
            return Err(Error::InvalidKv(format!(
                "a timeout of {seconds} seconds is out of range: give 0 to {MAX_WAIT_SECONDS} seconds \
                 (wait again with the version you got to wait longer)"
            )));
        }
        Ok(WaitTimeout(Duration::from_secs_f64(seconds)))
    }
}

/// A write recorded on one of the coordinator's streams: `scope/<scope>` or
/// `instances/<machine>:<project>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorWrite {
    pub seq: u64,
    pub stream: String,
    /// The key a `kv.set` or `kv.delete` wrote; `None` for a scope deletion or a claim,
    /// which may change any key.
    pub key: Option<String>,
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Waited {
    /// `None`: the timeout came first.
    pub reason: Option<ChangeReason>,
    /// The key's version now (0: never written).
    pub version: u64,
    /// The version that changed it; at a timeout, the value the key holds, if any.
    pub current: Option<Version>,
}

/// The one log reader that tells watchers which of the coordinator's streams were written.
pub struct CoordinatorWrites {
    log: Arc<Log>,
    feed: Mutex<Option<broadcast::Sender<Arc<CoordinatorWrite>>>>,
}

impl CoordinatorWrites {
    pub fn new(log: Arc<Log>) -> Arc<CoordinatorWrites> {
        Arc::new(CoordinatorWrites { log, feed: Mutex::new(None) })
    }

    /// Every coordinator write that becomes durable from now on, starting the reader if nobody
    /// watches yet. Must be called from within a Tokio runtime.
    pub fn watch(self: &Arc<Self>) -> broadcast::Receiver<Arc<CoordinatorWrite>> {
        let mut feed = self.feed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = feed.as_ref() {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(WRITES_BUFFER);
        *feed = Some(sender.clone());
        // Every event from here on; the watcher reads the state of what came before.
        let subscription = self.log.subscribe(self.log.len());
        tokio::spawn(Arc::clone(self).pump(subscription, sender));
        receiver
    }

    async fn pump(
        self: Arc<Self>,
        mut subscription: cclog_engine::Subscription,
        sender: broadcast::Sender<Arc<CoordinatorWrite>>,
    ) {
        // Until the log closes, or nobody watches any more.
        while let Ok(event) = subscription.next().await {
            if !event.stream().starts_with("scope/") && !event.stream().starts_with("instances/") {
                continue;
            }
            let key = match event.kind() {
                KIND_KV_SET | KIND_KV_DELETE => KeyWrite::decode(&event.payload).ok().map(|write| write.key),
                _ => None,
            };
            let write = Arc::new(CoordinatorWrite { seq: event.seq(), stream: event.stream().to_string(), key });
            if sender.send(write).is_err() && self.stop(&sender, true) {
                return;
            }
        }
        // Dropping the last sender tells the watchers the log has closed.
        self.stop(&sender, false);
    }

    /// Forgets the reader — only if nobody watches, when `if_unwatched` (checked under the
    /// lock new watchers take); whether it did.
    fn stop(&self, sender: &broadcast::Sender<Arc<CoordinatorWrite>>, if_unwatched: bool) -> bool {
        let mut feed = self.feed.lock().unwrap_or_else(PoisonError::into_inner);
        if if_unwatched && sender.receiver_count() > 0 {
            return false;
        }
        if feed.as_ref().is_some_and(|current| current.same_channel(sender)) {
            *feed = None;
        }
        true
    }

    /// Waits until `key` of `scope` has a version above `after_version` (or is deleted, or
    /// the value at `after_version` expires), or `timeout` passes. Without `after_version`,
    /// waits for the next change from now.
    pub async fn wait_for_change(
        self: &Arc<Self>,
        scope: &str,
        key: &str,
        after_version: Option<u64>,
        timeout: WaitTimeout,
    ) -> Result<Waited> {
        let deadline = tokio::time::Instant::now() + timeout.0;
        // Join first, then read: a write after the read is then always heard.
        let mut writes = self.watch();
        // Where the wait starts, and the first look, in one read.
        let (after, expiry_counts, mut watched) = self
            .read(scope, key, move |store, scope, key| {
                let now = now_us();
                let (after, expiry_counts) = match after_version {
                    Some(version) => (version, true),
                    None => store.watch_from(scope, key, now)?,
                };
                Ok((after, expiry_counts, store.watched(scope, key, after, expiry_counts, now)?))
            })
            .await?;
        let stream = scope_stream(scope);
        let mut log_closed = false;
        loop {
            let expires_us = match watched {
                Watched::Changed { reason, version } => {
                    return Ok(Waited { reason: Some(reason), version: version.version, current: Some(version) })
                }
                Watched::Unchanged { expires_us } => expires_us,
            };
            if log_closed || tokio::time::Instant::now() >= deadline {
                let (version, current) = self
                    .read(scope, key, |store, scope, key| {
                        Ok((store.watch_from(scope, key, now_us())?.0, store.retrieve(scope, key, None)?))
                    })
                    .await?;
                return Ok(Waited { reason: None, version, current });
            }
            // Look again at the deadline, when the value seen expires, or on a write to the scope.
            let wake = expires_us.map_or(deadline, |expires| {
                deadline.min(tokio::time::Instant::now() + Duration::from_micros(expires.saturating_sub(now_us())))
            });
            loop {
                tokio::select! {
                    written = writes.recv() => match written {
                        // Another scope, or another key of this one: nothing to read again.
                        Ok(write) if write.stream != stream || write.key.as_deref().is_some_and(|written| written != key) => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        // The log closed (the server stops): answer with what it holds.
                        Err(broadcast::error::RecvError::Closed) => {
                            log_closed = true;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(wake) => break,
                }
            }
            watched = self
                .read(scope, key, move |store, scope, key| store.watched(scope, key, after, expiry_counts, now_us()))
                .await?;
        }
    }

    /// Runs one read of the store on a blocking thread (a version's event may be a moment
    /// from durable).
    async fn read<T: Send + 'static>(
        &self,
        scope: &str,
        key: &str,
        read: impl FnOnce(&KvStore<'_>, &str, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (log, scope, key) = (Arc::clone(&self.log), scope.to_string(), key.to_string());
        tokio::task::spawn_blocking(move || read(&KvStore::new(&log), &scope, &key))
            .await
            .map_err(|error| Error::InvalidKv(format!("reading the key failed: {error}")))?
    }
}
