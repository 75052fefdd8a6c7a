//! A transcript file's stream, `transcript/<absolute path>`, holds, in order:
//! `transcript.revision` (the file as first seen, or seen rewritten), then its lines —
//! `transcript.line` (one raw line, no newline), `transcript.copy` (a run of lines copied
//! from entries already in the log, see [`CopyRun`]) and `transcript.partial` (an
//! unterminated last line, kept as evidence) — with a `transcript.checkpoint` after each
//! import, `transcript.agent-meta` (a subagent's `.meta.json`) and finally
//! `transcript.deleted` when the file is gone.

use serde::{Deserialize, Serialize};

pub const KIND_REVISION: &str = "transcript.revision";
pub const KIND_LINE: &str = "transcript.line";
pub const KIND_PARTIAL: &str = "transcript.partial";
pub const KIND_COPY: &str = "transcript.copy";
pub const KIND_CHECKPOINT: &str = "transcript.checkpoint";
pub const KIND_AGENT_META: &str = "transcript.agent-meta";
pub const KIND_DELETED: &str = "transcript.deleted";

const TRANSCRIPT_PREFIX: &str = "transcript/";

/// The stream of one transcript file.
pub fn transcript_stream(path: &str) -> String {
    format!("{TRANSCRIPT_PREFIX}{path}")
}

/// The file path of a transcript stream.
pub fn transcript_path(stream: &str) -> Option<&str> {
    stream.strip_prefix(TRANSCRIPT_PREFIX)
}

/// What a transcript file is, from where it lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// The session the file belongs to.
    pub session: String,
    /// The project folder's name (the cwd with every non-alphanumeric character as '-').
    pub project: String,
    /// For a subagent's transcript, the agent id.
    pub agent: Option<String>,
}

/// Why a file got a new revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevisionReason {
    /// First seen.
    New,
    /// Content already archived changed (for example `/rewind`, or a compaction rewrite).
    Rewritten,
    /// The file is shorter than what was archived.
    Truncated,
    /// The file came back after it was recorded as deleted.
    Reappeared,
}

/// `transcript.revision`: the lines that follow, up to the next revision, are the file's
/// content from its first byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u32,
    pub reason: RevisionReason,
    pub file: FileIdentity,
}

/// `transcript.copy`: the next `count` lines of the file are entries already in the log,
/// copied with a few top-level values replaced — what `--resume` and `--fork-session` write.
///
/// The lines are the last `count` entries of the chain that ends at `leaf`, walked up by
/// `parentUuid` through the entries' first stored copies, each with the rewrite for its
/// entry type applied. The payload's size does not depend on `count`: a fork's shared
/// prefix costs one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRun {
    pub leaf: String,
    pub count: u64,
    /// One rewrite per entry type, see [`crate::entry::Variants`].
    pub variants: crate::entry::Variants,
    /// The session the copied entries were first stored under.
    pub source_session: String,
}

/// `transcript.checkpoint`: what an import had read of the file when it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Bytes of complete lines read, from the start of the file.
    pub offset: u64,
    /// Complete lines read.
    pub lines: u64,
    /// BLAKE3 of those `offset` bytes.
    pub digest: [u8; 32],
    /// Length of an unterminated last line after `offset`, kept as `transcript.partial`.
    pub partial: u64,
    /// The file's modification time when read, in ns since the epoch.
    pub modified_ns: u64,
}

/// `transcript.deleted`: the file no longer exists; everything archived of it stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub revision: u32,
}
