//! `Archive`: the read model of archived Claude Code data — transcript files, the entries
//! in them by uuid, sessions with their usage, forks and subagents, and captured runs. It
//! folds the events of [`crate::events`]; the importer reads it to know where each file
//! stops and which uuids are already stored.
//!
//! Keys, each with a one-byte prefix; every value is postcard:
//! - `u` ‖ uuid (its 16 bytes) → [`EntryRecord`]: the first stored copy of the entry, its
//!   parent and its session, ids in 16 bytes ([`CompactId`]); `U` ‖ id for an entry whose
//!   id is not a UUID.
//! - `F` ‖ path → [`FileState`].
//! - `S` ‖ session → [`SessionRecord`].
//! - `M` ‖ message id → [`MessageUsage`]: the last usage snapshot of one API message and
//!   where it was counted, so that its repeats replace rather than add.
//! - `D` ‖ UTC day (u32 BE) ‖ 0 ‖ model → [`DayUsage`]: a model's usage that day per quarter
//!   hour, every project's; `P` ‖ project ‖ 0 ‖ day ‖ 0 ‖ model → the same for one project.
//!   Usage reports read these rows, never the transcripts: a report costs the days it
//!   covers, whatever the number of sessions.
//! - `R` ‖ run → [`RunRecord`].
//! - `Q` ‖ run ‖ 0 ‖ index (big-endian u64) → seq of the run's index-th message, so that
//!   a page of messages is one range read.
//! - `L` ‖ path ‖ 0 ‖ revision (u32 BE) ‖ position (u64 BE) → [`Segment`]: where the lines
//!   of a file revision from `position` on are — a run of consecutive `transcript.line`
//!   events, or one `transcript.copy` — so that a page of a session's entries reads only
//!   its entries. An import chunk's lines are one segment, a fork's shared prefix another.
//!
//! `u`, `U` and `M` keys are point keys (`Projection::is_point_key`): the framework keeps
//! them in sorted runs, so they are read one at a time and never scanned.
//!
//! Read models hold seqs, counts and identifiers, never payload copies.
//!
//! # Layout
//! - [`records`]: the read models — files, entries, sessions, runs, segments.
//! - `keys`: the keyspaces above, and how records are encoded in them.
//! - `cache`: the records a fold touches, decoded once and stored once per `apply_all`.
//! - `transcript`, `run`: the folds of transcript and run events.
//! - `queries`: what the rest of cclog asks the archive.

mod cache;
mod keys;
mod queries;
pub mod records;
mod run;
mod transcript;

use cclog_engine::{ApplyError, Event, Projection, ProjectionState};

pub use records::*;
pub(crate) use transcript::epoch_ms;

use crate::events;
use cache::Records;

const NAME: &str = "archive";

/// The `archive` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Archive;

impl Projection for Archive {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> u32 {
        // 8: an entry stored again by a rewrite is not counted again; a field of an
        // unexpected type no longer makes its line malformed (`drifted_fields`).
        // 9: usage keeps 1-hour cache writes and long-context tokens, fast mode, and the
        // day rows of usage reports; a message is counted in the session that stored it first.
        // 10: the uuid index keeps UUIDs in 16 bytes.
        // 11: a title from a prompt that opens with a Markdown heading drops its `#`s.
        // 12: entries by uuid and API messages by id are point keys, in sorted runs.
        12
    }

    /// Entries by uuid and API messages by id: one per line, in no order, only ever read
    /// one at a time.
    fn is_point_key(&self, key: &[u8]) -> bool {
        matches!(key.first(), Some(b'u' | b'U' | b'M'))
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
                transcript::apply_transcript(path, event, state, &mut records)?;
            } else if let Some(run) = events::run_id(event.stream()) {
                run::apply_run(run, event, state, &mut records)?;
            }
        }
        records.store_all(state)
    }
}
