//! Making sled's writes durable. sled 0.34's `flush()` writes its buffers with `pwrite` and
//! then calls `sync_file_range`, which starts and waits for write-back of those pages but
//! neither flushes the drive's cache nor persists the file's size; and its blob files
//! (values too large for a log segment) are written with no sync at all. After every
//! `flush()` the writer therefore `fdatasync`s the log file, `fsync`s every blob file it has
//! not synced yet and, when blobs appeared, the blob directory.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

#[derive(Debug)]
pub struct DurableFiles {
    log_file: File,
    log_path: PathBuf,
    blob_dir: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl DurableFiles {
    /// `sled_dir` is sled's own directory; it must already hold sled's `db` file.
    pub fn open(sled_dir: &Path) -> Result<DurableFiles> {
        let log_path = sled_dir.join("db");
        let log_file = File::open(&log_path).map_err(|source| Error::io(&log_path, source))?;
        sync_dir(sled_dir)?;
        if let Some(parent) = sled_dir.parent() {
            sync_dir(parent)?;
        }
        Ok(DurableFiles { log_file, log_path, blob_dir: sled_dir.join("blobs"), synced_blobs: HashSet::new() })
    }

    /// Call right after `sled::Db::flush`: afterwards everything sled flushed is on stable
    /// storage.
    pub fn sync(&mut self) -> Result<()> {
        self.log_file.sync_data().map_err(|source| Error::io(&self.log_path, source))?;
        self.sync_new_blobs()
    }

    fn sync_new_blobs(&mut self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(Error::io(&self.blob_dir, source)),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let entry = entry.map_err(|source| Error::io(&self.blob_dir, source))?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                let path = entry.path();
                // A blob sled removed between listing and opening needs no sync.
                if let Ok(file) = File::open(&path) {
                    file.sync_all().map_err(|source| Error::io(&path, source))?;
                    synced_any = true;
                }
            }
            present.insert(name);
        }
        if synced_any {
            sync_dir(&self.blob_dir)?;
        }
        self.synced_blobs = present;
        Ok(())
    }
}

/// Opens a file for reading and writing, creating it but never truncating it.
pub(crate) fn open_read_write(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| Error::io(path, source))
}

/// fsyncs a directory so that the files created in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|file| file.sync_all()).map_err(|source| Error::io(dir, source))
}
