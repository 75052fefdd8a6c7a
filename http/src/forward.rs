//! Commands run for clients: while `cclog serve` owns a data directory, every other `cclog`
//! command on it sends its parsed command line to `POST /api/cli` and the server runs it on
//! its own log, streaming the output back. What the command prints, and its exit status, are
//! exactly what it would have printed on its own.
//!
//! The answer is a stream of frames, the layout Docker uses for attached streams: one byte
//! naming the channel (1 stdout, 2 stderr, 3 exit status), three zero bytes, a big-endian
//! `u32` length, then that many bytes. Bytes pass unchanged, so `replay --format jsonl` stays
//! byte-exact. The last frame is the exit status, one byte. A client that goes away stops the
//! command (`--follow` and `--watch` end; nothing half-done is left behind).

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use cclog_engine::Log;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The media type of the frame stream.
pub const CONTENT_TYPE: &str = "application/vnd.cclog.frames";

/// The channel a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout = 1,
    Stderr = 2,
    /// The command's exit status, one byte; always the last frame.
    Exit = 3,
}

const HEADER_LEN: usize = 8;

/// The most bytes one frame carries: its length is a `u32`.
pub const MAX_FRAME_LEN: usize = u32::MAX as usize;

/// One frame, ready to send, carrying the first [`MAX_FRAME_LEN`] bytes of `bytes` at most;
/// [`FrameWriter`] sends the rest in the frames after it.
pub fn frame(channel: Channel, bytes: &[u8]) -> Vec<u8> {
    let bytes = &bytes[..bytes.len().min(MAX_FRAME_LEN)];
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER_LEN + bytes.len());
    frame.extend_from_slice(&[channel as u8, 0, 0, 0]);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    frame
}

/// The next frame of `reader`; `None` at a clean end of the stream.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Option<(Channel, Vec<u8>)>> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header[..1]) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    reader.read_exact(&mut header[1..])?;
    let channel = match header[0] {
        1 => Channel::Stdout,
        2 => Channel::Stderr,
        3 => Channel::Exit,
        other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown frame channel {other}"))),
    };
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes)?;
    Ok(Some((channel, bytes)))
}

/// What a client sends: its parsed command and what it knows about its terminal.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandRequest {
    /// The command as the `cclog` client parsed it (its own JSON form; paths absolute).
    #[schema(value_type = Object)]
    pub command: serde_json::Value,
    /// Colour the output (the client's stdout is a terminal and NO_COLOR is unset).
    #[serde(default)]
    pub colour: bool,
    /// The same for stderr.
    #[serde(default)]
    pub colour_stderr: bool,
    /// The client's time zone (an IANA name), which times are shown in; the server's when
    /// absent.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// What a forwarded command runs with: the server's log, where its output goes, and a flag
/// that is set when the client has gone or the server shuts down.
pub struct CommandIo {
    pub log: Arc<Log>,
    pub stdout: FrameWriter,
    pub stderr: FrameWriter,
    pub colour: bool,
    pub colour_stderr: bool,
    pub time_zone: Option<String>,
    pub stop: Arc<AtomicBool>,
}

/// Makes sense of a forwarded command: the command, ready to run, or why it cannot run (a
/// 400). The cli crate provides it (it owns the commands); the server only carries bytes.
pub type CommandRunner = Arc<dyn Fn(serde_json::Value) -> Result<PreparedCommand, String> + Send + Sync>;

/// A forwarded command, ready to run; it returns its exit status.
pub type PreparedCommand = Box<dyn FnOnce(CommandIo) -> u8 + Send>;

/// Writes frames of one channel into the response; fails once the client has gone.
pub struct FrameWriter {
    channel: Channel,
    sender: mpsc::Sender<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

impl Write for FrameWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let len = bytes.len().min(MAX_FRAME_LEN);
        if self.sender.blocking_send(frame(self.channel, &bytes[..len])).is_err() {
            self.stop.store(true, Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client has gone"));
        }
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts `command` on a blocking thread; the stream of its frames, which stops the command
/// when it is dropped (the client went away).
pub fn start(
    command: PreparedCommand,
    log: Arc<Log>,
    request: &CommandRequest,
    stop: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + Send {
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(64);
    let writer = |channel| FrameWriter { channel, sender: sender.clone(), stop: Arc::clone(&stop) };
    let io = CommandIo {
        log,
        stdout: writer(Channel::Stdout),
        stderr: writer(Channel::Stderr),
        colour: request.colour,
        colour_stderr: request.colour_stderr,
        time_zone: request.time_zone.clone(),
        stop: Arc::clone(&stop),
    };
    let exit = sender.clone();
    drop(sender);
    tokio::task::spawn_blocking(move || {
        let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| command(io))).unwrap_or_else(|panic| {
            tracing::error!(detail = %crate::error::panic_message(&*panic), "a forwarded command panicked");
            let _ = exit.blocking_send(frame(Channel::Stderr, b"cclog: the command failed inside the server\n"));
            1
        });
        let _ = exit.blocking_send(frame(Channel::Exit, &[status]));
    });
    StopOnDrop { frames: tokio_stream::wrappers::ReceiverStream::new(receiver), stop }
}

/// The frames; dropping them (the response is gone) stops the command.
struct StopOnDrop {
    frames: tokio_stream::wrappers::ReceiverStream<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

impl Stream for StopOnDrop {
    type Item = Result<Vec<u8>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.frames).poll_next(context).map(|frame| frame.map(Ok))
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_bytes_unchanged() {
        let mut stream = Vec::new();
        stream.extend(frame(Channel::Stdout, b"{\"a\":1}\n\xff\xfe not utf-8"));
        stream.extend(frame(Channel::Stderr, b""));
        stream.extend(frame(Channel::Exit, &[3]));
        let mut reader = &stream[..];
        assert_eq!(
            read_frame(&mut reader).unwrap(),
            Some((Channel::Stdout, b"{\"a\":1}\n\xff\xfe not utf-8".to_vec()))
        );
        assert_eq!(read_frame(&mut reader).unwrap(), Some((Channel::Stderr, Vec::new())));
        assert_eq!(read_frame(&mut reader).unwrap(), Some((Channel::Exit, vec![3])));
        assert_eq!(read_frame(&mut reader).unwrap(), None);
        let cut = &stream[..5];
        assert!(read_frame(&mut &cut[..]).is_err(), "a frame cut short is an error, not an end");
    }
}
