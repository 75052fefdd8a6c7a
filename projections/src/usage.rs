//! Usage reports, as ccusage gives them — by day, month, session or 5-hour billing block —
//! cut from the archive's day rows (each model's usage per quarter hour of a UTC day), never
//! from the transcripts. A day or month report costs the days it covers, whatever the
//! number of sessions; because the archive keeps what Claude Code deleted, the reports reach
//! as far back as the archive does.
//!
//! Days and months are local to the report's time zone (every offset in use is a whole
//! number of quarter hours, so a quarter hour never straddles two local days). Costs come
//! from a [`PriceTable`] at report time. The JSON ([`UsageReport::json`]) carries ccusage's
//! field names, so that scripts written for `ccusage … --json` read it.

use std::collections::BTreeMap;

use cclog_engine::Log;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::archive::{Archive, DayUsage, SessionRecord, DAY_MS, QUARTER_MS};
use crate::entry::Usage;
use crate::pricing::{Cost, PriceTable};
use crate::{Error, Result};

/// A billing block's length (Anthropic's 5-hour usage window).
pub const BLOCK_MS: i64 = 5 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// How a report groups usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Daily,
    Monthly,
    Session,
    Blocks,
}

impl Grouping {
    /// `daily`, `monthly`, `session`, `blocks`.
    pub fn name(self) -> &'static str {
        match self {
            Grouping::Daily => "daily",
            Grouping::Monthly => "monthly",
            Grouping::Session => "session",
            Grouping::Blocks => "blocks",
        }
    }

    /// From a name, as the CLI and `?group=` give it (`day`, `daily`, `month`, …).
    pub fn parse(name: &str) -> Option<Grouping> {
        match name {
            "day" | "daily" => Some(Grouping::Daily),
            "month" | "monthly" => Some(Grouping::Monthly),
            "session" | "sessions" => Some(Grouping::Session),
            "block" | "blocks" => Some(Grouping::Blocks),
            _ => None,
        }
    }
}

/// What to report.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub grouping: Grouping,
    /// First and last local day included.
    pub since: Option<Date>,
    pub until: Option<Date>,
    /// Only this project (its directory name under `~/.claude/projects`).
    pub project: Option<String>,
    pub time_zone: TimeZone,
    /// Now, ms since the epoch: which block is active.
    pub now_ms: i64,
}

impl UsageQuery {
    /// A query over everything, in the system's time zone.
    pub fn new(grouping: Grouping) -> UsageQuery {
        UsageQuery {
            grouping,
            since: None,
            until: None,
            project: None,
            time_zone: TimeZone::system(),
            now_ms: Timestamp::now().as_millisecond(),
        }
    }

    /// Sets the time zone from an IANA name (`UTC`, `Europe/Paris`).
    pub fn in_time_zone(mut self, name: &str) -> Result<UsageQuery> {
        self.time_zone = TimeZone::get(name)
            .map_err(|_| Error::Usage(format!("{name:?} is not a time zone (try UTC or Europe/Paris)")))?;
        Ok(self)
    }

    fn includes(&self, day: Date) -> bool {
        self.since.is_none_or(|since| day >= since) && self.until.is_none_or(|until| day <= until)
    }

    /// The local day of an instant.
    fn local_day(&self, at_ms: i64) -> Date {
        let offset_ms = i64::from(self.time_zone.to_offset(timestamp(at_ms)).seconds()) * 1000;
        epoch_day((at_ms + offset_ms).div_euclid(DAY_MS))
    }
}

/// A date given as `YYYYMMDD` (ccusage's form) or `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date> {
    let text = text.trim();
    let dashed = match text.len() {
        8 if text.bytes().all(|byte| byte.is_ascii_digit()) => {
            format!("{}-{}-{}", &text[..4], &text[4..6], &text[6..])
        }
        _ => text.to_string(),
    };
    dashed.parse::<Date>().map_err(|_| Error::Usage(format!("{text:?} is not a date (YYYYMMDD or YYYY-MM-DD)")))
}

/// The project a `--project` names: one with usage of exactly that name, else the one
/// project whose name contains the text.
pub fn resolve_project(log: &Log, wanted: &str) -> Result<String> {
    let projects = Archive::usage_projects(log)?;
    if projects.iter().any(|project| project == wanted) {
        return Ok(wanted.to_string());
    }
    let matching: Vec<String> = projects.into_iter().filter(|project| project.contains(wanted)).collect();
    match matching.len() {
        1 => Ok(matching.into_iter().next().unwrap_or_default()),
        0 => Err(Error::NotFound { what: "project with usage", id: wanted.to_string() }),
        count => Err(Error::Ambiguous {
            what: "project",
            id: wanted.to_string(),
            count,
            examples: matching.into_iter().take(3).collect(),
        }),
    }
}

fn timestamp(at_ms: i64) -> Timestamp {
    Timestamp::from_millisecond(at_ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn epoch_day(days: i64) -> Date {
    let epoch = Date::constant(1970, 1, 1);
    epoch.checked_add(jiff::Span::new().days(days)).unwrap_or(epoch)
}

fn rfc3339(at_ms: i64) -> String {
    timestamp(at_ms).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One model's part of a row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelUsage {
    pub usage: Usage,
    pub requests: u64,
}

/// One row of a report: a day, a month, a session or a block.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// `2026-11-30`, `2026-11`, the session id, or the block's start (RFC 3339).
    pub label: String,
    pub models: BTreeMap<String, ModelUsage>,
    pub session: Option<SessionFacts>,
    pub block: Option<BlockFacts>,
}

/// What a session row adds.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts {
    pub project: String,
    pub first_at: Option<String>,
    pub last_at: Option<String>,
}

/// What a block row adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockFacts {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Its last request; the start of the next activity for a gap.
    pub actual_end_ms: i64,
    pub is_active: bool,
    /// A stretch of more than 5 hours without a request.
    pub is_gap: bool,
}

impl UsageRow {
    fn new(label: String) -> UsageRow {
        UsageRow { label, models: BTreeMap::new(), session: None, block: None }
    }

    fn add(&mut self, model: &str, usage: &Usage, requests: u64) {
        if !self.models.contains_key(model) {
            self.models.insert(model.to_string(), ModelUsage::default());
        }
        let Some(part) = self.models.get_mut(model) else { return };
        part.usage.add(usage);
        part.requests += requests;
    }

    /// Its usage, all models.
    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for part in self.models.values() {
            total.add(&part.usage);
        }
        total
    }

    pub fn requests(&self) -> u64 {
        self.models.values().map(|part| part.requests).sum()
    }

    pub fn cost(&self, prices: &PriceTable) -> Cost {
        prices.cost(self.models.iter().map(|(model, part)| (model, &part.usage)))
    }
}

/// A report.
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub grouping: Grouping,
    pub time_zone: String,
    pub rows: Vec<UsageRow>,
}

/// Builds the report `query` asks for.
pub fn report(log: &Log, query: &UsageQuery) -> Result<UsageReport> {
    let rows = match query.grouping {
        Grouping::Daily | Grouping::Monthly => calendar_rows(log, query)?,
        Grouping::Session => session_rows(log, query)?,
        Grouping::Blocks => block_rows(log, query)?,
    };
    let time_zone = query.time_zone.iana_name().unwrap_or("system").to_string();
    Ok(UsageReport { grouping: query.grouping, time_zone, rows })
}

/// Every quarter hour with requests in the query's days, with its model and local day, in
/// time order within each model.
fn quarters(
    log: &Log,
    query: &UsageQuery,
    mut each: impl FnMut(&str, Date, &crate::archive::QuarterUsage),
) -> Result<()> {
    // A local day touches the UTC day before and after it.
    let first_day = query.since.map(|since| days_since_epoch(since).saturating_sub(1)).unwrap_or(0);
    let last_day = query.until.map(|until| days_since_epoch(until).saturating_add(1));
    Archive::day_rows(log, query.project.as_deref(), first_day, |day, model, row: &DayUsage| {
        if last_day.is_some_and(|last| day > last) {
            return false;
        }
        let day_ms = i64::from(day) * DAY_MS;
        // One offset for the whole UTC day unless it changes within it (a DST change).
        let offset_at = |at_ms: i64| i64::from(query.time_zone.to_offset(timestamp(at_ms)).seconds()) * 1000;
        let offset = offset_at(day_ms);
        let steady = offset == offset_at(day_ms + DAY_MS - 1);
        let mut local = (i64::MIN, epoch_day(0));
        for quarter in row.quarters.iter().filter(|quarter| quarter.requests > 0) {
            let start_ms = day_ms + i64::from(quarter.quarter) * QUARTER_MS;
            let local_days = (start_ms + if steady { offset } else { offset_at(start_ms) }).div_euclid(DAY_MS);
            if local.0 != local_days {
                local = (local_days, epoch_day(local_days));
            }
            if query.includes(local.1) {
                each(model, local.1, quarter);
            }
        }
        true
    })
}

fn days_since_epoch(date: Date) -> u32 {
    let epoch = Date::constant(1970, 1, 1);
    let days = epoch.until(date).map(|span| span.get_days()).unwrap_or(0);
    u32::try_from(days).unwrap_or(0)
}

fn calendar_rows(log: &Log, query: &UsageQuery) -> Result<Vec<UsageRow>> {
    let monthly = query.grouping == Grouping::Monthly;
    let mut by_period: BTreeMap<(i16, i8, i8), UsageRow> = BTreeMap::new();
    let mut add = |model: &str, day: Date, usage: &Usage, requests: u64| {
        let period = (day.year(), day.month(), if monthly { 0 } else { day.day() });
        by_period
            .entry(period)
            .or_insert_with(|| {
                let label = if monthly { format!("{:04}-{:02}", day.year(), day.month()) } else { day.to_string() };
                UsageRow::new(label)
            })
            .add(model, usage, requests);
    };
    // A row's quarters fall on one or two local days: they are summed before they are added.
    let mut run: Option<(String, Date, Usage, u64)> = None;
    quarters(log, query, |model, day, quarter| match &mut run {
        Some((run_model, run_day, usage, requests)) if run_model == model && *run_day == day => {
            usage.add(&quarter.usage);
            *requests += quarter.requests;
        }
        _ => {
            if let Some((model, day, usage, requests)) = run.take() {
                add(&model, day, &usage, requests);
            }
            run = Some((model.to_string(), day, quarter.usage, quarter.requests));
        }
    })?;
    if let Some((model, day, usage, requests)) = run {
        add(&model, day, &usage, requests);
    }
    Ok(by_period.into_values().collect())
}

/// Sessions, by last activity. A session is in the report when any of its activity falls
/// in the query's days, with all its usage (the day rows do not split sessions).
fn session_rows(log: &Log, query: &UsageQuery) -> Result<Vec<UsageRow>> {
    let mut sessions: Vec<SessionRecord> = Archive::sessions(log)?
        .into_iter()
        .filter(|session| query.project.as_deref().is_none_or(|project| session.project == project))
        .filter(|session| session.usage().total() > 0)
        .filter(|session| {
            let day =
                |at: &Option<String>| at.as_deref().and_then(crate::archive::epoch_ms).map(|ms| query.local_day(ms));
            let (first, last) = (day(&session.first_at), day(&session.last_at));
            query.since.is_none_or(|since| last.is_none_or(|last| last >= since))
                && query.until.is_none_or(|until| first.is_none_or(|first| first <= until))
        })
        .collect();
    sessions.sort_by(|a, b| a.last_at.cmp(&b.last_at).then(a.id.cmp(&b.id)));
    Ok(sessions
        .into_iter()
        .map(|session| {
            let mut row = UsageRow::new(session.id.clone());
            for (model, usage) in session.usage_by_model() {
                if usage.total() > 0 {
                    row.add(model, usage, 0);
                }
            }
            row.session = Some(SessionFacts {
                project: session.project.clone(),
                first_at: session.first_at,
                last_at: session.last_at,
            });
            row
        })
        .collect())
}

/// 5-hour billing blocks, as ccusage cuts them: a block starts at the hour of its first
/// request and takes every request until 5 hours after that start or until a pause of more
/// than 5 hours; such a pause is a gap row of its own.
fn block_rows(log: &Log, query: &UsageQuery) -> Result<Vec<UsageRow>> {
    // Models by number, so that sorting moves no strings.
    let mut models: Vec<String> = Vec::new();
    let mut activity: Vec<(i64, usize, i64, Usage, u64)> = Vec::new();
    quarters(log, query, |model, _, quarter| {
        let number = match models.iter().rposition(|known| known == model) {
            Some(number) => number,
            None => {
                models.push(model.to_string());
                models.len() - 1
            }
        };
        activity.push((quarter.first_ms, number, quarter.last_ms, quarter.usage, quarter.requests));
    })?;
    activity.sort_unstable_by_key(|(first_ms, number, ..)| (*first_ms, *number));
    let mut rows = Vec::new();
    let mut current: Option<(UsageRow, i64, i64)> = None;
    let finish = |row: &mut UsageRow, start_ms: i64, last_ms: i64| {
        let end_ms = start_ms + BLOCK_MS;
        let is_active = query.now_ms - last_ms < BLOCK_MS && query.now_ms < end_ms;
        row.block = Some(BlockFacts { start_ms, end_ms, actual_end_ms: last_ms, is_active, is_gap: false });
    };
    for (first_ms, model, last_ms, usage, requests) in activity {
        let model = &models[model];
        if let Some((row, start_ms, block_last_ms)) = &mut current {
            let pause = first_ms - *block_last_ms;
            if first_ms - *start_ms > BLOCK_MS || pause > BLOCK_MS {
                let (mut done, start, last) = (row.clone(), *start_ms, *block_last_ms);
                finish(&mut done, start, last);
                rows.push(done);
                if pause > BLOCK_MS {
                    let mut gap = UsageRow::new(format!("gap-{}", rfc3339(last + BLOCK_MS)));
                    gap.block = Some(BlockFacts {
                        start_ms: last + BLOCK_MS,
                        end_ms: first_ms,
                        actual_end_ms: first_ms,
                        is_active: false,
                        is_gap: true,
                    });
                    rows.push(gap);
                }
                current = None;
            }
        }
        let (row, _, block_last_ms) = current.get_or_insert_with(|| {
            let start_ms = first_ms.div_euclid(HOUR_MS) * HOUR_MS;
            (UsageRow::new(rfc3339(start_ms)), start_ms, first_ms)
        });
        row.add(model, &usage, requests);
        *block_last_ms = (*block_last_ms).max(last_ms);
    }
    if let Some((mut row, start_ms, last_ms)) = current {
        finish(&mut row, start_ms, last_ms);
        rows.push(row);
    }
    Ok(rows)
}

fn tokens_json(usage: &Usage) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("inputTokens".into(), usage.input_tokens.into());
    map.insert("outputTokens".into(), usage.output_tokens.into());
    map.insert("cacheCreationTokens".into(), usage.cache_creation_input_tokens.into());
    map.insert("cacheReadTokens".into(), usage.cache_read_input_tokens.into());
    map.insert("totalTokens".into(), usage.total().into());
    map
}

impl UsageReport {
    /// Every row's usage.
    pub fn total_usage(&self) -> Usage {
        let mut total = Usage::default();
        for row in &self.rows {
            total.add(&row.usage());
        }
        total
    }

    /// What all of it costs.
    pub fn total_cost(&self, prices: &PriceTable) -> Cost {
        let mut total = Cost::default();
        for row in &self.rows {
            total.add(&row.cost(prices));
        }
        total
    }

    /// The report as ccusage's `--json` has it (`daily`, `monthly`, `sessions` or `blocks`,
    /// and `totals`, whose `unpricedModels` names the models the table has no price for:
    /// their tokens counted, their cost left out, `null` in their breakdowns), plus
    /// `timeZone` and `pricing`.
    pub fn json(&self, prices: &PriceTable) -> Value {
        let rows: Vec<Value> = self.rows.iter().map(|row| self.row_json(row, prices)).collect();
        let key = match self.grouping {
            Grouping::Daily => "daily",
            Grouping::Monthly => "monthly",
            Grouping::Session => "sessions",
            Grouping::Blocks => "blocks",
        };
        let cost = self.total_cost(prices);
        let mut totals = tokens_json(&self.total_usage());
        totals.insert("totalCost".into(), json!(cost.usd));
        if !cost.unpriced.is_empty() {
            totals.insert("unpricedModels".into(), json!(cost.unpriced));
        }
        json!({ key: rows, "totals": totals, "timeZone": self.time_zone, "pricing": prices.source })
    }

    fn row_json(&self, row: &UsageRow, prices: &PriceTable) -> Value {
        let usage = row.usage();
        let cost = row.cost(prices);
        let mut out = serde_json::Map::new();
        match (self.grouping, &row.session, &row.block) {
            (Grouping::Daily, _, _) => {
                out.insert("date".into(), row.label.clone().into());
            }
            (Grouping::Monthly, _, _) => {
                out.insert("month".into(), row.label.clone().into());
            }
            (Grouping::Session, Some(session), _) => {
                out.insert("sessionId".into(), row.label.clone().into());
                out.insert("projectPath".into(), session.project.clone().into());
                out.insert("firstActivity".into(), json!(session.first_at));
                out.insert("lastActivity".into(), json!(session.last_at));
            }
            (Grouping::Blocks, _, Some(block)) => {
                out.insert("id".into(), row.label.clone().into());
                out.insert("startTime".into(), rfc3339(block.start_ms).into());
                out.insert("endTime".into(), rfc3339(block.end_ms).into());
                let actual = (!block.is_gap).then(|| rfc3339(block.actual_end_ms));
                out.insert("actualEndTime".into(), json!(actual));
                out.insert("isActive".into(), block.is_active.into());
                out.insert("isGap".into(), block.is_gap.into());
                out.insert("entries".into(), row.requests().into());
                out.insert(
                    "tokenCounts".into(),
                    json!({
                        "inputTokens": usage.input_tokens,
                        "outputTokens": usage.output_tokens,
                        "cacheCreationInputTokens": usage.cache_creation_input_tokens,
                        "cacheReadInputTokens": usage.cache_read_input_tokens,
                    }),
                );
                out.insert("totalTokens".into(), usage.total().into());
                out.insert("costUSD".into(), json!(cost.usd.unwrap_or(0.0)));
                out.insert("models".into(), json!(row.models.keys().collect::<Vec<_>>()));
                return Value::Object(out);
            }
            _ => {}
        }
        out.extend(tokens_json(&usage));
        out.insert("totalCost".into(), json!(cost.usd));
        out.insert("modelsUsed".into(), json!(row.models.keys().collect::<Vec<_>>()));
        let breakdowns: Vec<Value> = row
            .models
            .iter()
            .map(|(model, part)| {
                let mut breakdown = tokens_json(&part.usage);
                breakdown.remove("totalTokens");
                breakdown.insert("modelName".into(), model.clone().into());
                breakdown.insert("cost".into(), json!(prices.cost_usd(model, &part.usage)));
                Value::Object(breakdown)
            })
            .collect();
        out.insert("modelBreakdowns".into(), breakdowns.into());
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_both_ways() {
        assert_eq!(parse_date("20261130").ok(), Some(Date::constant(2026, 11, 30)));
        assert_eq!(parse_date("2026-11-30").ok(), Some(Date::constant(2026, 11, 30)));
        assert!(parse_date("2026-13-01").is_err());
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn local_days_follow_the_zone() {
        let query = UsageQuery::new(Grouping::Daily).in_time_zone("Asia/Kolkata").expect("zone");
        // 2026-11-30T20:00Z is 01:30 on 1 December in India.
        let at = "2026-11-30T20:00:00Z".parse::<Timestamp>().expect("time").as_millisecond();
        assert_eq!(query.local_day(at), Date::constant(2026, 12, 1));
        let utc = UsageQuery::new(Grouping::Daily).in_time_zone("UTC").expect("zone");
        assert_eq!(utc.local_day(at), Date::constant(2026, 11, 30));
        assert!(UsageQuery::new(Grouping::Daily).in_time_zone("Mars/Olympus").is_err());
        assert_eq!(days_since_epoch(epoch_day(20_000)), 20_000);
    }
}
