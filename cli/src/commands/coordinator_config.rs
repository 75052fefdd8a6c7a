//! The coordinator's configuration: which machine and project its scopes belong to, and how
//! long a silent instance keeps its claim. Each value comes from the first source that sets
//! it: `--config FILE`; the file named by `CCLOG_COORDINATOR_CONFIG` (or the Python
//! coordinator's `CLAUDE_SESSION_COORDINATOR_CONFIG`); `./.claude/session-coordinator-config.json`;
//! `~/.config/cclog/coordinator.json`; else detection (the hostname; the git origin's
//! `owner/repo`, else the directory's name) and defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::{Failure, EXIT_BAD_INPUT};

/// One configuration file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(alias = "machine")]
    machine_id: Option<String>,
    #[serde(alias = "project_name")]
    project: Option<String>,
    lease_seconds: Option<u64>,
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
    /// Every place looked at, in order, and whether a file was there.
    pub searched: Vec<(String, bool)>,
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
            candidates.push((
                "~/.config/cclog/coordinator.json".into(),
                PathBuf::from(home).join(".config/cclog/coordinator.json"),
                false,
            ));
        }
        let (mut machine, mut project, mut lease) = (None, None, None);
        let mut searched = Vec::new();
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
                invalid(&path, &format!("{error}; the fields are machine_id, project and lease_seconds"))
            })?;
            let source = format!("{name} ({})", path.display());
            searched.push((source.clone(), true));
            for (field, value) in [("machine_id", &file.machine_id), ("project", &file.project)] {
                if let Some(value) = value {
                    cclog_ingest::coordinator::check_name(field, value)
                        .map_err(|error| invalid(&path, &error.to_string()))?;
                }
            }
            let longest = cclog_ingest::coordinator::MAX_LEASE_SECONDS;
            if file.lease_seconds.is_some_and(|seconds| !(1..=longest).contains(&seconds)) {
                return Err(invalid(&path, &format!("lease_seconds must be from 1 to {longest} (30 days)")));
            }
            machine = machine.or(file.machine_id.map(|value| Sourced { value, source: source.clone() }));
            project = project.or(file.project.map(|value| Sourced { value, source: source.clone() }));
            lease = lease.or(file.lease_seconds.map(|value| Sourced { value, source: source.clone() }));
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
        Ok(CoordinatorConfig { machine, project, lease_seconds, searched })
    }

    /// The configuration for the current directory (no `--config`).
    pub fn for_current_dir() -> anyhow::Result<CoordinatorConfig> {
        Self::load(None, &std::env::current_dir().context("the working directory")?)
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
        crate::outln!("scope prefix   {}:{}:", self.machine.value, self.project.value);
        crate::outln!("looked at, in order:");
        for (place, found) in &self.searched {
            crate::outln!("  {} {place}", if *found { "used " } else { "none " });
        }
        Ok(())
    }
}

fn invalid(path: &Path, problem: &str) -> anyhow::Error {
    Failure { code: EXIT_BAD_INPUT, message: format!("coordinator configuration {}: {problem}", path.display()) }.into()
}
