//! Plan files: JSON or TOML, read into a [`PlanSpec`] and checked before anything runs.
//! A plan has an optional `id` (one is made), a `cwd`, optional defaults for every task's
//! run (`model`, `permissionMode`, `allowedTools`, `maxTurns`, `appendSystemPrompt`), its
//! session settings (`ttl` such as `"1h"`, `maxSessionRetries`, `maxTaskRetries`,
//! `continueOnError`) and ordered `tasks`, each with `id`, `prompt`, an optional `type`
//! label and its own overrides. Keys are camelCase as in the JSON API; snake_case works too.
//! An unknown key is an error naming it; so are an empty task list, a task id given twice,
//! a blank prompt and a `cwd` that is not a directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cclog_projections::events::plan::{PlanSpec, TaskOptions, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The session TTL of a plan that names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Retries of a task in a new session when its session fails, unless the plan says.
pub const DEFAULT_SESSION_RETRIES: u32 = 2;

/// A plan as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanFile {
    pub id: Option<String>,
    pub cwd: Option<PathBuf>,
    pub model: Option<String>,
    #[serde(alias = "permission_mode")]
    pub permission_mode: Option<String>,
    #[serde(alias = "allowed_tools")]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(alias = "max_turns")]
    pub max_turns: Option<u32>,
    #[serde(alias = "append_system_prompt")]
    pub append_system_prompt: Option<String>,
    /// `"1h"`, `"90s"`, `"30m"`.
    pub ttl: Option<String>,
    #[serde(alias = "max_session_retries")]
    pub max_session_retries: Option<u32>,
    #[serde(alias = "max_task_retries")]
    pub max_task_retries: Option<u32>,
    #[serde(alias = "continue_on_error")]
    pub continue_on_error: Option<bool>,
    #[serde(default)]
    pub tasks: Vec<TaskFile>,
}

/// A task as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskFile {
    pub id: Option<String>,
    pub prompt: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub model: Option<String>,
    #[serde(alias = "permission_mode")]
    pub permission_mode: Option<String>,
    #[serde(alias = "allowed_tools")]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(alias = "max_turns")]
    pub max_turns: Option<u32>,
    #[serde(alias = "append_system_prompt")]
    pub append_system_prompt: Option<String>,
}

/// How a plan file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
}

impl Format {
    /// By the file's extension: `.toml` is TOML, anything else JSON.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Json,
        }
    }
}

impl PlanFile {
    /// Reads a plan file (`.toml` as TOML, anything else as JSON); a relative `cwd` in it is
    /// taken from the file's directory.
    pub fn load(path: &Path) -> Result<PlanFile> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let mut plan = Self::parse(&text, Format::of(path))
            .map_err(|error| Error::InvalidPlan(format!("{}: {error}", path.display())))?;
        if let (Some(cwd), Some(dir)) = (&plan.cwd, path.parent()) {
            if cwd.is_relative() {
                plan.cwd = Some(dir.join(cwd));
            }
        }
        Ok(plan)
    }

    /// Reads a plan written in `format`.
    pub fn parse(text: &str, format: Format) -> Result<PlanFile> {
        match format {
            Format::Json => serde_json::from_str(text).map_err(|error| Error::InvalidPlan(error.to_string())),
            Format::Toml => toml::from_str(text).map_err(|error| Error::InvalidPlan(error.message().to_string())),
        }
    }

    /// The plan checked and resolved: `cwd` (else `default_cwd`) made absolute and required
    /// to be a directory, `ttl` (else `default_ttl`) parsed, an id made when it has none.
    pub fn resolve(self, default_cwd: Option<&Path>, default_ttl: Duration) -> Result<PlanSpec> {
        let bad = |message: String| Err(Error::InvalidPlan(message));
        let id = match self.id {
            Some(id) => {
                check_id("plan id", &id)?;
                id
            }
            None => crate::capture::new_run_id(),
        };
        let Some(cwd) = self.cwd.or_else(|| default_cwd.map(Path::to_path_buf)) else {
            return bad("the plan has no cwd; give one in the plan or with --cwd".into());
        };
        let cwd = std::path::absolute(&cwd).map_err(|source| Error::Io { path: cwd.clone(), source })?;
        if !cwd.is_dir() {
            return bad(format!("cwd {} is not a directory", cwd.display()));
        }
        if self.tasks.is_empty() {
            return bad("the plan has no tasks".into());
        }
        let ttl = match &self.ttl {
            Some(text) => humantime::parse_duration(text)
                .map_err(|error| Error::InvalidPlan(format!("ttl {text:?}: {error}; use e.g. \"1h\" or \"90s\"")))?,
            None => default_ttl,
        };
        if ttl.is_zero() {
            return bad("ttl must be longer than 0".into());
        }
        let mut tasks: Vec<TaskSpec> = Vec::new();
        for (index, task) in self.tasks.into_iter().enumerate() {
            let number = index + 1;
            let Some(task_id) = task.id else { return bad(format!("task {number} has no id")) };
            check_id(&format!("task {number}'s id"), &task_id)?;
            if tasks.iter().any(|earlier| earlier.id == task_id) {
                return bad(format!("task id {task_id:?} is given twice"));
            }
            let prompt = task.prompt.unwrap_or_default();
            if prompt.trim().is_empty() {
                return bad(format!("task {task_id:?} has no prompt"));
            }
            tasks.push(TaskSpec {
                id: task_id,
                prompt,
                kind: task.kind,
                options: TaskOptions {
                    model: task.model,
                    permission_mode: task.permission_mode,
                    allowed_tools: task.allowed_tools,
                    max_turns: task.max_turns,
                    append_system_prompt: task.append_system_prompt,
                },
            });
        }
        Ok(PlanSpec {
            id,
            cwd: cwd.to_string_lossy().into_owned(),
            defaults: TaskOptions {
                model: self.model,
                permission_mode: self.permission_mode,
                allowed_tools: self.allowed_tools,
                max_turns: self.max_turns,
                append_system_prompt: self.append_system_prompt,
            },
            tasks,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            max_session_retries: self.max_session_retries.unwrap_or(DEFAULT_SESSION_RETRIES),
            max_task_retries: self.max_task_retries.unwrap_or(0),
            continue_on_error: self.continue_on_error.unwrap_or(false),
        })
    }
}

/// Ids are stream names and path segments: letters, digits, `-`, `_`, `.`, at most 128.
fn check_id(what: &str, id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with(['-', '.'])
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidPlan(format!("{what} {id:?} is not valid: use letters, digits, '-', '_' and '.'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, format: Format) -> Result<PlanSpec> {
        let cwd = std::env::temp_dir();
        PlanFile::parse(text, format)?.resolve(Some(&cwd), DEFAULT_TTL)
    }

    #[test]
    fn json_and_toml_of_the_same_plan_resolve_alike() {
        let json = r#"{"id": "p1", "model": "sonnet", "ttl": "90s", "continueOnError": true,
            "tasks": [{"id": "a", "prompt": "make x", "type": "create_file"},
                      {"id": "b", "prompt": "use x", "maxTurns": 3, "allowedTools": ["Write"]}]}"#;
        let toml = r#"
            id = "p1"
            model = "sonnet"
            ttl = "90s"
            continue_on_error = true
            [[tasks]]
            id = "a"
            prompt = "make x"
            type = "create_file"
            [[tasks]]
            id = "b"
            prompt = "use x"
            maxTurns = 3
            allowedTools = ["Write"]
        "#;
        let from_json = resolve(json, Format::Json).unwrap();
        assert_eq!(from_json, resolve(toml, Format::Toml).unwrap());
        assert_eq!(from_json.ttl_ms, 90_000);
        assert_eq!(from_json.max_session_retries, DEFAULT_SESSION_RETRIES);
        assert!(from_json.continue_on_error);
        let second = &from_json.tasks[1];
        assert_eq!(second.options.over(&from_json.defaults).model.as_deref(), Some("sonnet"));
        assert_eq!(second.options.max_turns, Some(3));
        assert_eq!(from_json.tasks[0].kind.as_deref(), Some("create_file"));
    }

    #[test]
    fn every_bad_plan_is_a_clear_error() {
        let cases = [
            (r#"{"tasks": [{"id": "a", "prompt": "x", "promt": "y"}]}"#, "promt"),
            (r#"{"taks": []}"#, "taks"),
            (r#"{"tasks": []}"#, "no tasks"),
            (r#"{"tasks": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]}"#, "given twice"),
            (r#"{"tasks": [{"id": "a", "prompt": "  "}]}"#, "no prompt"),
            (r#"{"tasks": [{"prompt": "x"}]}"#, "task 1 has no id"),
            (r#"{"tasks": [{"id": "a b", "prompt": "x"}]}"#, "not valid"),
            (r#"{"ttl": "soon", "tasks": [{"id": "a", "prompt": "x"}]}"#, "ttl"),
            (r#"{"cwd": "/no/such/dir/anywhere", "tasks": [{"id": "a", "prompt": "x"}]}"#, "not a directory"),
        ];
        for (text, expected) in cases {
            let error = resolve(text, Format::Json).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = resolve("tasks = 3\nextra = 1", Format::Toml).unwrap_err().to_string();
        assert!(error.contains("extra") || error.contains("tasks"), "{error}");
        let generated = resolve(r#"{"tasks": [{"id": "a", "prompt": "x"}]}"#, Format::Json).unwrap();
        assert_eq!(generated.id.len(), 36);
    }
}
