//! The handlers, one file per part of the API, named after its path: `/api/runs/...` is in
//! [`runs`], `/api/sessions/...` in [`sessions`], `/api/events/...` and `/api/verify` in
//! [`events`], `/api/usage` in [`usage`], `/api/kv/stream` in [`kv`], `/api/teams/...` in [`teams`], `/api/plans/...` in [`plans`], and `/`, `/health`, `/api/openapi.json` and `/api/cli` in [`service`].
//! Every handler parses, calls one domain function (in `projections` or `ingest`) on a
//! blocking thread when it touches the log, and renders.

pub mod events;
pub mod kv;
pub mod plans;
pub mod runs;
pub mod service;
pub mod sessions;
pub mod teams;
pub mod usage;

use serde::Deserialize;
use utoipa::IntoParams;

/// A page of messages: `?after=N&limit=M`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Only messages after this index.
    after: Option<u64>,
    /// At most this many messages (default: all).
    limit: Option<u64>,
}

impl PageQuery {
    /// The index of the page's first message.
    pub fn first(&self) -> u64 {
        self.after.map_or(0, |after| after.saturating_add(1))
    }

    /// The most messages the page holds.
    pub fn limit(&self) -> usize {
        self.limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX))
    }
}
