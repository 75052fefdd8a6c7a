//! `cclog salvage --to DIR`: copy every event that can be proven from the damaged data
//! directory's raw files — without trusting sled, which refuses whole pages over one bad
//! byte — into a new data directory, with the original hashes. `verify` on the copy then
//! names exactly the seqs that were lost.

use std::path::Path;

use crate::args::SalvageArgs;
use crate::output::{self, paint};
use crate::{EXIT_DAMAGED, EXIT_OK};

pub fn run(data: &Path, args: SalvageArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let bar = output::byte_progress_bar("carving");
    let report = cclog_engine::salvage(data, &args.to, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let code = if report.missing.is_empty() { EXIT_OK } else { EXIT_DAMAGED };
    if args.json {
        crate::outln!("{}", crate::json_style::line(&report)?);
        return Ok(code);
    }
    let colour = output::colour_stdout();
    match &report.head {
        Some((seq, hash)) => crate::outln!(
            "salvaged {} into {} (up to seq {seq}, head {hash})",
            output::count(report.events, "event"),
            args.to.display()
        ),
        None => crate::outln!("no intact event found; {} holds an empty log", args.to.display()),
    }
    if report.missing.is_empty() {
        crate::outln!("{}: nothing is missing", paint(colour, output::GREEN, "complete"));
    } else {
        let lost: u64 = report.missing.iter().map(|(first, last)| last - first + 1).sum();
        crate::outln!(
            "{}: {} could not be recovered:",
            paint(colour, output::RED, "missing"),
            output::count(lost, "event")
        );
        for (first, last) in &report.missing {
            if first == last {
                crate::outln!("  seq {first}");
            } else {
                crate::outln!("  seq {first}..={last}");
            }
        }
        crate::outln!("`cclog --data {} verify` names them too", args.to.display());
    }
    Ok(code)
}
