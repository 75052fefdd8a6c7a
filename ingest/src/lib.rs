//! cclog ingest: everything that turns the outside world into events. Today that is
//! Claude Code transcript import and watch (`~/.claude/projects`, every layout) and live
//! capture of stream-json output, the Claude Code runner, and the session coordinator's
//! key-value store; team sessions (agents in containers and a tmux session); the plan service comes next. It validates and deduplicates before appending through
//! [`cclog_engine::Log`], and names events with the vocabulary of
//! [`cclog_projections::events`].
//!
//! # Layout
//! - [`discover`]: finding transcript files and what each is (session, project, agent).
//! - [`import`]: incremental, idempotent import with revisions, deletions and copy pointers.
//! - [`watch`]: re-importing as files change, debounced.
//! - [`archiver`]: a server's periodic, one-at-a-time import of the transcript roots.
//! - [`capture`]: recording a stream-json run from a reader.
//! - [`runner`]: starting, resuming, forking and cancelling Claude Code runs, recorded live.
//! - [`patient`]: appends that wait out a full disk or a failed write (a run pauses).
//! - [`process`]: finding and killing what a run left running (its processes carry the
//!   run's id in their environment).
//! - [`coordinator`]: scoped key-values with compare-and-set, time travel and history.
//! - [`kv_watch`]: waiting for a key to change (one log reader tells every waiter).
//! - [`legacy_store`]: the Python coordinator's local-file store, imported into the log.
//! - [`team`]: teams of Claude Code agents in containers and one tmux session.
//! - [`plan`]: plan sessions — plan files and their executor.
//!
//! # Example
//!
//! ```
//! use cclog_engine::{Log, LogOptions};
//! use cclog_ingest::import::Importer;
//!
//! let data = tempfile::tempdir()?;
//! let projects = tempfile::tempdir()?;
//! let project = projects.path().join("-home-me-app");
//! std::fs::create_dir(&project)?;
//! let line = r#"{"type":"user","uuid":"u1","parentUuid":null,"sessionId":"11111111-2222-3333-4444-555555555555","message":{"role":"user","content":"hi"}}"#;
//! std::fs::write(project.join("11111111-2222-3333-4444-555555555555.jsonl"), format!("{line}\n"))?;
//!
//! let log = Log::open(data.path(), LogOptions::with_projections(cclog_projections::standard()))?;
//! let report = Importer::new(&log).import(&[projects.path().to_path_buf()], &|_| {})?;
//! assert_eq!((report.files, report.new_entries), (1, 1));
//! let again = Importer::new(&log).import(&[projects.path().to_path_buf()], &|_| {})?;
//! assert_eq!(again.new_entries, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod archiver;
pub mod capture;
pub mod coordinator;
pub mod discover;
mod error;
pub mod import;
pub mod kv_watch;
pub mod legacy_store;
pub mod patient;
pub mod plan;
pub mod process;
pub mod runner;
pub mod team;
pub mod watch;

pub use error::{Error, Result};
