//! Keeps archiving transcripts as Claude Code writes them: file-system notifications on the
//! import roots (recursively) mark them dirty, and once they have been quiet for the
//! debounce interval an incremental import runs — which reads only what was appended, and
//! costs one `stat` per unchanged file. A periodic import also runs without notifications,
//! so a missed event (or a file system without them) delays archiving but never loses it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cclog_engine::Log;
use notify::{RecursiveMode, Watcher};

use crate::import::{ImportReport, Importer, Progress};
use crate::{Error, Result};

/// How watching behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last change before importing.
    pub debounce: Duration,
    /// Import at least this often even without notifications.
    pub rescan: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions { debounce: Duration::from_millis(300), rescan: Duration::from_secs(60) }
    }
}

/// Imports `roots` (directories, or single transcript files) now and after every burst of changes until `stop` returns true (checked
/// at least every 100 ms). `each` sees every import's report.
pub fn watch(
    log: &Log,
    roots: &[PathBuf],
    options: &WatchOptions,
    stop: &dyn Fn() -> bool,
    each: &mut dyn FnMut(&ImportReport),
) -> Result<()> {
    let (changes_tx, changes_rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = changes_tx.send(());
        }
    })
    .map_err(|error| Error::Watch(error.to_string()))?;
    for root in roots {
        // A missing root (no Claude Code run yet) is watched from the moment it exists.
        if !root.exists() {
            std::fs::create_dir_all(root).map_err(|source| Error::io(root, source))?;
        }
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|error| Error::Watch(format!("{}: {error}", root.display())))?;
    }
    let quiet = |_: Progress| {};
    let mut importer = Importer::new(log);
    each(&importer.import(roots, &quiet)?);
    let mut dirty_since: Option<Instant> = None;
    let mut last_import = Instant::now();
    while !stop() {
        match changes_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) => {
                dirty_since = Some(Instant::now());
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Watch("the watcher stopped".into())),
        }
        let due = dirty_since.is_some_and(|since| since.elapsed() >= options.debounce)
            || last_import.elapsed() >= options.rescan;
        if due {
            dirty_since = None;
            last_import = Instant::now();
            each(&importer.import(roots, &quiet)?);
        }
    }
    Ok(())
}
