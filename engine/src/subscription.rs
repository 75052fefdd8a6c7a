//! Tail subscriptions. A subscriber keeps its own cursor and reads events from the store;
//! the writer only publishes the new durable head through a `watch` channel, which never
//! blocks and keeps only the latest value. A slow subscriber therefore cannot hold up the
//! writer, and it never misses an event either: it reads what it has not seen yet from the
//! log itself.

use std::sync::Arc;

use tokio::sync::watch;

use crate::store::{Head, Store};
use crate::{Error, Event, Result};

/// Yields every durable event from a starting seq on, waiting for new ones at the end.
pub struct Subscription {
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
            if self.head.changed().await.is_err() {
                // The writer is gone; deliver whatever became durable before it went.
                return self.try_next()?.ok_or(Error::Closed);
            }
        }
    }

    /// The next event if it is already durable.
    pub fn try_next(&mut self) -> Result<Option<Event>> {
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
