//! Finds Claude Code transcript files and says what each one is from where it lies, in
//! all three layouts:
//! - `<project>/<session>.jsonl`, subagents inline as `isSidechain` entries (1.0.x);
//! - `<project>/agent-<id>.jsonl` beside the session, which its entries name (2.0.x);
//! - `<project>/<session>/subagents/agent-<id>.jsonl` with `agent-<id>.meta.json` (2.1.x).
//!
//! A main file whose name is not a session id (test fixtures, renamed copies) takes the
//! last session id its entries carry. Files are ordered oldest first, so that a session is
//! archived before the forks and resumes that copy it. Symbolic links are followed and each
//! directory walked once; what cannot be read is reported as [`Skipped`], never fatal.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cclog_projections::events::FileIdentity;

/// A transcript file found on disk.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    /// `None` until [`identify`] has read the file (only needed for new files).
    pub agent: Option<String>,
    /// The `.meta.json` beside a 2.1.x subagent transcript.
    pub agent_meta: Option<PathBuf>,
    /// Size in bytes when found.
    pub size: u64,
    pub order: (SystemTime, PathBuf),
}

/// A path under a root that discovery left out, and why: an unreadable directory, a
/// `*.jsonl` that is not a regular file, a broken or looping symbolic link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What discovery found under a root.
#[derive(Debug, Default)]
pub struct Found {
    /// Transcript files, oldest first.
    pub candidates: Vec<Candidate>,
    pub skipped: Vec<Skipped>,
}

/// Every `*.jsonl` under `root` (or `root` itself if it is a file), oldest first. Symbolic
/// links are followed — a directory reached twice is walked once, so loops end — and a file
/// reached through a link is named by its real path. Whatever cannot be read is skipped and
/// reported, never fatal.
pub fn find(root: &Path) -> Found {
    let mut walk = Walk::default();
    visit(root, true, &mut walk);
    let mut found = walk.found;
    found.candidates.sort_by(|a, b| a.order.cmp(&b.order));
    found
}

/// A walk in progress: what it found, and the directories and files it has already seen
/// (by real path), so each is taken once however many ways lead to it.
#[derive(Default)]
struct Walk {
    found: Found,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

impl Walk {
    fn skip(&mut self, path: &Path, reason: impl std::fmt::Display) {
        self.found.skipped.push(Skipped { path: path.to_path_buf(), reason: reason.to_string() });
    }
}

/// Looks at `path` (following links): walks a directory, takes a `*.jsonl` file (or any
/// file given as a root), skips the rest with a reason.
fn visit(path: &Path, is_root: bool, walk: &mut Walk) {
    let linked = std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_symlink());
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if linked => return walk.skip(path, format!("a symbolic link to nothing readable ({error})")),
        Err(error) => return walk.skip(path, error),
    };
    // The real path: what a link or the root resolves to. Below it every path is real
    // already (children are joined to it), so it is resolved only there.
    let real = if linked || is_root {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    if metadata.is_dir() {
        if !walk.dirs.insert(real.clone()) {
            if linked {
                walk.skip(path, "a symbolic link to a directory already walked (a loop, or a second way in)");
            }
            return;
        }
        let mut entries =
            match std::fs::read_dir(&real).and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>()) {
                Ok(entries) => entries,
                Err(error) => return walk.skip(path, format!("unreadable directory ({error})")),
            };
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let child = real.join(entry.file_name());
            let named_jsonl = child.extension().is_some_and(|ext| ext == "jsonl");
            match entry.file_type() {
                Ok(kind) if kind.is_dir() || kind.is_symlink() => visit(&child, false, walk),
                Ok(kind) if named_jsonl && kind.is_file() => take(&child, walk),
                Ok(_) if named_jsonl => walk.skip(&child, "not a regular file"),
                Ok(_) => {}
                Err(error) => walk.skip(&child, error),
            }
        }
    } else if metadata.is_file() && (is_root || real.extension().is_some_and(|ext| ext == "jsonl")) {
        take(&real, walk);
    } else if is_root || real.extension().is_some_and(|ext| ext == "jsonl") {
        walk.skip(path, "not a regular file");
    }
}

fn take(path: &Path, walk: &mut Walk) {
    if walk.files.contains(path) {
        return;
    }
    match candidate(path.to_path_buf()) {
        Ok(candidate) => {
            walk.files.insert(candidate.path.clone());
            walk.found.candidates.push(candidate);
        }
        Err(error) => walk.skip(path, error),
    }
}

fn candidate(path: PathBuf) -> std::io::Result<Candidate> {
    let metadata = std::fs::metadata(&path)?;
    let born = metadata.created().or_else(|_| metadata.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let agent = stem.strip_prefix("agent-").map(str::to_string);
    let agent_meta = agent.as_ref().map(|_| path.with_extension("meta.json")).filter(|meta| meta.is_file());
    Ok(Candidate { order: (born, path.clone()), path, agent, agent_meta, size: metadata.len() })
}

fn name_of(path: Option<&Path>) -> String {
    path.and_then(Path::file_name).map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether `text` has the shape of a session id (a UUID).
pub fn is_session_id(text: &str) -> bool {
    text.len() == 36
        && text
            .char_indices()
            .all(|(at, c)| if [8, 13, 18, 23].contains(&at) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// What a newly seen file is: its session, project and agent.
pub fn identify(candidate: &Candidate) -> FileIdentity {
    let path = &candidate.path;
    let parent = path.parent();
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(agent) = &candidate.agent {
        if name_of(parent) == "subagents" {
            let session_dir = parent.and_then(Path::parent);
            return FileIdentity {
                session: name_of(session_dir),
                project: name_of(session_dir.and_then(Path::parent)),
                agent: Some(agent.clone()),
            };
        }
        return FileIdentity {
            session: last_session_id(path).unwrap_or_else(|| stem.clone()),
            project: name_of(parent),
            agent: Some(agent.clone()),
        };
    }
    let session = if is_session_id(&stem) { stem } else { last_session_id(path).unwrap_or(stem) };
    FileIdentity { session, project: name_of(parent), agent: None }
}

/// The last `sessionId` the file's entries carry: a continued 1.0.x session starts with
/// entries copied under its parent's id and goes on under its own.
fn last_session_id(path: &Path) -> Option<String> {
    let reader = BufReader::new(std::fs::File::open(path).ok()?);
    let mut found = None;
    for line in reader.split(b'\n') {
        let line = line.ok()?;
        if let cclog_projections::entry::Parsed::Entry(facts) = cclog_projections::entry::parse(&line) {
            if let Some(session) = facts.session_id.filter(|session| !session.is_empty()) {
                found = Some(session.into_owned());
            }
        }
    }
    found
}
