//! cclog's read models: the domain's event vocabulary and the folds that build what people
//! query from the log. Every projection here implements [`cclog_engine::Projection`] and is
//! rebuildable from the log alone; read models store positions (seqs) and counts, never
//! copies of payloads.
//!
//! # Layout
//! - [`stream_stats`]: per-stream event counts, last seq and payload bytes (`cclog stats`).
//! - [`events`]: stream names, kinds and typed payloads for Claude Code data.
//! - [`entry`]: reading the few fields cclog needs from a raw transcript line, and the
//!   top-level value splicing that describes a copied entry.
//! - [`archive`]: the `archive` projection — files, entries by uuid, sessions, runs.
//! - [`coordinator`]: the session coordinator's key-values — each key's versions, scopes.
//! - [`replay`]: files given back byte for byte, copies rebuilt through their pointers.
//! - [`lineage`]: conversations, the fork tree and branch diffs.
//! - [`messages`]: the pages of a run's and a session's messages, and the run and session
//!   lists as the surfaces order them.
//! - [`session_list`]: the session list — filtered, sorted, limited, with totals.
//! - [`markdown`]: a session as a Markdown document (header, contents, tool calls with
//!   their results).
//! - [`render`]: conversations as text or Markdown. [`pricing`]: usage in dollars, from a
//!   LiteLLM-format price table.
//! - [`plans`]: the `plans` projection — plans, their tasks, runs and sessions, and their
//!   metrics. [`plan_feed`]: a plan's steps and its tasks' messages in log order, live.
//! - [`teams`]: the `teams` projection — the team registry, each agent's container and
//!   session, the tmux session.
//! - [`usage`]: usage reports by day, month, session and 5-hour block, from the archive's
//!   day rows.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use cclog_engine::{Log, LogOptions, NewEvent};
//! use cclog_projections::StreamStats;
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogOptions::with_projections(vec![Arc::new(StreamStats)]))?;
//! log.append_blocking(vec![
//!     NewEvent::new("run/1", "run.started", b"{}".to_vec()),
//!     NewEvent::new("run/1", "run.completed", b"{}".to_vec()),
//! ])?;
//! let stats = StreamStats::read(&log, "run/1")?.expect("folded");
//! assert_eq!((stats.events, stats.last_seq), (2, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod archive;
pub mod coordinator;
pub mod entry;
mod error;
pub mod events;
pub mod lineage;
pub mod markdown;
pub mod messages;
pub mod plan_feed;
pub mod plans;
pub mod pricing;
pub mod render;
pub mod replay;
pub mod session_list;
pub mod stream_stats;
pub mod teams;
pub mod usage;

pub use archive::Archive;
pub use error::{Error, Result};
pub use stream_stats::{StreamStats, StreamSummary, Totals};

/// The projections every cclog process opens the log with, so that all of them maintain
/// the same read models.
pub fn standard() -> Vec<std::sync::Arc<dyn cclog_engine::Projection>> {
    vec![
        std::sync::Arc::new(StreamStats),
        std::sync::Arc::new(Archive),
        std::sync::Arc::new(coordinator::Coordinator),
        std::sync::Arc::new(teams::TeamRegistry),
        std::sync::Arc::new(plans::PlanRegistry),
    ]
}
