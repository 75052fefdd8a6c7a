//! The one way handlers run log work: on tokio's blocking pool, never on an async worker.
//! Reads walk sled and decode blocks, writes wait for an fsync; either would stall every
//! other connection served by the same worker (`/health` included). A panic in the work is
//! a bug: it comes back as [`Error::Internal`] (500, logged), not as a client error.

use crate::{Error, Result};

/// Runs `work` on a blocking thread and gives back what it returned.
pub async fn blocking<T, E>(work: impl FnOnce() -> std::result::Result<T, E> + Send + 'static) -> Result<T>
where
    T: Send + 'static,
    E: Into<Error> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await?.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::response::IntoResponse;

    use super::*;

    /// Collects what `tracing` writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panic_in_blocking_work_is_answered_500_internal_and_logged_with_its_detail() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _default = tracing::subscriber::set_default(subscriber);

        let failed = blocking(|| -> Result<()> { panic!("the invariant broke at seq 7") }).await;
        let error = failed.expect_err("a panic is an error");
        assert!(matches!(error, Error::Internal(_)), "{error:?}");
        let response = error.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"]["code"], "internal");
        // The client learns nothing of the inside; the log has it all.
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("seq 7") && message.contains("log"), "{message}");
        let logged =
            String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned();
        assert!(logged.contains("ERROR") && logged.contains("the invariant broke at seq 7"), "{logged}");
    }

    #[tokio::test]
    async fn work_that_returns_an_error_keeps_its_error() {
        let failed = blocking(|| -> Result<()> { Err(Error::BadRequest("no".into())) }).await;
        assert!(matches!(failed, Err(Error::BadRequest(_))));
        assert_eq!(blocking(|| Ok::<_, Error>(7)).await.ok(), Some(7));
    }
}
