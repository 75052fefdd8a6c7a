//! Gives back a transcript file from the log, line for line and byte for byte: stored lines
//! as they are, and copied runs rebuilt through their pointer — the chain of first stored
//! copies walked up from the run's leaf, each with the run's replaced values. This is the
//! forensic guarantee: what cclog archived is exactly what Claude Code wrote, and a fork's
//! shared prefix comes back with the fork's own `sessionId` without being stored twice.

use cclog_engine::{Event, Log};

use crate::archive::{Archive, FileState};
use crate::entry::apply_variants;
use crate::events::{self, CopyRun, Revision};
use crate::{Error, Result};

/// One line of a replayed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line without its newline.
    pub bytes: Vec<u8>,
    /// The event the line comes from: its own `transcript.line`, or the `transcript.copy`
    /// that points at it.
    pub seq: u64,
    /// Whether it came through a copy pointer.
    pub copied: bool,
    /// The event that stores the entry's bytes: `seq` for a line, the original's for a
    /// copy — the same for an entry wherever it is shared.
    pub origin: u64,
    /// `false` only for an unterminated last line.
    pub terminated: bool,
}

/// The revisions of a file: `(revision, seq of its transcript.revision event)`.
pub fn revisions(log: &Log, path: &str) -> Result<Vec<(u32, u64)>> {
    let mut found = Vec::new();
    for event in log.stream(&events::transcript_stream(path), 0) {
        let event = event?;
        if event.kind() == events::KIND_REVISION {
            let revision: Revision = events::decode(events::KIND_REVISION, &event.payload)?;
            found.push((revision.revision, event.seq()));
        }
    }
    Ok(found)
}

/// Calls `visit` with every line of one revision of a file (the current one by default),
/// in order. An unterminated last line comes last with `terminated: false`.
pub fn for_each_line(
    log: &Log,
    file: &FileState,
    revision: Option<u32>,
    mut visit: impl FnMut(Line) -> Result<()>,
) -> Result<()> {
    let start = match revision {
        None => file.revision_seq,
        Some(wanted) if wanted == file.revision => file.revision_seq,
        Some(wanted) => revisions(log, &file.path)?
            .into_iter()
            .find(|(revision, _)| *revision == wanted)
            .map(|(_, seq)| seq)
            .ok_or_else(|| Error::NotFound { what: "revision", id: format!("{wanted} of {}", file.path) })?,
    };
    let mut partial: Option<Line> = None;
    for event in log.stream(&events::transcript_stream(&file.path), start) {
        let event = event?;
        if event.kind() == events::KIND_REVISION && event.seq() != start {
            break;
        }
        if event.kind() == events::KIND_PARTIAL {
            partial = Some(Line {
                bytes: event.payload.clone(),
                seq: event.seq(),
                copied: false,
                origin: event.seq(),
                terminated: false,
            });
            continue;
        }
        let mut lines = 0;
        lines_of_event(log, &event, |line| {
            lines += 1;
            visit(line)
        })?;
        if lines > 0 {
            partial = None;
        }
    }
    match partial {
        Some(line) => visit(line),
        None => Ok(()),
    }
}

/// The lines one event contributes to its file: one for `transcript.line`, `count` for
/// `transcript.copy`, none for anything else.
pub fn lines_of_event(log: &Log, event: &Event, mut visit: impl FnMut(Line) -> Result<()>) -> Result<()> {
    match event.kind() {
        events::KIND_LINE => visit(Line {
            bytes: event.payload.clone(),
            seq: event.seq(),
            copied: false,
            origin: event.seq(),
            terminated: true,
        }),
        events::KIND_COPY => {
            let copy: CopyRun = events::decode(events::KIND_COPY, &event.payload)?;
            for (origin, original) in copied_originals(log, event.seq(), &copy)? {
                let bytes = apply_variants(&original, &copy.variants).ok_or_else(|| Error::Inconsistent {
                    seq: event.seq(),
                    detail: "a copied entry has no rewrite for its type".into(),
                })?;
                visit(Line { bytes, seq: event.seq(), copied: true, origin, terminated: true })?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The seqs and stored bytes of the entries a copy run points at, oldest first.
fn copied_originals(log: &Log, seq: u64, copy: &CopyRun) -> Result<Vec<(u64, Vec<u8>)>> {
    let broken = |detail: String| Error::Inconsistent { seq, detail };
    let mut seqs = Vec::with_capacity(usize::try_from(copy.count).unwrap_or(0).min(1 << 20));
    let mut next = Some(copy.leaf.clone());
    for _ in 0..copy.count {
        let uuid = next.ok_or_else(|| broken(format!("the chain ends before {} entries", copy.count)))?;
        let record = Archive::entry(log, &uuid)?.ok_or_else(|| broken(format!("entry {uuid} is not stored")))?;
        let stored = record.seq.ok_or_else(|| broken(format!("entry {uuid} has no stored line")))?;
        seqs.push(stored);
        next = record.parent.map(|parent| parent.to_string());
    }
    seqs.reverse();
    seqs.into_iter()
        .map(|stored| {
            let event = log.get(stored)?.ok_or_else(|| broken(format!("seq {stored} is missing")))?;
            Ok((stored, event.payload))
        })
        .collect()
}

/// Writes one revision of a file as it was on disk.
pub fn write_file(log: &Log, file: &FileState, revision: Option<u32>, out: &mut impl std::io::Write) -> Result<()> {
    for_each_line(log, file, revision, |line| {
        out.write_all(&line.bytes).map_err(|source| Error::Io { source })?;
        if line.terminated {
            out.write_all(b"\n").map_err(|source| Error::Io { source })?;
        }
        Ok(())
    })
}
