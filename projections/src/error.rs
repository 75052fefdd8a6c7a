//! The projections crate's one error type.

/// What can go wrong while folding or querying a read model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] cclog_engine::Error),

    /// The projection named is not open on this log.
    #[error("projection {0} is not open on this log")]
    NotOpen(&'static str),

    /// A stored read-model value does not decode.
    #[error("projection {projection} holds a damaged value: {detail}")]
    Damaged { projection: &'static str, detail: String },

    /// A typed event payload does not encode or decode.
    #[error("{kind} payload: {detail}")]
    Payload { kind: &'static str, detail: String },

    /// Nothing has this id or id prefix.
    #[error("no {what} matches {id:?}")]
    NotFound { what: &'static str, id: String },

    /// More than one thing starts with this id prefix.
    #[error("{id:?} matches {count} {what}s (e.g. {}); give more of the id", examples.join(", "))]
    Ambiguous { what: &'static str, id: String, count: usize, examples: Vec<String> },

    /// Writing replayed output failed.
    #[error("write failed: {source}")]
    Io { source: std::io::Error },

    /// A price table does not read.
    #[error("price table {0}")]
    Pricing(String),

    /// A usage report's arguments do not make sense (a timezone or date that is not one).
    #[error("{0}")]
    Usage(String),

    /// The log holds something the archive's own events say cannot be there.
    #[error("archive inconsistent at seq {seq}: {detail}")]
    Inconsistent { seq: u64, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
