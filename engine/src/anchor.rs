//! The head anchor: `<data>/head.anchor` records the last durable head (seq and hash)
//! outside sled. sled recovers a damaged log by cutting it at the first bad message, which
//! would silently drop every later event; an anchor that is ahead of the recovered log turns
//! that into a reported truncation. It is written after every durable commit, without an
//! fsync of its own: it can lag the log after a power cut, but it is never ahead of it.
//!
//! The same file carries the fault record: when a write or fsync fails, the writer marks
//! the file before anything else happens, so that the next open knows that sled may hold
//! part of a commit group nobody was told about, and cuts the log back to the anchor (see
//! `recovery`). Both are overwrites inside the file's first filesystem block, which a full
//! disk does not refuse.
//!
//! Encoding format: `seq` (u64 BE) ‖ `hash` (32 bytes) ‖ BLAKE3 of the first 40 bytes
//! (32 bytes) = 72 bytes at offset 0; 72 zero bytes (or none) mean no anchor yet. The file
//! is given its full length (zeros) when the log is opened. At offset
//! 72, the fault record: [`FAULT_MAGIC`] (16 bytes) ‖ reason (UTF-8, NUL-padded to
//! [`FAULT_REASON_LEN`] bytes); zeros mean no fault.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Hash, Result};

pub const ANCHOR_FILE: &str = "head.anchor";
const ANCHOR_LEN: usize = 72;
const FAULT_MAGIC: &[u8; 16] = b"cclog-fault-v1\0\0";
const FAULT_REASON_LEN: usize = 240;
const FAULT_LEN: usize = 16 + FAULT_REASON_LEN;

/// What the anchor file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorState {
    /// No anchor yet: the log was never appended to through this build.
    Absent,
    /// The anchor was torn or altered; it proves nothing either way.
    Unreadable,
    Head {
        seq: u64,
        hash: Hash,
    },
}

#[derive(Debug)]
pub struct HeadAnchor {
    file: File,
    path: PathBuf,
}

impl HeadAnchor {
    pub fn open(dir: &Path) -> Result<HeadAnchor> {
        let path = dir.join(ANCHOR_FILE);
        let file = crate::durability::open_read_write(&path)?;
        // The file gets its full length now, while there is room: writing the fault record
        // later must be an overwrite that a full disk cannot refuse. Zeros read as "no
        // anchor" and "no fault"; when even this fails, the next open still finds blocks
        // past the recorded head.
        if file.metadata().is_ok_and(|meta| meta.len() < (ANCHOR_LEN + FAULT_LEN) as u64) {
            let length = file.metadata().map_or(0, |meta| meta.len()) as usize;
            let zeros = vec![0u8; ANCHOR_LEN + FAULT_LEN - length];
            let _ = file.write_all_at(&zeros, length as u64);
        }
        Ok(HeadAnchor { file, path })
    }

    pub fn write(&self, seq: u64, hash: &Hash) -> Result<()> {
        let mut bytes = [0u8; ANCHOR_LEN];
        bytes[..8].copy_from_slice(&seq.to_be_bytes());
        bytes[8..40].copy_from_slice(&hash.0);
        let check = blake3::hash(&bytes[..40]);
        bytes[40..].copy_from_slice(check.as_bytes());
        self.file.write_all_at(&bytes, 0).map_err(|source| Error::io(&self.path, source))
    }

    /// Forgets the anchor: the log is empty again (after recovery cut every event).
    pub fn clear(&self) -> Result<()> {
        self.file.write_all_at(&[0u8; ANCHOR_LEN], 0).map_err(|source| Error::io(&self.path, source))
    }

    /// Records that a write failed, and why (cut to [`FAULT_REASON_LEN`] bytes).
    pub fn mark_fault(&self, reason: &str) -> Result<()> {
        let mut bytes = [0u8; FAULT_LEN];
        bytes[..16].copy_from_slice(FAULT_MAGIC);
        let mut end = reason.len().min(FAULT_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        bytes[16..16 + end].copy_from_slice(&reason.as_bytes()[..end]);
        self.file.write_all_at(&bytes, ANCHOR_LEN as u64).map_err(|source| Error::io(&self.path, source))?;
        // The mark must outlive a crash that follows it.
        self.file.sync_data().map_err(|source| Error::io(&self.path, source))
    }

    /// Removes the fault record once recovery is durable.
    pub fn clear_fault(&self) -> Result<()> {
        self.file.write_all_at(&[0u8; FAULT_LEN], ANCHOR_LEN as u64).map_err(|source| Error::io(&self.path, source))?;
        self.file.sync_data().map_err(|source| Error::io(&self.path, source))
    }
}

/// The reason of the fault recorded in a data directory's anchor file, if there is one.
pub fn read_fault(dir: &Path) -> Option<String> {
    let file = File::open(dir.join(ANCHOR_FILE)).ok()?;
    let mut bytes = [0u8; FAULT_LEN];
    file.read_exact_at(&mut bytes, ANCHOR_LEN as u64).ok()?;
    if &bytes[..16] != FAULT_MAGIC {
        return None;
    }
    let reason = &bytes[16..];
    let end = reason.iter().position(|byte| *byte == 0).unwrap_or(reason.len());
    Some(String::from_utf8_lossy(&reason[..end]).into_owned())
}

/// Reads the anchor of a data directory without taking ownership of it.
pub fn read_anchor(dir: &Path) -> AnchorState {
    match File::open(dir.join(ANCHOR_FILE)) {
        Ok(file) => read_anchor_file(&file),
        Err(_) => AnchorState::Absent,
    }
}

fn read_anchor_file(file: &File) -> AnchorState {
    let mut bytes = [0u8; ANCHOR_LEN];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            return match file.metadata() {
                Ok(meta) if meta.len() == 0 => AnchorState::Absent,
                _ => AnchorState::Unreadable,
            };
        }
        Err(_) => return AnchorState::Unreadable,
    }
    if bytes.iter().all(|byte| *byte == 0) {
        return AnchorState::Absent;
    }
    if blake3::hash(&bytes[..40]).as_bytes() != &bytes[40..] {
        return AnchorState::Unreadable;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[8..40]);
    AnchorState::Head { seq: u64::from_be_bytes(seq), hash: Hash(hash) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_record_sits_beside_the_anchor_without_disturbing_it() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = HeadAnchor::open(dir.path()).unwrap();
        assert_eq!(read_fault(dir.path()), None);
        // A fault before any anchor leaves the anchor absent.
        anchor.mark_fault("disk full writing x").unwrap();
        assert_eq!(read_anchor(dir.path()), AnchorState::Absent);
        assert_eq!(read_fault(dir.path()).as_deref(), Some("disk full writing x"));
        anchor.write(7, &Hash([3; 32])).unwrap();
        assert_eq!(read_anchor(dir.path()), AnchorState::Head { seq: 7, hash: Hash([3; 32]) });
        assert!(read_fault(dir.path()).is_some());
        anchor.clear_fault().unwrap();
        assert_eq!(read_fault(dir.path()), None);
        assert_eq!(read_anchor(dir.path()), AnchorState::Head { seq: 7, hash: Hash([3; 32]) });
        anchor.clear().unwrap();
        assert_eq!(read_anchor(dir.path()), AnchorState::Absent);
        // A long reason is cut on a character boundary.
        anchor.mark_fault(&"é".repeat(400)).unwrap();
        assert_eq!(read_fault(dir.path()).unwrap().chars().count(), FAULT_REASON_LEN / 2);
    }
}
