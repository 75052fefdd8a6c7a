//! `cclog diff A B`: where two sessions part (their lowest common ancestor in the fork tree
//! and the last entry their conversations share) and what each did afterwards: messages,
//! tool calls, files touched, tokens and cost.

use std::path::Path;

use cclog_projections::archive::Archive;
use cclog_projections::lineage::{self, Branch};

use crate::args::DiffArgs;
use crate::output::{self, paint};
use crate::EXIT_OK;

pub fn run(data: &Path, args: DiffArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let prices = super::price_table(&args.pricing)?;
    let log = super::open_log_to_read(data)?;
    let left = Archive::session(&log, &args.a)?;
    let right = Archive::session(&log, &args.b)?;
    let diff = lineage::diff(&log, &left, &right, &prices)?;
    if args.json {
        crate::outln!("{}", crate::json_style::line(&diff)?);
        return Ok(EXIT_OK);
    }
    let colour = output::colour_stdout();
    let width = output::table_width(args.wide);
    let field = |label: &str, value: &str| output::labelled(label, LABEL_WIDTH, value, width);
    field("ancestor", diff.ancestor.as_deref().unwrap_or("none (unrelated sessions)"));
    field(
        "fork point",
        &match &diff.fork_point {
            Some(point) => format!(
                "{} — entry {} of the shared conversation{}",
                point.uuid,
                point.position,
                point.seq.map(|seq| format!(", log seq {seq}")).unwrap_or_default()
            ),
            None => "none: the conversations share no entry".to_string(),
        },
    );
    for (label, branch, code) in [("left", &diff.left, output::RED), ("right", &diff.right, output::GREEN)] {
        print_branch(&paint(colour, code, label), branch, width);
    }
    field(
        "difference",
        &format!(
            "{} tokens, {} (right minus left)",
            output::signed_grouped(diff.tokens_difference),
            output::signed_dollars(diff.cost_difference_usd)
        ),
    );
    Ok(EXIT_OK)
}

/// Labels take this many columns, their values the rest.
const LABEL_WIDTH: usize = 12;

/// A branch: what it did after the fork, then each tool call, file and message, each on
/// one line (cut with `…` to the width).
fn print_branch(label: &str, branch: &Branch, width: Option<usize>) {
    let summary = format!(
        "{}: {} after the fork ({}, {}), {} tokens, {}",
        branch.session,
        output::count_of(branch.entries.len() as u64, "conversation entry", "conversation entries"),
        output::count(branch.user_messages as u64, "prompt"),
        output::count(branch.assistant_messages as u64, "assistant message"),
        output::grouped(branch.usage.total()),
        output::dollars(branch.cost_usd, 2)
    );
    output::labelled(label, LABEL_WIDTH, &summary, width);
    let room = |used: usize| width.map_or(usize::MAX, |width| width.saturating_sub(used).max(16));
    for call in &branch.tool_calls {
        let input = lineage::shorten(&call.input.to_string(), room(10 + call.name.chars().count() + 1).min(100));
        crate::outln!("    tool  {} {input}", call.name);
    }
    for file in &branch.files_touched {
        crate::outln!("    file  {}", width.map_or_else(|| file.clone(), |_| output::path_tail(file, room(10))));
    }
    for entry in branch.entries.iter().filter(|entry| entry.text.is_some()) {
        let text = lineage::shorten(entry.text.as_deref().unwrap_or_default(), room(14));
        crate::outln!("    {:<9} {text}", entry.kind);
    }
}
