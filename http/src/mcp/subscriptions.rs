//! Resource subscriptions: a client that subscribes to `session://state/{session_id}` or
//! `session://context` gets `notifications/resources/updated` whenever a write changes it —
//! a value stored, deleted or a scope deleted in the instance's scope (state), in any scope
//! of the machine and project, or an instance claimed or released (context).
//!
//! Two ways in, one notifier ([`notify_updates`]) reading [`CoordinatorWrites`]:
//! - protocol revisions up to 2025-11-25: `resources/subscribe` and `resources/unsubscribe`
//!   on a session; the notifications go out on the session's stream (stdio through
//!   `cclog mcp`, which holds that stream open; Streamable HTTP with a session).
//! - 2026-07-28: `subscriptions/listen` with `resourceSubscriptions`; the notifications ride
//!   the listen request's own stream until the client cancels it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use cclog_ingest::coordinator::Identity;
use cclog_ingest::kv_watch::CoordinatorWrites;
use cclog_projections::events::coordinator::{instances_stream, scope_stream};
use tokio::sync::broadcast::error::RecvError;

use super::resources::CONTEXT_URI;

/// The streams whose writes change a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Watched {
    /// `session://state/{id}`: the instance's scope.
    Scope(String),
    /// `session://context`: every scope of the machine and project, and its instance claims.
    Context { scope_prefix: String, instances: String },
}

impl Watched {
    /// What `uri` watches for `identity`; an error for a URI that is not one of ours.
    pub(super) fn of(identity: &Identity, uri: &str) -> Result<Watched, String> {
        if uri == CONTEXT_URI {
            return Ok(Watched::Context {
                scope_prefix: scope_stream(&identity.prefix()),
                instances: instances_stream(&format!("{}:{}", identity.machine, identity.project)),
            });
        }
        let instance = uri.strip_prefix("session://state/").ok_or_else(|| {
            format!("no resource {uri} to subscribe to: use {CONTEXT_URI} or session://state/<session_id>")
        })?;
        Ok(Watched::Scope(scope_stream(&identity.full_scope(instance).map_err(|error| error.to_string())?)))
    }

    fn changed_by(&self, stream: &str) -> bool {
        match self {
            Watched::Scope(scope) => stream == scope,
            Watched::Context { scope_prefix, instances } => stream.starts_with(scope_prefix) || stream == instances,
        }
    }
}

/// The resources one connection subscribes to, by URI.
pub(super) type Subscribed = Arc<Mutex<BTreeMap<String, Watched>>>;

/// Sends `send(uri)` for each subscribed resource a coordinator write changes, until
/// `send` answers false (the client has gone) or the log closes. A watcher that fell behind
/// tells every subscribed resource: one of them may have changed.
pub(super) async fn notify_updates<F, Fut>(writes: Arc<CoordinatorWrites>, subscribed: Subscribed, mut send: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut receiver = writes.watch();
    loop {
        let changed: Vec<String> = {
            let written = receiver.recv().await;
            let subscribed = subscribed.lock().unwrap_or_else(PoisonError::into_inner);
            match written {
                Ok(write) => subscribed
                    .iter()
                    .filter(|(_, watched)| watched.changed_by(&write.stream))
                    .map(|(uri, _)| uri.clone())
                    .collect(),
                Err(RecvError::Lagged(_)) => subscribed.keys().cloned().collect(),
                Err(RecvError::Closed) => return,
            }
        };
        for uri in changed {
            if !send(uri).await {
                return;
            }
        }
    }
}
