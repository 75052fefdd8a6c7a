//! Server-sent events: a stream fed by a producer task that stops when the client goes,
//! and one way to send a JSON event on it.

use std::convert::Infallible;

use axum::response::sse::Event as SseEvent;
use futures_util::stream::Stream;

/// What an SSE producer sends on.
pub type SseSender = tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>;

/// Events buffered for a slow client before its producer waits.
const SSE_BUFFER: usize = 256;

/// A stream fed by a producer task, which stops when the client disconnects.
pub fn producer_stream<F, Fut>(produce: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(SseSender) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(SSE_BUFFER);
    tokio::spawn(produce(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Sends one SSE event named `name` carrying `value` as JSON; false once the client has gone.
pub async fn send_json(sender: &SseSender, name: &str, value: &impl serde::Serialize) -> bool {
    match serde_json::to_string(value) {
        Ok(data) => send_text(sender, name, data).await,
        Err(error) => {
            tracing::error!(%error, event = name, "an SSE event does not serialise");
            false
        }
    }
}

/// Sends one SSE event whose data is already JSON text; false once the client has gone.
pub async fn send_text(sender: &SseSender, name: &str, data: String) -> bool {
    sender.send(Ok(SseEvent::default().event(name).data(data))).await.is_ok()
}
