//! `cclog import`: archive transcripts, once or (`--watch`) continuously, and optionally
//! prove the archive by replaying every file and comparing it with the disk
//! (`--verify-replay`, the conformance check CI runs on the shared corpus).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use cclog_engine::Log;
use cclog_ingest::import::{self, ImportReport, Importer};
use cclog_ingest::watch::{self, WatchOptions};
use cclog_projections::archive::Archive;
use cclog_projections::replay;

use crate::args::ImportArgs;
use crate::{output, EXIT_DAMAGED, EXIT_OK};

pub fn run(data: &Path, args: ImportArgs) -> anyhow::Result<u8> {
    let roots = if args.paths.is_empty() {
        vec![import::default_projects_dir().context("HOME is not set; name the directory to import")?]
    } else {
        args.paths.clone()
    };
    if args.paths.is_empty() && !args.watch && !roots[0].exists() {
        crate::outln!(
            "nothing to import: {} does not exist (Claude Code has not run here as this user)",
            roots[0].display()
        );
        return Ok(EXIT_OK);
    }
    let log = super::open_log(data)?;
    if args.watch {
        return watch_forever(&log, &roots, args.json);
    }
    let bar = output::byte_progress_bar("importing");
    let report = Importer::new(&log).import(&roots, &|progress| {
        bar.set_length(progress.bytes_total);
        bar.set_position(progress.bytes_done);
    })?;
    bar.finish_and_clear();
    let mismatched = if args.verify_replay { verify_replay(&log, &roots)? } else { Vec::new() };
    if args.json {
        let mut json = crate::json_style::value(&report)?;
        if args.verify_replay {
            json["replay_mismatches"] = serde_json::json!(mismatched);
        }
        crate::outln!("{json}");
    } else {
        print_summary(&report);
        if args.verify_replay {
            if mismatched.is_empty() {
                crate::outln!("replay: every file gives back its exact bytes");
            } else {
                for (path, detail) in &mismatched {
                    crate::outln!("replay MISMATCH {path}: {detail}");
                }
            }
        }
    }
    let failed = !report.failed_files.is_empty() || !mismatched.is_empty();
    Ok(if failed { EXIT_DAMAGED } else { EXIT_OK })
}

fn print_summary(report: &ImportReport) {
    crate::outln!(
        "{} ({} changed), {} with new entries: {} new entries, {} copied through {} pointers, {} read",
        output::count(report.files, "file"),
        report.files_changed,
        output::count(report.sessions, "session"),
        report.new_entries,
        report.copied_entries,
        report.copy_runs,
        output::bytes(report.bytes_read),
    );
    if report.revisions > 0 || report.deleted > 0 {
        crate::outln!(
            "{} rewritten or truncated (new revisions), {} deleted",
            output::count(report.revisions, "file"),
            report.deleted
        );
    }
    if !report.malformed_lines.is_empty() {
        crate::outln!("{} kept as evidence:", output::count(report.malformed_lines.len() as u64, "malformed line"));
        for bad in report.malformed_lines.iter().take(20) {
            crate::outln!("  {}:{}: {}", bad.path, bad.line, bad.reason);
        }
        if report.malformed_lines.len() > 20 {
            crate::outln!("  … and {} more (--json lists all)", report.malformed_lines.len() - 20);
        }
    }
    if !report.unknown_types.is_empty() {
        let listed: Vec<String> = report.unknown_types.iter().map(|(kind, count)| format!("{kind} ×{count}")).collect();
        crate::outln!("unknown entry types (kept): {}", listed.join(", "));
    }
    for (path, error) in &report.failed_files {
        crate::outln!("could not import {path}: {error}");
    }
    for (path, reason) in &report.skipped {
        crate::outln!("skipped {path}: {reason}");
    }
    for (path, before, after) in &report.shrank {
        crate::outln!(
            "{path} shrank while it was read ({} → {}); what it holds now is archived",
            output::bytes(*before),
            output::bytes(*after)
        );
    }
}

/// Replays every archived file under `roots` and compares it with the disk.
fn verify_replay(log: &Log, roots: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut mismatched = Vec::new();
    let roots: Vec<String> = roots
        .iter()
        .map(|root| std::fs::canonicalize(root).map(|root| root.to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    for file in Archive::files(log)? {
        if file.deleted
            || !roots
                .iter()
                .any(|root| file.path == *root || file.path.starts_with(&format!("{}/", root.trim_end_matches('/'))))
        {
            continue;
        }
        let on_disk = std::fs::read(&file.path).with_context(|| format!("reading {}", file.path))?;
        let mut replayed = Vec::with_capacity(on_disk.len());
        if let Err(error) = replay::write_file(log, &file, None, &mut replayed) {
            mismatched.push((file.path.clone(), error.to_string()));
            continue;
        }
        if replayed != on_disk {
            let at =
                replayed.iter().zip(&on_disk).position(|(a, b)| a != b).unwrap_or(replayed.len().min(on_disk.len()));
            mismatched.push((
                file.path.clone(),
                format!("{} bytes replayed, {} on disk, first difference at byte {at}", replayed.len(), on_disk.len()),
            ));
        }
    }
    Ok(mismatched)
}

fn watch_forever(log: &Log, roots: &[PathBuf], json: bool) -> anyhow::Result<u8> {
    let stop = output::stop_flag()?;
    crate::errln!(
        "watching {} (Ctrl-C stops)",
        roots.iter().map(|root| root.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    watch::watch(log, roots, &WatchOptions::default(), &|| stop.load(Ordering::Relaxed), &mut |report| {
        if report.files_changed == 0 && report.deleted == 0 {
            return;
        }
        if json {
            if let Ok(line) = crate::json_style::line(report) {
                crate::outln!("{line}");
            }
        } else {
            print_summary(report);
        }
    })?;
    Ok(EXIT_OK)
}
