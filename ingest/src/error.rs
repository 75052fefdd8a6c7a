//! The ingest crate's one error type.

use std::path::{Path, PathBuf};

/// What can go wrong while turning the outside world into events.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] cclog_engine::Error),

    #[error(transparent)]
    Projections(#[from] cclog_projections::Error),

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A path to import does not exist.
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),

    /// Something cclog cannot archive, with why.
    #[error("{0}")]
    Unsupported(String),

    /// A run request that cannot be started as given.
    #[error("{0}")]
    InvalidRun(String),

    /// As many runs as allowed are active.
    #[error("{limit} runs are active, the most allowed at once (CCLOG_MAX_RUNS); try again when one ends")]
    Busy { limit: usize },

    /// Another run is writing the session a resume would continue in place.
    #[error("session {0} has a run going on; wait for it to end, or resume with a fork of the session")]
    SessionBusy(String),

    /// No run has this id.
    #[error("no run {0}")]
    UnknownRun(String),

    /// The run has already ended.
    #[error("run {run} has already ended: it is {status}")]
    RunEnded { run: String, status: cclog_projections::events::RunStatus },

    /// A key-value request that cannot be carried out as given (the message says what to do).
    #[error("{0}")]
    InvalidKv(String),

    /// A plan that cannot run as given (the message names the field or task).
    #[error("{0}")]
    InvalidPlan(String),

    /// A team request that cannot be carried out as given (the message says what to do).
    #[error("{0}")]
    InvalidTeam(String),

    /// A team's tmux session or containers already exist.
    #[error("{0}")]
    TeamExists(String),

    /// No team has this name.
    #[error("no team {0}; `cclog team list` shows the teams")]
    UnknownTeam(String),

    /// The container engine cannot be reached or refused a call.
    #[error("container engine: {detail}")]
    ContainerEngine { detail: String },

    /// tmux is missing or refused a command.
    #[error("tmux: {detail}")]
    Tmux { detail: String },

    /// Watching files for changes failed.
    #[error("watching for changes: {0}")]
    Watch(String),
}

impl Error {
    /// The engine error underneath, if the log itself failed (as opposed to the input).
    pub fn engine(&self) -> Option<&cclog_engine::Error> {
        match self {
            Error::Engine(error) | Error::Projections(cclog_projections::Error::Engine(error)) => Some(error),
            _ => None,
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
