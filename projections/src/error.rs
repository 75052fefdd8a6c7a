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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
