//! Transcript import: archives Claude Code's transcript files into the log, incrementally
//! and idempotently.
//!
//! For each file the archive knows how far it was read (a checkpoint: byte offset, line
//! count and the BLAKE3 of those bytes). An unchanged file costs one `stat`; a grown one is
//! read from the checkpoint after its prefix is re-hashed and found unchanged; a file whose
//! archived bytes changed or shrank gets a new revision that is read from the start, while
//! every earlier revision stays in the log; a vanished file is recorded as deleted.
//!
//! Each line is stored as it came, unless it is a copy of an entry already stored — same
//! `uuid`, same bytes except a few small top-level values, as `--resume` and
//! `--fork-session` write them. Consecutive copies that follow one `parentUuid` chain
//! become one `transcript.copy` pointer, so a fork's shared prefix costs one event however
//! long it is. A line that is not JSON is stored too and reported with its file and line
//! number; nothing makes the import abort.
//!
//! Lines go to the log in chunks (at most [`CHUNK_BYTES`] or [`CHUNK_LINES`]), each with
//! its checkpoint in the same atomic append, so memory stays bounded on any file size and
//! an interrupted import resumes where its last chunk ended. Chunks stay in flight across
//! file boundaries — a file's last chunk is not waited for before the next file is read —
//! so that a history of thousands of small files shares commit groups and syncs. All of an
//! import's chunks form one [`cclog_engine::AppendChain`]: they land in order or not at
//! all, so no chunk (nor a copy pointer into another file's chunk) is ever stored without
//! every chunk submitted before it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use cclog_engine::{Log, NewEvent};
use cclog_projections::archive::{Archive, FileState};
use cclog_projections::entry::{self, rewrite_between, Parsed, TopLevel, Variants};
use cclog_projections::events::{self, Checkpoint, CopyRun, Deleted, FileIdentity, Revision, RevisionReason};
use serde::Serialize;

use crate::discover::{self, Candidate};
use crate::{Error, Result};

/// A chunk is appended once it holds this many bytes of lines...
pub const CHUNK_BYTES: usize = 1 << 20;
/// ...or this many lines.
pub const CHUNK_LINES: usize = 2048;
/// Chunks submitted and not yet durable, at most — of any number of files, so that many
/// small files share commit groups and syncs instead of waiting for one each...
const CHUNKS_IN_FLIGHT: usize = 64;
/// ...and the bytes of lines they hold, at most.
const BYTES_IN_FLIGHT: usize = 4 * CHUNK_BYTES;

/// A malformed line, reported with where it is.
#[derive(Debug, Clone, Serialize)]
pub struct MalformedLine {
    pub path: String,
    /// 1-based line number in the file.
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Transcript files looked at.
    pub files: u64,
    /// Files with something new.
    pub files_changed: u64,
    /// Sessions with something new.
    pub sessions: u64,
    /// Lines stored as their own event.
    pub new_entries: u64,
    /// Lines recorded through copy pointers, and the pointers.
    pub copied_entries: u64,
    pub copy_runs: u64,
    /// Revisions started because archived content changed or shrank.
    pub revisions: u64,
    pub deleted: u64,
    pub bytes_read: u64,
    pub malformed_lines: Vec<MalformedLine>,
    /// Entry types this cclog does not know, with how many new lines had each.
    pub unknown_types: BTreeMap<String, u64>,
    /// Files that could not be read, with why; the import went on without them.
    pub failed_files: Vec<(String, String)>,
    /// Paths discovery left out, with why (an unreadable directory, a `*.jsonl` that is not
    /// a regular file, a broken or looping link); what is archived under them stays as it was.
    pub skipped: Vec<(String, String)>,
    /// Files that got shorter while they were being read, with their length before and
    /// after; one cut below what was read was imported again at once, as a new revision.
    pub shrank: Vec<(String, u64, u64)>,
    #[serde(skip)]
    touched_sessions: BTreeSet<String>,
}

/// Progress of a long import: bytes read of the bytes to read.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Imports transcripts into one log.
pub struct Importer<'a> {
    log: &'a Log,
    /// Session of each transcript path, cached from the archive.
    sessions_by_path: HashMap<String, String>,
    /// Chunks submitted and not yet known durable, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The uuids of the entries `in_flight` stores (not yet visible in the archive): one
    /// lookup however many chunks are in flight. A line that copies one of them waits for
    /// them to land and reads its original from the archive — rare (a fork imported right
    /// after the file it forks), so the chunks keep no second copy of every line for it.
    unsettled: HashSet<String>,
    /// The bytes of lines `in_flight` holds.
    bytes_in_flight: usize,
    /// The import's chunks land in order or not at all: a chunk refused (a full disk) takes
    /// the ones submitted after it along, so no checkpoint ever skips a chunk and no copy
    /// points at an entry that was not stored.
    chain: cclog_engine::AppendChain,
}

/// A chunk submitted and not yet known durable, with the uuids of the entries it stores
/// (in `Importer::unsettled` until it is durable).
struct InFlight {
    pending: cclog_engine::PendingAppend,
    fresh: Vec<String>,
    bytes: usize,
}

/// A line's original for copy detection: its bytes and the session it was stored under.
struct Original {
    bytes: Vec<u8>,
    session: String,
}

/// A run of copied lines being collected.
struct OpenRun {
    leaf: String,
    count: u64,
    variants: Variants,
    source_session: String,
}

impl OpenRun {
    fn into_event(self, stream: &str) -> Result<NewEvent> {
        let run = CopyRun {
            leaf: self.leaf,
            count: self.count,
            variants: self.variants,
            source_session: self.source_session,
        };
        Ok(NewEvent::new(stream, events::KIND_COPY, events::encode(&run)?))
    }
}

/// The state of reading one file.
struct FileRead<'f> {
    path: &'f str,
    stream: String,
    session: String,
    hasher: blake3::Hasher,
    offset: u64,
    lines: u64,
    modified_ns: u64,
    pending: Vec<NewEvent>,
    pending_bytes: usize,
    /// Whether anything but a checkpoint was appended.
    changed: bool,
    /// Entries stored in `pending`, not yet visible in the archive: where each is there.
    fresh: HashMap<String, usize>,
    run: Option<OpenRun>,
}

fn modified_ns(metadata: &std::fs::Metadata) -> u64 {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| u64::try_from(since.as_nanos()).ok())
        .unwrap_or(0)
}

/// Claude Code's transcripts directory: `~/.claude/projects`.
pub fn default_projects_dir() -> Option<PathBuf> {
    dirs_home().map(|home| home.join(".claude").join("projects"))
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|home| !home.is_empty()).map(PathBuf::from)
}

/// One import at a time in a process: importing reads a file's archived state, then
/// appends what is new, so two importers at once (the server's archiver and a `cclog import`
/// it runs for a client, say) would otherwise both append the same lines. It is held from
/// discovery until every chunk is durable: a file's chunks stay in flight while the next
/// file is read, and another importer must not read the file's state before they land.
static IMPORTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_import_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    IMPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<'a> Importer<'a> {
    pub fn new(log: &'a Log) -> Importer<'a> {
        Importer {
            log,
            sessions_by_path: HashMap::new(),
            in_flight: VecDeque::new(),
            unsettled: HashSet::new(),
            bytes_in_flight: 0,
            chain: cclog_engine::AppendChain::default(),
        }
    }

    /// Imports every transcript under each of `roots` (directories or single files), then
    /// records as deleted the archived files under a root directory that are gone.
    pub fn import(&mut self, roots: &[PathBuf], progress: &dyn Fn(Progress)) -> Result<ImportReport> {
        let _importing = one_import_at_a_time();
        let mut report = ImportReport::default();
        let mut candidates = Vec::new();
        let roots: Vec<PathBuf> = roots
            .iter()
            .map(|root| match std::fs::canonicalize(root) {
                Ok(root) => Ok(root),
                Err(_) if !root.exists() => Err(Error::Missing(root.clone())),
                Err(source) => Err(Error::io(root, source)),
            })
            .collect::<Result<_>>()?;
        let mut skipped_dirs = Vec::new();
        for root in &roots {
            let found = discover::find(root);
            candidates.extend(found.candidates);
            for skipped in found.skipped {
                skipped_dirs.push(format!("{}/", skipped.path.to_string_lossy().trim_end_matches('/')));
                report.skipped.push((skipped.path.display().to_string(), skipped.reason));
            }
        }
        candidates.sort_by(|a, b| a.order.cmp(&b.order));
        let bytes_total = candidates.iter().map(|candidate| candidate.size).sum();
        let mut bytes_done = 0;
        for candidate in &candidates {
            report.files += 1;
            if let Err(error) = self.import_file(candidate, &mut report) {
                // The log failing (a full disk, a failed write) ends the import; a file
                // that cannot be read does not.
                if error.engine().is_some() {
                    return Err(error);
                }
                report.failed_files.push((candidate.path.display().to_string(), error.to_string()));
            }
            bytes_done += candidate.size;
            progress(Progress { bytes_done, bytes_total });
        }
        self.settle()?;
        let present: BTreeSet<String> =
            candidates.iter().map(|candidate| candidate.path.to_string_lossy().into_owned()).collect();
        for root in &roots {
            if root.is_dir() {
                self.record_deletions(root, &present, &skipped_dirs, &mut report)?;
            }
        }
        report.sessions = report.touched_sessions.len() as u64;
        Ok(report)
    }

    /// Records as deleted the archived files under `root` that discovery did not find —
    /// except under a path it skipped (an unreadable directory is not an empty one).
    fn record_deletions(
        &mut self,
        root: &Path,
        present: &BTreeSet<String>,
        skipped: &[String],
        report: &mut ImportReport,
    ) -> Result<()> {
        let prefix = format!("{}/", root.to_string_lossy().trim_end_matches('/'));
        let mut batch = Vec::new();
        for file in Archive::files(self.log)? {
            if file.deleted || !file.path.starts_with(&prefix) || present.contains(&file.path) {
                continue;
            }
            if skipped.iter().any(|dir| file.path.starts_with(dir.as_str())) {
                continue;
            }
            if Path::new(&file.path).exists() {
                continue;
            }
            batch.push(NewEvent::new(
                events::transcript_stream(&file.path),
                events::KIND_DELETED,
                events::encode(&Deleted { revision: file.revision })?,
            ));
            report.deleted += 1;
        }
        if !batch.is_empty() {
            self.log.append_blocking(batch)?;
        }
        Ok(())
    }

    /// Imports one file: new lines, a new revision, or nothing.
    ///
    /// A file that gets shorter while it is read is reported in [`ImportReport::shrank`];
    /// when it was cut below what was read, it is imported again at once, which starts the
    /// revision its new content is.
    fn import_file(&mut self, candidate: &Candidate, report: &mut ImportReport) -> Result<()> {
        let (length_before, read_to) = self.import_file_once(candidate, report)?;
        let Ok(now) = std::fs::metadata(&candidate.path).map(|metadata| metadata.len()) else { return Ok(()) };
        if now < length_before {
            report.shrank.push((candidate.path.display().to_string(), length_before, now));
            if now < read_to {
                // The second pass reads the file's state back from the archive.
                self.settle()?;
                self.import_file_once(candidate, report)?;
            }
        }
        Ok(())
    }

    /// One pass over the file: its length when the pass began, and how far it read.
    fn import_file_once(&mut self, candidate: &Candidate, report: &mut ImportReport) -> Result<(u64, u64)> {
        let path_buf = &candidate.path;
        let path = path_buf.to_string_lossy().into_owned();
        let stream = events::transcript_stream(&path);
        if stream.len() > cclog_engine::MAX_STREAM_LEN {
            return Err(Error::Unsupported(format!("path is longer than {} bytes", cclog_engine::MAX_STREAM_LEN - 11)));
        }
        let metadata = std::fs::metadata(path_buf).map_err(|source| Error::io(path_buf, source))?;
        let modified = modified_ns(&metadata);
        let state = Archive::file(self.log, &path)?;
        let meta_event = self.agent_meta_event(candidate, state.as_ref(), &stream)?;
        if let Some(state) = &state {
            if let Some(checkpoint) = state.last_checkpoint.as_ref().filter(|_| !state.deleted) {
                if checkpoint.offset + checkpoint.partial == metadata.len() && checkpoint.modified_ns == modified {
                    if let Some(event) = meta_event {
                        self.log.append_blocking(vec![event])?;
                    }
                    return Ok((metadata.len(), metadata.len()));
                }
            }
        }

        let mut reader =
            BufReader::with_capacity(1 << 20, File::open(path_buf).map_err(|source| Error::io(path_buf, source))?);
        let mut read = FileRead {
            path: &path,
            stream: stream.clone(),
            session: String::new(),
            hasher: blake3::Hasher::new(),
            offset: 0,
            lines: 0,
            modified_ns: modified,
            pending: Vec::new(),
            pending_bytes: 0,
            changed: false,
            fresh: HashMap::new(),
            run: None,
        };
        let (revision, reason) = match &state {
            None => (0, Some(RevisionReason::New)),
            Some(state) if state.deleted => (state.revision + 1, Some(RevisionReason::Reappeared)),
            Some(state) => match &state.last_checkpoint {
                None => (state.revision + 1, Some(RevisionReason::Rewritten)),
                Some(checkpoint) if metadata.len() < checkpoint.offset => {
                    (state.revision + 1, Some(RevisionReason::Truncated))
                }
                Some(checkpoint) => {
                    if prefix_matches(&mut reader, &mut read.hasher, checkpoint, path_buf)? {
                        read.offset = checkpoint.offset;
                        read.lines = checkpoint.lines;
                        (state.revision, None)
                    } else {
                        use std::io::Seek;
                        reader.seek(std::io::SeekFrom::Start(0)).map_err(|source| Error::io(path_buf, source))?;
                        read.hasher = blake3::Hasher::new();
                        (state.revision + 1, Some(RevisionReason::Rewritten))
                    }
                }
            },
        };
        let identity: FileIdentity = match &state {
            Some(state) => state.file.clone(),
            None => discover::identify(candidate),
        };
        read.session = identity.session.clone();
        self.sessions_by_path.insert(path.clone(), identity.session.clone());
        if let Some(reason) = reason {
            if reason != RevisionReason::New {
                report.revisions += 1;
            }
            let revision = Revision { revision, reason, file: identity.clone() };
            read.pending.push(NewEvent::new(&stream, events::KIND_REVISION, events::encode(&revision)?));
        }
        if let Some(event) = meta_event {
            read.pending.push(event);
        }

        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let count = reader.read_until(b'\n', &mut line).map_err(|source| Error::io(path_buf, source))?;
            if count == 0 {
                break;
            }
            report.bytes_read += count as u64;
            if line.last() != Some(&b'\n') {
                self.close_run(&mut read, report)?;
                read.pending.push(NewEvent::new(&stream, events::KIND_PARTIAL, line.clone()));
                self.flush(&mut read, line.len() as u64)?;
                self.finish(&read, report);
                return Ok((metadata.len(), read.offset + line.len() as u64));
            }
            read.hasher.update(&line);
            read.offset += count as u64;
            read.lines += 1;
            line.pop();
            self.take_line(&mut read, &line, report)?;
            if read.pending_bytes >= CHUNK_BYTES || read.pending.len() >= CHUNK_LINES {
                self.close_run(&mut read, report)?;
                self.flush(&mut read, 0)?;
            }
        }
        self.close_run(&mut read, report)?;
        self.flush(&mut read, 0)?;
        self.finish(&read, report);
        Ok((metadata.len(), read.offset))
    }

    fn finish(&self, read: &FileRead<'_>, report: &mut ImportReport) {
        if read.changed {
            report.files_changed += 1;
            report.touched_sessions.insert(read.session.clone());
        }
    }

    /// A `transcript.agent-meta` event when the subagent's `.meta.json` is new or changed.
    fn agent_meta_event(
        &self,
        candidate: &Candidate,
        state: Option<&FileState>,
        stream: &str,
    ) -> Result<Option<NewEvent>> {
        let Some(meta_path) = &candidate.agent_meta else { return Ok(None) };
        let Ok(bytes) = std::fs::read(meta_path) else { return Ok(None) };
        let hash = cclog_engine::payload_hash(&bytes).0;
        if state.and_then(|state| state.agent_meta_hash) == Some(hash) {
            return Ok(None);
        }
        Ok(Some(NewEvent::new(stream, events::KIND_AGENT_META, bytes)))
    }

    /// Classifies one complete line: part of a copy run, or stored as it is.
    fn take_line(&mut self, read: &mut FileRead<'_>, line: &[u8], report: &mut ImportReport) -> Result<()> {
        if line.len() > cclog_engine::MAX_PAYLOAD_LEN {
            return Err(Error::Unsupported(format!(
                "line {} is {} bytes; the log takes at most {} per event",
                read.lines,
                line.len(),
                cclog_engine::MAX_PAYLOAD_LEN
            )));
        }
        let facts = match entry::parse(line) {
            Parsed::Entry(facts) => facts,
            Parsed::Malformed(reason) => {
                report.malformed_lines.push(MalformedLine {
                    path: read.path.to_string(),
                    line: read.lines,
                    reason: reason.to_string(),
                });
                self.close_run(read, report)?;
                return self.store_line(read, line, None, report);
            }
        };
        if !facts.is_known_type() {
            let kind = facts.kind.as_deref().unwrap_or("(none)").to_string();
            *report.unknown_types.entry(kind).or_default() += 1;
        }
        let Some(uuid) = facts.uuid.as_deref() else {
            self.close_run(read, report)?;
            return self.store_line(read, line, None, report);
        };
        let Some(original) = self.original(read, uuid)? else {
            self.close_run(read, report)?;
            return self.store_line(read, line, Some(uuid.to_string()), report);
        };
        let Some(rewrite) = rewrite_between(&original.bytes, line) else {
            self.close_run(read, report)?;
            return self.store_line(read, line, None, report);
        };
        let kind = TopLevel::parse(&original.bytes)
            .map(|top| String::from_utf8_lossy(top.type_key(&original.bytes)).into_owned())
            .unwrap_or_default();
        if let Some(run) = &mut read.run {
            let continues = facts.chain_parent() == Some(run.leaf.as_str()) && original.session == run.source_session;
            let variant = run.variants.iter().find(|(key, _)| *key == kind).map(|(_, known)| known);
            if continues && variant.is_none_or(|known| *known == rewrite) {
                if variant.is_none() {
                    run.variants.push((kind, rewrite));
                }
                run.leaf = uuid.to_string();
                run.count += 1;
                return Ok(());
            }
        }
        self.close_run(read, report)?;
        read.run = Some(OpenRun {
            leaf: uuid.to_string(),
            count: 1,
            variants: vec![(kind, rewrite)],
            source_session: original.session,
        });
        Ok(())
    }

    fn store_line(
        &mut self,
        read: &mut FileRead<'_>,
        line: &[u8],
        new_uuid: Option<String>,
        report: &mut ImportReport,
    ) -> Result<()> {
        if let Some(uuid) = new_uuid {
            read.fresh.entry(uuid).or_insert(read.pending.len());
        }
        read.pending.push(NewEvent::new(&read.stream, events::KIND_LINE, line.to_vec()));
        read.pending_bytes += line.len();
        report.new_entries += 1;
        Ok(())
    }

    fn close_run(&mut self, read: &mut FileRead<'_>, report: &mut ImportReport) -> Result<()> {
        if let Some(run) = read.run.take() {
            report.copied_entries += run.count;
            report.copy_runs += 1;
            read.pending.push(run.into_event(&read.stream)?);
        }
        Ok(())
    }

    /// The first stored copy of an entry, from this chunk or the archive.
    fn original(&mut self, read: &FileRead<'_>, uuid: &str) -> Result<Option<Original>> {
        if let Some(&index) = read.fresh.get(uuid) {
            return Ok(Some(Original { bytes: read.pending[index].payload.clone(), session: read.session.clone() }));
        }
        if self.unsettled.contains(uuid) {
            self.settle()?;
        }
        let Some(seq) = Archive::entry(self.log, uuid)?.and_then(|record| record.seq) else { return Ok(None) };
        let Some(event) = self.log.get(seq)? else { return Ok(None) };
        let Some(path) = events::transcript_path(event.stream()) else { return Ok(None) };
        let session = match self.sessions_by_path.get(path) {
            Some(session) => session.clone(),
            None => {
                let session = Archive::file(self.log, path)?.map(|file| file.file.session).unwrap_or_default();
                self.sessions_by_path.insert(path.to_string(), session.clone());
                session
            }
        };
        Ok(Some(Original { bytes: event.payload, session }))
    }

    /// Submits what is pending with a checkpoint, as one atomic batch. At most
    /// [`CHUNKS_IN_FLIGHT`] chunks ([`BYTES_IN_FLIGHT`] bytes) wait to be durable, so the
    /// writer stores some while the syncer makes the ones before them durable and the next
    /// ones are read.
    fn flush(&mut self, read: &mut FileRead<'_>, partial: u64) -> Result<()> {
        let checkpoint = Checkpoint {
            offset: read.offset,
            lines: read.lines,
            digest: *read.hasher.clone().finalize().as_bytes(),
            partial,
            modified_ns: read.modified_ns,
        };
        let mut batch = std::mem::take(&mut read.pending);
        read.changed |= !batch.is_empty();
        batch.push(NewEvent::new(&read.stream, events::KIND_CHECKPOINT, events::encode(&checkpoint)?));
        while self.in_flight.len() >= CHUNKS_IN_FLIGHT || self.bytes_in_flight >= BYTES_IN_FLIGHT {
            self.settle_oldest()?;
        }
        let pending = self.log.submit_blocking_in(&self.chain, batch)?;
        let bytes = std::mem::take(&mut read.pending_bytes);
        self.bytes_in_flight += bytes;
        let mut fresh = Vec::with_capacity(read.fresh.len());
        for (uuid, _) in read.fresh.drain() {
            self.unsettled.insert(uuid.clone());
            fresh.push(uuid);
        }
        self.in_flight.push_back(InFlight { pending, fresh, bytes });
        Ok(())
    }

    /// Waits until the oldest chunk in flight is durable.
    fn settle_oldest(&mut self) -> Result<()> {
        if let Some(chunk) = self.in_flight.pop_front() {
            self.bytes_in_flight -= chunk.bytes;
            chunk.pending.wait_blocking()?;
            for uuid in &chunk.fresh {
                self.unsettled.remove(uuid);
            }
        }
        Ok(())
    }

    /// Waits until every chunk in flight is durable: before what they stored is read back
    /// from the archive, and before an import returns.
    fn settle(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.settle_oldest()?;
        }
        Ok(())
    }
}

/// Whether the file still starts with the bytes the checkpoint describes; on success the
/// reader is positioned right after them and `hasher` holds them.
fn prefix_matches(
    reader: &mut BufReader<File>,
    hasher: &mut blake3::Hasher,
    checkpoint: &Checkpoint,
    path: &Path,
) -> Result<bool> {
    let mut remaining = checkpoint.offset;
    let mut buffer = vec![0; 1 << 20];
    while remaining > 0 {
        let want = usize::try_from(remaining.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let got = reader.read(&mut buffer[..want]).map_err(|source| Error::io(path, source))?;
        if got == 0 {
            return Ok(false);
        }
        hasher.update(&buffer[..got]);
        remaining -= got as u64;
    }
    Ok(*hasher.clone().finalize().as_bytes() == checkpoint.digest)
}
