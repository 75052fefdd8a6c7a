//! The Python coordinator's local-file store brought into the log. That store keeps one JSON
//! file per scope in `.claude/session-state/` — `{"data": {key: value}, "metadata": {key:
//! {"created_at", "updated_at"}}}`, the scope's `:` and `/` written `__` in the file's name —
//! and each of its keys becomes a `kv.set` event attributed to instance `import`, the file
//! and its times kept as the write's [`Imported`]. A key whose value the log already holds
//! is left alone, so that importing the same store again adds nothing; a file that is not
//! such a store's is reported and skipped.

use std::path::{Path, PathBuf};

use cclog_engine::Log;
use cclog_projections::events::coordinator::{Imported, Writer};
use serde::Deserialize;
use serde_json::Value;

use crate::coordinator::KvStore;
use crate::{Error, Result};

/// What an import of a legacy store did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LegacyImport {
    /// The store's directory, absolute.
    pub dir: String,
    /// Scope files read.
    pub files: usize,
    /// The scopes they hold, in order.
    pub scopes: Vec<String>,
    /// Keys written to the log.
    pub imported: usize,
    /// Keys whose value the log already held.
    pub unchanged: usize,
    /// Files skipped, with why.
    pub malformed: Vec<Malformed>,
}

/// A file of the store that could not be read as a scope.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Malformed {
    pub file: String,
    pub problem: String,
}

/// A scope file as the Python coordinator writes it.
#[derive(Deserialize)]
struct ScopeFile {
    #[serde(default)]
    data: serde_json::Map<String, Value>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

/// The scope a file of the store holds, by the original's own rule: with four parts or more
/// `machine:owner/repo:rest…` (`laptop__acme__widgets__session__claude_1` is
/// `laptop:acme/widgets:session:claude_1`), else its parts joined with `:`.
pub fn scope_of_file(stem: &str) -> String {
    let parts: Vec<&str> = stem.split("__").collect();
    match parts.as_slice() {
        [machine, owner, repo, rest @ ..] if !rest.is_empty() => {
            format!("{machine}:{owner}/{repo}:{}", rest.join(":"))
        }
        _ => parts.join(":"),
    }
}

/// Imports every `*.json` scope file of `dir` into the log.
pub fn import_legacy(log: &Log, dir: &Path, machine: &str) -> Result<LegacyImport> {
    let dir = std::path::absolute(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    if !dir.is_dir() {
        return Err(Error::Missing(dir));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|source| Error::Io { path: dir.clone(), source })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "json") && path.is_file())
        .collect();
    files.sort();
    let writer = Writer { instance: "import".into(), machine: machine.to_string(), project: String::new() };
    let store = KvStore::new(log);
    let mut report = LegacyImport { dir: dir.display().to_string(), ..LegacyImport::default() };
    for path in files {
        let file = path.display().to_string();
        let scope = path.file_stem().map(|stem| scope_of_file(&stem.to_string_lossy())).unwrap_or_default();
        let parsed = std::fs::read(&path)
            .map_err(|error| error.to_string())
            .and_then(|bytes| serde_json::from_slice::<ScopeFile>(&bytes).map_err(|error| error.to_string()));
        let contents = match parsed {
            Ok(contents) => contents,
            Err(problem) => {
                report.malformed.push(Malformed { file, problem: format!("not a scope file: {problem}") });
                continue;
            }
        };
        report.files += 1;
        for (key, value) in &contents.data {
            let times = contents.metadata.get(key);
            let time = |name: &str| times.and_then(|times| times.get(name)).and_then(Value::as_str).map(str::to_string);
            let imported =
                Imported { file: file.clone(), created_at: time("created_at"), updated_at: time("updated_at") };
            match store.import(&scope, key, value, imported, &writer) {
                Ok(true) => report.imported += 1,
                Ok(false) => report.unchanged += 1,
                Err(Error::InvalidKv(problem)) => {
                    report.malformed.push(Malformed { file: file.clone(), problem: format!("key {key:?}: {problem}") });
                }
                Err(error) => return Err(error),
            }
        }
        if !contents.data.is_empty() {
            report.scopes.push(scope);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::scope_of_file;

    #[test]
    fn a_file_name_gives_back_the_scope_the_original_wrote_it_for() {
        assert_eq!(scope_of_file("laptop__acme__widgets__session__claude_1"), "laptop:acme/widgets:session:claude_1");
        assert_eq!(scope_of_file("desktop__acme__widgets__instances"), "desktop:acme/widgets:instances");
        assert_eq!(scope_of_file("a__b__c"), "a:b:c");
        assert_eq!(scope_of_file("notes"), "notes");
    }
}
