//! `Archive`: the read model of archived Claude Code data — transcript files, the entries
//! in them by uuid, sessions with their usage, forks and subagents, and captured runs. It
//! folds the events of [`crate::events`]; the importer reads it to know where each file
//! stops and which uuids are already stored.
//!
//! Keys, each with a one-byte prefix; every value is postcard:
//! - `U` ‖ uuid → [`EntryRecord`]: the first stored copy of the entry and its parent.
//! - `F` ‖ path → [`FileState`].
//! - `S` ‖ session → [`SessionRecord`].
//! - `M` ‖ session ‖ 0 ‖ message id → [`MessageUsage`]: the last usage snapshot of one API
//!   message, so that its repeats replace rather than add.
//! - `R` ‖ run → [`RunRecord`].
//! - `Q` ‖ run ‖ 0 ‖ index (big-endian u64) → seq of the run's index-th message, so that
//!   a page of messages is one range read.
//!
//! Read models hold seqs, counts and identifiers, never payload copies.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use cclog_engine::{ApplyError, Event, Log, Projection, ProjectionState, ProjectionView};
use serde::{Deserialize, Serialize};

use crate::entry::{self, EntryFacts, Parsed, Usage};
use crate::events::{self, CopyRun, Deleted, Revision, RunEnded, RunSession, RunStarted};
use crate::{pricing, Error, Result};

const NAME: &str = "archive";

/// The `archive` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Archive;

/// Where an entry (by uuid) lives in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The `transcript.line` event holding its first stored copy.
    pub seq: Option<u64>,
    pub parent: Option<String>,
    /// The session it was first stored under.
    pub session: String,
    /// The `run.message` event of the same message in a captured run.
    pub message_seq: Option<u64>,
}

/// What is archived of one transcript file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub path: String,
    pub file: events::FileIdentity,
    pub revision: u32,
    /// Seq of the current revision's `transcript.revision` event.
    pub revision_seq: u64,
    /// Lines in the current revision (copied ones included).
    pub lines: u64,
    pub last_checkpoint: Option<events::Checkpoint>,
    pub partial: bool,
    pub deleted: bool,
    pub malformed: u64,
    pub unknown_types: u64,
    /// BLAKE3 of the last `.meta.json` stored for a subagent's file.
    pub agent_meta_hash: Option<[u8; 32]>,
}

/// A subagent of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLink {
    /// The `Agent`/`Task` tool call that started it.
    pub tool_use_id: Option<String>,
    /// Its transcript file, when it has its own.
    pub path: Option<String>,
}

/// One session's read model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub project: String,
    pub cwd: Option<String>,
    pub title: Option<String>,
    /// 3 custom title, 2 AI title, 1 summary: a title only replaces one of lower or equal rank.
    pub title_rank: u8,
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    /// Lines of the session's files, copied ones included.
    pub entries: u64,
    /// Lines stored for this session itself (not copies).
    pub own_entries: u64,
    pub user_entries: u64,
    pub assistant_entries: u64,
    pub malformed: u64,
    pub unknown_types: u64,
    pub models: BTreeSet<String>,
    /// Usage per model, each API message counted once (its last snapshot).
    pub usage_by_model: BTreeMap<String, Usage>,
    pub parent: Option<String>,
    /// The last shared entry's uuid and the seq of its stored copy.
    pub fork_point: Option<String>,
    pub fork_seq: Option<u64>,
    /// Transcript files, the main one first once it is seen.
    pub files: Vec<String>,
    pub subagents: BTreeMap<String, AgentLink>,
    pub runs: Vec<String>,
}

impl SessionRecord {
    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for usage in self.usage_by_model.values() {
            total.add(usage);
        }
        total
    }

    pub fn cost_usd(&self) -> f64 {
        self.usage_by_model.iter().fold(0.0, |total, (model, usage)| total + pricing::cost_usd(model, usage))
    }

    /// The session's main transcript (not a subagent's).
    pub fn main_file(&self) -> Option<&str> {
        self.files.first().map(String::as_str)
    }
}

/// The last usage snapshot of one API message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUsage {
    pub model: String,
    pub usage: Usage,
}

/// One run's read model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub source: String,
    pub session: Option<String>,
    pub status: String,
    pub messages: u64,
    pub first_seq: u64,
    pub result_type: Option<String>,
    pub duration_ms: Option<u64>,
    pub cwd: Option<String>,
    pub prompt: Option<String>,
    /// The session resumed or forked.
    pub resumed: Option<String>,
    pub fork: bool,
    /// The `result` message's `result` text.
    pub result: Option<String>,
    /// Why the run failed, was cancelled or interrupted, from `run.ended`.
    pub detail: Option<String>,
    /// When `run.started` was appended, µs since the epoch.
    pub started_us: u64,
    pub ended_us: Option<u64>,
}

impl RunRecord {
    /// `start`, `resume` or `fork`.
    pub fn mode(&self) -> &'static str {
        match (&self.resumed, self.fork) {
            (None, _) => "start",
            (Some(_), false) => "resume",
            (Some(_), true) => "fork",
        }
    }

    /// Whether the run is still going.
    pub fn is_active(&self) -> bool {
        self.status == "running"
    }
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = vec![prefix];
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

fn load<T: for<'de> Deserialize<'de>>(bytes: Option<Vec<u8>>) -> std::result::Result<Option<T>, ApplyError> {
    Ok(bytes.map(|bytes| postcard::from_bytes(&bytes)).transpose()?)
}

fn store<T: Serialize>(
    state: &mut ProjectionState<'_>,
    key: Vec<u8>,
    value: &T,
) -> std::result::Result<(), ApplyError> {
    state.insert(key, postcard::to_stdvec(value)?);
    Ok(())
}

impl Projection for Archive {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        self.apply_all(std::slice::from_ref(event), state)
    }

    /// A chunk of an import is thousands of lines of one file: its file and session
    /// records are decoded once and stored once for all of them.
    fn apply_all(&self, events: &[Event], state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        let mut records = Records::default();
        for event in events {
            if let Some(path) = events::transcript_path(event.stream()) {
                apply_transcript(path, event, state, &mut records)?;
            } else if let Some(run) = events::run_id(event.stream()) {
                apply_run(run, event, state, &mut records)?;
            }
        }
        records.store_all(state)
    }
}

/// Decoded records of one key kind, each stored back once when a fold is done.
struct Cached<T> {
    records: HashMap<Vec<u8>, T>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached { records: HashMap::new() }
    }
}

impl<T: Serialize + for<'de> Deserialize<'de>> Cached<T> {
    /// The record under `key`, read from the state the first time.
    fn get(&mut self, state: &ProjectionState<'_>, key: Vec<u8>) -> std::result::Result<Option<&mut T>, ApplyError> {
        Ok(match self.records.entry(key) {
            Entry::Occupied(cached) => Some(cached.into_mut()),
            Entry::Vacant(vacant) => match load::<T>(state.get(vacant.key())?)? {
                Some(record) => Some(vacant.insert(record)),
                None => None,
            },
        })
    }

    /// The record under `key`, or `new()` when there is none.
    fn get_or(
        &mut self,
        state: &ProjectionState<'_>,
        key: Vec<u8>,
        new: impl FnOnce() -> T,
    ) -> std::result::Result<&mut T, ApplyError> {
        Ok(match self.records.entry(key) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(vacant) => {
                let record = load::<T>(state.get(vacant.key())?)?.unwrap_or_else(new);
                vacant.insert(record)
            }
        })
    }

    fn put(&mut self, key: Vec<u8>, record: T) {
        self.records.insert(key, record);
    }

    fn store_all(self, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        self.records.into_iter().try_for_each(|(key, record)| store(state, key, &record))
    }
}

/// The file, session and run records a fold touches. Every event of a file updates its
/// file and session record, and every message of a run its run record; while events are
/// folded these records are read and written only through here, so each is decoded once
/// and encoded once per `apply_all` and the fold sees what it would one event at a time.
/// Everything touched is stored: a record is only fetched to be updated.
#[derive(Default)]
struct Records {
    files: Cached<FileState>,
    sessions: Cached<SessionRecord>,
    runs: Cached<RunRecord>,
}

/// A session record for `id` with nothing folded into it yet.
fn new_session(id: &str) -> impl FnOnce() -> SessionRecord + '_ {
    move || SessionRecord { id: id.to_string(), ..Default::default() }
}

impl Records {
    fn store_all(self, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        self.files.store_all(state)?;
        self.sessions.store_all(state)?;
        self.runs.store_all(state)
    }
}

fn file_key(path: &str) -> Vec<u8> {
    key(b'F', &[path.as_bytes()])
}

fn session_key(session: &str) -> Vec<u8> {
    key(b'S', &[session.as_bytes()])
}

fn entry_key(uuid: &str) -> Vec<u8> {
    key(b'U', &[uuid.as_bytes()])
}

fn apply_transcript(
    path: &str,
    event: &Event,
    state: &mut ProjectionState<'_>,
    records: &mut Records,
) -> std::result::Result<(), ApplyError> {
    let fkey = file_key(path);
    if event.kind() == events::KIND_REVISION {
        let revision: Revision = events::decode(events::KIND_REVISION, &event.payload)?;
        let session =
            records.sessions.get_or(state, session_key(&revision.file.session), new_session(&revision.file.session))?;
        if session.project.is_empty() {
            session.project = revision.file.project.clone();
        }
        if !session.files.iter().any(|file| file == path) {
            if revision.file.agent.is_none() {
                session.files.insert(0, path.to_string());
            } else {
                session.files.push(path.to_string());
            }
        }
        if let Some(agent) = &revision.file.agent {
            session.subagents.entry(agent.clone()).or_default().path = Some(path.to_string());
        }
        let file = FileState {
            path: path.to_string(),
            file: revision.file,
            revision: revision.revision,
            revision_seq: event.seq(),
            lines: 0,
            last_checkpoint: None,
            partial: false,
            deleted: false,
            malformed: 0,
            unknown_types: 0,
            agent_meta_hash: None,
        };
        records.files.put(fkey, file);
        return Ok(());
    }
    let folded = [
        events::KIND_LINE,
        events::KIND_COPY,
        events::KIND_PARTIAL,
        events::KIND_CHECKPOINT,
        events::KIND_DELETED,
        events::KIND_AGENT_META,
    ];
    if !folded.contains(&event.kind()) {
        return Ok(());
    }
    let Some(file) = records.files.get(state, fkey)? else {
        // Lines before any revision cannot come from cclog's importer; nothing to fold.
        return Ok(());
    };
    let session = records.sessions.get_or(state, session_key(&file.file.session), new_session(&file.file.session))?;
    match event.kind() {
        events::KIND_LINE => {
            file.lines += 1;
            file.partial = false;
            session.entries += 1;
            session.own_entries += 1;
            fold_line(event, file, session, state)?;
        }
        events::KIND_COPY => {
            let copy: CopyRun = events::decode(events::KIND_COPY, &event.payload)?;
            file.lines += copy.count;
            file.partial = false;
            session.entries += copy.count;
            // The parent is the session the first foreign copy came from; the fork point is
            // the last entry copied from it.
            if copy.source_session != session.id && file.file.agent.is_none() {
                let leaf = load::<EntryRecord>(state.get(&entry_key(&copy.leaf))?)?;
                adopt_parent(session, &copy.source_session, &copy.leaf, leaf.and_then(|record| record.seq));
            }
        }
        events::KIND_PARTIAL => file.partial = true,
        events::KIND_CHECKPOINT => {
            file.last_checkpoint = Some(events::decode(events::KIND_CHECKPOINT, &event.payload)?)
        }
        events::KIND_DELETED => {
            let _: Deleted = events::decode(events::KIND_DELETED, &event.payload)?;
            file.deleted = true;
        }
        events::KIND_AGENT_META => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct AgentMeta {
                tool_use_id: Option<String>,
            }
            file.agent_meta_hash = Some(cclog_engine::payload_hash(&event.payload).0);
            if let (Some(agent), Ok(meta)) = (&file.file.agent, serde_json::from_slice::<AgentMeta>(&event.payload)) {
                if meta.tool_use_id.is_some() {
                    session.subagents.entry(agent.clone()).or_default().tool_use_id = meta.tool_use_id;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Records that `session` shares entries with `parent` up to `uuid`: the parent is the
/// session the first shared entry came from, and the fork point the last entry shared
/// with it.
fn adopt_parent(session: &mut SessionRecord, parent: &str, uuid: &str, seq: Option<u64>) {
    if session.parent.as_deref().is_none_or(|known| known == parent) {
        session.parent = Some(parent.to_string());
        session.fork_point = Some(uuid.to_string());
        session.fork_seq = seq;
    }
}

/// Folds one stored transcript line into its file, its session and the uuid index.
fn fold_line(
    event: &Event,
    file: &mut FileState,
    session: &mut SessionRecord,
    state: &mut ProjectionState<'_>,
) -> std::result::Result<(), ApplyError> {
    let facts = match entry::parse(&event.payload) {
        Parsed::Entry(facts) => facts,
        Parsed::Malformed(_) => {
            file.malformed += 1;
            session.malformed += 1;
            return Ok(());
        }
    };
    if !facts.is_known_type() {
        file.unknown_types += 1;
        session.unknown_types += 1;
    }
    if let Some(uuid) = facts.uuid.as_deref() {
        let ukey = entry_key(uuid);
        let mut record = load::<EntryRecord>(state.get(&ukey)?)?.unwrap_or_default();
        match record.seq {
            None => {
                record.seq = Some(event.seq());
                record.parent = facts.chain_parent().map(str::to_string);
                record.session = session.id.clone();
                store(state, ukey, &record)?;
            }
            // An entry of another session written again, re-serialised (1.0.x `--resume`
            // rewrote what it copied): this session continues that one.
            Some(seq) if record.session != session.id && file.file.agent.is_none() => {
                adopt_parent(session, &record.session, uuid, Some(seq));
            }
            Some(_) => {}
        }
    }
    fold_facts(&facts, session, state)
}

fn fold_facts(
    facts: &EntryFacts<'_>,
    session: &mut SessionRecord,
    state: &mut ProjectionState<'_>,
) -> std::result::Result<(), ApplyError> {
    if let Some(at) = facts.timestamp.as_deref() {
        if session.first_at.as_deref().is_none_or(|first| at < first) {
            session.first_at = Some(at.to_string());
        }
        if session.last_at.as_deref().is_none_or(|last| at > last) {
            session.last_at = Some(at.to_string());
        }
    }
    if session.cwd.is_none() {
        session.cwd = facts.cwd.as_deref().map(str::to_string);
    }
    let titled = [(3, &facts.custom_title), (2, &facts.ai_title), (1, &facts.summary)];
    for (rank, title) in titled {
        if let Some(title) = title.as_deref().filter(|title| !title.trim().is_empty()) {
            if rank >= session.title_rank {
                session.title = Some(title.to_string());
                session.title_rank = rank;
            }
            break;
        }
    }
    match facts.kind.as_deref() {
        Some("user") => session.user_entries += 1,
        Some("assistant") => session.assistant_entries += 1,
        _ => {}
    }
    if let Some(agent) = facts.tool_use_result.as_ref().and_then(|result| result.agent_id.as_deref()) {
        let tool_use_id = facts.message.as_ref().and_then(|message| first_tool_use_id(message.content));
        let link = session.subagents.entry(agent.to_string()).or_default();
        if tool_use_id.is_some() {
            link.tool_use_id = tool_use_id;
        }
    }
    let Some(message) = &facts.message else { return Ok(()) };
    let (Some(id), Some(model), Some(usage)) = (message.id.as_deref(), message.model.as_deref(), message.usage) else {
        return Ok(());
    };
    if model.starts_with('<') {
        // `<synthetic>` messages are written by Claude Code itself, not billed.
        return Ok(());
    }
    session.models.insert(model.to_string());
    let mkey = key(b'M', &[session.id.as_bytes(), id.as_bytes()]);
    if let Some(previous) = load::<MessageUsage>(state.get(&mkey)?)? {
        if let Some(bucket) = session.usage_by_model.get_mut(&previous.model) {
            bucket.subtract(&previous.usage);
        }
    }
    session.usage_by_model.entry(model.to_string()).or_default().add(&usage);
    store(state, mkey, &MessageUsage { model: model.to_string(), usage })
}

fn first_tool_use_id(content: Option<&serde_json::value::RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct Block {
        tool_use_id: Option<String>,
    }
    let blocks: Vec<Block> = serde_json::from_str(content?.get()).ok()?;
    blocks.into_iter().find_map(|block| block.tool_use_id)
}

/// The `uuid` of a stream-json message, which the same entry carries in the transcript.
fn message_uuid(payload: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        uuid: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Message<'_>>(payload).ok().and_then(|message| message.uuid)
}

/// The `result` text of a stream-json `result` message.
fn result_text(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ResultMessage {
        #[serde(rename = "type")]
        kind: Option<String>,
        result: Option<String>,
    }
    serde_json::from_slice::<ResultMessage>(payload)
        .ok()
        .filter(|message| message.kind.as_deref() == Some("result"))
        .and_then(|message| message.result)
}

/// `Q` ‖ run ‖ 0 ‖ message index (big-endian) → the message's seq.
fn run_message_key(run: &str, index: u64) -> Vec<u8> {
    key(b'Q', &[run.as_bytes(), &index.to_be_bytes()])
}

fn apply_run(
    run: &str,
    event: &Event,
    state: &mut ProjectionState<'_>,
    records: &mut Records,
) -> std::result::Result<(), ApplyError> {
    let rkey = key(b'R', &[run.as_bytes()]);
    if event.kind() == events::KIND_RUN_STARTED {
        let started: RunStarted = events::decode(events::KIND_RUN_STARTED, &event.payload)?;
        let record = RunRecord {
            id: started.run,
            source: started.source,
            status: "running".into(),
            first_seq: event.seq(),
            cwd: started.cwd,
            prompt: started.prompt,
            resumed: started.resume,
            fork: started.fork,
            started_us: event.header.ts_us,
            ..Default::default()
        };
        records.runs.put(rkey, record);
        return Ok(());
    }
    let Some(record) = records.runs.get(state, rkey)? else { return Ok(()) };
    match event.kind() {
        events::KIND_RUN_MESSAGE => {
            store(state, run_message_key(run, record.messages), &event.seq())?;
            record.messages += 1;
            if let Some(result) = result_text(&event.payload) {
                record.result = Some(result);
            }
            if let Some(uuid) = message_uuid(&event.payload) {
                let ukey = entry_key(&uuid);
                let mut entry = load::<EntryRecord>(state.get(&ukey)?)?.unwrap_or_default();
                if entry.message_seq.is_none() {
                    entry.message_seq = Some(event.seq());
                    store(state, ukey, &entry)?;
                }
            }
        }
        events::KIND_RUN_SESSION => {
            let named: RunSession = events::decode(events::KIND_RUN_SESSION, &event.payload)?;
            let session = records.sessions.get_or(state, session_key(&named.session), new_session(&named.session))?;
            if !session.runs.contains(&record.id) {
                session.runs.push(record.id.clone());
            }
            record.session = Some(named.session);
        }
        events::KIND_RUN_ENDED => {
            let ended: RunEnded = events::decode(events::KIND_RUN_ENDED, &event.payload)?;
            record.status = ended.status;
            record.result_type = ended.result_type;
            record.duration_ms = ended.duration_ms;
            record.detail = ended.detail;
            record.ended_us = Some(event.header.ts_us);
        }
        _ => {}
    }
    Ok(())
}

/// Queries over the archive.
impl Archive {
    fn view(log: &Log) -> Result<ProjectionView> {
        log.projection(NAME).ok_or(Error::NotOpen(NAME))
    }

    fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
        postcard::from_bytes(bytes).map_err(|error| Error::Damaged { projection: NAME, detail: error.to_string() })
    }

    fn get<T: for<'de> Deserialize<'de>>(log: &Log, key: &[u8]) -> Result<Option<T>> {
        Self::view(log)?.get(key)?.map(|bytes| Self::decode(&bytes)).transpose()
    }

    fn scan<T: for<'de> Deserialize<'de>>(log: &Log, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        Self::view(log)?
            .scan_prefix(prefix)
            .map(|item| {
                let (key, value) = item?;
                Ok((key, Self::decode(&value)?))
            })
            .collect()
    }

    /// Where an entry's first stored copy is.
    pub fn entry(log: &Log, uuid: &str) -> Result<Option<EntryRecord>> {
        Self::get(log, &entry_key(uuid))
    }

    /// What is archived of one file.
    pub fn file(log: &Log, path: &str) -> Result<Option<FileState>> {
        Self::get(log, &file_key(path))
    }

    /// Every archived file, in path order.
    pub fn files(log: &Log) -> Result<Vec<FileState>> {
        Ok(Self::scan(log, b"F")?.into_iter().map(|(_, file)| file).collect())
    }

    /// Every session, in id order.
    pub fn sessions(log: &Log) -> Result<Vec<SessionRecord>> {
        Ok(Self::scan(log, b"S")?.into_iter().map(|(_, session)| session).collect())
    }

    /// The session whose id is `id` or starts with it, if exactly one does.
    pub fn session(log: &Log, id: &str) -> Result<SessionRecord> {
        if let Some(session) = Self::get(log, &session_key(id))? {
            return Ok(session);
        }
        let mut matches = Self::scan::<SessionRecord>(log, &session_key(id))?;
        match matches.len() {
            0 => Err(Error::NotFound { what: "session", id: id.to_string() }),
            1 => Ok(matches.remove(0).1),
            count => Err(Error::Ambiguous {
                what: "session",
                id: id.to_string(),
                count,
                examples: matches.iter().take(3).map(|(_, session)| session.id.clone()).collect(),
            }),
        }
    }

    /// One run.
    pub fn run(log: &Log, run: &str) -> Result<Option<RunRecord>> {
        Self::get(log, &key(b'R', &[run.as_bytes()]))
    }

    /// Every run, in id order.
    pub fn runs(log: &Log) -> Result<Vec<RunRecord>> {
        Ok(Self::scan(log, b"R")?.into_iter().map(|(_, run)| run).collect())
    }

    /// The seqs of a run's messages from index `from` on, at most `limit` of them.
    pub fn run_message_seqs(log: &Log, run: &str, from: u64, limit: usize) -> Result<Vec<(u64, u64)>> {
        let prefix = key(b'Q', &[run.as_bytes(), b""]);
        Self::view(log)?
            .scan_from(&prefix, &run_message_key(run, from))
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                let index = key[prefix.len()..]
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Damaged { projection: NAME, detail: "run message key".into() })?;
                Ok((index, Self::decode(&value)?))
            })
            .collect()
    }

    /// How many of a run's messages are also transcript entries (same `uuid`): the link
    /// between a captured run and the session's archived transcript.
    pub fn linked_messages(log: &Log, run: &str) -> Result<u64> {
        let mut linked = 0;
        for event in log.stream(&events::run_stream(run), 0) {
            let event = event?;
            if event.kind() != events::KIND_RUN_MESSAGE {
                continue;
            }
            let Some(uuid) = message_uuid(&event.payload) else {
                continue;
            };
            if Self::entry(log, &uuid)?.is_some_and(|entry| entry.seq.is_some()) {
                linked += 1;
            }
        }
        Ok(linked)
    }
}
