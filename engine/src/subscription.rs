//! Tail subscriptions. A subscriber keeps its own cursor and reads events from the store;
//! the writer only publishes the new durable head through a `watch` channel, which never
//! blocks and keeps only the latest value. A slow subscriber therefore cannot hold up the
//! writer, and it never misses an event either: it reads what it has not seen yet from the
//! log itself. When [`crate::Log::reopen`] replaces the store after a failed write, the
//! old head channel closes and the subscription moves to the new store, at the same cursor
//! — every event it delivered was acknowledged, so the reopened log still holds it.

use std::sync::{Arc, Weak};

use tokio::sync::watch;

use crate::store::{Head, Store};
use crate::{Error, Event, Result};

/// Yields every durable event from a starting seq on, waiting for new ones at the end.
pub struct Subscription {
    pub(crate) log: Weak<crate::log::Shared>,
    pub(crate) store: Arc<Store>,
    pub(crate) head: watch::Receiver<Option<Head>>,
    pub(crate) next: u64,
}

impl Subscription {
    /// The seq of the event the next call returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next event, waiting until it is durable. Fails with [`Error::Closed`] once the
    /// log has been closed and every durable event was delivered.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(event) = self.try_next()? {
                return Ok(event);
            }
            if self.head.changed().await.is_err() && !self.follow_reopen() {
                // The writer is gone; deliver whatever became durable before it went.
                return self.try_next()?.ok_or(Error::Closed);
            }
        }
    }

    /// Moves to the log's current store if it was reopened since; says whether it did.
    fn follow_reopen(&mut self) -> bool {
        let Some(shared) = self.log.upgrade() else { return false };
        let current = shared.current();
        if Arc::ptr_eq(&current.store, &self.store) {
            return false;
        }
        self.store = Arc::clone(&current.store);
        self.head = current.head.clone();
        true
    }

    /// The next event if it is already durable.
    pub fn try_next(&mut self) -> Result<Option<Event>> {
        match self.read_next() {
            // A store fenced by a reopen reads nothing: try again on the new one.
            Err(_) if self.follow_reopen() => self.read_next(),
            read => read,
        }
    }

    fn read_next(&mut self) -> Result<Option<Event>> {
        let head = *self.head.borrow_and_update();
        match head {
            Some(head) if self.next <= head.seq => {
                let event = self.store.read_event(self.next)?.ok_or_else(|| Error::Corruption {
                    at: Some(self.next),
                    detail: "a durable event is missing".into(),
                })?;
                self.next += 1;
                Ok(Some(event))
            }
            _ => Ok(None),
        }
    }
}
