//! The server's shutdown signal as the long-lived answers see it. A graceful shutdown waits
//! for open connections; event streams and forwarded commands would keep theirs open
//! forever, so they watch [`Closing`] and end when it fires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Tells long-lived answers (event streams, forwarded commands) that the server is shutting
/// down, so that a graceful shutdown does not wait for them forever.
#[derive(Clone)]
pub struct Closing {
    signal: tokio::sync::watch::Receiver<bool>,
    /// The stop flags of forwarded commands still running.
    commands: Arc<Mutex<Vec<Weak<AtomicBool>>>>,
}

impl Closing {
    /// A closing signal, and what fires it.
    pub fn new() -> (Closing, impl FnOnce()) {
        let (sender, signal) = tokio::sync::watch::channel(false);
        let closing = Closing { signal, commands: Arc::default() };
        let commands = Arc::clone(&closing.commands);
        let fire = move || {
            let _ = sender.send(true);
            let commands = commands.lock().unwrap_or_else(PoisonError::into_inner);
            for stop in commands.iter().filter_map(Weak::upgrade) {
                stop.store(true, Ordering::Relaxed);
            }
        };
        (closing, fire)
    }

    /// Resolves once the server is shutting down.
    pub async fn closed(&self) {
        let mut signal = self.signal.clone();
        let _ = signal.wait_for(|closing| *closing).await;
    }

    /// `next`'s output, or `None` once the server is shutting down.
    pub async fn until_closed<T>(&self, next: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            value = next => Some(value),
            () = self.closed() => None,
        }
    }

    /// A stop flag for a forwarded command, set when the server shuts down.
    pub fn command_stop(&self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(*self.signal.borrow()));
        let mut commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        commands.retain(|stop| stop.strong_count() > 0);
        commands.push(Arc::downgrade(&stop));
        stop
    }
}
