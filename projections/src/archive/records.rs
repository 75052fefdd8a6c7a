//! The archive's read models: what it knows of each transcript file (and where its lines
//! are), each entry by uuid, each session and each run. Every one is postcard in its
//! keyspace; each holds seqs, counts and identifiers, never a payload.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::entry::Usage;
use crate::events;
use crate::pricing::{Cost, PriceTable};

/// Where an entry (by uuid) lives in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The `transcript.line` event holding its first stored copy.
    pub seq: Option<u64>,
    pub parent: Option<CompactId>,
    /// The session it was first stored under.
    pub session: CompactId,
    /// The `run.message` event of the same message in a captured run.
    pub message_seq: Option<u64>,
}

/// An id as the uuid index keeps it: a UUID as Claude Code writes them (lowercase,
/// hyphenated) in its 16 bytes, anything else as written. The index holds a record per
/// entry, and on a large history its size decides how much of it sled's cache holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompactId {
    Uuid([u8; 16]),
    Text(String),
}

impl Default for CompactId {
    fn default() -> Self {
        CompactId::Text(String::new())
    }
}

impl CompactId {
    pub fn new(id: &str) -> CompactId {
        let bytes = id.as_bytes();
        let canonical = bytes.len() == 36
            && bytes.iter().enumerate().all(|(at, byte)| match at {
                8 | 13 | 18 | 23 => *byte == b'-',
                _ => matches!(byte, b'0'..=b'9' | b'a'..=b'f'),
            });
        if !canonical {
            return CompactId::Text(id.to_string());
        }
        let mut uuid = [0u8; 16];
        let digits = bytes.iter().filter(|byte| **byte != b'-');
        for (index, digit) in digits.enumerate() {
            let value = match digit {
                b'0'..=b'9' => digit - b'0',
                _ => digit - b'a' + 10,
            };
            uuid[index / 2] |= if index % 2 == 0 { value << 4 } else { value };
        }
        CompactId::Uuid(uuid)
    }

    /// Whether this is `id`.
    pub fn is(&self, id: &str) -> bool {
        *self == CompactId::new(id)
    }
}

impl std::fmt::Display for CompactId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            CompactId::Text(text) => formatter.write_str(text),
            CompactId::Uuid(bytes) => {
                for (index, byte) in bytes.iter().enumerate() {
                    if matches!(index, 4 | 6 | 8 | 10) {
                        formatter.write_str("-")?;
                    }
                    write!(formatter, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
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
    /// The current revision's last segment of lines, still growing.
    pub segment: Option<Segment>,
    /// The `transcript.partial` event of an unterminated last line, while it is last.
    pub partial_seq: Option<u64>,
}

/// Lines `start..start + count` of a file revision: the consecutive `transcript.line`
/// events from `seq` on, or (`copied`) the `count` lines of the `transcript.copy` at `seq`.
///
/// # Invariants
/// A revision's segments tile its positions `0..lines` without gaps or overlaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub start: u64,
    pub seq: u64,
    pub count: u64,
    pub copied: bool,
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
    /// 3 custom title, 2 AI title, 1 summary, 0 the first prompt: a title only replaces
    /// one of lower or equal rank, and the first prompt only stands in for none.
    pub title_rank: u8,
    /// Where the title came from: `custom-title`, `ai-title`, `summary` or `first-prompt`.
    #[serde(default)]
    pub title_source: Option<String>,
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    /// Lines of the current revisions of the session's files, copied ones included.
    pub entries: u64,
    /// Lines stored for this session itself (not copies).
    pub own_entries: u64,
    /// Distinct user and assistant entries the archive holds for the session (by uuid),
    /// each counted once however often a rewrite stored its line again — including those a
    /// later rewrite removed from the file, which the archive keeps.
    pub user_entries: u64,
    pub assistant_entries: u64,
    pub malformed: u64,
    pub unknown_types: u64,
    /// Fields whose values had a type this version does not expect (skipped, the rest of
    /// each line read), by dotted name: schema drift made visible.
    #[serde(default)]
    pub drifted_fields: BTreeMap<String, u64>,
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
    /// What its runs recorded, for a session whose transcript is not archived.
    pub recorded: RecordedCounts,
}

/// What a session's runs recorded: messages by type, and usage per model from their result
/// messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCounts {
    pub counts: MessageCounts,
    pub usage_by_model: BTreeMap<String, Usage>,
}

/// Recorded messages, in all and by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub messages: u64,
    pub user: u64,
    pub assistant: u64,
}

impl MessageCounts {
    /// What `self` has beyond `earlier` (a later count of the same messages).
    pub fn since(&self, earlier: &MessageCounts) -> MessageCounts {
        MessageCounts {
            messages: self.messages.saturating_sub(earlier.messages),
            user: self.user.saturating_sub(earlier.user),
            assistant: self.assistant.saturating_sub(earlier.assistant),
        }
    }

    pub fn add(&mut self, other: &MessageCounts) {
        self.messages += other.messages;
        self.user += other.user;
        self.assistant += other.assistant;
    }
}

/// How many entries a session has, and of which kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryCounts {
    /// Entries, a fork's shared prefix included.
    pub entries: u64,
    /// Entries the session wrote itself.
    pub own: u64,
    pub user: u64,
    pub assistant: u64,
}

impl SessionRecord {
    /// Usage per model: from the transcript's API messages when a transcript is archived,
    /// else from its runs' result messages.
    pub fn usage_by_model(&self) -> &BTreeMap<String, Usage> {
        if self.files.is_empty() {
            &self.recorded.usage_by_model
        } else {
            &self.usage_by_model
        }
    }

    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for usage in self.usage_by_model().values() {
            total.add(usage);
        }
        total
    }

    /// What its usage costs at `prices`.
    pub fn cost(&self, prices: &PriceTable) -> Cost {
        prices.cost(self.usage_by_model())
    }

    /// Its entries: its transcript's lines when a transcript is archived, else the messages
    /// its runs recorded (a session cclog ran where it does not archive transcripts).
    pub fn entry_counts(&self) -> EntryCounts {
        if self.files.is_empty() {
            let recorded = &self.recorded.counts;
            return EntryCounts {
                entries: recorded.messages,
                own: recorded.messages,
                user: recorded.user,
                assistant: recorded.assistant,
            };
        }
        EntryCounts {
            entries: self.entries,
            own: self.own_entries,
            user: self.user_entries,
            assistant: self.assistant_entries,
        }
    }

    /// The session's main transcript (not a subagent's).
    pub fn main_file(&self) -> Option<&str> {
        self.files.first().map(String::as_str)
    }
}

/// The last usage snapshot of one API message, and where it was counted: the session that
/// stored it first, under the model it is billed as, in the quarter hour of its entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUsage {
    pub session: String,
    pub project: String,
    pub model: String,
    pub usage: Usage,
    /// Its entry's time, ms since the epoch, when the entry has one.
    pub at_ms: Option<i64>,
}

/// Quarter hours in a day: the finest grain usage is kept at, so that days in any time
/// zone (offsets are whole quarter hours) and 5-hour blocks can be cut from it exactly.
pub const QUARTERS_PER_DAY: u32 = 96;
pub const QUARTER_MS: i64 = 15 * 60 * 1000;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One model's usage on one UTC day, per quarter hour that has any: the row usage reports
/// are cut from (`D` for all projects, `P` per project).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    /// In quarter order.
    pub quarters: Vec<QuarterUsage>,
}

/// Usage in one quarter hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarterUsage {
    /// 0..96 within the UTC day.
    pub quarter: u8,
    /// API requests (messages) counted.
    pub requests: u64,
    pub usage: Usage,
    /// The first and last request's time, ms since the epoch.
    pub first_ms: i64,
    pub last_ms: i64,
}

impl DayUsage {
    /// The quarter hour that holds `at_ms` (an instant on this row's day).
    pub fn quarter_mut(&mut self, at_ms: i64) -> &mut QuarterUsage {
        let quarter = (at_ms.rem_euclid(DAY_MS) / QUARTER_MS) as u8;
        let index = match self.quarters.binary_search_by_key(&quarter, |slot| slot.quarter) {
            Ok(index) => index,
            Err(index) => {
                let slot = QuarterUsage { quarter, first_ms: at_ms, last_ms: at_ms, ..Default::default() };
                self.quarters.insert(index, slot);
                index
            }
        };
        &mut self.quarters[index]
    }
}

/// One run's read model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub source: String,
    pub mode: events::RunMode,
    pub session: Option<String>,
    pub status: events::RunStatus,
    pub messages: u64,
    pub first_seq: u64,
    pub result_type: Option<String>,
    /// The `run.message` event of the `result` message.
    pub result_seq: Option<u64>,
    pub duration_ms: Option<u64>,
    pub cwd: Option<String>,
    pub prompt: Option<String>,
    /// The session resumed or forked.
    pub resumed: Option<String>,
    /// Whether the run branched a new session off `resumed`.
    pub fork: bool,
    /// The `result` message's `result` text.
    pub result: Option<String>,
    /// The model of its latest assistant message, and every model it used.
    pub model: Option<String>,
    pub models: BTreeSet<String>,
    /// Its `user` and `assistant` messages (`messages` is the total).
    pub user_messages: u64,
    pub assistant_messages: u64,
    /// What of its counts its session's record has, and when it got them (see the run fold).
    pub pushed: MessageCounts,
    pub pushed_us: u64,
    /// Why the run failed, was cancelled or interrupted, from `run.ended`.
    pub detail: Option<String>,
    /// When `run.started` was appended, µs since the epoch.
    pub started_us: u64,
    pub ended_us: Option<u64>,
}

impl RunRecord {
    /// Its messages, in all and by kind.
    pub fn counts(&self) -> MessageCounts {
        MessageCounts { messages: self.messages, user: self.user_messages, assistant: self.assistant_messages }
    }

    /// Whether the run is still going.
    pub fn is_active(&self) -> bool {
        self.status == events::RunStatus::Running
    }

    /// The session this run's session branched from, when it made a new one.
    pub fn parent_session(&self) -> Option<&str> {
        self.resumed.as_deref().filter(|_| self.fork)
    }
}

#[cfg(test)]
mod tests {
    use super::CompactId;
    use proptest::prelude::*;

    #[test]
    fn uuids_take_16_bytes_and_read_back() {
        let uuid = "5a1d3c2e-0f4b-4c6d-8e7f-a1b2c3d4e5f6";
        assert!(matches!(CompactId::new(uuid), CompactId::Uuid(_)));
        assert_eq!(CompactId::new(uuid).to_string(), uuid);
        // Not as Claude Code writes them: kept as written, so they read back the same.
        for id in ["5A1D3C2E-0F4B-4C6D-8E7F-A1B2C3D4E5F6", "5a1d3c2e0f4b4c6d8e7fa1b2c3d4e5f6", "u-1", ""] {
            assert_eq!(CompactId::new(id), CompactId::Text(id.to_string()));
        }
    }

    proptest! {
        #[test]
        fn any_id_reads_back_as_it_was_written(id in "([0-9a-fA-F-]{0,40}|\\PC{0,40})") {
            prop_assert_eq!(CompactId::new(&id).to_string(), id.clone());
            prop_assert!(CompactId::new(&id).is(&id));
        }

        #[test]
        fn any_uuid_is_compact(bytes in proptest::array::uniform16(any::<u8>())) {
            let text = CompactId::Uuid(bytes).to_string();
            prop_assert_eq!(CompactId::new(&text), CompactId::Uuid(bytes));
        }
    }
}
