//! One module per subcommand; [`run`] dispatches and resolves the data directory.

mod append;
mod capture;
mod diff;
mod import;
mod log;
mod rebuild;
mod replay;
mod runs;
mod serve;
mod sessions;
mod stats;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cclog_engine::{Log, LogOptions};

use crate::args::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data = data_dir(cli.global.data)?;
    match cli.command {
        Command::Append(args) => append::run(&data, args),
        Command::Log(args) => log::run(&data, args),
        Command::Verify(args) => verify::run(&data, args),
        Command::Stats(args) => stats::run(&data, args),
        Command::Import(args) => import::run(&data, args),
        Command::Capture(args) => capture::run(&data, args),
        Command::Sessions(args) => sessions::list(&data, args),
        Command::Show(args) => sessions::show(&data, args),
        Command::Tree(args) => sessions::tree(&data, args),
        Command::Replay(args) => replay::run(&data, args),
        Command::Diff(args) => diff::run(&data, args),
        Command::Rebuild(args) => rebuild::run(&data, args),
        Command::Serve(args) => serve::run(&data, args),
        Command::Run(command) => runs::run(&data, command),
        Command::Runs(args) => runs::list(&data, args),
    }
}

/// `--data`, else `CCLOG_DATA` (through clap), else the platform data directory.
fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir),
        None => dirs::data_dir()
            .map(|dir| dir.join("cclog"))
            .context("no platform data directory is known here; pass --data DIR or set CCLOG_DATA"),
    }
}

/// A flag that SIGINT or SIGTERM sets, for commands that run until interrupted.
pub fn stop_on_signals() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stop))
            .with_context(|| format!("installing a handler for signal {signal}"))?;
    }
    Ok(stop)
}

/// Opens the log with every standard projection.
pub fn open_log(data: &std::path::Path) -> anyhow::Result<Log> {
    match Log::open(data, LogOptions { projections: cclog_projections::standard() }) {
        Ok(log) => Ok(log),
        Err(error @ cclog_engine::Error::Locked { .. }) => match cclog_http::server::Advertisement::read(data) {
            Some(server) => Err(anyhow::Error::new(error).context(format!(
                "`cclog serve` owns {} and answers at {url}: `cclog run` and `cclog runs` go through it, and its API \
                 serves the rest ({url}/api/sessions, {url}/api/sessions/ID/replay, {url}/api/verify)",
                data.display(),
                url = server.url
            ))),
            None => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// Fails unless `data` already holds a log, so that read commands never create one.
pub fn require_store(data: &std::path::Path) -> anyhow::Result<()> {
    if data.join("sled").join("db").exists() || data.join(cclog_engine::ANCHOR_FILE).exists() {
        Ok(())
    } else {
        anyhow::bail!("{} holds no cclog log yet (append something first, or pass --data DIR)", data.display())
    }
}
