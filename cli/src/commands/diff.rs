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
    crate::outln!("ancestor    {}", diff.ancestor.as_deref().unwrap_or("none (unrelated sessions)"));
    match &diff.fork_point {
        Some(point) => crate::outln!(
            "fork point  {} — entry {} of the shared conversation{}",
            point.uuid,
            point.position,
            point.seq.map(|seq| format!(", log seq {seq}")).unwrap_or_default()
        ),
        None => crate::outln!("fork point  none: the conversations share no entry"),
    }
    for (label, branch, code) in [("left ", &diff.left, output::RED), ("right", &diff.right, output::GREEN)] {
        print_branch(label, branch, colour, code);
    }
    crate::outln!(
        "difference  {} tokens, {} (right minus left)",
        output::signed_grouped(diff.tokens_difference),
        output::signed_dollars(diff.cost_difference_usd)
    );
    Ok(EXIT_OK)
}

fn print_branch(label: &str, branch: &Branch, colour: bool, code: &str) {
    crate::outln!(
        "{} {}: {} conversation entries after the fork ({} prompts, {} assistant messages), {} tokens, {}",
        paint(colour, code, label),
        branch.session,
        output::grouped(branch.entries.len() as u64),
        output::grouped(branch.user_messages as u64),
        output::grouped(branch.assistant_messages as u64),
        output::grouped(branch.usage.total()),
        output::dollars(branch.cost_usd, 2)
    );
    for call in &branch.tool_calls {
        crate::outln!("    tool  {} {}", call.name, lineage::shorten(&call.input.to_string(), 100));
    }
    for file in &branch.files_touched {
        crate::outln!("    file  {file}");
    }
    for entry in branch.entries.iter().filter(|entry| entry.text.is_some()) {
        crate::outln!("    {:<9} {}", entry.kind, entry.text.as_deref().unwrap_or_default());
    }
}
