//! An interactive command in a running container, on this terminal: what an agent's tmux
//! window runs (`cclog team attach`). It is `docker exec -it` through the engine API: an
//! exec with a pseudo-terminal, this terminal in raw mode while it runs, keystrokes in,
//! output out, and the exec's terminal resized whenever this one is.

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::engine::ContainerEngine;
use crate::{Error, Result};

/// Runs `command` in `container` attached to this process's terminal; its exit code.
pub fn attach(engine: &ContainerEngine, container: &str, command: &[String], working_dir: Option<&str>) -> Result<i64> {
    let (docker, runtime) = engine.parts();
    let failed = |what: &str, error: bollard::errors::Error| Error::ContainerEngine {
        detail: format!("{what} in container {container}: {error}"),
    };
    runtime.block_on(async {
        let size = terminal_size();
        let options = CreateExecOptions {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(true),
            cmd: Some(command.to_vec()),
            working_dir: working_dir.map(str::to_string),
            env: Some(vec![format!("TERM={}", std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into()))]),
            ..CreateExecOptions::default()
        };
        let exec = docker.create_exec(container, options).await.map_err(|error| failed("creating the exec", error))?;
        let started = docker
            .start_exec(&exec.id, Some(StartExecOptions { detach: false, tty: true, output_capacity: None }))
            .await
            .map_err(|error| failed("starting the exec", error))?;
        let StartExecResults::Attached { mut output, mut input } = started else {
            return Err(Error::ContainerEngine { detail: format!("the engine detached the exec in {container}") });
        };
        let _raw = RawMode::enter();
        let resize = |size: Option<(u16, u16)>| {
            let id = exec.id.clone();
            async move {
                if let Some((rows, cols)) = size {
                    // The exec may not have its terminal yet, or may have ended: nothing to do.
                    let _ = docker.resize_exec(&id, ResizeExecOptions { h: rows.into(), w: cols.into() }).await;
                }
            }
        };
        resize(size).await;
        let (keys, mut typed) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin();
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = stdin.read(&mut buffer) {
                if keys.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        let mut stdout = tokio::io::stdout();
        let mut typing = true;
        loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(chunk)) => {
                        if stdout.write_all(&chunk.into_bytes()).await.is_err() {
                            break;
                        }
                        let _ = stdout.flush().await;
                    }
                    Some(Err(_)) | None => break,
                },
                keys = typed.recv(), if typing => match keys {
                    Some(keys) => {
                        if input.write_all(&keys).await.is_err() {
                            typing = false;
                        }
                    }
                    None => typing = false,
                },
                Some(()) = async { match resized.as_mut() { Some(signal) => signal.recv().await, None => None } } => {
                    resize(terminal_size()).await;
                }
            }
        }
        let inspected = docker.inspect_exec(&exec.id).await.map_err(|error| failed("inspecting the exec", error))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    })
}

/// This terminal's rows and columns, when stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct given; nothing else is touched.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let done = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (done == 0 && size.ws_row > 0).then_some((size.ws_row, size.ws_col))
}

/// This terminal in raw mode (keystrokes go straight to the container's terminal, which
/// echoes and edits), restored when dropped; nothing when stdin is not a terminal.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        // SAFETY: tcgetattr/tcsetattr read and write one `termios` of stdin's terminal.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::isatty(libc::STDIN_FILENO) != 1 || libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return RawMode { saved: None };
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return RawMode { saved: None };
            }
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `enter`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
