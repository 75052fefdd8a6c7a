//! Compaction: sled keeps old versions of the pages it rewrote, and segments it has not yet
//! cleaned, in its log file — after an import, typically as much again as the store holds
//! (`cclog stats`, "sled overhead and garbage"). Compacting copies every live key, in key
//! order, into a fresh sled beside the store and puts it in the old one's place; the old
//! files are removed. Nothing in the log changes: same events, hashes, index and
//! projections, key for key.
//!
//! Crash safety: the directory is owned throughout, and the new files are complete and
//! fsynced before `compact.ready` is written (and fsynced) — the commit point. Before it, a
//! crash leaves the old store untouched and a stray `compact.new/`, which the next open
//! removes. After it, the next open finishes the two renames (`sled/` → `compact.old/`,
//! `compact.new/` → `sled/`) from whichever state it finds, then removes what is left
//! (`settle`, run by every open once the directory is owned).

use std::path::Path;

use serde::Serialize;

use crate::durability::sync_dir;
use crate::ownership::Ownership;
use crate::store::{sled_config, Store, LOG_TREE};
use crate::{Error, Result};

/// The new sled directory while it is written.
const NEW_DIR: &str = "compact.new";
/// The old sled directory once it is set aside.
const OLD_DIR: &str = "compact.old";
/// Written once the new files are complete and durable: from then on they replace the old.
const READY_FILE: &str = "compact.ready";
/// Keys copied per sled batch.
const KEYS_PER_BATCH: usize = 4096;

/// What a compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactReport {
    /// Keys copied (every key of the store).
    pub keys: u64,
    /// Bytes of the keys and values copied.
    pub live_bytes: u64,
    /// The data directory's size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Compacts the store in `dir`, which must not be in use (the lock says so otherwise).
/// A store whose last write failed is refused: opening it for writing (any command that
/// appends, or `cclog verify` to look first) cuts it back to what was acknowledged.
pub fn compact(dir: &Path) -> Result<CompactReport> {
    if !dir.join("sled").join("db").exists() {
        return Err(Error::Storage(format!("{} holds no cclog store", dir.display())));
    }
    let mut report = CompactReport { bytes_before: crate::log::directory_size(dir)?, ..CompactReport::default() };
    let store = Store::open(dir)?;
    if let Some(reason) = crate::anchor::read_fault(dir) {
        return Err(Error::Storage(format!(
            "the store's last write failed ({reason}); open it for writing first, which cuts it back to what was acknowledged"
        )));
    }
    // The copy takes at most what sled's files take now (it holds their live part, packed).
    let needed = crate::log::directory_size(&dir.join("sled"))? + crate::space::DEFAULT_DISK_RESERVE;
    if let Ok(free) = crate::space::free_bytes(dir) {
        if free < needed {
            return Err(Error::DiskFull { dir: dir.to_path_buf(), free, needed });
        }
    }
    if let Err(error) = copy_live_keys(&store, &dir.join(NEW_DIR), &mut report) {
        // Not ready: the old store is whole; what was copied goes.
        let _ = remove_if_present(&dir.join(NEW_DIR));
        return Err(error);
    }
    let ownership = store.close_keeping_ownership()?;
    mark_ready(dir)?;
    finish(dir)?;
    // The new files were closed cleanly and nobody else has opened them: a seal vouches for
    // them, so the next open need not prove them again.
    crate::seal::write(dir, &dir.join("sled"));
    drop(ownership);
    report.bytes_after = crate::log::directory_size(dir)?;
    Ok(report)
}

/// Copies every key of the store's tree, in order, into a new sled at `new_dir`, closes it
/// and makes its files durable.
fn copy_live_keys(store: &Store, new_dir: &Path, report: &mut CompactReport) -> Result<()> {
    remove_if_present(new_dir)?;
    {
        let db = sled_config(new_dir).open()?;
        let tree = db.open_tree(LOG_TREE)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for item in store.log.iter() {
            let (key, value) = item?;
            report.keys += 1;
            report.live_bytes += (key.len() + value.len()) as u64;
            batch.insert(key, value);
            in_batch += 1;
            if in_batch == KEYS_PER_BATCH {
                tree.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    sync_tree(new_dir)
}

/// The commit point: the new files replace the old from here on, crash or not.
fn mark_ready(dir: &Path) -> Result<()> {
    let path = dir.join(READY_FILE);
    let file = std::fs::File::create(&path).map_err(|source| Error::io(&path, source))?;
    file.sync_all().map_err(|source| Error::io(&path, source))?;
    sync_dir(dir)
}

/// Puts a ready new store in place of the old one, from any state a crash left: old set
/// aside (unless it already is), new moved in (unless it already is), then the old files
/// and the marker removed.
fn finish(dir: &Path) -> Result<()> {
    let (sled, new, old) = (dir.join("sled"), dir.join(NEW_DIR), dir.join(OLD_DIR));
    if new.exists() {
        if sled.exists() {
            remove_if_present(&old)?;
            rename(&sled, &old)?;
        }
        rename(&new, &sled)?;
        sync_dir(dir)?;
    }
    remove_if_present(&old)?;
    let ready = dir.join(READY_FILE);
    std::fs::remove_file(&ready).map_err(|source| Error::io(&ready, source))?;
    sync_dir(dir)
}

/// Finishes or undoes a compaction a crash interrupted; run by every open of the
/// directory, once it is owned and before anything reads sled's files.
pub(crate) fn settle(dir: &Path, _owned: &Ownership) -> Result<()> {
    if dir.join(READY_FILE).exists() {
        return finish(dir);
    }
    // Not ready: the old store is whole, and what was copied is dropped.
    remove_if_present(&dir.join(NEW_DIR))?;
    remove_if_present(&dir.join(OLD_DIR))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|source| Error::io(from, source))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::io(path, source)),
    }
}

/// fsyncs every file and directory under `dir`, and `dir` itself.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|source| Error::io(dir, source))? {
        let entry = entry.map_err(|source| Error::io(dir, source))?;
        let path = entry.path();
        if entry.file_type().map_err(|source| Error::io(&path, source))?.is_dir() {
            sync_tree(&path)?;
        } else {
            let file = std::fs::File::open(&path).map_err(|source| Error::io(&path, source))?;
            file.sync_all().map_err(|source| Error::io(&path, source))?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Log, LogOptions, NewEvent};

    /// A store with some history, and what it reads back.
    fn filled(dir: &Path) -> Vec<crate::Event> {
        let log = Log::open(dir, LogOptions::default()).unwrap();
        for group in 0..20u64 {
            let events = (0..100)
                .map(|index| {
                    let payload = format!(r#"{{"group":{group},"index":{index},"text":"{}"}}"#, "words ".repeat(index));
                    NewEvent::new(format!("s/{}", index % 7), "k", payload.into_bytes())
                })
                .collect();
            log.append_blocking(events).unwrap();
        }
        log.range(0).collect::<Result<_>>().unwrap()
    }

    fn tree_contents(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let store = Store::open(dir).unwrap();
        store
            .log
            .iter()
            .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())))
            .collect::<sled::Result<_>>()
            .unwrap()
    }

    fn reads_back(dir: &Path, events: &[crate::Event]) {
        let report = crate::verify_dir(dir, 0, &mut |_, _| {}).unwrap();
        assert!(report.intact() && report.checked == events.len() as u64, "{report:?}");
        let log = Log::open(dir, LogOptions::default()).unwrap();
        let read: Vec<crate::Event> = log.range(0).collect::<Result<_>>().unwrap();
        assert_eq!(read, events);
        for leftover in [NEW_DIR, OLD_DIR, READY_FILE] {
            assert!(!dir.join(leftover).exists(), "{leftover} left behind");
        }
    }

    #[test]
    fn compacting_keeps_every_key_and_takes_less_room() {
        let dir = tempfile::tempdir().unwrap();
        let events = filled(dir.path());
        let before = tree_contents(dir.path());
        let report = compact(dir.path()).unwrap();
        assert_eq!(report.keys, before.len() as u64);
        assert!(report.bytes_after < report.bytes_before, "{report:?}");
        assert_eq!(tree_contents(dir.path()), before);
        reads_back(dir.path(), &events);
        // The new files were sealed: opening them proves nothing again.
        assert!(crate::seal::take_and_check(dir.path(), &dir.path().join("sled")));
    }

    /// Every state a crash can leave is settled by the next open, to the old store whole
    /// (before the commit point) or the new one in place (after it).
    #[test]
    fn an_interrupted_compaction_is_undone_or_finished_by_the_next_open() {
        type Interrupt = fn(&Path);
        let states: [(&str, Interrupt); 4] = [
            ("copy not ready", |_| {}),
            ("ready, nothing renamed", |dir| mark_ready(dir).unwrap()),
            ("ready, old set aside", |dir| {
                mark_ready(dir).unwrap();
                rename(&dir.join("sled"), &dir.join(OLD_DIR)).unwrap();
            }),
            ("ready, new in place", |dir| {
                mark_ready(dir).unwrap();
                rename(&dir.join("sled"), &dir.join(OLD_DIR)).unwrap();
                rename(&dir.join(NEW_DIR), &dir.join("sled")).unwrap();
            }),
        ];
        for (state, interrupt) in states {
            let dir = tempfile::tempdir().unwrap();
            let events = filled(dir.path());
            let before = tree_contents(dir.path());
            {
                let store = Store::open(dir.path()).unwrap();
                copy_live_keys(&store, &dir.path().join(NEW_DIR), &mut CompactReport::default()).unwrap();
                let _ownership = store.close_keeping_ownership().unwrap();
                interrupt(dir.path());
            }
            assert_eq!(tree_contents(dir.path()), before, "{state}");
            reads_back(dir.path(), &events);
        }
    }

    #[test]
    fn a_store_in_use_is_not_compacted() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let _log = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert!(matches!(compact(dir.path()), Err(Error::Locked { .. })));
    }
}
