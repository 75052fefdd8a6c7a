//! `cclog usage daily|monthly|session|blocks`: tokens and cost as ccusage reports them, from
//! the archive's day rows — a table that fits the terminal, or ccusage's JSON.

use std::path::Path;

use cclog_projections::pricing::PriceTable;
use cclog_projections::usage::{self, Grouping, UsageQuery, UsageReport, UsageRow};

use crate::args::{UsageArgs, UsageReportKind};
use crate::output::{self, paint, Column, Table};
use crate::EXIT_OK;

pub fn run(data: &Path, args: UsageArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let prices = super::price_table(&args.pricing)?;
    let log = super::open_log_to_read(data)?;
    let grouping = match args.report {
        UsageReportKind::Daily => Grouping::Daily,
        UsageReportKind::Monthly => Grouping::Monthly,
        UsageReportKind::Session => Grouping::Session,
        UsageReportKind::Blocks => Grouping::Blocks,
    };
    let mut query = UsageQuery::new(grouping);
    query.time_zone = output::time_zone();
    if let Some(zone) = &args.timezone {
        query = query.in_time_zone(zone)?;
    }
    query.since = args.since.as_deref().map(usage::parse_date).transpose()?;
    query.until = args.until.as_deref().map(usage::parse_date).transpose()?;
    query.project = args.project.as_deref().map(|project| usage::resolve_project(&log, project)).transpose()?;
    let report = usage::report(&log, &query)?;
    let unpriced = report.total_cost(&prices).unpriced;
    if !unpriced.is_empty() {
        crate::errln!(
            "cclog: warning: no price for {} — their tokens are counted, their cost is not (give a table with --pricing)",
            unpriced.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        );
    }
    if args.json {
        crate::outln!("{}", report.json(&prices));
        return Ok(EXIT_OK);
    }
    if report.rows.is_empty() {
        crate::outln!("no usage in the archive for this report (run `cclog import` first, or widen --since/--until)");
        return Ok(EXIT_OK);
    }
    print_table(&report, &prices, args.breakdown, &query);
    Ok(EXIT_OK)
}

/// How a table is drawn: tokens in full or as `1.2M`, and whether the four kinds of
/// token get columns or only their total does. The widest that fits is used.
#[derive(Clone, Copy)]
struct Layout {
    compact: bool,
    kinds: bool,
}

const LAYOUTS: [Layout; 3] = [
    Layout { compact: false, kinds: true },
    Layout { compact: true, kinds: true },
    Layout { compact: true, kinds: false },
];

fn columns(grouping: Grouping, layout: Layout) -> Vec<Column> {
    let label = match grouping {
        Grouping::Daily => "DATE",
        Grouping::Monthly => "MONTH",
        Grouping::Session => "SESSION",
        Grouping::Blocks => "BLOCK START",
    };
    let mut columns = vec![Column::text(label)];
    if grouping == Grouping::Blocks {
        columns.push(Column::text("STATUS"));
    }
    let kinds: &[&str] = if layout.kinds { &["INPUT", "OUTPUT", "CACHE WRITE", "CACHE READ"] } else { &[] };
    columns.extend(kinds.iter().chain(&["TOTAL", "COST"]).map(|heading| Column::number(heading)));
    if grouping == Grouping::Session {
        columns.push(Column::text("LAST"));
        // A session's project may be cut to 8 characters; numbers may not.
        columns.push(Column::text("PROJECT").flexible(8));
    }
    columns
}

/// The report as a table in the widest layout that fits the terminal (80 columns off
/// one), with a line of each model under its row for `breakdown`.
fn table(report: &UsageReport, prices: &PriceTable, breakdown: bool, query: &UsageQuery, layout: Layout) -> Table {
    let mut table = Table { columns: columns(report.grouping, layout), ..Table::default() };
    for row in &report.rows {
        table.rows.push(row_cells(report.grouping, row, None, prices, layout, query));
        if breakdown {
            for model in row.models.keys() {
                table.dim.push(table.rows.len());
                table.rows.push(row_cells(report.grouping, row, Some(model), prices, layout, query));
            }
        }
    }
    let mut total = vec!["TOTAL".to_string()];
    if report.grouping == Grouping::Blocks {
        total.push(String::new());
    }
    total.extend(token_cells(&report.total_usage(), layout));
    total.push(output::dollars(report.total_cost(prices).usd, 2));
    table.totals = Some(total);
    table
}

fn print_table(report: &UsageReport, prices: &PriceTable, breakdown: bool, query: &UsageQuery) {
    let width = output::terminal_width().unwrap_or(80);
    let tables = LAYOUTS.map(|layout| table(report, prices, breakdown, query, layout));
    let [.., narrowest] = &tables;
    tables.iter().find(|table| table.fits(width)).unwrap_or(narrowest).print(Some(width));
    let footer = format!("times in {}; prices: {}", report.time_zone, prices.source);
    let colour = output::colour_stdout();
    crate::outln!("{}", paint(colour, output::DIM, &cclog_projections::lineage::shorten(&footer, width)));
}

/// One row's cells, or (`model`) one model's line of its breakdown.
fn row_cells(
    grouping: Grouping,
    row: &UsageRow,
    model: Option<&String>,
    prices: &PriceTable,
    layout: Layout,
    query: &UsageQuery,
) -> Vec<String> {
    let mut cells = Vec::new();
    let (usage, cost) = match model {
        Some(model) => {
            let part = row.models.get(model).map(|part| part.usage).unwrap_or_default();
            cells.push(format!("  {}", short_model(model)));
            (part, prices.cost_usd(model, &part))
        }
        None => {
            let label = match (grouping, &row.block) {
                (Grouping::Session, _) => row.label.get(..8).unwrap_or(&row.label).to_string(),
                (Grouping::Blocks, Some(block)) => local_time(block.start_ms, query),
                _ => row.label.clone(),
            };
            cells.push(label);
            (row.usage(), row.cost(prices).usd)
        }
    };
    if grouping == Grouping::Blocks {
        cells.push(match (&row.block, model) {
            (Some(block), None) if block.is_gap => format!("gap {}", duration(block.end_ms - block.start_ms)),
            (Some(block), None) if block.is_active => {
                format!("ACTIVE, {} left", duration(block.end_ms - query.now_ms))
            }
            (Some(block), None) => duration(block.actual_end_ms - block.start_ms),
            _ => String::new(),
        });
    }
    if row.block.is_some_and(|block| block.is_gap) {
        return cells;
    }
    cells.extend(token_cells(&usage, layout));
    cells.push(output::dollars(cost, 2));
    if let (Grouping::Session, Some(session), None) = (grouping, &row.session, model) {
        let last = session.last_at.as_deref().map(|at| output::local_time_as(at, &query.time_zone, "%Y-%m-%d"));
        cells.push(last.unwrap_or_else(|| "-".to_string()));
        cells.push(session.project.clone());
    }
    cells
}

/// The four kinds of token and their total, or (without `kinds`) the total alone.
fn token_cells(usage: &cclog_projections::entry::Usage, layout: Layout) -> Vec<String> {
    let kinds =
        [usage.input_tokens, usage.output_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens];
    let shown = if layout.kinds { &kinds[..] } else { &[] };
    shown
        .iter()
        .copied()
        .chain([usage.total()])
        .map(|tokens| if layout.compact { output::compact_count(tokens) } else { output::grouped(tokens) })
        .collect()
}

/// A model as a breakdown line names it: without `claude-` and a `-YYYYMMDD` date
/// (`claude-sonnet-4-5-20250929` is `sonnet-4-5`), so that tables fit.
fn short_model(model: &str) -> String {
    let name = model.strip_prefix("claude-").unwrap_or(model);
    let (name, fast) = match name.strip_suffix(cclog_projections::pricing::FAST_SUFFIX) {
        Some(base) => (base, cclog_projections::pricing::FAST_SUFFIX),
        None => (name, ""),
    };
    format!("{}{fast}", cclog_projections::pricing::undated(name).unwrap_or(name))
}

fn local_time(at_ms: i64, query: &UsageQuery) -> String {
    jiff::Timestamp::from_millisecond(at_ms)
        .map(|at| at.to_zoned(query.time_zone.clone()).strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// `4h05m`, `35m`.
fn duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match minutes / 60 {
        0 => format!("{minutes}m"),
        hours => format!("{hours}h{:02}m", minutes % 60),
    }
}
