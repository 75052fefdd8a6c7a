//! A team exported to a directory: its metadata, its whole event history, and every
//! transcript file its agents wrote, byte for byte as the archive holds it (removed teams
//! too: the log keeps them), with a manifest of every file's BLAKE3 hash. The manifest's own
//! hash is recorded in the team's `team.exported` event, so the log's hash chain vouches
//! for it; [`check`] confirms a directory against its manifest offline, and against that
//! event when the log is at hand.
//!
//! Layout of an export:
//! - `team.json`: the registry's record and the spec the team was made from.
//! - `events.jsonl`: one line per event of `team/<name>`: seq, time, kind, its hashes
//!   (hex) and the payload decoded.
//! - `transcripts/<agent>/<path under the agent's ~/.claude/projects>`: the files.
//! - `manifest.json`: the team, the log's head at export, and each file's path, size and
//!   BLAKE3 hash.

use std::path::{Path, PathBuf};

use cclog_engine::Log;
use cclog_projections::events::team::{self, Exported};
use cclog_projections::events::{self as vocabulary};
use cclog_projections::replay;
use cclog_projections::teams::TeamRegistry;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Error, Result};

/// The manifest's name in an export.
pub const MANIFEST: &str = "manifest.json";

/// One exported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the export directory.
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub team: String,
    pub exported_at: String,
    /// The log's last event when the export was made.
    pub log_head_seq: Option<u64>,
    pub log_head_hash: Option<String>,
    pub sessions: Vec<String>,
    pub files: Vec<ManifestFile>,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    pub output: PathBuf,
    pub files: usize,
    pub sessions: usize,
    /// BLAKE3 of `manifest.json`, as recorded in `team.exported`.
    pub manifest_blake3: String,
}

/// What [`check`] found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub team: String,
    pub files: usize,
    /// Files whose bytes differ from the manifest, or that are gone.
    pub damaged: Vec<String>,
    /// Files in the directory that the manifest does not list.
    pub unlisted: Vec<String>,
    /// Whether a `team.exported` event in the log records this manifest; `None` without a
    /// log to ask.
    pub recorded_in_log: Option<bool>,
}

impl CheckReport {
    pub fn intact(&self) -> bool {
        self.damaged.is_empty() && self.unlisted.is_empty() && self.recorded_in_log != Some(false)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

fn write(dir: &Path, relative: &str, bytes: &[u8], files: &mut Vec<ManifestFile>) -> Result<()> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, bytes).map_err(io(&path))?;
    files.push(ManifestFile {
        path: relative.to_string(),
        bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        blake3: blake3::hash(bytes).to_hex().to_string(),
    });
    Ok(())
}

/// A team event's payload as JSON, for people and scripts reading an export.
fn payload_json(kind: &str, payload: &[u8]) -> Value {
    vocabulary::payload_json(kind, payload)
        .unwrap_or_else(|| json!({ "undecodable": format!("{kind} is not a team event") }))
}

/// Exports team `name` of `log` into `output` (which must be empty or not exist) and
/// records the export.
pub fn export(log: &Log, name: &str, output: &Path) -> Result<ExportReport> {
    super::check_name("team", name)?;
    let record = TeamRegistry::get(log, name)?.ok_or_else(|| Error::UnknownTeam(name.to_string()))?;
    let spec = TeamRegistry::spec(log, &record)?;
    if output.exists() && std::fs::read_dir(output).map_err(io(output))?.next().is_some() {
        return Err(Error::InvalidTeam(format!("{} is not empty; export into a new directory", output.display())));
    }
    std::fs::create_dir_all(output).map_err(io(output))?;
    let mut files = Vec::new();
    let metadata = json!({ "record": record, "spec": spec });
    let text = serde_json::to_vec_pretty(&metadata).map_err(|error| Error::InvalidTeam(error.to_string()))?;
    write(output, "team.json", &text, &mut files)?;

    let mut events = Vec::new();
    for event in log.stream(&team::team_stream(name), 0) {
        let event = event?;
        let line = json!({
            "seq": event.seq(),
            "tsUs": event.header.ts_us,
            "kind": event.kind(),
            "hash": event.hash.to_hex(),
            "prev": event.prev.to_hex(),
            "payloadHash": event.payload_hash.to_hex(),
            "payload": payload_json(event.kind(), &event.payload),
        });
        events.extend_from_slice(line.to_string().as_bytes());
        events.push(b'\n');
    }
    write(output, "events.jsonl", &events, &mut files)?;

    let mut sessions = Vec::new();
    for found in TeamRegistry::agent_files(log, &record)? {
        let mut bytes = Vec::new();
        replay::write_file(log, &found.file, None, &mut bytes)?;
        write(output, &format!("transcripts/{}/{}", found.agent, found.inside.display()), &bytes, &mut files)?;
        if found.file.file.agent.is_none() && !sessions.contains(&found.file.file.session) {
            sessions.push(found.file.file.session.clone());
        }
    }
    let head = log.head();
    let manifest = Manifest {
        team: name.to_string(),
        exported_at: jiff::Timestamp::now().to_string(),
        log_head_seq: head.as_ref().map(|head| head.seq),
        log_head_hash: head.as_ref().map(|head| head.hash.to_hex()),
        sessions: sessions.clone(),
        files: files.clone(),
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|error| Error::InvalidTeam(error.to_string()))?;
    let manifest_path = output.join(MANIFEST);
    std::fs::write(&manifest_path, &text).map_err(io(&manifest_path))?;
    let manifest_blake3 = blake3::hash(&text).to_hex().to_string();
    let exported = Exported {
        output: output.to_string_lossy().into_owned(),
        sessions: u64::try_from(sessions.len()).unwrap_or(u64::MAX),
        manifest_blake3: manifest_blake3.clone(),
    };
    log.append_blocking(vec![cclog_engine::NewEvent::new(
        team::team_stream(name),
        team::KIND_EXPORTED,
        vocabulary::encode(&exported)?,
    )])?;
    Ok(ExportReport { output: output.to_path_buf(), files: files.len(), sessions: sessions.len(), manifest_blake3 })
}

fn listed_files(dir: &Path, base: &Path, found: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if path.is_dir() {
            listed_files(&path, base, found)?;
        } else if let Ok(relative) = path.strip_prefix(base) {
            found.push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Checks the export in `dir` against its manifest, and, given the log, the manifest
/// against the `team.exported` events of its team.
pub fn check(dir: &Path, log: Option<&Log>) -> Result<CheckReport> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|error| {
        Error::InvalidTeam(format!("{} is not an export manifest: {error}", manifest_path.display()))
    })?;
    let mut damaged = Vec::new();
    for file in &manifest.files {
        let intact = std::fs::read(dir.join(&file.path))
            .is_ok_and(|bytes| blake3::hash(&bytes).to_hex().as_str() == file.blake3);
        if !intact {
            damaged.push(file.path.clone());
        }
    }
    let mut present = Vec::new();
    listed_files(dir, dir, &mut present)?;
    let unlisted = present
        .into_iter()
        .filter(|path| path != MANIFEST && !manifest.files.iter().any(|file| &file.path == path))
        .collect();
    let recorded_in_log = match log {
        Some(log) => {
            let hash = blake3::hash(&text).to_hex().to_string();
            let mut recorded = false;
            for event in log.stream(&team::team_stream(&manifest.team), 0) {
                let event = event?;
                if event.kind() == team::KIND_EXPORTED {
                    let exported: Exported = vocabulary::decode(team::KIND_EXPORTED, &event.payload)?;
                    recorded |= exported.manifest_blake3 == hash;
                }
            }
            Some(recorded)
        }
        None => None,
    };
    Ok(CheckReport { team: manifest.team, files: manifest.files.len(), damaged, unlisted, recorded_in_log })
}
