//! `/api/usage`: the usage reports of `cclog usage` — by day, month, session or 5-hour
//! block — with the same numbers and ccusage's JSON field names.

use axum::extract::State;
use axum::Json;
use cclog_projections::usage::{self, Grouping, UsageQuery};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::blocking::blocking;
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::{Error, ErrorBody, Result};

/// `?group=day|month|session|block&since=&until=&project=&timezone=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// `day` (default), `month`, `session` or `block`.
    group: Option<String>,
    /// First day included: YYYYMMDD or YYYY-MM-DD, local to `timezone`.
    since: Option<String>,
    /// Last day included.
    until: Option<String>,
    /// Only this project (its folder name under ~/.claude/projects, or text only one such name contains).
    project: Option<String>,
    /// IANA time zone of days, months and blocks (default: UTC).
    timezone: Option<String>,
}

/// Tokens and cost grouped by day, month, session or 5-hour billing block, as `cclog usage`
/// and ccusage report them: `daily`/`monthly`/`sessions`/`blocks` rows, `totals`, and the
/// models the price table could not price (`unpricedModels`).
#[utoipa::path(
    get, path = "/usage", tag = "sessions", security(("bearer" = [])), params(UsageParams),
    responses(
        (status = 200, body = Value, description = "The report"),
        (status = 400, body = ErrorBody, description = "An unknown group, date, time zone or project"),
        (status = 401, body = ErrorBody, description = "A token is required"),
        (status = 404, body = ErrorBody, description = "No project with usage matches `project`"),
    )
)]
pub async fn usage_report(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<UsageParams>,
) -> Result<Json<Value>> {
    let group = params.group.as_deref().unwrap_or("day");
    let grouping = Grouping::parse(group)
        .ok_or_else(|| Error::BadRequest(format!("group {group:?}: use day, month, session or block")))?;
    let json = blocking(move || -> Result<Value> {
        let mut query = UsageQuery::new(grouping).in_time_zone(params.timezone.as_deref().unwrap_or("UTC"))?;
        query.since = params.since.as_deref().map(usage::parse_date).transpose()?;
        query.until = params.until.as_deref().map(usage::parse_date).transpose()?;
        query.project =
            params.project.as_deref().map(|project| usage::resolve_project(&state.log, project)).transpose()?;
        Ok(usage::report(&state.log, &query)?.json(&state.prices))
    })
    .await?;
    Ok(Json(json))
}
