//! `cclog diff A B`: where two sessions part (their lowest common ancestor in the fork tree
//! and the last entry their conversations share) and what each did afterwards: messages,
//! tool calls, files touched, tokens and cost.

use std::path::Path;
use std::process::ExitCode;

use cclog_projections::archive::Archive;
use cclog_projections::lineage::{self, Branch};

use crate::args::DiffArgs;
use crate::output::{self, paint};

pub fn run(data: &Path, args: DiffArgs) -> anyhow::Result<ExitCode> {
    super::require_store(data)?;
    let log = super::open_log(data)?;
    let left = Archive::session(&log, &args.a)?;
    let right = Archive::session(&log, &args.b)?;
    let diff = lineage::diff(&log, &left, &right)?;
    if args.json {
        println!("{}", serde_json::to_string(&diff)?);
        return Ok(ExitCode::SUCCESS);
    }
    let colour = output::colour_stdout();
    println!("ancestor    {}", diff.ancestor.as_deref().unwrap_or("none (unrelated sessions)"));
    match &diff.fork_point {
        Some(point) => println!(
            "fork point  {} — entry {} of the shared conversation{}",
            point.uuid,
            point.position,
            point.seq.map(|seq| format!(", log seq {seq}")).unwrap_or_default()
        ),
        None => println!("fork point  none: the conversations share no entry"),
    }
    for (label, branch, code) in [("left ", &diff.left, output::RED), ("right", &diff.right, output::GREEN)] {
        print_branch(label, branch, colour, code);
    }
    println!(
        "difference  {:+} tokens, {:+.4} USD (right minus left)",
        diff.tokens_difference, diff.cost_difference_usd
    );
    Ok(ExitCode::SUCCESS)
}

fn print_branch(label: &str, branch: &Branch, colour: bool, code: &str) {
    println!(
        "{} {}: {} entries after the fork ({} prompts, {} assistant messages), {} tokens, ${:.4}",
        paint(colour, code, label),
        branch.session,
        branch.entries.len(),
        branch.user_messages,
        branch.assistant_messages,
        branch.usage.total(),
        branch.cost_usd
    );
    for call in &branch.tool_calls {
        println!("    tool  {} {}", call.name, lineage::shorten(&call.input.to_string(), 100));
    }
    for file in &branch.files_touched {
        println!("    file  {file}");
    }
    for entry in branch.entries.iter().filter(|entry| entry.text.is_some()) {
        println!("    {:<9} {}", entry.kind, entry.text.as_deref().unwrap_or_default());
    }
}
