//! Free space. sled does not survive a failed write: an `apply_batch` that hits ENOSPC in
//! the middle has already applied the keys before the failure, loses its atomicity marker,
//! and its next flush hangs (seen on sled 0.34 with a full tmpfs: a hole inside the chain
//! and a process that never exits). So the writer makes sure sled never sees a full disk:
//! before it stages a commit group it asks the filesystem how much space is free and
//! refuses the group with [`crate::Error::DiskFull`] unless a reserve and twice the group's
//! size are free. Nothing of a refused group reaches sled, the log stays as it was, and the
//! next group is accepted as soon as space is back — no restart, no recovery.
//!
//! A disk out of inodes is full too, though `df -h` does not show it: sled writes every
//! large value as a file of its own, so the writer also refuses a group unless
//! [`INODE_RESERVE`] inodes plus one per block that could become such a file are free
//! ([`crate::Error::OutOfInodes`]).
//!
//! The reserve also covers what sled writes on its own (segment headers, a snapshot while
//! opening); twice the group leaves room for sled's copy-on-write of the tree nodes a group
//! touches. A write that fails anyway (another process filled the disk between the check
//! and the write, or the device failed) poisons the log; see `recovery`.

use std::path::Path;

/// What the writer keeps free unless told otherwise: 8 MiB.
pub const DEFAULT_DISK_RESERVE: u64 = 8 << 20;

/// What the writer counts for each event besides its payload: header, hashes, index keys
/// and projection updates.
const EVENT_OVERHEAD: u64 = 512;

fn statvfs(path: &Path) -> std::io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` a buffer statvfs fills.
    let status = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    Ok(unsafe { stats.assume_init() })
}

/// Bytes free to an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = statvfs(path)?;
    // The field types are narrower than u64 on some targets.
    #[allow(clippy::unnecessary_cast)]
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Inodes (files) free to an unprivileged writer on the filesystem holding `path`; `None`
/// where the filesystem does not count them (btrfs, for one, reports none).
pub fn free_inodes(path: &Path) -> std::io::Result<Option<u64>> {
    let stats = statvfs(path)?;
    #[allow(clippy::unnecessary_cast)]
    Ok((stats.f_files != 0).then_some(stats.f_favail as u64))
}

/// Files the writer keeps free: a disk out of inodes is as full as one out of bytes, and
/// `df` does not show it.
pub(crate) const INODE_RESERVE: u64 = 64;
/// sled stores a value larger than about this as a file of its own (a blob).
const BLOB_THRESHOLD: u64 = 128 << 10;

/// The free inodes a group with `payload_bytes` payload bytes needs: the reserve and one
/// blob file for every block that may be large enough to be one.
pub(crate) fn inodes_needed_for(payload_bytes: u64) -> u64 {
    INODE_RESERVE + payload_bytes / BLOB_THRESHOLD + 1
}

/// Refuses with [`crate::Error::OutOfInodes`] when fewer than `needed` inodes are free.
pub(crate) fn check_inodes(dir: &Path, sled_dir: &Path, needed: u64) -> crate::Result<()> {
    match free_inodes(sled_dir) {
        Ok(Some(free)) if free < needed => Err(crate::Error::OutOfInodes { dir: dir.to_path_buf(), free, needed }),
        _ => Ok(()),
    }
}

/// Whether the disk holding `dir` takes writes again after a fault: at least `reserve`
/// free, and a probe file (in `dir`, removed after) written and synced. Lets a caller that
/// retries [`crate::Log::reopen`] wait for the fault to clear without opening sled again
/// and again on a disk that still fails.
pub(crate) fn disk_takes_writes(dir: &Path, reserve: u64) -> crate::Result<()> {
    use std::io::Write;
    let free = free_bytes(dir).map_err(|source| crate::Error::io(dir, source))?;
    if free < reserve {
        return Err(crate::Error::DiskFull { dir: dir.to_path_buf(), free, needed: reserve });
    }
    check_inodes(dir, dir, INODE_RESERVE)?;
    let probe = dir.join("reopen.probe");
    let written = std::fs::File::create(&probe)
        .and_then(|mut file| file.write_all(&[0u8; 64 << 10]).and_then(|()| file.sync_all()));
    let _ = std::fs::remove_file(&probe);
    written.map_err(|source| crate::Error::io(&probe, source))
}

/// The free space a group of `events` events with `payload_bytes` payload bytes needs.
pub(crate) fn needed_for(reserve: u64, events: u64, payload_bytes: u64) -> u64 {
    let group = payload_bytes.saturating_add(events.saturating_mul(EVENT_OVERHEAD));
    reserve.saturating_add(group.saturating_mul(2))
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn is_out_of_space(error: &std::io::Error) -> bool {
    // sled passes some of its I/O errors on rebuilt from their kind, without the errno.
    matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(error.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Bytes as a person reads them: "3.2 MiB".
pub fn describe_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_reports_its_filesystems_free_space() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_group_needs_the_reserve_and_twice_its_size() {
        assert_eq!(needed_for(100, 0, 0), 100);
        assert_eq!(needed_for(100, 2, 1000), 100 + 2 * (1000 + 2 * EVENT_OVERHEAD));
        assert_eq!(needed_for(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(describe_bytes(512), "512 B");
        assert_eq!(describe_bytes(3 << 20), "3.0 MiB");
    }
}
