//! The writer: the one task that owns the head, assigns seqs, chains hashes and writes.
//! Appenders on any number of tasks send requests over a channel; the writer takes every
//! request waiting at that moment and stages them into one sled transaction (blocks of
//! events, stream index, projection updates, head). It then hands the written group to the
//! syncer and goes straight on with the next group, while the syncer flushes sled and
//! fsyncs its files once for every group written since its last sync, and only then answers
//! their appenders. That is group commit twice over: one transaction serves every append
//! waiting for the writer, and one fsync serves every transaction waiting for the syncer,
//! and the CPU work of the next group overlaps the I/O of the previous one.
//!
//! Commit sequence and what a crash at each point leaves:
//! 1. stage: seqs, hashes and projection writes in memory — nothing on disk.
//! 2. sled transaction — in sled's buffers; lost on a crash, atomically (all or nothing).
//! 3. `Db::flush` (syncer) — written with `pwrite` + `sync_file_range`; may be lost on
//!    power loss.
//! 4. `DurableFiles::sync` (syncer, fdatasync) — durable. A crash after this keeps every
//!    group written before the flush began.
//! 5. head anchor written, subscribers woken, appenders answered — in group order.
//!
//! Before step 1 the writer checks the disk's free space (`space`): a group that might not
//! fit is refused with [`Error::DiskFull`] and nothing of it is written, so a full disk
//! costs the appends that did not fit and nothing else.
//!
//! A failure in 2–5 poisons the log: it can no longer tell what is durable, so every later
//! append fails until the log is reopened. The fault is recorded in the anchor file before
//! anything else, sled is never flushed again (`Store` leaks it), and the next open cuts the
//! log back to the last acknowledged head (`recovery`). An append is acknowledged only after
//! its group's anchor is written, so that cut never takes an acknowledged event.
//!
//! Failpoints (the `failpoints` feature, the `fail` crate) sit at every step: `commit.write`
//! (the batch fails before sled sees it), `commit.torn_write` (sled applies the group's
//! blocks and then fails, as it does on a full disk), `sync.flush`, `sync.fsync` and
//! `sync.anchor`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use crate::block::BlockEncoder;
use crate::durability::DurableFiles;
use crate::envelope::{chain_hash, encode_header, Header, GENESIS};
use crate::projection::{
    encode_meta, projection_meta_key, rebuild_slot, ProjectionPrefixes, ProjectionSlot, RebuildReport,
};
use crate::store::{block_key, meta_key, stream_key, stream_run_value, Head, Store, HEAD_KEY};
use crate::{Error, Event, Hash, NewEvent, Result};

/// Where an appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: Hash,
    pub ts_us: u64,
}

/// An event to append, already validated and its payload hashed on the appender's own task
/// (`Log::submit` and `Log::append_blocking` are the only ways in), so the writer — the
/// bottleneck — does neither again.
pub(crate) struct PreparedEvent {
    pub event: NewEvent,
    pub payload_hash: Hash,
}

/// A sequence of appends that must land in order or not at all: once the writer refuses
/// one of them (a full disk, a projection's refusal), it refuses every later one, so a
/// caller that keeps several submitted (the importer) never gets a later chunk stored
/// without an earlier one. Holds why the first refusal happened.
#[derive(Clone, Default)]
pub struct AppendChain(Arc<Mutex<Option<String>>>);

impl AppendChain {
    fn broken(&self) -> Option<String> {
        self.0.lock().map_or_else(|_| Some("a writer thread panicked".into()), |reason| reason.clone())
    }

    fn break_with(&self, reason: &str) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert_with(|| reason.to_string());
        }
    }
}

/// One append call's events, its chain, and where to answer it.
type AppendRequest = (Vec<PreparedEvent>, Option<AppendChain>, oneshot::Sender<Result<Vec<Appended>>>);

pub(crate) enum Command {
    Append { events: Vec<PreparedEvent>, chain: Option<AppendChain>, reply: oneshot::Sender<Result<Vec<Appended>>> },
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

/// Why the log stopped accepting appends, shared by the writer and the syncer.
pub(crate) type Poison = Arc<Mutex<Option<String>>>;

pub(crate) fn poison_reason(poison: &Poison) -> Option<String> {
    match poison.lock() {
        Ok(reason) => reason.clone(),
        Err(_) => Some("a writer thread panicked".into()),
    }
}

/// Stops the log after a failed write: records the first reason, and marks the store so
/// that sled writes nothing more and the next open recovers.
pub(crate) fn poison_log(store: &Store, poison: &Poison, reason: &str) {
    if let Ok(mut slot) = poison.lock() {
        slot.get_or_insert_with(|| reason.to_string());
    }
    store.mark_faulted(reason);
}

/// The error a failpoint injects: an I/O error, "disk full" when the failpoint's argument
/// says `enospc`.
#[cfg(feature = "failpoints")]
pub(crate) fn injected(point: &str, argument: Option<String>) -> Error {
    let source = match argument.as_deref() {
        Some("enospc") => std::io::Error::from_raw_os_error(libc::ENOSPC),
        _ => std::io::Error::other(format!("injected by failpoint {point}")),
    };
    Error::io(point, source)
}

pub(crate) struct Writer {
    pub store: Arc<Store>,
    pub slots: Vec<ProjectionSlot>,
    pub prefixes: ProjectionPrefixes,
    /// The head as written to sled, durable or not yet.
    pub head: Option<Head>,
    pub poison: Poison,
    pub blocks: BlockEncoder,
    /// Bytes kept free on the disk (see `space`).
    pub disk_reserve: u64,
    /// What the last group refused for space needed free; 0 once a group is written.
    pub refused_needing: Arc<AtomicU64>,
    pub syncer: std::sync::mpsc::Sender<SyncRequest>,
    pub syncer_thread: Option<std::thread::JoinHandle<()>>,
}

/// What the writer hands the syncer.
pub(crate) enum SyncRequest {
    /// A group written to sled whose appenders wait for it to be durable.
    Written { head: Head, accepted: Vec<Accepted>, events: u64 },
    /// Answers once everything written before it is durable.
    Barrier(std::sync::mpsc::Sender<Result<()>>),
}

/// The thread that makes written groups durable and answers their appenders.
pub(crate) struct Syncer {
    pub store: Arc<Store>,
    pub files: DurableFiles,
    pub head_tx: watch::Sender<Option<Head>>,
    pub stats: Arc<WriterStats>,
    pub poison: Poison,
}

impl Syncer {
    pub fn run(mut self, requests: std::sync::mpsc::Receiver<SyncRequest>) {
        while let Ok(first) = requests.recv() {
            let mut pending = vec![first];
            pending.extend(requests.try_iter());
            let synced = match poison_reason(&self.poison) {
                Some(reason) => Err(Error::Poisoned(reason)),
                None => self.sync(),
            };
            if let Err(error) = &synced {
                poison_log(&self.store, &self.poison, &error.to_string());
            }
            for request in pending {
                match request {
                    SyncRequest::Written { head, accepted, events } => self.answer(&synced, head, accepted, events),
                    SyncRequest::Barrier(reply) => {
                        let _ =
                            reply.send(synced.as_ref().map(|_| ()).map_err(|error| Error::Poisoned(error.to_string())));
                    }
                }
            }
        }
        // The writer has gone: make sure nothing sled still buffers is left behind.
        if poison_reason(&self.poison).is_none() {
            let _ = self.sync();
        }
    }

    fn sync(&mut self) -> Result<()> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("sync.flush", |argument| Err(injected("sync.flush", argument)));
        self.store.db.flush()?;
        #[cfg(feature = "failpoints")]
        fail::fail_point!("sync.fsync", |argument| Err(injected("sync.fsync", argument)));
        self.files.sync()?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the anchor of a durable group; only then may its appenders hear of it.
    fn write_anchor(&self, head: &Head) -> Result<()> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("sync.anchor", |argument| Err(injected("sync.anchor", argument)));
        self.store.anchor.write(head.seq, &head.hash)
    }

    fn answer(&self, synced: &Result<()>, head: Head, accepted: Vec<Accepted>, events: u64) {
        // A group whose anchor cannot be written is durable but unacknowledged: recovery
        // cuts back to the anchor, so it must not have been acknowledged.
        let anchored = match synced {
            Ok(()) => match poison_reason(&self.poison) {
                Some(reason) => Err(Error::Poisoned(reason)),
                None => self.write_anchor(&head).inspect_err(|error| {
                    poison_log(&self.store, &self.poison, &error.to_string());
                }),
            },
            Err(error) => Err(Error::Poisoned(error.to_string())),
        };
        match &anchored {
            Ok(()) => {
                self.head_tx.send_replace(Some(head));
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.events.fetch_add(events, Ordering::Relaxed);
                self.stats.appends.fetch_add(accepted.len() as u64, Ordering::Relaxed);
                for accepted in accepted {
                    let _ = accepted.reply.send(Ok(accepted.appended));
                }
            }
            Err(error) => {
                let reason = match error {
                    Error::Poisoned(reason) => reason.clone(),
                    other => other.to_string(),
                };
                for accepted in accepted {
                    let _ = accepted.reply.send(Err(Error::Poisoned(reason.clone())));
                }
            }
        }
    }
}

pub(crate) struct Accepted {
    reply: oneshot::Sender<Result<Vec<Appended>>>,
    appended: Vec<Appended>,
}

/// Stream-index runs being collected: (stream, first seq, last seq), in seq order.
#[derive(Default)]
struct StreamRuns(Vec<(String, u64, u64)>);

impl StreamRuns {
    fn push(&mut self, stream: &str, seq: u64) {
        if let Some((last_stream, _, last)) = self.0.last_mut() {
            if *last_stream == stream && *last + 1 == seq {
                *last = seq;
                return;
            }
        }
        self.0.push((stream.to_string(), seq, seq));
    }
}

/// Everything one commit group writes.
struct Staged {
    /// The group's events with their header bytes as they will be stored and hashed.
    events: Vec<(Event, Vec<u8>)>,
    /// The group's stream-index runs: consecutive seqs of one stream become one entry.
    streams: StreamRuns,
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
                Command::Append { events, chain, reply } => {
                    let mut group = vec![(events, chain, reply)];
                    let mut size: usize = group[0].0.len();
                    while size < MAX_GROUP_EVENTS {
                        match commands.try_recv() {
                            Ok(Command::Append { events, chain, reply }) => {
                                size += events.len();
                                group.push((events, chain, reply));
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
        // Every appender has gone: the syncer finishes what was written, syncs and exits,
        // and must be gone before the directory can be released.
        let (closed, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.syncer, closed));
        if let Some(thread) = self.syncer_thread.take() {
            let _ = thread.join();
        }
    }

    fn commit_group(&mut self, group: Vec<AppendRequest>) {
        let refusal = match poison_reason(&self.poison) {
            Some(reason) => Some(Error::Poisoned(reason)),
            None => self.check_space(&group).err(),
        };
        if let Some(refusal) = refusal {
            for (_, chain, reply) in group {
                if let Some(chain) = chain {
                    chain.break_with(&refusal.to_string());
                }
                let _ = reply.send(Err(match &refusal {
                    Error::Poisoned(reason) => Error::Poisoned(reason.clone()),
                    Error::DiskFull { dir, free, needed } => {
                        Error::DiskFull { dir: dir.clone(), free: *free, needed: *needed }
                    }
                    Error::OutOfInodes { dir, free, needed } => {
                        Error::OutOfInodes { dir: dir.clone(), free: *free, needed: *needed }
                    }
                    other => Error::Storage(other.to_string()),
                }));
            }
            return;
        }
        let mut staged = Staged {
            events: Vec::new(),
            streams: StreamRuns::default(),
            head: self.head,
            accepted: Vec::with_capacity(group.len()),
            event_count: 0,
        };
        for (events, chain, reply) in group {
            if let Some(reason) = chain.as_ref().and_then(AppendChain::broken) {
                let _ = reply.send(Err(Error::EarlierRefused(reason)));
                continue;
            }
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
                    if let Some(chain) = chain {
                        chain.break_with(&error.to_string());
                    }
                    let _ = reply.send(Err(error));
                }
            }
        }
        if staged.accepted.is_empty() {
            return;
        }
        let Some(new_head) = staged.head else { return };
        match self.write(&mut staged) {
            Ok(()) => {
                self.head = Some(new_head);
                let written =
                    SyncRequest::Written { head: new_head, accepted: staged.accepted, events: staged.event_count };
                if let Err(std::sync::mpsc::SendError(SyncRequest::Written { accepted, .. })) =
                    self.syncer.send(written)
                {
                    for accepted in accepted {
                        let _ = accepted.reply.send(Err(Error::Closed));
                    }
                }
            }
            Err(error) => {
                let reason = error.to_string();
                poison_log(&self.store, &self.poison, &reason);
                for accepted in staged.accepted {
                    let _ = accepted.reply.send(Err(Error::Poisoned(reason.clone())));
                }
            }
        }
    }

    /// Refuses a group that might not fit on the disk, before anything of it is staged.
    fn check_space(&self, group: &[AppendRequest]) -> Result<()> {
        let events: u64 = group.iter().map(|(events, _, _)| events.len() as u64).sum();
        let payload: u64 =
            group.iter().flat_map(|(events, _, _)| events).map(|event| event.event.payload.len() as u64).sum();
        // Merging sorted runs may rewrite some of a projection's point keys as well.
        let merges: u64 = self.slots.iter().map(ProjectionSlot::merge_bytes).sum();
        let needed = crate::space::needed_for(self.disk_reserve, events, payload.saturating_add(merges));
        let sled_dir = self.store.sled_dir();
        crate::space::check_inodes(&self.store.dir, &sled_dir, crate::space::inodes_needed_for(payload))?;
        match crate::space::free_bytes(&sled_dir) {
            Ok(free) if free < needed => {
                self.refused_needing.store(needed, Ordering::Relaxed);
                Err(Error::DiskFull { dir: self.store.dir.clone(), free, needed })
            }
            // A filesystem that cannot say is not refused for it.
            _ => {
                self.refused_needing.store(0, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Assigns seqs and hashes to one request's events and folds them into the projections.
    /// On error nothing of the request stays staged.
    fn stage_request(&mut self, staged: &mut Staged, events: Vec<PreparedEvent>) -> Result<Vec<Appended>> {
        let mut head = staged.head;
        let mut stored = Vec::with_capacity(events.len());
        let mut headers = Vec::with_capacity(events.len());
        let mut appended = Vec::with_capacity(events.len());
        for PreparedEvent { event: new, payload_hash } in events {
            let seq = head.map_or(0, |head| head.seq + 1);
            let prev = head.map_or(GENESIS, |head| head.hash);
            let ts_us = now_us().max(head.map_or(0, |head| head.ts_us));
            let header =
                Header { seq, ts_us, stream: new.stream, kind: new.kind, payload_len: new.payload.len() as u64 };
            let header_bytes = encode_header(&header)?;
            let hash = chain_hash(&header_bytes, &payload_hash, &prev);
            stored.push(Event { header, payload_hash, prev, hash, payload: new.payload });
            headers.push(header_bytes);
            head = Some(Head { seq, hash, ts_us });
            appended.push(Appended { seq, hash, ts_us });
        }
        for slot in &mut self.slots {
            slot.apply_all(&self.store.log, &stored)?;
        }
        for event in &stored {
            staged.streams.push(event.stream(), event.seq());
        }
        staged.events.extend(stored.into_iter().zip(headers));
        staged.event_count += appended.len() as u64;
        staged.head = head;
        Ok(appended)
    }

    /// Packs the group's events into blocks of consecutive events.
    fn encode_blocks(&mut self, events: &[(Event, Vec<u8>)], batch: &mut sled::Batch) -> Result<()> {
        let mut first_seq = None;
        for (event, header_bytes) in events {
            if self.blocks.is_full_for(event.payload.len()) {
                if let Some(first) = first_seq.take() {
                    batch.insert(block_key(first).to_vec(), self.blocks.finish()?);
                }
            }
            first_seq.get_or_insert(event.seq());
            self.blocks.push(header_bytes, &event.payload_hash, &event.prev, &event.hash, &event.payload)?;
        }
        if let Some(first) = first_seq {
            batch.insert(block_key(first).to_vec(), self.blocks.finish()?);
        }
        Ok(())
    }

    /// Writes a staged group to sled in one atomic batch; durability is the syncer's job.
    fn write(&mut self, staged: &mut Staged) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (stream, first, last) in std::mem::take(&mut staged.streams).0 {
            batch.insert(stream_key(&stream, first), stream_run_value(first, last));
        }
        let events = std::mem::take(&mut staged.events);
        self.encode_blocks(&events, &mut batch)?;
        if let Some(head) = staged.head {
            batch.insert(meta_key(HEAD_KEY), head.encode().to_vec());
            for slot in &mut self.slots {
                slot.meta.cursor = Some(head.seq);
                batch.insert(projection_meta_key(slot.projection.name()), encode_meta(&slot.meta)?);
            }
        }
        for slot in &mut self.slots {
            slot.drain_into(&self.store.log, &mut batch)?;
        }
        #[cfg(feature = "failpoints")]
        {
            fail::fail_point!("commit.write", |argument| Err(injected("commit.write", argument)));
            // What sled leaves of a batch that fails on a full disk: the keys before the
            // failure — the group's blocks, without the head, index and projections — and
            // its I/O threads write them out.
            fail::fail_point!("commit.torn_write", |argument| {
                let mut torn = sled::Batch::default();
                self.encode_blocks(&events, &mut torn)?;
                self.store.log.apply_batch(torn)?;
                self.store.db.flush()?;
                Err(injected("commit.torn_write", argument))
            });
        }
        self.store.log.apply_batch(batch)?;
        for slot in &mut self.slots {
            slot.applied();
        }
        Ok(())
    }

    /// Rebuilds every projection from the log, between two commit groups.
    fn rebuild(&mut self) -> Result<Vec<RebuildReport>> {
        if let Some(reason) = poison_reason(&self.poison) {
            return Err(Error::Poisoned(reason));
        }
        let head_seq = self.head.map(|head| head.seq);
        let mut reports = Vec::with_capacity(self.slots.len());
        for index in 0..self.slots.len() {
            let old = &self.slots[index];
            let (slot, report) = rebuild_slot(&self.store, Arc::clone(&old.projection), Some(old.meta), head_seq)?;
            if let Ok(mut prefixes) = self.prefixes.write() {
                prefixes.insert(report.projection.clone(), slot.keyspace());
            }
            self.slots[index] = slot;
            reports.push(report);
        }
        let (done, synced) = std::sync::mpsc::channel();
        self.syncer.send(SyncRequest::Barrier(done)).map_err(|_| Error::Closed)?;
        synced.recv().map_err(|_| Error::Closed)??;
        Ok(reports)
    }
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
