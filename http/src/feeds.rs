//! Live run feeds: however many clients follow a run (`GET /api/runs/:id/stream`), one task
//! reads the log for it and turns each new message into its JSON once; the subscribers get
//! that same text. A hundred followers then cost the recording little more than one.
//!
//! A feed only carries what became durable after it started. A subscriber therefore joins
//! the feed first, then reads the run's recorded messages up to the durable head, then takes
//! feed items past the last one it read — no gap, no repeat. A subscriber that falls behind
//! the feed's buffer catches up from the log the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cclog_engine::Log;
use cclog_projections::archive::Archive;
use cclog_projections::events;
use cclog_projections::messages::PagedMessage;
use tokio::sync::broadcast;

use crate::shutdown::Closing;
use crate::views::Message;

/// Items a feed may hold before its slowest subscriber must catch up from the log.
const FEED_BUFFER: usize = 1024;

/// One item of a run's feed.
#[derive(Debug)]
pub enum FeedItem {
    /// A recorded message, as the JSON of [`Message`].
    Message { index: u64, seq: u64, json: String },
    /// The run has ended.
    End,
}

/// The runs being followed, each with the one task that feeds it.
pub struct Feeds {
    log: Arc<Log>,
    closing: Closing,
    runs: Mutex<HashMap<String, broadcast::Sender<Arc<FeedItem>>>>,
}

impl Feeds {
    pub fn new(log: Arc<Log>, closing: Closing) -> Feeds {
        Feeds { log, closing, runs: Mutex::new(HashMap::new()) }
    }

    /// Joins the feed of `run`, starting it when nobody follows the run yet.
    pub fn follow(self: &Arc<Self>, run: &str) -> broadcast::Receiver<Arc<FeedItem>> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(feed) = runs.get(run) {
            return feed.subscribe();
        }
        let (feed, receiver) = broadcast::channel(FEED_BUFFER);
        runs.insert(run.to_string(), feed.clone());
        tokio::spawn(Arc::clone(self).pump(run.to_string(), feed));
        receiver
    }

    /// Reads the run's new events from the log until it ends, nobody follows it any more,
    /// or the server shuts down.
    async fn pump(self: Arc<Self>, run: String, feed: broadcast::Sender<Arc<FeedItem>>) {
        let stream = events::run_stream(&run);
        let from = self.log.len();
        let (log, counted) = (Arc::clone(&self.log), run.clone());
        // How many of the run's messages are durable already: a range read of its index,
        // on a blocking thread.
        let mut next_index = crate::blocking::blocking(move || {
            Archive::run_message_seqs(&log, &counted, 0, usize::MAX)
                .map(|seqs| seqs.iter().filter(|(_, seq)| *seq < from).count() as u64)
        })
        .await
        .unwrap_or(0);
        let mut subscription = self.log.subscribe(from);
        if Archive::run(&self.log, &run).ok().flatten().is_some_and(|record| !record.is_active()) {
            // Nothing more will come: followers read the rest from the log.
            let _ = feed.send(Arc::new(FeedItem::End));
            self.remove(&run, &feed);
            return;
        }
        loop {
            let event = tokio::select! {
                event = subscription.next() => event,
                () = self.closing.closed() => break,
            };
            let Ok(event) = event else { break };
            if event.stream() != stream {
                continue;
            }
            let item = match event.kind() {
                events::KIND_RUN_MESSAGE => {
                    let (index, seq) = (next_index, event.seq());
                    next_index += 1;
                    let paged = PagedMessage { index, origin: seq, event, run: Some(run.clone()), rebuilt: None };
                    let message = Message::from_paged(&paged);
                    let json = serde_json::to_string(&message).unwrap_or_else(|_| "null".into());
                    FeedItem::Message { index, seq, json }
                }
                events::KIND_RUN_ENDED => FeedItem::End,
                _ => continue,
            };
            let ended = matches!(item, FeedItem::End);
            if (feed.send(Arc::new(item)).is_err() && self.stop_if_unfollowed(&run, &feed)) || ended {
                break;
            }
        }
        self.remove(&run, &feed);
    }

    /// Removes the feed if nobody follows it (checked under the lock new followers take).
    fn stop_if_unfollowed(&self, run: &str, feed: &broadcast::Sender<Arc<FeedItem>>) -> bool {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if feed.receiver_count() > 0 {
            return false;
        }
        if runs.get(run).is_some_and(|current| current.same_channel(feed)) {
            runs.remove(run);
        }
        true
    }

    fn remove(&self, run: &str, feed: &broadcast::Sender<Arc<FeedItem>>) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if runs.get(run).is_some_and(|current| current.same_channel(feed)) {
            runs.remove(run);
        }
    }
}
