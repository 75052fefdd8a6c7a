//! Appends that wait out a refusal that passes. A run cannot be asked to print again what
//! Claude Code printed: a message the log refuses is lost unless it is kept and submitted
//! again. So a run is recorded through a [`PatientAppender`]: while the log refuses for a
//! reason that passes (a full disk, a failed write the server is reopening —
//! [`cclog_engine::Error::is_refusal_that_passes`]: nothing of the batch was acknowledged),
//! it keeps the batches it holds, stops taking new ones — so the run's reader stops reading
//! the CLI's output, the CLI waits on its pipe, and the run pauses — and once
//! [`Log::health`] says the log takes appends again it submits them again, in their order.
//! It gives up with the refusal only after [`PATIENCE`]. [`append_blocking`] is the same for
//! a thread outside the runtime (`cclog capture`), which also reopens a failed log itself,
//! since no server does it for that process.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cclog_engine::{AppendChain, Health, Log, NewEvent, PendingAppend};

use crate::Result;

/// How long a refusal is waited out before the append fails.
pub const PATIENCE: Duration = Duration::from_secs(600);
/// How often the log's health is asked while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Submits batches in order, keeping up to `depth` of them waiting for durability at once,
/// and submits again whatever the log refused for a reason that passes.
pub struct PatientAppender {
    log: Arc<Log>,
    /// What is being recorded, for the log lines ("run 1f3a…").
    what: String,
    depth: usize,
    /// Batches submitted as one chain: once one is refused, the later ones are too, so
    /// they can all go again in order.
    chain: AppendChain,
    in_flight: VecDeque<(Vec<NewEvent>, PendingAppend)>,
    /// When the refusal being waited out began.
    refused_since: Option<Instant>,
}

impl PatientAppender {
    pub fn new(log: Arc<Log>, what: impl Into<String>, depth: usize) -> PatientAppender {
        PatientAppender {
            log,
            what: what.into(),
            depth,
            chain: AppendChain::default(),
            in_flight: VecDeque::new(),
            refused_since: None,
        }
    }

    /// Submits a batch; returns once no more than `depth` batches await durability.
    pub async fn push(&mut self, events: Vec<NewEvent>) -> Result<()> {
        let pending = self.log.submit_in(&self.chain, events.clone()).await?;
        self.in_flight.push_back((events, pending));
        while self.in_flight.len() > self.depth {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Returns once every batch pushed is durable.
    pub async fn finish(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Appends one batch, waiting out a refusal that passes.
    pub async fn append(log: Arc<Log>, what: impl Into<String>, events: Vec<NewEvent>) -> Result<()> {
        let mut appender = PatientAppender::new(log, what, 0);
        appender.push(events).await?;
        appender.finish().await
    }

    async fn settle_oldest(&mut self) -> Result<()> {
        let Some((events, pending)) = self.in_flight.pop_front() else { return Ok(()) };
        let refusal = match pending.wait().await {
            Ok(_) => {
                self.refused_since = None;
                return Ok(());
            }
            Err(error) if error.is_refusal_that_passes() => error,
            Err(error) => return Err(error.into()),
        };
        // Every later batch of the chain was refused too; all of them go again, in order.
        let mut again = vec![events];
        for (events, pending) in std::mem::take(&mut self.in_flight) {
            if pending.wait().await.is_err() {
                again.push(events);
            }
        }
        let since = *self.refused_since.get_or_insert_with(Instant::now);
        tracing::warn!(what = %self.what, reason = %refusal, "the log refused appends; pausing until it takes them again");
        // At least one pause, so that a refusal the health check does not foresee is not
        // retried in a tight loop.
        tokio::time::sleep(POLL).await;
        while self.log.health() != Health::Ok {
            if since.elapsed() > PATIENCE {
                return Err(refusal.into());
            }
            tokio::time::sleep(POLL).await;
        }
        tracing::info!(what = %self.what, batches = again.len(), "the log takes appends again; resuming");
        self.chain = AppendChain::default();
        for events in again {
            let pending = self.log.submit_in(&self.chain, events.clone()).await?;
            self.in_flight.push_back((events, pending));
        }
        Ok(())
    }
}

/// Appends one batch from a thread outside an async runtime, waiting out a refusal that
/// passes (at most [`PATIENCE`]); while waiting, a failed log is reopened
/// ([`Log::reopen`]) once the disk takes writes again. `paused` is told once, with the
/// refusal, when the wait begins.
pub fn append_blocking(log: &Log, events: Vec<NewEvent>, paused: &mut dyn FnMut(&cclog_engine::Error)) -> Result<()> {
    let mut since: Option<Instant> = None;
    loop {
        let refusal = match log.append_blocking(events.clone()) {
            Ok(_) => return Ok(()),
            Err(error) if error.is_refusal_that_passes() => error,
            Err(error) => return Err(error.into()),
        };
        if since.is_none() {
            paused(&refusal);
        }
        let since = *since.get_or_insert_with(Instant::now);
        loop {
            if since.elapsed() > PATIENCE {
                return Err(refusal.into());
            }
            std::thread::sleep(POLL);
            match log.health() {
                Health::Ok => break,
                Health::Failed(_) => {
                    // Refused while the disk still fails; the next round tries again.
                    let _ = log.reopen();
                }
                _ => {}
            }
        }
    }
}
