//! The engine's one error type. Every fallible engine call returns [`Result`]; damage found
//! by verification is *not* an error but a [`crate::Damage`] inside a successful report, so
//! that a damaged store can always be described instead of aborting the walk.

use std::path::PathBuf;

/// What can go wrong while opening, writing or reading the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{}", describe_io(.path, .source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// sled reported an error it did not classify as corruption.
    #[error("storage error: {0}")]
    Storage(String),

    /// Another process holds the data directory.
    #[error("data directory {dir} is in use{}", owner_suffix(.owner))]
    Locked { dir: PathBuf, owner: Option<String> },

    /// Stored bytes could not be read back as what they claim to be.
    #[error("corrupted store{}: {detail}", at_suffix(*.at))]
    Corruption { at: Option<u64>, detail: String },

    /// sled's files, read before sled was let open them, show the chain damaged (see
    /// `seal`); nothing was opened, so sled's recovery cut nothing.
    #[error(
        "the store in {} is damaged: {detail}. It was left as it is (opening it would let sled cut its log file short) — `cclog verify` names what is lost, `cclog salvage --to DIR` copies every readable event into a new data directory",
        .dir.display()
    )]
    DamagedFiles { dir: PathBuf, detail: String },

    /// The directory was written in a format this build does not know (a newer one).
    #[error(
        "unsupported store format version {found} (this build reads versions 1 to {supported}; a newer cclog wrote it)"
    )]
    UnsupportedFormat { found: u8, supported: u8 },

    /// A caller handed the engine something it refuses to store.
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// A read or verification was asked to start past the end of the log.
    #[error("seq {from} is past the end of the log ({})", describe_len(*.len))]
    OutOfRange { from: u64, len: u64 },

    /// A projection's fold failed; the events that caused it were not written.
    #[error("projection {name} failed: {detail}")]
    Projection { name: String, detail: String },

    /// The disk holding the data directory has less free space than an append needs.
    /// Nothing of the append was written; the next one succeeds once space is freed.
    #[error(
        "disk full: {} free on the disk holding {}, cclog needs {} (it keeps a reserve so that a full disk never damages the log); nothing was written — free some space and retry",
        crate::space::describe_bytes(*.free), .dir.display(), crate::space::describe_bytes(*.needed)
    )]
    DiskFull { dir: PathBuf, free: u64, needed: u64 },

    /// The disk holding the data directory has fewer free inodes (files) than an append
    /// needs. Nothing of the append was written.
    #[error(
        "disk full: {free} free inodes (files) on the disk holding {}, cclog needs {needed}; `df -i` shows it. Nothing was written — delete some files and retry",
        .dir.display()
    )]
    OutOfInodes { dir: PathBuf, free: u64, needed: u64 },

    /// An earlier append of the same [`crate::AppendChain`] was refused, so this one was
    /// too: a sequence lands in order or not at all.
    #[error("refused because an earlier append of the same sequence was: {0}")]
    EarlierRefused(String),

    /// A previous write or fsync failed, so the engine no longer knows what is durable and
    /// refuses further appends until the log is reopened (see the fsyncgate lesson).
    #[error("the log stopped accepting appends after an earlier write failure: {0}")]
    Poisoned(String),

    /// The writer task is gone (the log was closed).
    #[error("the log is closed")]
    Closed,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn owner_suffix(owner: &Option<String>) -> String {
    match owner {
        Some(owner) => format!(" by {owner}"),
        None => " by another process".to_string(),
    }
}

fn describe_io(path: &std::path::Path, source: &std::io::Error) -> String {
    if crate::space::is_out_of_space(source) {
        format!("disk full writing {}: {source}", path.display())
    } else {
        format!("I/O error on {}: {source}", path.display())
    }
}

fn describe_len(len: u64) -> String {
    match len {
        0 => "it is empty".to_string(),
        len => format!("its last event is {}", len - 1),
    }
}

fn at_suffix(at: Option<u64>) -> String {
    match at {
        Some(seq) => format!(" at seq {seq}"),
        None => String::new(),
    }
}

impl Error {
    /// Whether the cause is a full disk (refused before writing, or a write that failed
    /// for lack of space), as opposed to damage or a failing device.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::DiskFull { .. } | Error::OutOfInodes { .. } => true,
            Error::Io { source, .. } => crate::space::is_out_of_space(source),
            Error::Poisoned(reason) | Error::EarlierRefused(reason) => reason.starts_with("disk full"),
            _ => false,
        }
    }

    /// Whether the append was refused for a reason that passes with no loss: nothing of it
    /// was acknowledged, and the log takes appends again once space is freed or the failed
    /// log is reopened ([`crate::Log::reopen`]) — so it may be submitted again then.
    pub fn is_refusal_that_passes(&self) -> bool {
        matches!(
            self,
            Error::DiskFull { .. } | Error::OutOfInodes { .. } | Error::Poisoned(_) | Error::EarlierRefused(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

impl From<sled::Error> for Error {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Corruption { at, .. } => {
                Error::Corruption { at: None, detail: format!("sled found damaged bytes at {at:?}") }
            }
            sled::Error::Io(source) => Error::Io { path: PathBuf::from("sled's files"), source },
            other => Error::Storage(other.to_string()),
        }
    }
}
