//! `cclog serve`: the REST API on this data directory until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cclog_http::server::{self, ServeOptions};
use cclog_ingest::runner::RunnerConfig;

use crate::args::ServeArgs;
use crate::EXIT_OK;

pub fn run(data: &Path, args: ServeArgs) -> anyhow::Result<u8> {
    if args.openapi {
        println!("{}", cclog_http::api::openapi().to_pretty_json()?);
        return Ok(EXIT_OK);
    }
    init_tracing()?;
    let addr = match args.addr {
        Some(addr) => addr,
        None => {
            let port = match std::env::var("PORT") {
                Ok(port) => port.parse::<u16>().with_context(|| format!("PORT={port:?} is not a port number"))?,
                Err(_) => 3000,
            };
            std::net::SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    let archive_roots = if args.no_archive {
        Vec::new()
    } else {
        match args.archive {
            Some(dir) => vec![dir],
            None => cclog_ingest::import::default_projects_dir().into_iter().collect(),
        }
    };
    let options = ServeOptions {
        addr,
        token: args.token.filter(|token| !token.is_empty()),
        archive_roots,
        archive_interval: Duration::from_secs(2),
        cancel_on_shutdown: !args.finish_runs,
        runner: RunnerConfig::from_env()?,
        commands: Some(super::command_runner(data.to_path_buf())),
        coordinator: super::coordinator_config::CoordinatorConfig::for_current_dir()?.identity(),
    };
    let log = super::open_log(data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(server::serve(Arc::clone(&log), options, shutdown_signal(), |bound| {
        eprintln!("cclog serving http://{bound} (data: {}; Ctrl-C stops)", data.display());
    }))?;
    Ok(EXIT_OK)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}

/// `LOG_LEVEL` (debug, info, warn, error; default info) to stderr.
fn init_tracing() -> anyhow::Result<()> {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let level = match level.to_ascii_lowercase().as_str() {
        "debug" | "info" | "warn" | "error" | "trace" => level.to_ascii_lowercase(),
        other => anyhow::bail!("LOG_LEVEL={other:?}: use debug, info, warn or error"),
    };
    let filter =
        tracing_subscriber::EnvFilter::new(format!("warn,cclog_http={level},cclog_ingest={level},cclog_cli={level}"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::colour_stderr())
        .try_init();
    Ok(())
}
