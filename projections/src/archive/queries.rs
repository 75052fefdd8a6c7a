//! What the rest of cclog asks the archive: a file, an entry, a session by id or unique
//! prefix, runs and their message seqs, the segment that holds a line.

use cclog_engine::{Log, ProjectionView};
use serde::Deserialize;

use super::keys::{
    day_rows_from, entry_key, file_key, key, run_key, run_message_key, segment_key, segment_prefix, session_key,
    RUN_KEY,
};
use super::records::{DayUsage, EntryRecord, FileState, RunRecord, Segment, SessionRecord};
use super::run::{message_uuid, result_usage};
use super::{Archive, NAME};
use crate::entry::Usage;
use crate::{events, Error, Result};

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

    /// The archived files whose path lies under the directory `dir`, read from the file
    /// index's range for that directory only.
    pub fn files_under(log: &Log, dir: &std::path::Path) -> Result<Vec<FileState>> {
        let mut prefix = dir.to_string_lossy().trim_end_matches('/').to_string();
        prefix.push('/');
        Ok(Self::scan(log, &file_key(&prefix))?.into_iter().map(|(_, file)| file).collect())
    }

    /// The usage day rows from UTC day `first_day` on, in day order (models in name order
    /// within a day), of one project or of all: `each(day, model, row)` until it says stop.
    pub fn day_rows(
        log: &Log,
        project: Option<&str>,
        first_day: u32,
        mut each: impl FnMut(u32, &str, &DayUsage) -> bool,
    ) -> Result<()> {
        let (prefix, start) = day_rows_from(project, first_day);
        for item in Self::view(log)?.scan_from(&prefix, &start) {
            let (key, value) = item?;
            let rest = key.get(prefix.len()..).unwrap_or_default();
            let (Some(day), Some(model)) = (rest.get(..4), rest.get(5..)) else { continue };
            let day = u32::from_be_bytes(day.try_into().unwrap_or_default());
            let row: DayUsage = Self::decode(&value)?;
            if !each(day, &String::from_utf8_lossy(model), &row) {
                break;
            }
        }
        Ok(())
    }

    /// The projects with usage day rows, in name order.
    pub fn usage_projects(log: &Log) -> Result<Vec<String>> {
        let mut projects: Vec<String> = Vec::new();
        let view = Self::view(log)?;
        let mut from = vec![b'P'];
        // One seek per project: past each project's rows to the next one.
        while let Some(item) = view.scan_from(b"P", &from).next() {
            let (key, _) = item?;
            let name_end = key.iter().skip(1).position(|byte| *byte == 0).map_or(key.len(), |at| at + 1);
            let name = String::from_utf8_lossy(&key[1..name_end]).into_owned();
            from = key[..name_end].to_vec();
            from.push(1);
            projects.push(name);
        }
        Ok(projects)
    }

    /// Every session, in id order.
    pub fn sessions(log: &Log) -> Result<Vec<SessionRecord>> {
        Ok(Self::scan(log, b"S")?.into_iter().map(|(_, session)| session).collect())
    }

    /// The session `id` names: its id or a unique prefix of it, in any case, or one of its
    /// transcripts — an archived file's path, or the end of one (`a1b2….jsonl`,
    /// `subagents/agent-x.jsonl`).
    pub fn session(log: &Log, id: &str) -> Result<SessionRecord> {
        let names_a_file = id.ends_with(".jsonl") || id.contains('/');
        let from_file = if names_a_file { Self::session_of_file(log, id)? } else { None };
        let id = from_file.as_deref().unwrap_or(id);
        let by_id =
            |id: &str| Self::unique(log, "session", &session_key(id), id, |session: &SessionRecord| &session.id);
        match by_id(id) {
            Err(Error::NotFound { .. }) if id.to_ascii_lowercase() != id => {
                by_id(&id.to_ascii_lowercase()).map_err(|_| Error::NotFound { what: "session", id: id.to_string() })
            }
            found => found,
        }
    }

    /// The session of the archived file at `path`, or of the one file whose path ends with
    /// `/path`.
    fn session_of_file(log: &Log, path: &str) -> Result<Option<String>> {
        if let Some(file) = Self::file(log, path)? {
            return Ok(Some(file.file.session));
        }
        let tail = format!("/{}", path.trim_start_matches("./"));
        let sessions: std::collections::BTreeSet<String> = Self::files(log)?
            .into_iter()
            .filter(|file| file.path.ends_with(&tail))
            .map(|file| file.file.session)
            .collect();
        match sessions.len() {
            0 => Ok(None),
            1 => Ok(sessions.into_iter().next()),
            count => Err(Error::Ambiguous {
                what: "transcript",
                id: path.to_string(),
                count,
                examples: sessions.into_iter().take(3).collect(),
            }),
        }
    }

    /// One run.
    pub fn run(log: &Log, run: &str) -> Result<Option<RunRecord>> {
        Self::get(log, &run_key(run))
    }

    /// What a run used, per model, as its `result` message reports it (none before its
    /// result, or for a run that ended without one).
    pub fn run_usage(log: &Log, run: &RunRecord) -> Result<std::collections::BTreeMap<String, Usage>> {
        let mut by_model = std::collections::BTreeMap::new();
        let Some(event) = run.result_seq.map(|seq| log.get(seq)).transpose()?.flatten() else { return Ok(by_model) };
        for (model, usage) in result_usage(&event.payload) {
            // Older results total the run's usage: it was the run's model's.
            let model = model.or_else(|| run.model.clone()).unwrap_or_else(|| "unknown".into());
            by_model.entry(model).or_insert_with(Usage::default).add(&usage);
        }
        Ok(by_model)
    }

    /// The run whose id is `id` or starts with it, if exactly one does.
    pub fn run_by_prefix(log: &Log, id: &str) -> Result<RunRecord> {
        Self::unique(log, "run", &run_key(id), id, |run: &RunRecord| &run.id)
    }

    /// The record under `key`, else the one record whose key starts with it.
    fn unique<T: for<'de> Deserialize<'de>>(
        log: &Log,
        what: &'static str,
        key: &[u8],
        id: &str,
        id_of: impl Fn(&T) -> &String,
    ) -> Result<T> {
        if let Some(record) = Self::get(log, key)? {
            return Ok(record);
        }
        let mut matches = Self::scan::<T>(log, key)?;
        match matches.len() {
            0 => Err(Error::NotFound { what, id: id.to_string() }),
            1 => Ok(matches.remove(0).1),
            count => Err(Error::Ambiguous {
                what,
                id: id.to_string(),
                count,
                examples: matches.iter().take(3).map(|(_, record)| id_of(record).clone()).collect(),
            }),
        }
    }

    /// Every run, in id order.
    pub fn runs(log: &Log) -> Result<Vec<RunRecord>> {
        Ok(Self::scan(log, &[RUN_KEY])?.into_iter().map(|(_, run)| run).collect())
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

    /// The segment of the file's current revision that holds line `position`, if the
    /// revision has that many lines.
    pub fn segment_at(log: &Log, file: &FileState, position: u64) -> Result<Option<Segment>> {
        let view = Self::view(log)?;
        let prefix = segment_prefix(&file.path, file.revision);
        let Some((_, value)) = view.last_at_or_before(&prefix, &segment_key(&file.path, file.revision, position))?
        else {
            return Ok(None);
        };
        let segment: Segment = Self::decode(&value)?;
        Ok((segment.start <= position && position < segment.start + segment.count).then_some(segment))
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
