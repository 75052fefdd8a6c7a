//! [`Log`]: the handle everything else uses. It opens the store, brings the projections up
//! to date, starts the writer thread, and serves reads straight from sled. Readers only see
//! events up to the durable head, so nothing can be observed that a crash could take back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use crate::block::BlockEncoder;
use crate::durability::DurableFiles;
use crate::group_commit::{
    AppendChain, Appended, Command, Poison, PreparedEvent, Syncer, Writer, WriterMetrics, WriterStats,
};
use crate::projection::{open_projections, Projection, ProjectionPrefixes, ProjectionView, RebuildReport};
use crate::recovery::{Recovery, RECOVERY_KIND, RECOVERY_STREAM};
use crate::store::{stream_seqs, streams_with_prefix, Head, Store};
use crate::subscription::Subscription;
use crate::verify::{walk, Progress, VerifyReport};
use crate::{envelope, Error, Event, NewEvent, Result};

/// How many append requests may wait for the writer before appenders are held back.
const QUEUE_DEPTH: usize = 8192;

/// Options for [`Log::open`].
pub struct LogOptions {
    /// The projections the writer maintains, in the order it applies them.
    pub projections: Vec<Arc<dyn Projection>>,
    /// Bytes the writer keeps free on the disk: a commit group that would eat into them is
    /// refused with [`Error::DiskFull`] before anything of it is written (see `space`).
    pub disk_reserve: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { projections: Vec::new(), disk_reserve: crate::space::DEFAULT_DISK_RESERVE }
    }
}

impl LogOptions {
    /// The default options with these projections.
    pub fn with_projections(projections: Vec<Arc<dyn Projection>>) -> Self {
        LogOptions { projections, ..LogOptions::default() }
    }
}

/// Whether the log can take appends right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Less than the reserve (or than the last refused append needed) is free: appends
    /// are refused until space is freed.
    DiskFull {
        free: u64,
        needed: u64,
    },
    /// Fewer than the writer's reserve of inodes are free: appends are refused until
    /// files are deleted.
    OutOfInodes {
        free: u64,
    },
    /// A write failed; appends are refused until the log is reopened, which recovers.
    Failed(String),
}

/// An open, owned event log. Cheap to clone; every clone talks to the same writer.
#[derive(Clone)]
pub struct Log {
    shared: Arc<Shared>,
}

/// What every clone of a [`Log`] shares: the open store and its writer (replaced whole by
/// [`Log::reopen`]) and what is needed to open it again.
pub(crate) struct Shared {
    dir: std::path::PathBuf,
    projections: Vec<Arc<dyn Projection>>,
    disk_reserve: u64,
    current: RwLock<Arc<LogInner>>,
    /// What the latest open or reopen cut back, if anything.
    recovery: Mutex<Option<Recovery>>,
    /// Held while reopening; holds why the last attempt to reopen failed.
    reopen_failure: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn current(&self) -> Arc<LogInner> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// One opening of the store: its writer, syncer and durable head.
pub(crate) struct LogInner {
    commands: Option<mpsc::Sender<Command>>,
    pub(crate) head: watch::Receiver<Option<Head>>,
    prefixes: ProjectionPrefixes,
    stats: Arc<WriterStats>,
    poison: Poison,
    refused_needing: Arc<std::sync::atomic::AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    // Declared last so it drops last: the directory lock inside it must outlive every sled
    // handle, or a new owner could find sled's own lock still held.
    pub(crate) store: Arc<Store>,
}

impl Drop for LogInner {
    fn drop(&mut self) {
        // Closing the channel ends the writer; joining it means sled is flushed and synced
        // before the directory is released.
        self.commands.take();
        if let Ok(mut writer) = self.writer.lock() {
            if let Some(handle) = writer.take() {
                let _ = handle.join();
            }
        }
    }
}

/// Events before the recovered head that [`Log::reopen`] verifies again.
const REOPEN_RECHECK: u64 = 4096;

impl LogInner {
    /// Opens the store in `dir`, recovers it, catches the projections up and starts the
    /// writer and the syncer.
    fn open(
        dir: &Path,
        projections: Vec<Arc<dyn Projection>>,
        disk_reserve: u64,
    ) -> Result<(LogInner, Option<Recovery>)> {
        let store = Arc::new(Store::open(dir)?);
        let mut files = DurableFiles::open(&store.sled_dir())?;
        if let Ok(free) = crate::space::free_bytes(&store.sled_dir()) {
            if free < disk_reserve {
                return Err(Error::DiskFull { dir: dir.to_path_buf(), free, needed: disk_reserve });
            }
        }
        let recovery = crate::recovery::recover(&store, &mut files)?;
        let head = store.stored_head()?;
        store.check_anchor(head)?;
        let slots = open_projections(&store, projections, head.map(|head| head.seq))?;
        let prefixes: ProjectionPrefixes = Arc::new(RwLock::new(
            slots.iter().map(|slot| (slot.projection.name().to_string(), slot.keyspace())).collect::<HashMap<_, _>>(),
        ));
        let (head_tx, head_rx) = watch::channel(head);
        let (commands_tx, commands_rx) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        let poison: Poison = Arc::default();
        let refused_needing = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (sync_tx, sync_rx) = std::sync::mpsc::channel();
        let syncer = Syncer {
            store: Arc::clone(&store),
            files,
            head_tx,
            stats: Arc::clone(&stats),
            poison: Arc::clone(&poison),
        };
        let syncer_thread = std::thread::Builder::new()
            .name("cclog-syncer".into())
            .spawn(move || syncer.run(sync_rx))
            .map_err(|source| Error::io(dir, source))?;
        let writer = Writer {
            store: Arc::clone(&store),
            slots,
            prefixes: Arc::clone(&prefixes),
            head,
            poison: Arc::clone(&poison),
            blocks: BlockEncoder::new()?,
            disk_reserve,
            refused_needing: Arc::clone(&refused_needing),
            syncer: sync_tx,
            syncer_thread: Some(syncer_thread),
        };
        let handle = std::thread::Builder::new()
            .name("cclog-writer".into())
            .spawn(move || writer.run(commands_rx))
            .map_err(|source| Error::io(dir, source))?;
        let inner = LogInner {
            store,
            commands: Some(commands_tx),
            head: head_rx,
            prefixes,
            stats,
            poison,
            refused_needing,
            writer: Mutex::new(Some(handle)),
        };
        Ok((inner, recovery))
    }

    fn failure(&self) -> Option<String> {
        crate::group_commit::poison_reason(&self.poison)
    }

    fn sender(&self) -> Result<&mpsc::Sender<Command>> {
        self.commands.as_ref().ok_or(Error::Closed)
    }

    fn head(&self) -> Option<Head> {
        *self.head.borrow()
    }

    /// Durable events: the head's seq plus one.
    fn len(&self) -> u64 {
        self.head().map_or(0, |head| head.seq + 1)
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, taking ownership of the directory.
    ///
    /// Opening writes (sled's own bookkeeping, projections catching up), so it is refused
    /// with [`Error::DiskFull`] while less than the reserve is free. A store whose last
    /// write failed is cut back to its last acknowledged event first (`recovery`), and a
    /// `log.recovered` event says what was cut; [`Log::recovery`] returns it.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Log> {
        let (inner, recovery) = LogInner::open(dir, options.projections.clone(), options.disk_reserve)?;
        let log = Log {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                projections: options.projections,
                disk_reserve: options.disk_reserve,
                current: RwLock::new(Arc::new(inner)),
                recovery: Mutex::new(recovery.clone()),
                reopen_failure: Mutex::new(None),
            }),
        };
        if let Some(recovery) = recovery {
            log.record_recovery(&recovery)?;
        }
        Ok(log)
    }

    fn inner(&self) -> Arc<LogInner> {
        self.shared.current()
    }

    /// Brings a log whose write failed ([`Health::Failed`]) back without a restart: cuts
    /// the failed store off from its files (`Store::fence`: whatever sled still buffers
    /// never reaches the disk), opens the directory again — which cuts it back to the last
    /// acknowledged event and records `log.recovered` — verifies the last events again,
    /// and swaps the new store in under every clone of this `Log`; subscriptions follow.
    /// Returns what was recovered, or `None` when the log had not failed. On an error the
    /// log stays failed and [`Log::health`] says why the attempt failed; call it again.
    pub fn reopen(&self) -> Result<Option<Recovery>> {
        let mut failure = self.shared.reopen_failure.lock().map_err(|_| Error::Storage("a reopen panicked".into()))?;
        let failed = self.inner();
        if failed.failure().is_none() {
            return Ok(None);
        }
        let reopened = self.replace(&failed);
        *failure = reopened.as_ref().err().map(ToString::to_string);
        reopened.map(Some)
    }

    fn replace(&self, failed: &Arc<LogInner>) -> Result<Recovery> {
        // Each attempt leaks the failed store's sled in memory; make one only once the
        // disk takes writes again.
        crate::space::disk_takes_writes(&self.shared.dir, self.shared.disk_reserve)?;
        failed.store.fence()?;
        let (inner, recovery) =
            LogInner::open(&self.shared.dir, self.shared.projections.clone(), self.shared.disk_reserve)?;
        let inner = Arc::new(inner);
        let replaced = match self.shared.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, Arc::clone(&inner)),
            Err(_) => return Err(Error::Storage("the log's handle lock was poisoned".into())),
        };
        // The failed writer ends once nobody holds it; it writes nothing more.
        drop(replaced);
        let recovery = recovery.unwrap_or_else(|| {
            Recovery::nothing_cut(inner.head().map(|head| head.seq), failed.failure().unwrap_or_default())
        });
        if let Ok(mut latest) = self.shared.recovery.lock() {
            *latest = Some(recovery.clone());
        }
        self.record_recovery(&recovery)?;
        let from = recovery.kept_through.map_or(0, |seq| seq.saturating_sub(REOPEN_RECHECK));
        let report = walk(&inner.store, from, inner.head(), &mut |_, _| {});
        if let Some(damage) = report.damage {
            let reason = format!("after reopening, verify found damage: {}", damage.detail);
            crate::group_commit::poison_log(&inner.store, &inner.poison, &reason);
            return Err(Error::Corruption { at: damage.seq, detail: reason });
        }
        Ok(recovery)
    }

    /// Appends the `log.recovered` event, from a thread of its own since `open` may be
    /// called inside an async runtime.
    fn record_recovery(&self, recovery: &Recovery) -> Result<()> {
        let event = NewEvent::new(RECOVERY_STREAM, RECOVERY_KIND, recovery.payload());
        let log = self.clone();
        std::thread::scope(|scope| scope.spawn(move || log.append_blocking(vec![event])).join())
            .map_err(|_| Error::Storage("recording the recovery panicked".into()))??;
        Ok(())
    }

    /// What the latest open or [`Log::reopen`] cut back after a failed write, if it had to.
    pub fn recovery(&self) -> Option<Recovery> {
        self.shared.recovery.lock().ok().and_then(|recovery| recovery.clone())
    }

    /// Whether appends are accepted right now, and if not why.
    pub fn health(&self) -> Health {
        let inner = self.inner();
        if let Some(reason) = inner.failure() {
            let attempt = self.shared.reopen_failure.try_lock().ok().and_then(|failure| failure.clone());
            return Health::Failed(match attempt {
                Some(attempt) => format!("{reason} (reopening failed: {attempt})"),
                None => reason,
            });
        }
        let needed = self.shared.disk_reserve.max(inner.refused_needing.load(Ordering::Relaxed));
        if let Ok(Some(free)) = crate::space::free_inodes(&inner.store.sled_dir()) {
            if free < crate::space::INODE_RESERVE + 1 {
                return Health::OutOfInodes { free };
            }
        }
        match crate::space::free_bytes(&inner.store.sled_dir()) {
            Ok(free) if free < needed => Health::DiskFull { free, needed },
            _ => Health::Ok,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends a batch and returns once every event of it is durable. The batch is atomic:
    /// all of it is written or none.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>> {
        self.submit(events).await?.wait().await
    }

    /// Queues a batch and returns a handle to await its durability; batches submitted in
    /// order get seqs in that order. Lets one caller keep several batches in flight.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<PendingAppend> {
        self.submit_chained(events, None).await
    }

    /// [`Log::submit`] as part of `chain` (see [`Log::submit_blocking_in`]).
    pub async fn submit_in(&self, chain: &AppendChain, events: Vec<NewEvent>) -> Result<PendingAppend> {
        self.submit_chained(events, Some(chain.clone())).await
    }

    async fn submit_chained(&self, events: Vec<NewEvent>, chain: Option<AppendChain>) -> Result<PendingAppend> {
        let events = prepare(events)?;
        let (reply, receiver) = oneshot::channel();
        let inner = self.inner();
        inner.sender()?.send(Command::Append { events, chain, reply }).await.map_err(|_| Error::Closed)?;
        Ok(PendingAppend { receiver })
    }

    /// [`Log::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>> {
        self.submit_blocking(events)?.wait_blocking()
    }

    /// [`Log::submit`] for threads outside an async runtime: lets a thread prepare its next
    /// batch while the writer stores this one.
    pub fn submit_blocking(&self, events: Vec<NewEvent>) -> Result<PendingAppend> {
        self.submit_blocking_chained(events, None)
    }

    /// [`Log::submit_blocking`] as part of `chain`: refused (with
    /// [`Error::EarlierRefused`]) once an earlier append of the chain was refused, so that
    /// batches kept in flight together land in order or not at all.
    pub fn submit_blocking_in(&self, chain: &AppendChain, events: Vec<NewEvent>) -> Result<PendingAppend> {
        self.submit_blocking_chained(events, Some(chain.clone()))
    }

    fn submit_blocking_chained(&self, events: Vec<NewEvent>, chain: Option<AppendChain>) -> Result<PendingAppend> {
        let events = prepare(events)?;
        let (reply, receiver) = oneshot::channel();
        self.inner().sender()?.blocking_send(Command::Append { events, chain, reply }).map_err(|_| Error::Closed)?;
        Ok(PendingAppend { receiver })
    }

    /// The last durable event's seq and hash; `None` while the log is empty.
    pub fn head(&self) -> Option<Head> {
        self.inner().head()
    }

    /// Number of durable events.
    pub fn len(&self) -> u64 {
        self.head().map_or(0, |head| head.seq + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.head().is_none()
    }

    /// One durable event.
    pub fn get(&self, seq: u64) -> Result<Option<Event>> {
        match self.head() {
            Some(head) if seq <= head.seq => {}
            _ => return Ok(None),
        }
        match self.inner().store.read_event(seq)? {
            Some(event) => Ok(Some(event)),
            None => Err(Error::Corruption { at: Some(seq), detail: "a durable event is missing".into() }),
        }
    }

    /// Durable events with `from <= seq`, in order.
    pub fn range(&self, from: u64) -> impl Iterator<Item = Result<Event>> + 'static {
        let inner = self.inner();
        inner.store.events_between(from, inner.len())
    }

    /// The durable events of one stream with `from <= seq`, in order.
    pub fn stream(&self, stream: &str, from: u64) -> impl Iterator<Item = Result<Event>> + 'static {
        let inner = self.inner();
        let store = Arc::clone(&inner.store);
        stream_seqs(&inner.store.log, stream, from, inner.len()).map(move |seq| {
            let seq = seq?;
            store.read_event(seq)?.ok_or(Error::Corruption { at: Some(seq), detail: "indexed event is missing".into() })
        })
    }

    /// The durable events of every stream whose name starts with `prefix`, with
    /// `from <= seq`, in order. Read through the stream index: streams that do not match
    /// cost nothing, and each matching stream one seek.
    pub fn streams_starting_with(
        &self,
        prefix: &str,
        from: u64,
    ) -> Result<impl Iterator<Item = Result<Event>> + 'static> {
        let inner = self.inner();
        let end = inner.len();
        let log = &inner.store.log;
        let mut heads = std::collections::BinaryHeap::new();
        let mut sources = Vec::new();
        for name in streams_with_prefix(log, prefix)? {
            let mut seqs = stream_seqs(log, &name, from, end);
            if let Some(first) = seqs.next().transpose()? {
                heads.push(std::cmp::Reverse((first, sources.len())));
            }
            sources.push(seqs);
        }
        let store = Arc::clone(&inner.store);
        // A k-way merge of the streams' seqs: the smallest head next.
        let seqs = std::iter::from_fn(move || {
            let std::cmp::Reverse((seq, source)) = heads.pop()?;
            match sources[source].next().transpose() {
                Ok(Some(next)) => heads.push(std::cmp::Reverse((next, source))),
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
            Some(Ok(seq))
        });
        Ok(seqs.map(move |seq| {
            let seq = seq?;
            store.read_event(seq)?.ok_or(Error::Corruption { at: Some(seq), detail: "indexed event is missing".into() })
        }))
    }

    /// Every durable event from `from` on, then each new one as it becomes durable.
    pub fn subscribe(&self, from: u64) -> Subscription {
        let inner = self.inner();
        Subscription {
            log: Arc::downgrade(&self.shared),
            store: Arc::clone(&inner.store),
            head: inner.head.clone(),
            next: from,
        }
    }

    /// A projection's current state.
    pub fn projection(&self, name: &str) -> Option<ProjectionView> {
        let inner = self.inner();
        let keyspace = inner.prefixes.read().ok()?.get(name)?.clone();
        Some(ProjectionView::new(sled::Tree::clone(&inner.store.log), keyspace))
    }

    /// Folds the whole log into fresh projection trees and swaps them in, between two
    /// commit groups.
    pub async fn rebuild(&self) -> Result<Vec<RebuildReport>> {
        let (reply, receiver) = oneshot::channel();
        let inner = self.inner();
        inner.sender()?.send(Command::Rebuild { reply }).await.map_err(|_| Error::Closed)?;
        receiver.await.map_err(|_| Error::Closed)?
    }

    /// [`Log::rebuild`] for threads outside an async runtime.
    pub fn rebuild_blocking(&self) -> Result<Vec<RebuildReport>> {
        let (reply, receiver) = oneshot::channel();
        self.inner().sender()?.blocking_send(Command::Rebuild { reply }).map_err(|_| Error::Closed)?;
        receiver.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Verifies the log from `from` on. See [`crate::verify_dir`] for a store that may not
    /// even open.
    pub fn verify(&self, from: u64, progress: Progress<'_>) -> VerifyReport {
        let inner = self.inner();
        walk(&inner.store, from, inner.head(), progress)
    }

    /// Bytes the data directory takes on disk.
    pub fn disk_usage(&self) -> Result<u64> {
        directory_size(self.dir())
    }

    /// Where the directory's bytes go: each part of the stored format, and sled's own share.
    /// Reads the whole tree once.
    pub fn footprint(&self) -> Result<crate::footprint::Footprint> {
        crate::footprint::measure(&self.inner().store)
    }

    /// What the writer has done since the log was opened.
    pub fn metrics(&self) -> WriterMetrics {
        let inner = self.inner();
        let stats = &inner.stats;
        WriterMetrics {
            appends: stats.appends.load(Ordering::Relaxed),
            events: stats.events.load(Ordering::Relaxed),
            commits: stats.commits.load(Ordering::Relaxed),
            syncs: stats.syncs.load(Ordering::Relaxed),
        }
    }
}

/// An append that was queued; await it to learn its seqs once durable.
pub struct PendingAppend {
    receiver: oneshot::Receiver<Result<Vec<Appended>>>,
}

impl PendingAppend {
    pub async fn wait(self) -> Result<Vec<Appended>> {
        self.receiver.await.map_err(|_| Error::Closed)?
    }

    /// [`PendingAppend::wait`] for threads outside an async runtime.
    pub fn wait_blocking(self) -> Result<Vec<Appended>> {
        self.receiver.blocking_recv().map_err(|_| Error::Closed)?
    }
}

/// Validates events and hashes their payloads on the caller's task, off the writer.
fn prepare(events: Vec<NewEvent>) -> Result<Vec<PreparedEvent>> {
    events
        .into_iter()
        .map(|event| {
            event.validate()?;
            let payload_hash = envelope::payload_hash(&event.payload);
            Ok(PreparedEvent { event, payload_hash })
        })
        .collect()
}

/// Sum of the sizes of the files under `dir`.
pub fn directory_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|source| Error::io(dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(dir, source))?;
        let meta = entry.metadata().map_err(|source| Error::io(entry.path(), source))?;
        total += if meta.is_dir() { directory_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
