//! The coordinator's configuration: which machine and project its scopes belong to, and how
//! long a silent instance keeps its claim. Each value comes from the first source that sets
//! it: `--config FILE`; the file named by `CCLOG_COORDINATOR_CONFIG` (or the Python
//! coordinator's `CLAUDE_SESSION_COORDINATOR_CONFIG`); `./.claude/session-coordinator-config.json`;
//! `~/.config/cclog/coordinator.json`; the Python coordinator's
//! `~/.config/claude-session-coordinator/config.json`; else detection (the hostname; the git
//! origin's `owner/repo`, else the directory's name) and defaults.
//!
//! A file may be in cclog's shape (`machine_id`, `project`, `lease_seconds`,
//! `server_idle_exit_seconds`; `CCLOG_IDLE_EXIT` sets the last before any file) or in the
//! Python coordinator's (`session.machine_id`, `"auto"` for the hostname;
//! `session.project_detection`, `git` or `directory`; `storage` and `server`, read and
//! reported as not used, since the log is the store), so that its users' files work as
//! they are; where one file sets a value both ways, cclog's field wins and the report says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::{Failure, EXIT_BAD_INPUT};

/// How long a server started in the background waits with no client before it exits.
const DEFAULT_IDLE_EXIT: Duration = Duration::from_secs(30 * 60);

/// One configuration file's contents: cclog's fields, and the Python coordinator's sections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(alias = "machine")]
    machine_id: Option<String>,
    #[serde(alias = "project_name")]
    project: Option<String>,
    lease_seconds: Option<u64>,
    /// How long a server started in the background waits with no client before it exits
    /// (0: it stays).
    server_idle_exit_seconds: Option<u64>,
    session: Option<OriginalSession>,
    storage: Option<OriginalStorage>,
    /// The original's `port` and `host`: `cclog serve --addr` says where cclog listens.
    server: Option<serde_json::Value>,
}

/// The Python coordinator's `session` section.
#[derive(Debug, Default, Deserialize)]
struct OriginalSession {
    /// A name, or `auto` for the hostname.
    machine_id: Option<String>,
    /// `git` (the origin's owner/repo, else the directory's name) or `directory`.
    project_detection: Option<String>,
}

/// The Python coordinator's `storage` section: its adapter (`local`, `redis`) and settings.
#[derive(Debug, Default, Deserialize)]
struct OriginalStorage {
    adapter: Option<String>,
    config: Option<serde_json::Value>,
}

/// Where a project's name comes from.
enum ProjectSource {
    Named(String),
    /// The git origin's `owner/repo`, else the directory's name.
    Git,
    /// The directory's name.
    Directory,
}

/// A value and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct CoordinatorConfig {
    pub machine: Sourced<String>,
    pub project: Sourced<String>,
    pub lease_seconds: Sourced<u64>,
    /// How long a server `cclog mcp` starts in the background stays with no client (0: until
    /// stopped): `CCLOG_IDLE_EXIT` (a duration) first, then the files.
    pub server_idle_exit_seconds: Sourced<u64>,
    /// Every place looked at, in order, and whether a file was there.
    pub searched: Vec<(String, bool)>,
    /// What was read and not used, and which of two settings of one value won.
    pub notes: Vec<String>,
    /// The Python coordinator's local store: the `base_path` of the first file whose
    /// `storage` names the local adapter, against the working directory, as it reads it.
    pub legacy_store: Option<PathBuf>,
}

impl CoordinatorConfig {
    /// Loads from the sources in order of precedence; `cwd` is where `./.claude` and the
    /// project are looked for.
    pub fn load(explicit: Option<&Path>, cwd: &Path) -> anyhow::Result<CoordinatorConfig> {
        let mut candidates: Vec<(String, PathBuf, bool)> = Vec::new();
        if let Some(path) = explicit {
            candidates.push(("--config".into(), path.to_path_buf(), true));
        }
        for variable in ["CCLOG_COORDINATOR_CONFIG", "CLAUDE_SESSION_COORDINATOR_CONFIG"] {
            if let Some(path) = std::env::var_os(variable).filter(|path| !path.is_empty()) {
                candidates.push((variable.into(), PathBuf::from(path), true));
            }
        }
        candidates.push((
            "./.claude/session-coordinator-config.json".into(),
            cwd.join(".claude/session-coordinator-config.json"),
            false,
        ));
        if let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) {
            let home = PathBuf::from(home);
            for user_file in [".config/cclog/coordinator.json", ".config/claude-session-coordinator/config.json"] {
                candidates.push((format!("~/{user_file}"), home.join(user_file), false));
            }
        }
        let (mut machine, mut project, mut lease) = (None, None, None);
        let mut idle_exit = match std::env::var("CCLOG_IDLE_EXIT") {
            Ok(text) if !text.trim().is_empty() => {
                let seconds = match text.trim() {
                    "0" => 0,
                    duration => humantime::parse_duration(duration)
                        .map_err(|error| Failure {
                            code: EXIT_BAD_INPUT,
                            message: format!(
                                "CCLOG_IDLE_EXIT={text:?} is not a duration such as 30m or 2h ({error}); 0 keeps the server running"
                            ),
                        })?
                        .as_secs()
                        .max(1),
                };
                Some(Sourced { value: seconds, source: "CCLOG_IDLE_EXIT".to_string() })
            }
            _ => None,
        };
        let mut searched = Vec::new();
        let mut notes = Vec::new();
        let mut legacy_store = None;
        for (name, path, required) in candidates {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                    searched.push((format!("{name} ({})", path.display()), false));
                    continue;
                }
                Err(error) => {
                    return Err(invalid(&path, &format!("cannot be read: {error}")));
                }
            };
            let file: ConfigFile = serde_json::from_str(&text).map_err(|error| {
                invalid(
                    &path,
                    &format!(
                        "{error}; the fields are machine_id, project, lease_seconds and server_idle_exit_seconds (or the Python \
                         coordinator's session, storage and server)"
                    ),
                )
            })?;
            let source = format!("{name} ({})", path.display());
            searched.push((source.clone(), true));
            let original = file.session.unwrap_or_default();
            let auto = |value: String| (value != "auto").then_some(value);
            let machine_here = match (file.machine_id, original.machine_id) {
                (Some(ours), Some(_)) => {
                    notes.push(format!("{source} sets machine_id and session.machine_id: machine_id wins"));
                    Some(Some(ours))
                }
                (Some(ours), None) => Some(Some(ours)),
                (None, Some(theirs)) => Some(auto(theirs)),
                (None, None) => None,
            };
            let project_here = match (file.project, original.project_detection) {
                (Some(ours), Some(_)) => {
                    notes.push(format!("{source} sets project and session.project_detection: project wins"));
                    Some(ProjectSource::Named(ours))
                }
                (Some(ours), None) => Some(ProjectSource::Named(ours)),
                (None, Some(detection)) => Some(match detection.as_str() {
                    "git" => ProjectSource::Git,
                    "directory" => ProjectSource::Directory,
                    other => {
                        return Err(invalid(
                            &path,
                            &format!("session.project_detection {other:?}: use \"git\" or \"directory\""),
                        ))
                    }
                }),
                (None, None) => None,
            };
            for (field, value) in [
                ("machine_id", machine_here.as_ref().and_then(Option::as_ref)),
                ("project", if let Some(ProjectSource::Named(name)) = &project_here { Some(name) } else { None }),
            ] {
                if let Some(value) = value {
                    cclog_ingest::coordinator::check_name(field, value)
                        .map_err(|error| invalid(&path, &error.to_string()))?;
                }
            }
            let longest = cclog_ingest::coordinator::MAX_LEASE_SECONDS;
            if file.lease_seconds.is_some_and(|seconds| !(1..=longest).contains(&seconds)) {
                return Err(invalid(&path, &format!("lease_seconds must be from 1 to {longest} (30 days)")));
            }
            if let Some(storage) = file.storage {
                notes.push(storage_note(&source, &storage));
                let base_path = storage.config.as_ref().and_then(|config| config.get("base_path")?.as_str());
                if let (None, "local", Some(base_path)) =
                    (&legacy_store, storage.adapter.as_deref().unwrap_or("local"), base_path)
                {
                    legacy_store = Some(cwd.join(base_path));
                }
            }
            if file.server.is_some() {
                notes.push(format!(
                    "{source}: server is not used; `cclog serve --addr HOST:PORT` says where cclog listens"
                ));
            }
            machine = machine.or(machine_here.map(|value| match value {
                Some(value) => Sourced { value, source: source.clone() },
                None => Sourced {
                    value: cclog_ingest::coordinator::detect_machine(),
                    source: format!("hostname (session.machine_id \"auto\" in {source})"),
                },
            }));
            project = project.or(project_here.map(|how| match how {
                ProjectSource::Named(value) => Sourced { value, source: source.clone() },
                ProjectSource::Git => Sourced {
                    value: cclog_ingest::coordinator::detect_project(cwd),
                    source: format!(
                        "git origin or name of {} (session.project_detection \"git\" in {source})",
                        cwd.display()
                    ),
                },
                ProjectSource::Directory => Sourced {
                    value: directory_name(cwd),
                    source: format!("name of {} (session.project_detection \"directory\" in {source})", cwd.display()),
                },
            }));
            lease = lease.or(file.lease_seconds.map(|value| Sourced { value, source: source.clone() }));
            idle_exit =
                idle_exit.or(file.server_idle_exit_seconds.map(|value| Sourced { value, source: source.clone() }));
        }
        let machine = machine.unwrap_or_else(|| Sourced {
            value: cclog_ingest::coordinator::detect_machine(),
            source: "hostname".into(),
        });
        let project = project.unwrap_or_else(|| Sourced {
            value: cclog_ingest::coordinator::detect_project(cwd),
            source: format!("git origin or name of {}", cwd.display()),
        });
        let lease_seconds = lease.unwrap_or_else(|| Sourced {
            value: cclog_ingest::coordinator::DEFAULT_LEASE.as_secs(),
            source: "default".into(),
        });
        let server_idle_exit_seconds =
            idle_exit.unwrap_or_else(|| Sourced { value: DEFAULT_IDLE_EXIT.as_secs(), source: "default".into() });
        Ok(CoordinatorConfig {
            machine,
            project,
            lease_seconds,
            server_idle_exit_seconds,
            searched,
            notes,
            legacy_store,
        })
    }

    /// The configuration for the current directory (no `--config`).
    pub fn for_current_dir() -> anyhow::Result<CoordinatorConfig> {
        Self::load(None, &std::env::current_dir().context("the working directory")?)
    }

    /// How long a server started in the background waits with no client; `None`: it stays.
    pub fn server_idle_exit(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.server_idle_exit_seconds.value)).filter(|idle| !idle.is_zero())
    }

    pub fn identity(&self) -> cclog_ingest::coordinator::Identity {
        cclog_ingest::coordinator::Identity {
            machine: self.machine.value.clone(),
            project: self.project.value.clone(),
            lease: Duration::from_secs(self.lease_seconds.value),
        }
    }

    /// `--check-config`'s report.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            crate::outln!("{}", crate::json_style::line(self)?);
            return Ok(());
        }
        crate::outln!("machine        {:<32} from {}", self.machine.value, self.machine.source);
        crate::outln!("project        {:<32} from {}", self.project.value, self.project.source);
        crate::outln!("lease_seconds  {:<32} from {}", self.lease_seconds.value, self.lease_seconds.source);
        crate::outln!(
            "server idle    {:<32} from {}",
            match self.server_idle_exit_seconds.value {
                0 => "stays until stopped".to_string(),
                seconds => humantime::format_duration(Duration::from_secs(seconds)).to_string(),
            },
            self.server_idle_exit_seconds.source
        );
        crate::outln!("scope prefix   {}:{}:", self.machine.value, self.project.value);
        crate::outln!("looked at, in order:");
        for (place, found) in &self.searched {
            crate::outln!("  {} {place}", if *found { "used " } else { "none " });
        }
        if !self.notes.is_empty() {
            crate::outln!("notes:");
            for note in &self.notes {
                crate::outln!("  {note}");
            }
        }
        Ok(())
    }
}

/// What `--check-config` says of the Python coordinator's `storage` section: the log is
/// cclog's store, so no adapter is used; an adapter the original does not know is named.
fn storage_note(source: &str, storage: &OriginalStorage) -> String {
    let adapter = storage.adapter.as_deref().unwrap_or("local");
    let kept = match (adapter, storage.config.as_ref().and_then(|config| config.get("base_path"))) {
        ("local", Some(path)) => format!(
            "; `cclog kv import-legacy` brings what it kept in {} into the log",
            path.as_str().unwrap_or("its base_path")
        ),
        _ => String::new(),
    };
    match adapter {
        "local" | "redis" => {
            format!("{source}: storage (adapter {adapter:?}) is not used: cclog keeps every write in its log{kept}")
        }
        other => format!(
            "{source}: warning: storage adapter {other:?} is not one the Python coordinator has (local, redis); \
             not used either way: cclog keeps every write in its log"
        ),
    }
}

/// Where `cclog kv import-legacy` reads the Python coordinator's store by default: the local
/// adapter's `base_path` in the configuration `cwd` sees, else `./.claude/session-state`.
pub fn legacy_store_dir(cwd: &Path) -> PathBuf {
    CoordinatorConfig::load(None, cwd)
        .ok()
        .and_then(|config| config.legacy_store)
        .unwrap_or_else(|| cwd.join(".claude/session-state"))
}

/// The last component of `dir`, as the Python coordinator's `directory` detection names a project.
fn directory_name(dir: &Path) -> String {
    dir.file_name().map_or_else(|| "default".to_string(), |name| name.to_string_lossy().into_owned())
}

fn invalid(path: &Path, problem: &str) -> anyhow::Error {
    Failure { code: EXIT_BAD_INPUT, message: format!("coordinator configuration {}: {problem}", path.display()) }.into()
}
