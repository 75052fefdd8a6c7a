//! The writer: the one task that owns the head, assigns seqs, chains hashes and writes.
//! Appenders on any number of tasks send requests over a channel; the writer takes every
//! request waiting at that moment, stages them into one sled transaction (events, stream
//! index, projection updates, head), flushes sled, fsyncs its files once, and only then
//! answers each appender. While it syncs, new requests queue up and form the next group:
//! that is group commit, one fsync serving every append that was waiting.
//!
//! Commit sequence and what a crash at each point leaves:
//! 1. stage: seqs, hashes and projection writes in memory — nothing on disk.
//! 2. sled transaction — in sled's buffers; lost on a crash, atomically (all or nothing).
//! 3. `Db::flush` — written with `pwrite` + `sync_file_range`; may be lost on power loss.
//! 4. `DurableFiles::sync` (fdatasync) — durable. A crash after this keeps the whole group.
//! 5. head anchor written, subscribers woken, appenders answered.
//!
//! A failure in 2–4 poisons the writer: it can no longer tell what is durable, so every
//! later append fails until the log is reopened (and recovery decides).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sled::Transactional;
use tokio::sync::{mpsc, oneshot, watch};

use crate::block::BlockEncoder;
use crate::durability::DurableFiles;
use crate::envelope::{chain_hash, encode_header, Header, GENESIS};
use crate::projection::{encode_meta, meta_key, rebuild_slot, ProjectionSlot, ProjectionTrees, RebuildReport};
use crate::store::{seq_key, stream_key, Head, Store, HEAD_KEY};
use crate::{Error, Event, Hash, NewEvent, Result};

/// Where an appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: Hash,
    pub ts_us: u64,
}

/// An event to append, its payload already hashed by the appender's own task.
pub(crate) struct PreparedEvent {
    pub event: NewEvent,
    pub payload_hash: Hash,
}

pub(crate) enum Command {
    Append { events: Vec<PreparedEvent>, reply: oneshot::Sender<Result<Vec<Appended>>> },
    Rebuild { reply: oneshot::Sender<Result<Vec<RebuildReport>>> },
}

/// Counters that show group commit at work.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub appends: AtomicU64,
    pub events: AtomicU64,
    pub commits: AtomicU64,
    pub syncs: AtomicU64,
}

/// A snapshot of [`WriterStats`] plus the fsync count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterMetrics {
    /// Append calls acknowledged.
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// Commit groups written (one sled transaction each).
    pub commits: u64,
    /// fsyncs of the log file.
    pub syncs: u64,
}

/// Requests taken into one group at most, so one huge burst cannot starve the fsync.
const MAX_GROUP_EVENTS: usize = 16_384;

pub(crate) struct Writer {
    pub store: Arc<Store>,
    pub files: DurableFiles,
    pub slots: Vec<ProjectionSlot>,
    pub trees: ProjectionTrees,
    pub head: Option<Head>,
    pub head_tx: watch::Sender<Option<Head>>,
    pub stats: Arc<WriterStats>,
    pub poisoned: Option<String>,
    pub blocks: BlockEncoder,
}

struct Accepted {
    reply: oneshot::Sender<Result<Vec<Appended>>>,
    appended: Vec<Appended>,
}

/// Everything one commit group writes.
struct Staged {
    /// The group's events with their header bytes as they will be stored and hashed.
    events: Vec<(Event, Vec<u8>)>,
    streams: sled::Batch,
    head: Option<Head>,
    accepted: Vec<Accepted>,
    event_count: u64,
}

impl Writer {
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut waiting: Option<Command> = None;
        loop {
            let first = match waiting.take() {
                Some(command) => command,
                None => match commands.blocking_recv() {
                    Some(command) => command,
                    None => break,
                },
            };
            match first {
                Command::Rebuild { reply } => {
                    let _ = reply.send(self.rebuild());
                }
                Command::Append { events, reply } => {
                    let mut group = vec![(events, reply)];
                    let mut size: usize = group[0].0.len();
                    while size < MAX_GROUP_EVENTS {
                        match commands.try_recv() {
                            Ok(Command::Append { events, reply }) => {
                                size += events.len();
                                group.push((events, reply));
                            }
                            Ok(other) => {
                                waiting = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                }
            }
        }
        // Every appender has gone: make sure what sled still buffers reaches the disk.
        if self.poisoned.is_none() {
            let _ = self.store.db.flush().map_err(Error::from).and_then(|_| self.files.sync());
        }
    }

    fn commit_group(&mut self, group: Vec<(Vec<PreparedEvent>, oneshot::Sender<Result<Vec<Appended>>>)>) {
        if let Some(reason) = &self.poisoned {
            for (_, reply) in group {
                let _ = reply.send(Err(Error::Poisoned(reason.clone())));
            }
            return;
        }
        let mut staged = Staged {
            events: Vec::new(),
            streams: sled::Batch::default(),
            head: self.head,
            accepted: Vec::with_capacity(group.len()),
            event_count: 0,
        };
        for (events, reply) in group {
            match self.stage_request(&mut staged, events) {
                Ok(appended) => {
                    for slot in &mut self.slots {
                        slot.accept_pending();
                    }
                    staged.accepted.push(Accepted { reply, appended });
                }
                Err(error) => {
                    for slot in &mut self.slots {
                        slot.reject_pending();
                    }
                    let _ = reply.send(Err(error));
                }
            }
        }
        if staged.accepted.is_empty() {
            return;
        }
        let new_head = staged.head;
        match self.write_durably(&mut staged) {
            Ok(()) => {
                self.head = new_head;
                if let Some(head) = new_head {
                    // The anchor only ever lags; failing to write it loses no event.
                    let _ = self.store.anchor.write(head.seq, &head.hash);
                }
                self.head_tx.send_replace(new_head);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.events.fetch_add(staged.event_count, Ordering::Relaxed);
                self.stats.appends.fetch_add(staged.accepted.len() as u64, Ordering::Relaxed);
                for accepted in staged.accepted {
                    let _ = accepted.reply.send(Ok(accepted.appended));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                self.poisoned = Some(reason.clone());
                for accepted in staged.accepted {
                    let _ = accepted.reply.send(Err(Error::Poisoned(reason.clone())));
                }
            }
        }
    }

    /// Assigns seqs and hashes to one request's events and folds them into the projections.
    /// On error nothing of the request stays staged.
    fn stage_request(&mut self, staged: &mut Staged, events: Vec<PreparedEvent>) -> Result<Vec<Appended>> {
        let mut head = staged.head;
        let mut prepared = Vec::with_capacity(events.len());
        let mut appended = Vec::with_capacity(events.len());
        for PreparedEvent { event: new, payload_hash } in events {
            new.validate()?;
            let seq = head.map_or(0, |head| head.seq + 1);
            let prev = head.map_or(GENESIS, |head| head.hash);
            let ts_us = now_us().max(head.map_or(0, |head| head.ts_us));
            let header = Header { seq, ts_us, stream: new.stream, kind: new.kind, payload_len: new.payload.len() as u64 };
            let header_bytes = encode_header(&header)?;
            let hash = chain_hash(&header_bytes, &payload_hash, &prev);
            let event = Event { header, payload_hash, prev, hash, payload: new.payload };
            for slot in &mut self.slots {
                slot.apply(&event)?;
            }
            head = Some(Head { seq, hash, ts_us });
            appended.push(Appended { seq, hash, ts_us });
            prepared.push((event, header_bytes));
        }
        for (event, _) in &prepared {
            staged.streams.insert(stream_key(event.stream(), event.seq()), Vec::new());
        }
        staged.events.extend(prepared);
        staged.event_count += appended.len() as u64;
        staged.head = head;
        Ok(appended)
    }

    /// Packs the group's events into blocks of consecutive events.
    fn encode_blocks(&mut self, events: &[(Event, Vec<u8>)]) -> Result<sled::Batch> {
        let mut batch = sled::Batch::default();
        let mut first_seq = None;
        for (event, header_bytes) in events {
            if self.blocks.is_full_for(event.payload.len()) {
                if let Some(first) = first_seq.take() {
                    batch.insert(seq_key(first).to_vec(), self.blocks.finish()?);
                }
            }
            first_seq.get_or_insert(event.seq());
            self.blocks.push(header_bytes, &event.payload_hash, &event.prev, &event.hash, &event.payload)?;
        }
        if let Some(first) = first_seq {
            batch.insert(seq_key(first).to_vec(), self.blocks.finish()?);
        }
        Ok(batch)
    }

    fn write_durably(&mut self, staged: &mut Staged) -> Result<()> {
        let mut meta = sled::Batch::default();
        if let Some(head) = staged.head {
            meta.insert(HEAD_KEY, head.encode().to_vec());
            for slot in &mut self.slots {
                slot.meta.cursor = Some(head.seq);
                meta.insert(meta_key(slot.projection.name()), encode_meta(&slot.meta)?);
            }
        }
        let events = std::mem::take(&mut staged.events);
        let mut batches = vec![
            self.encode_blocks(&events)?,
            std::mem::take(&mut staged.streams),
            meta,
        ];
        let mut trees: Vec<&sled::Tree> = vec![&self.store.events, &self.store.streams, &self.store.meta];
        for slot in &mut self.slots {
            batches.push(slot.take_batch());
        }
        trees.extend(self.slots.iter().map(|slot| &slot.tree));
        trees
            .as_slice()
            .transaction(|views| {
                for (view, batch) in views.iter().zip(&batches) {
                    view.apply_batch(batch)?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|error| match error {
                sled::transaction::TransactionError::Storage(error) => Error::from(error),
                sled::transaction::TransactionError::Abort(()) => Error::Storage("transaction aborted".into()),
            })?;
        self.store.db.flush()?;
        self.files.sync()?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Rebuilds every projection from the log, between two commit groups.
    fn rebuild(&mut self) -> Result<Vec<RebuildReport>> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned(reason.clone()));
        }
        let head_seq = self.head.map(|head| head.seq);
        let mut reports = Vec::with_capacity(self.slots.len());
        for index in 0..self.slots.len() {
            let old = &self.slots[index];
            let (slot, report) = rebuild_slot(&self.store, Arc::clone(&old.projection), Some(old.meta), head_seq)?;
            if let Ok(mut trees) = self.trees.write() {
                trees.insert(report.projection.clone(), slot.tree.clone());
            }
            self.slots[index] = slot;
            reports.push(report);
        }
        self.store.db.flush()?;
        self.files.sync()?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(reports)
    }
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
