//! `cclog sessions`, `cclog show` and `cclog tree`: what the archive knows about sessions,
//! as tables for people and JSON for scripts. Ids accept unique prefixes, like git.

use std::path::Path;

use cclog_projections::archive::{Archive, SessionRecord};
use cclog_projections::lineage::{self, TreeNode};
use cclog_projections::pricing::PriceTable;
use serde_json::{json, Value};

use cclog_projections::session_list::{self, SessionListing, SessionQuery, SessionSort};
use jiff::tz::TimeZone;

use crate::args::{SessionsArgs, ShowArgs, TreeArgs};
use crate::output::{self, paint, Column, Table};
use crate::{Failure, EXIT_BAD_INPUT, EXIT_OK};

/// A session as scripts see it (`sessions --json`, `show --json`).
pub fn session_json(session: &SessionRecord, prices: &PriceTable) -> Value {
    let usage = session.usage();
    let cost = session.cost(prices);
    let counts = session.entry_counts();
    json!({
        "id": session.id,
        "project": session.project,
        "cwd": session.cwd,
        "title": session.title,
        "title_source": session.title_source,
        "parent": session.parent,
        "fork_point": session.fork_point,
        "fork_seq": session.fork_seq,
        "entries": counts.entries,
        "own_entries": counts.own,
        "user_entries": counts.user,
        "assistant_entries": counts.assistant,
        "first_at": session.first_at,
        "last_at": session.last_at,
        "models": session.models,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "total_tokens": usage.total(),
        },
        "cost_usd": cost.usd,
        "unpriced_models": cost.unpriced,
        "subagents": session.subagents.iter().map(|(id, link)| json!({
            "agent": id, "tool_use_id": link.tool_use_id, "path": link.path,
        })).collect::<Vec<_>>(),
        "files": session.files,
        "runs": session.runs,
        "malformed_lines": session.malformed,
        "drifted_fields": session.drifted_fields,
        "unknown_type_lines": session.unknown_types,
    })
}

pub fn list(data: &Path, args: SessionsArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let prices = super::price_table(&args.pricing)?;
    let log = super::open_log_to_read(data)?;
    let zone = args.zone.zone()?;
    let mut query = SessionQuery {
        project: args.project.clone(),
        since_ms: args.since.as_deref().map(|when| time_bound(when, &zone, Bound::Start)).transpose()?,
        until_ms: args.until.as_deref().map(|when| time_bound(when, &zone, Bound::End)).transpose()?,
        sort: SessionSort::parse(&args.sort).unwrap_or_default(),
        reverse: args.reverse,
        limit: args.limit,
        only: None,
    };
    let mut agents = std::collections::BTreeMap::new();
    if let Some(team) = &args.team {
        let record = cclog_projections::teams::TeamRegistry::get(&log, team)?
            .ok_or_else(|| anyhow::anyhow!("no team {team}; `cclog team list --all` shows the teams"))?;
        agents = cclog_projections::teams::TeamRegistry::agent_sessions(&log, &record)?;
        query.only = Some(agents.keys().cloned().collect());
    }
    let listing = session_list::list(&log, &query, &prices)?;
    if args.json {
        let listed = listing.sessions.iter().map(|session| {
            let mut json = session_json(session, &prices);
            if let Some(agent) = agents.get(&session.id) {
                json["team"] = Value::from(args.team.clone());
                json["agent"] = Value::from(agent.as_str());
            }
            json
        });
        crate::outln!("{}", Value::Array(listed.collect()));
        return Ok(EXIT_OK);
    }
    if listing.archived == 0 {
        crate::outln!("no sessions archived yet (run `cclog import`)");
        return Ok(EXIT_OK);
    }
    if listing.matched == 0 {
        crate::outln!(
            "no session matches; {} archived (`cclog sessions` without filters lists them)",
            output::count(listing.archived as u64, "session")
        );
        return Ok(EXIT_OK);
    }
    let table = sessions_table(&listing, &prices, &zone, args.wide);
    table.print(output::table_width(args.wide));
    if listing.matched > listing.sessions.len() {
        crate::outln!(
            "{}",
            paint(
                output::colour_stdout(),
                output::DIM,
                &format!(
                    "{} of {} shown (--limit); the totals add up all of them",
                    listing.sessions.len(),
                    listing.matched
                )
            )
        );
    }
    Ok(EXIT_OK)
}

/// `cclog sessions` as a table: what matters most keeps its place at 80 columns (id, time,
/// messages, cost, title); lines, tokens and the project go first when room runs out.
fn sessions_table(listing: &SessionListing, prices: &PriceTable, zone: &TimeZone, wide: bool) -> Table {
    let columns = vec![
        Column::text("ID"),
        Column::text(&output::time_heading("LAST", zone)),
        Column::number("MSGS"),
        Column::number("LINES").droppable(3),
        Column::number("TOKENS").droppable(2),
        Column::number("COST"),
        Column::text("PROJECT").droppable(1),
        Column::text("TITLE").flexible(TITLE_WIDTH),
    ];
    let project_width = if wide { usize::MAX } else { PROJECT_WIDTH };
    let rows = listing
        .sessions
        .iter()
        .map(|session| {
            let fork = if session.parent.is_some() { "⑂" } else { " " };
            let id = if wide { session.id.clone() } else { format!("{}{fork}", short(&session.id)) };
            vec![
                id,
                session
                    .last_at
                    .as_deref()
                    .map(|at| output::local_time(at, zone, false))
                    .unwrap_or_else(|| "-".to_string()),
                output::grouped(session_list::messages_of(session)),
                output::grouped(session.entry_counts().entries),
                output::compact_count(session.usage().total()),
                output::dollars(session.cost(prices).usd, 2),
                output::path_tail(&project_label(session), project_width),
                session.title.as_deref().map(|title| lineage::shorten(title, usize::MAX)).unwrap_or_default(),
            ]
        })
        .collect();
    let totals = &listing.totals;
    let totals = vec![
        "TOTAL".to_string(),
        output::count(listing.matched as u64, "session"),
        output::grouped(totals.messages),
        output::grouped(totals.lines),
        output::compact_count(totals.usage.total()),
        output::dollars(totals.cost_usd, 2),
        String::new(),
        String::new(),
    ];
    Table { columns, rows, totals: Some(totals), ..Table::default() }
}

/// The PROJECT column is cut to this many characters (its last path components)...
const PROJECT_WIDTH: usize = 16;
/// ...and columns are dropped until a title keeps this many.
const TITLE_WIDTH: usize = 20;

/// Where a session ran: its cwd, or else its project folder's name under
/// `~/.claude/projects` (the cwd with `/` written as `-`).
fn project_label(session: &SessionRecord) -> String {
    session.cwd.clone().unwrap_or_else(|| session.project.clone())
}

enum Bound {
    Start,
    End,
}

/// `--since`/`--until` as ms since the epoch: a time ago (`7d`, `12h`, `2w`), or a local
/// date, whose start (or, for `End`, whose last millisecond) it is.
fn time_bound(when: &str, zone: &TimeZone, bound: Bound) -> anyhow::Result<i64> {
    let now = jiff::Timestamp::now();
    if let Ok(ago) = humantime::parse_duration(when.trim()) {
        let ago_ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.as_millisecond().saturating_sub(ago_ms));
    }
    let bad = || Failure {
        code: EXIT_BAD_INPUT,
        message: format!("{when:?} is neither a date (YYYY-MM-DD or YYYYMMDD) nor a time ago (7d, 12h, 2w)"),
    };
    let date = cclog_projections::usage::parse_date(when).map_err(|_| bad())?;
    let day = match bound {
        Bound::Start => date,
        Bound::End => date.tomorrow().map_err(|_| bad())?,
    };
    let start = day.to_zoned(zone.clone()).map_err(|_| bad())?.timestamp().as_millisecond();
    Ok(match bound {
        Bound::Start => start,
        Bound::End => start - 1,
    })
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub fn show(data: &Path, args: ShowArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let prices = super::price_table(&args.pricing)?;
    let log = super::open_log_to_read(data)?;
    let session = Archive::session(&log, &args.id)?;
    let runs: Vec<Value> = session
        .runs
        .iter()
        .filter_map(|run| Archive::run(&log, run).ok().flatten())
        .map(|run| {
            json!({
                "id": run.id, "source": run.source, "mode": run.mode.as_str(), "status": run.status.as_str(),
                "messages": run.messages,
                "linked_entries": Archive::linked_messages(&log, &run.id).unwrap_or(0),
                "result_type": run.result_type, "duration_ms": run.duration_ms,
            })
        })
        .collect();
    let member = cclog_projections::teams::TeamRegistry::member_of(&log, &session.files)?;
    if args.json {
        let mut json = session_json(&session, &prices);
        json["runs"] = Value::Array(runs);
        if let Some((team, agent)) = &member {
            json["team"] = Value::from(team.as_str());
            json["agent"] = Value::from(agent.as_str());
        }
        crate::outln!("{json}");
        return Ok(EXIT_OK);
    }
    let usage = session.usage();
    let colour = output::colour_stdout();
    let width = output::table_width(args.wide);
    let field = |label: &str, value: &str| output::labelled(label, LABEL_WIDTH, value, width);
    crate::outln!("{} {}", paint(colour, output::BOLD, "session"), session.id);
    field("title", session.title.as_deref().unwrap_or("-"));
    field("project", &session.project);
    field("cwd", session.cwd.as_deref().unwrap_or("-"));
    if let Some((team, agent)) = &member {
        field("team", &format!("{team}, agent {agent}"));
    }
    let zone = args.zone.zone()?;
    let at = |at: Option<&str>| at.map_or_else(|| "-".to_string(), |at| output::local_time_zoned(at, &zone));
    field("time", &format!("{} … {}", at(session.first_at.as_deref()), at(session.last_at.as_deref())));
    let counts = session.entry_counts();
    field(
        "messages",
        &format!(
            "{} ({} user, {} assistant) in {} lines ({} stored, {} shared with its parent){}",
            output::grouped(counts.user + counts.assistant),
            output::grouped(counts.user),
            output::grouped(counts.assistant),
            output::grouped(counts.entries),
            output::grouped(counts.own),
            output::grouped(counts.entries - counts.own.min(counts.entries)),
            if session.files.is_empty() { " — recorded by its runs; no transcript archived" } else { "" }
        ),
    );
    field("models", &session.models.iter().cloned().collect::<Vec<_>>().join(", "));
    let cost = session.cost(&prices);
    field(
        "tokens",
        &format!(
            "{} in, {} out, {} cache write ({} of it kept 1 hour), {} cache read — {}{}",
            output::grouped(usage.input_tokens),
            output::grouped(usage.output_tokens),
            output::grouped(usage.cache_creation_input_tokens),
            output::grouped(usage.cache_creation_1h_input_tokens),
            output::grouped(usage.cache_read_input_tokens),
            output::dollars(cost.usd, 2),
            unpriced_note(&cost.unpriced)
        ),
    );
    if let Some(parent) = &session.parent {
        field("forked", &format!("from {parent} at {}", session.fork_point.as_deref().unwrap_or("?")));
    }
    for (agent, link) in &session.subagents {
        field("subagent", &format!("{agent} (tool call {})", link.tool_use_id.as_deref().unwrap_or("?")));
    }
    for file in &session.files {
        field(
            "file",
            &width.map_or_else(|| file.clone(), |width| output::path_tail(file, width.saturating_sub(LABEL_WIDTH))),
        );
    }
    for run in &runs {
        field(
            "run",
            &format!(
                "{} {} ({} messages, {} linked to entries)",
                run["id"].as_str().unwrap_or("?"),
                run["status"].as_str().unwrap_or("?"),
                run["messages"],
                run["linked_entries"]
            ),
        );
    }
    if session.malformed > 0 || session.unknown_types > 0 {
        field(
            "kept",
            &format!("{} malformed lines, {} lines of unknown types", session.malformed, session.unknown_types),
        );
    }
    if !session.drifted_fields.is_empty() {
        let fields: Vec<String> =
            session.drifted_fields.iter().map(|(field, lines)| format!("{field} ×{lines}")).collect();
        field("skipped", &format!("fields of a type this cclog does not expect: {}", fields.join(", ")));
    }
    Ok(EXIT_OK)
}

/// Labels of `show` take this many columns, their values the rest.
const LABEL_WIDTH: usize = 11;

pub fn tree(data: &Path, args: TreeArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let log = super::open_log_to_read(data)?;
    let sessions = Archive::sessions(&log)?;
    let within = match &args.id {
        Some(id) => Some(Archive::session(&log, id)?.id),
        None => None,
    };
    let mut trees = lineage::fork_tree(&sessions, within.as_deref());
    if within.is_none() {
        // Without an id, show only sessions that take part in a fork; the rest are in `sessions`.
        trees.retain(|node| !node.children.is_empty());
    }
    let owners = lineage::session_owners(&log)?;
    for node in &mut trees {
        node.name_owners(&owners);
    }
    if args.json {
        crate::outln!("{}", crate::json_style::line(&trees)?);
        return Ok(EXIT_OK);
    }
    if trees.is_empty() {
        crate::outln!("no forks archived");
    }
    for node in &trees {
        print_node(node, "", true, true);
    }
    Ok(EXIT_OK)
}

fn print_node(node: &TreeNode, prefix: &str, last: bool, root: bool) {
    let branch = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    let at = node.fork_point.as_deref().map(|uuid| format!(" (at {})", short(uuid))).unwrap_or_default();
    let owner = node.owner.as_deref().map(|owner| format!(" [{owner}]")).unwrap_or_default();
    crate::outln!(
        "{prefix}{branch}{}{owner} {}{at} · {} lines",
        short(&node.id),
        node.title.as_deref().map(|title| lineage::shorten(title, 50)).unwrap_or_default(),
        node.entries
    );
    let child_prefix =
        if root { prefix.to_string() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
    for (index, child) in node.children.iter().enumerate() {
        print_node(child, &child_prefix, index + 1 == node.children.len(), false);
    }
}

/// ` (not priced: a, b)` for models the price table lacks, else nothing.
fn unpriced_note(unpriced: &std::collections::BTreeSet<String>) -> String {
    if unpriced.is_empty() {
        return String::new();
    }
    let models: Vec<&str> = unpriced.iter().map(String::as_str).collect();
    format!(" (not priced: {}; give a table with --pricing)", models.join(", "))
}
