//! The http crate's one error type, and how each error becomes an HTTP answer:
//! `{"error":{"code","message"}}` with the status that says what went wrong. A server
//! error (5xx) is logged with its detail through `tracing` and answered with a generic
//! message: internal error text never reaches a client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What a request can run into.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] cclog_engine::Error),

    #[error(transparent)]
    Projections(#[from] cclog_projections::Error),

    #[error(transparent)]
    Ingest(#[from] cclog_ingest::Error),

    /// The request is malformed or names something impossible.
    #[error("{0}")]
    BadRequest(String),

    /// The request body is over the limit.
    #[error("the request body is over the limit of {0} bytes")]
    TooLarge(usize),

    /// No or a wrong bearer token.
    #[error("a valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,

    /// No such route.
    #[error("no route {0}")]
    NoRoute(String),

    /// The route exists, but not with this method (the `Allow` header lists those it has).
    #[error("{0} is not a method of this route; the Allow header lists the ones it has")]
    MethodNotAllowed(String),

    /// The request's `Host` or `Origin` is not this server's: a web page on another site
    /// (or one reaching loopback through DNS rebinding) may not use the API.
    #[error("{0}")]
    Forbidden(String),

    /// A bug, not the client's doing: a panic in a handler's work, a failed join, an
    /// invariant broken. The detail is logged; the client gets a generic message.
    #[error("internal error: {0}")]
    Internal(String),

    /// The server cannot start as configured.
    #[error("{0}")]
    Config(String),

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The status and stable error code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use cclog_ingest::Error as Ingest;
        use cclog_projections::Error as Projections;
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Projections(Projections::NotFound { .. })
            | Error::Ingest(Ingest::Projections(Projections::NotFound { .. }))
            | Error::Ingest(Ingest::UnknownRun(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Projections(Projections::Ambiguous { .. })
            | Error::Ingest(Ingest::Projections(Projections::Ambiguous { .. })) => {
                (StatusCode::BAD_REQUEST, "ambiguous_id")
            }
            Error::Ingest(Ingest::InvalidRun(_) | Ingest::InvalidKv(_))
            | Error::Projections(Projections::Usage(_) | Projections::Pricing(_)) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            Error::Ingest(Ingest::InvalidTeam(_) | Ingest::InvalidPlan(_)) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Ingest(Ingest::UnknownTeam(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Ingest(Ingest::TeamExists(_)) => (StatusCode::CONFLICT, "team_exists"),
            Error::Ingest(Ingest::ContainerEngine { .. }) => (StatusCode::BAD_GATEWAY, "container_engine"),
            Error::Ingest(Ingest::Tmux { .. }) => (StatusCode::BAD_GATEWAY, "tmux"),
            Error::Ingest(Ingest::Busy { .. }) => (StatusCode::TOO_MANY_REQUESTS, "too_many_runs"),
            Error::Ingest(Ingest::RunEnded { .. }) => (StatusCode::CONFLICT, "run_ended"),
            Error::Ingest(Ingest::SessionBusy(_)) => (StatusCode::CONFLICT, "session_busy"),
            _ => match self.engine_error() {
                Some(error) if error.is_disk_full() => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
                Some(cclog_engine::Error::Poisoned(_)) => (StatusCode::SERVICE_UNAVAILABLE, "log_failed"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }

    /// The engine error underneath, however many layers wrap it.
    fn engine_error(&self) -> Option<&cclog_engine::Error> {
        use cclog_ingest::Error as Ingest;
        use cclog_projections::Error as Projections;
        match self {
            Error::Engine(error)
            | Error::Projections(Projections::Engine(error))
            | Error::Ingest(Ingest::Engine(error))
            | Error::Ingest(Ingest::Projections(Projections::Engine(error))) => Some(error),
            _ => None,
        }
    }
}

/// The JSON error body: `{"error":{"code","message"}}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `ambiguous_id`, `run_ended`, `session_busy`, `team_exists`, `container_engine` (502: the
    /// engine DOCKER_HOST names cannot be reached or refused), `tmux` (502), `payload_too_large`, `too_many_runs`,
    /// `disk_full` (507: nothing was written; retry once space is freed), `log_failed` (503:
    /// a write failed; the log takes appends again after `cclog serve` restarts), `internal`.
    pub code: String,
    /// For people: what happened and what to do.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: &str) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: code.to_string(), message: message.to_string() } }
    }
}

/// What a client is told of a server error: the detail is for the server's log only.
const SERVER_ERROR_MESSAGE: &str = "the server ran into an internal error; its log has the details";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // A full disk, a failed log, an unreachable container engine or tmux is the
        // operator's to fix, and the message says how.
        let actionable = matches!(code, "disk_full" | "log_failed" | "container_engine" | "tmux");
        let message = if status.is_server_error() && !actionable {
            tracing::error!(error = %self, detail = ?self, "request failed");
            SERVER_ERROR_MESSAGE.to_string()
        } else {
            self.to_string()
        };
        (status, Json(ErrorBody::new(code, &message))).into_response()
    }
}

impl From<tokio::task::JoinError> for Error {
    /// A blocking task that panicked (or was cancelled): a bug, answered as `internal`.
    fn from(error: tokio::task::JoinError) -> Error {
        if error.is_panic() {
            Error::Internal(format!("a blocking task panicked: {}", panic_message(&*error.into_panic())))
        } else {
            Error::Internal(format!("a blocking task did not finish: {error}"))
        }
    }
}

/// What a panic said: its `&str` or `String` payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into())
}
