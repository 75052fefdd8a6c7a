//! `cclog verify`: walk the whole chain and say whether it is intact, and if not, where the
//! first damage is and what it is. Opens the store without its projections or writer, so a
//! store too damaged to open is still reported on, never panicked over; while `cclog serve`
//! owns the directory, it walks the server's log up to its durable head.

use std::path::Path;

use cclog_engine::verify_dir;

use crate::args::VerifyArgs;
use crate::output::{self, paint};
use crate::{EXIT_DAMAGED, EXIT_OK};

pub fn run(data: &Path, args: VerifyArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let bar = output::progress_bar(0, "verifying");
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total.max(done));
        bar.set_position(done);
    };
    let report = match output::forwarded_log() {
        // Run for a client by `cclog serve`: its open log, up to the durable head as of now.
        Some(log) => log.verify(args.from, &mut progress),
        None => verify_dir(data, args.from, &mut progress)?,
    };
    bar.finish_and_clear();
    let code = if report.intact() { EXIT_OK } else { EXIT_DAMAGED };
    if args.json {
        let json = serde_json::json!({
            "intact": report.intact(),
            "from": report.from,
            "checked": report.checked,
            "last_good": report.last_good.as_ref().map(|(seq, hash)| serde_json::json!({"seq": seq, "hash": hash})),
            "damage": report.damage,
            "damages": report.damages,
            "lost": report.lost,
            "recovery_pending": report.recovery_pending,
        });
        crate::outln!("{json}");
        return Ok(code);
    }
    let colour = output::colour_stdout();
    match &report.damage {
        None => match &report.last_good {
            Some((seq, hash)) => crate::outln!(
                "{}: {} checked (seq {}..={seq}), head {hash}",
                paint(colour, output::GREEN, "intact"),
                output::count(report.checked, "event"),
                report.from
            ),
            None => crate::outln!("{}: the log is empty", paint(colour, output::GREEN, "intact")),
        },
        Some(_) => {
            for damage in &report.damages {
                let at = match (damage.seq, damage.until) {
                    (Some(seq), Some(until)) if until > seq => format!("seq {seq}..={until}"),
                    (Some(seq), _) => format!("seq {seq}"),
                    (None, _) => "the store".to_string(),
                };
                crate::outln!(
                    "{} at {at}: {}: {}",
                    paint(colour, output::RED, "DAMAGED"),
                    damage.kind.describe(),
                    damage.detail
                );
            }
            crate::outln!(
                "{} checked intact around the damage; last intact event: {}",
                output::count(report.checked, "event"),
                report
                    .last_good
                    .as_ref()
                    .map_or_else(|| "none".to_string(), |(seq, hash)| format!("seq {seq}, hash {hash}"))
            );
            if report.lost.is_empty() {
                crate::outln!(
                    "lost: nothing — every damaged event is intact in sled's files (`cclog salvage --to DIR`)"
                );
            } else {
                let ranges: Vec<String> = report
                    .lost
                    .iter()
                    .map(|(first, last)| if first == last { first.to_string() } else { format!("{first}..={last}") })
                    .collect();
                crate::outln!("lost for good: seq {}", ranges.join(", "));
            }
        }
    }
    if let Some(pending) = &report.recovery_pending {
        crate::outln!("{}: {pending}", paint(colour, output::YELLOW, "note"));
    }
    Ok(code)
}
