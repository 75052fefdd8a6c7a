//! The seal: what sled's files looked like when the last owner closed them cleanly. sled's
//! recovery, run by every open, cuts its log file short at the first damaged message and
//! deletes the blobs written after it — so letting sled open a damaged store makes it
//! worse, whatever command asked. Proving a store intact by reading all of sled's files
//! (`carve`) before every open would cost every command a full read; the seal makes that
//! needed only when something may have changed the files behind cclog's back.
//!
//! A clean close writes `<data>/sled.seal`: the log file's inode, length, modification and
//! change times, and the blob files' count, total length and latest change time. The next
//! open removes it first (sled is about to write) and compares: when everything matches,
//! no process has written sled's files since cclog closed them — a write moves the change
//! time, which no user can set back — and sled opens at once. When it does not (a crash, a
//! store from before seals, or a file written by something else) the files are carved and
//! the chain proven before sled is let in; a store they show damaged is refused untouched
//! ([`crate::Error::DamagedFiles`]). A mismatch only ever costs a check, never a wrong
//! answer.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Name of the seal file in the data directory.
pub(crate) const SEAL_FILE: &str = "sled.seal";

/// What sled's files look like now; `None` when the log file is missing or unreadable.
pub(crate) fn current(sled_dir: &Path) -> Option<String> {
    let db = std::fs::metadata(sled_dir.join("db")).ok()?;
    let (mut count, mut length, mut changed) = (0u64, 0u64, (0i64, 0i64));
    if let Ok(entries) = std::fs::read_dir(sled_dir.join("blobs")) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { return None };
            count += 1;
            length += meta.len();
            changed = changed.max((meta.ctime(), meta.ctime_nsec()));
        }
    }
    Some(format!(
        "cclog-seal-v1 db {} {} {}.{:09} {}.{:09} blobs {count} {length} {}.{:09}\n",
        db.ino(),
        db.len(),
        db.mtime(),
        db.mtime_nsec(),
        db.ctime(),
        db.ctime_nsec(),
        changed.0,
        changed.1
    ))
}

/// Takes the seal a clean close left, removing it; whether it matches the files as they are.
/// A seal that cannot be removed counts as not matching, since the next open could not
/// tell it from a fresh one.
pub(crate) fn take_and_check(dir: &Path, sled_dir: &Path) -> bool {
    let path = dir.join(SEAL_FILE);
    let Ok(sealed) = std::fs::read_to_string(&path) else { return false };
    if std::fs::remove_file(&path).is_err() {
        return false;
    }
    current(sled_dir).is_some_and(|now| now == sealed)
}

/// Writes the seal after a clean close, synced so that it describes durable files. Failing
/// to write it costs the next open a check, nothing more.
pub(crate) fn write(dir: &Path, sled_dir: &Path) {
    use std::io::Write;
    let Some(seal) = current(sled_dir) else { return };
    let path = dir.join(SEAL_FILE);
    let staging = dir.join(format!("{SEAL_FILE}.tmp"));
    let written = std::fs::File::create(&staging)
        .and_then(|mut file| file.write_all(seal.as_bytes()).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&staging, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::Log::open(dir.path(), crate::LogOptions::default()).unwrap();
        log.append_blocking(vec![crate::NewEvent::new("s/1", "k", b"{}".to_vec())]).unwrap();
        drop(log);
        dir
    }

    #[test]
    fn a_clean_close_seals_and_the_next_open_takes_the_seal() {
        let dir = closed_store();
        let sled_dir = dir.path().join("sled");
        assert!(dir.path().join(SEAL_FILE).exists(), "a clean close leaves a seal");
        assert!(take_and_check(dir.path(), &sled_dir), "nothing changed the files");
        assert!(!dir.path().join(SEAL_FILE).exists(), "the seal is taken");
        assert!(!take_and_check(dir.path(), &sled_dir), "a taken seal vouches for nothing");
    }

    #[test]
    fn a_write_behind_cclogs_back_breaks_the_seal_even_with_the_same_bytes() {
        let dir = closed_store();
        let db = dir.path().join("sled").join("db");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let bytes = std::fs::read(&db).unwrap();
        std::fs::write(&db, bytes).unwrap();
        assert!(!take_and_check(dir.path(), &dir.path().join("sled")));
    }

    #[test]
    fn a_blob_written_behind_cclogs_back_breaks_the_seal() {
        let dir = closed_store();
        let blobs = dir.path().join("sled").join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("4242"), b"not sled's").unwrap();
        assert!(!take_and_check(dir.path(), &dir.path().join("sled")));
    }
}
