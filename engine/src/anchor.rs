//! The head anchor: `<data>/head.anchor` records the last durable head (seq and hash)
//! outside sled. sled recovers a damaged log by cutting it at the first bad message, which
//! would silently drop every later event; an anchor that is ahead of the recovered log turns
//! that into a reported truncation. It is written after every durable commit, without an
//! fsync of its own: it can lag the log after a power cut, but it is never ahead of it.
//!
//! Encoding format: `seq` (u64 BE) ‖ `hash` (32 bytes) ‖ BLAKE3 of the first 40 bytes
//! (32 bytes) = 72 bytes at offset 0.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Hash, Result};

pub const ANCHOR_FILE: &str = "head.anchor";
const ANCHOR_LEN: usize = 72;

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
    if blake3::hash(&bytes[..40]).as_bytes() != &bytes[40..] {
        return AnchorState::Unreadable;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[8..40]);
    AnchorState::Head { seq: u64::from_be_bytes(seq), hash: Hash(hash) }
}
