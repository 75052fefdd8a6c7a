//! Finds Claude Code transcript files and says what each one is from where it lies, in
//! all three layouts:
//! - `<project>/<session>.jsonl`, subagents inline as `isSidechain` entries (1.0.x);
//! - `<project>/agent-<id>.jsonl` beside the session, which its entries name (2.0.x);
//! - `<project>/<session>/subagents/agent-<id>.jsonl` with `agent-<id>.meta.json` (2.1.x).
//!
//! A main file whose name is not a session id (test fixtures, renamed copies) takes the
//! last session id its entries carry. Files are ordered oldest first, so that a session is
//! archived before the forks and resumes that copy it.

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

/// Every `*.jsonl` under `root` (or `root` itself if it is a file), oldest first.
pub fn find(root: &Path) -> std::io::Result<Vec<Candidate>> {
    let mut found = Vec::new();
    if root.is_file() {
        found.push(candidate(root.to_path_buf())?);
    } else {
        walk(root, &mut found)?;
    }
    found.sort_by(|a, b| a.order.cmp(&b.order));
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<Candidate>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "jsonl") {
            found.push(candidate(path)?);
        }
    }
    Ok(())
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
