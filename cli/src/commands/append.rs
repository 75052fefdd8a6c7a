//! `cclog append`: JSON lines on stdin become events. A reader thread collects lines into
//! batches (as many as are already buffered, so a pipe fills batches and a person typing
//! gets each line acknowledged at once); several batches stay in flight so that group
//! commit can merge them; `<seq> <hash>` is printed, in order, once each event is durable.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::Path;

use cclog_engine::{NewEvent, PendingAppend};
use tokio::sync::mpsc;

use crate::args::AppendArgs;
use crate::{Failure, EXIT_BAD_INPUT, EXIT_OK};

const MAX_BATCH_LINES: usize = 1024;
const MAX_IN_FLIGHT: usize = 8;

enum Input {
    Batch(Vec<Vec<u8>>),
    Malformed { line: u64, reason: String },
    Failed(std::io::Error),
}

pub fn run(data: &Path, args: AppendArgs) -> anyhow::Result<u8> {
    // Refuse bad names before reading any input.
    NewEvent::new(args.stream.clone(), args.kind.clone(), Vec::new()).validate()?;
    let log = super::open_log(data)?;
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT * 2);
    std::thread::spawn(move || read_lines(tx));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(append_all(log, args, rx))
}

fn read_lines(tx: mpsc::Sender<Input>) {
    let mut reader = std::io::BufReader::with_capacity(256 << 10, std::io::stdin());
    let mut batch = Vec::new();
    let mut number = 0u64;
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                let _ = flush_batch(&tx, &mut batch);
                let _ = tx.blocking_send(Input::Failed(error));
                return;
            }
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&line) {
            let _ = flush_batch(&tx, &mut batch);
            let reason =
                if line.iter().all(u8::is_ascii_whitespace) { "empty line".to_string() } else { error.to_string() };
            let _ = tx.blocking_send(Input::Malformed { line: number, reason });
            return;
        }
        batch.push(line);
        if (batch.len() >= MAX_BATCH_LINES || reader.buffer().is_empty()) && flush_batch(&tx, &mut batch).is_err() {
            return;
        }
    }
    let _ = flush_batch(&tx, &mut batch);
}

fn flush_batch(tx: &mpsc::Sender<Input>, batch: &mut Vec<Vec<u8>>) -> Result<(), ()> {
    if batch.is_empty() {
        return Ok(());
    }
    tx.blocking_send(Input::Batch(std::mem::take(batch))).map_err(|_| ())
}

async fn append_all(
    log: std::sync::Arc<cclog_engine::Log>,
    args: AppendArgs,
    mut rx: mpsc::Receiver<Input>,
) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut in_flight: VecDeque<PendingAppend> = VecDeque::new();
    let mut appended = 0u64;
    let mut ending: Option<anyhow::Error> = None;
    loop {
        let input = if in_flight.len() >= MAX_IN_FLIGHT {
            None
        } else if in_flight.is_empty() {
            match rx.recv().await {
                Some(input) => Some(input),
                None => break,
            }
        } else {
            rx.try_recv().ok()
        };
        match input {
            Some(Input::Batch(lines)) => {
                let events = lines
                    .into_iter()
                    .map(|payload| NewEvent::new(args.stream.clone(), args.kind.clone(), payload))
                    .collect();
                in_flight.push_back(log.submit(events).await?);
            }
            Some(Input::Malformed { line, reason }) => {
                ending = Some(
                    Failure {
                        code: EXIT_BAD_INPUT,
                        message: format!(
                            "line {line} is not valid JSON ({reason}); the {} before it stayed appended",
                            crate::output::count(line - 1, "line")
                        ),
                    }
                    .into(),
                );
                break;
            }
            Some(Input::Failed(error)) => {
                ending = Some(anyhow::Error::new(error).context("reading stdin"));
                break;
            }
            None => {
                if let Some(pending) = in_flight.pop_front() {
                    appended += print_acks(&stdout, pending).await?;
                } else if rx.is_closed() && rx.is_empty() {
                    break;
                }
            }
        }
    }
    while let Some(pending) = in_flight.pop_front() {
        appended += print_acks(&stdout, pending).await?;
    }
    drop(log);
    match ending {
        Some(error) => Err(error),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                crate::errln!("appended {}", crate::output::count(appended, "event"));
            }
            Ok(EXIT_OK)
        }
    }
}

async fn print_acks(stdout: &std::io::Stdout, pending: PendingAppend) -> anyhow::Result<u64> {
    let appended = pending.wait().await?;
    let mut out = stdout.lock();
    for event in &appended {
        writeln!(out, "{} {}", event.seq, event.hash)?;
    }
    out.flush()?;
    Ok(appended.len() as u64)
}
