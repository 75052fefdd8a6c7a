//! cclog ingest: everything that turns the outside world into events. It will hold the
//! Claude Code runner (spawning `claude -p --output-format stream-json`), stream-json
//! capture, transcript import and watch of `~/.claude/projects`, coordinator commands, and
//! the team and plan services. It validates and deduplicates before appending through
//! [`cclog_engine::Log`], and names events with the vocabulary of `cclog_projections`.
//!
//! Nothing is built here yet: transcript import, capture and the runner arrive with the
//! ingest and run-manager work (see ARCHITECTURE.md). The crate exists now so that the
//! dependency order engine ← projections ← ingest ← http ← cli is fixed from the start.
