//! One process per data directory. sled locks its own files, but its error says nothing
//! useful; cclog takes an advisory lock on `<data>/cclog.lock` first and writes its pid and
//! command line into it, so a second process is told exactly who owns the directory.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{Error, Result};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "cclog.lock";

/// Holds the directory lock for as long as it lives.
#[derive(Debug)]
pub struct Ownership {
    _file: File,
}

impl Ownership {
    /// Takes the lock or fails with [`Error::Locked`] naming the current owner.
    ///
    /// When the owner on record is this very process, the lock is given a moment to go: a
    /// `Log` of this process that was just dropped has let go of it, but a child another
    /// thread is forking at that instant holds a copy of the descriptor until it execs.
    pub fn acquire(dir: &Path) -> Result<Ownership> {
        let path = dir.join(LOCK_FILE);
        let mut file = crate::durability::open_read_write(&path)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let owner = owner_record(&mut file);
                    let ours = owner.as_ref().is_some_and(|(pid, _)| *pid == std::process::id());
                    if !ours || std::time::Instant::now() > deadline {
                        let owner = owner.map(|(pid, command)| describe_owner(pid, &command));
                        return Err(Error::Locked { dir: dir.to_path_buf(), owner });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(TryLockError::Error(source)) => return Err(Error::io(&path, source)),
            }
        }
        let description = describe_self();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(description.as_bytes()))
            .map_err(|source| Error::io(&path, source))?;
        Ok(Ownership { _file: file })
    }
}

/// Who owns the directory, as the lock file records it: the pid and the command line.
fn owner_record(file: &mut File) -> Option<(u32, String)> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse::<u32>().ok()?;
    Some((pid, lines.next().unwrap_or("").trim().to_string()))
}

/// "process <pid> (<command>)".
fn describe_owner(pid: u32, command: &str) -> String {
    if command.is_empty() {
        format!("process {pid}")
    } else {
        format!("process {pid} ({command})")
    }
}

fn describe_self() -> String {
    let command: Vec<String> = std::env::args().collect();
    format!("{}\n{}\n", std::process::id(), command.join(" "))
}
