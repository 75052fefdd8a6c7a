//! `cclog serve`: the REST API and MCP on this data directory until SIGINT or SIGTERM. The
//! token comes from CCLOG_TOKEN, `--token-file` or (with a warning, since every user sees a
//! command line in `ps`) `--token`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cclog_http::connections::ConnectionLimits;
use cclog_http::server::{self, ServeOptions};
use cclog_ingest::runner::RunnerConfig;

use crate::args::ServeArgs;
use crate::EXIT_OK;

pub fn run(data: &Path, args: ServeArgs) -> anyhow::Result<u8> {
    if args.openapi {
        crate::outln!("{}", cclog_http::app::openapi().to_pretty_json()?);
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
        match args.archive.clone() {
            Some(dir) => vec![dir],
            None => cclog_ingest::import::default_projects_dir().into_iter().collect(),
        }
    };
    let options = ServeOptions {
        addr,
        token: token(&args)?,
        archive_roots,
        archive_interval: Duration::from_secs(2),
        cancel_on_shutdown: !args.finish_runs,
        runner: RunnerConfig::from_env()?,
        commands: Some(super::command_runner(data.to_path_buf())),
        coordinator: super::coordinator_config::CoordinatorConfig::for_current_dir()?.identity(),
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
        limits: ConnectionLimits {
            header_timeout: args.header_timeout,
            max_connections: args.max_connections.map(|max| usize::try_from(max).unwrap_or(usize::MAX)),
        },
        prices: Arc::new(super::price_table(&args.pricing)?.into_owned()),
        cclog_bin: std::env::current_exe()?,
        plan_ttl: args.plan_ttl,
        idle_exit: args.idle_exit,
    };
    let log = super::open_log(data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(server::serve(Arc::clone(&log), options, shutdown_signal(), |bound| {
        crate::errln!("cclog serving http://{bound} (data: {}; Ctrl-C stops)", data.display());
    }))?;
    Ok(EXIT_OK)
}

/// The token: `--token-file`'s first line, else `--token` or CCLOG_TOKEN (clap reads both
/// into `token`; only the command line earns the warning).
fn token(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the token from {}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        anyhow::ensure!(!token.is_empty(), "{} holds no token", path.display());
        return Ok(Some(token));
    }
    let Some(token) = args.token.clone().filter(|token| !token.is_empty()) else { return Ok(None) };
    if std::env::var("CCLOG_TOKEN").ok().as_deref() != Some(token.as_str()) {
        tracing::warn!(
            "--token on the command line is visible to every user of this machine (ps); \
             set CCLOG_TOKEN or use --token-file instead"
        );
    }
    Ok(Some(token))
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
