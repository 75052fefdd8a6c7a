//! Keeping the archive of Claude Code's transcripts current while a server runs: an
//! incremental import of the transcript roots every few seconds and whenever a run ends,
//! one import at a time, on a blocking thread. Problems are logged, never fatal — a root
//! that does not exist yet (no Claude Code session so far) is skipped until it does. The
//! transcripts of every team agent (their homes under the data directory) are archived
//! with the roots, whatever the roots are, so a team's conversations are kept as they are
//! written.

use std::path::PathBuf;
use std::sync::Arc;

use cclog_engine::Log;

use crate::import::Importer;

/// Imports a set of transcript roots on demand, one import at a time.
pub struct Archiver {
    log: Arc<Log>,
    roots: Vec<PathBuf>,
    busy: tokio::sync::Mutex<()>,
}

impl Archiver {
    pub fn new(log: Arc<Log>, roots: Vec<PathBuf>) -> Archiver {
        Archiver { log, roots, busy: tokio::sync::Mutex::new(()) }
    }

    /// An incremental import of every root, now; problems are logged, never fatal.
    pub async fn import_now(&self) {
        let _busy = self.busy.lock().await;
        let (log, roots) = (Arc::clone(&self.log), self.roots.clone());
        let imported = tokio::task::spawn_blocking(move || {
            let mut roots: Vec<PathBuf> = roots.into_iter().filter(|root| root.exists()).collect();
            roots.extend(crate::team::transcript_roots(log.dir()));
            if roots.is_empty() {
                return Ok(crate::import::ImportReport::default());
            }
            Importer::new(&log).import(&roots, &|_| {})
        })
        .await;
        match imported {
            Ok(Ok(report)) if report.files_changed > 0 => {
                tracing::info!(files = report.files_changed, entries = report.new_entries, "archived transcripts");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "archiving transcripts failed"),
            Err(error) => tracing::error!(%error, "archiving transcripts panicked"),
        }
    }
}
