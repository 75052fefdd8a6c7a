//! `cclog rebuild`: fold the whole log into fresh projections, swap them in, and say
//! whether each equals the state it replaced — a check that the read models are derived
//! state and nothing else.

use std::path::Path;

use crate::args::RebuildArgs;
use crate::{output, EXIT_DAMAGED, EXIT_OK};

pub fn run(data: &Path, args: RebuildArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let log = super::open_log(data)?;
    let reports = log.rebuild_blocking()?;
    let all_equal = reports.iter().all(|report| report.equal_to_previous);
    if args.json {
        let json: Vec<_> = reports
            .iter()
            .map(|report| {
                serde_json::json!({
                    "projection": report.projection, "version": report.version,
                    "events": report.events, "equal_to_previous": report.equal_to_previous,
                })
            })
            .collect();
        crate::outln!("{}", serde_json::json!({ "equal": all_equal, "projections": json }));
    } else {
        let colour = output::colour_stdout();
        for report in &reports {
            let verdict = if report.equal_to_previous {
                output::paint(colour, output::GREEN, "equal to the live state")
            } else {
                output::paint(colour, output::RED, "DIFFERENT from the live state (now replaced)")
            };
            crate::outln!(
                "{} v{}: {} folded, {verdict}",
                report.projection,
                report.version,
                output::count(report.events, "event")
            );
        }
    }
    Ok(if all_equal { EXIT_OK } else { EXIT_DAMAGED })
}
