//! Plan sessions: the tasks of a plan run in one Claude Code session, each task resuming
//! the session the one before it ran in, with a TTL, fallback and retry, every step an event
//! on `plan/<id>` ([`cclog_projections::events::plan`]) and the registry the `plans`
//! projection.
//!
//! # Layout
//! - [`file`]: plan files (JSON or TOML), checked and resolved into a `PlanSpec`.
//! - [`executor`]: running a plan's tasks through the runner in one session, with TTL
//!   expiry, fallback context, session and task retries, and resume.

pub mod executor;
pub mod file;
