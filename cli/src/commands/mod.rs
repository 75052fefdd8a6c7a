//! One module per subcommand; [`run`] dispatches and resolves the data directory.

mod append;
mod capture;
mod client;
mod compact;
pub(crate) mod coordinator_config;
mod diff;
mod import;
mod kv;
mod log;
mod mcp;
mod plan;
mod rebuild;
mod replay;
mod runs;
mod salvage;
mod serve;
mod sessions;
mod stats;
mod team;
mod usage;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cclog_engine::{Log, LogOptions};

use crate::args::{Cli, Command};

/// Runs the command: through `cclog serve` when one owns the data directory and the command
/// runs there, else here.
/// The free space every log this process opens keeps (`--disk-reserve`).
static DISK_RESERVE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn log_options() -> LogOptions {
    let mut options = LogOptions::with_projections(cclog_projections::standard());
    if let Some(reserve) = DISK_RESERVE.get() {
        options.disk_reserve = *reserve;
    }
    options
}

pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let _ = DISK_RESERVE.set(cli.global.disk_reserve);
    let from_database_path = cli.global.data.is_none() && database_path_dir()?.is_some();
    let data = data_dir(cli.global.data)?;
    if from_database_path && matches!(cli.command, Command::Serve(_)) {
        crate::errln!(
            "cclog: using {} as the data directory: it holds DATABASE_PATH (CC Manager's setting); \
             --data or CCLOG_DATA choose another",
            data.display()
        );
    }
    if cli.command.runs_on_server() {
        if let Some(server) = client::Server::find(&data)? {
            let command = cli.command.for_server().context("resolving the command's paths")?;
            return server.forward(&command);
        }
    }
    dispatch(&data, cli.command)
}

/// What `cclog serve` runs for its clients: their commands, on its log, printing into
/// their frames. Errors are rendered and mapped to exit codes as `main` does.
pub fn command_runner(data: PathBuf) -> cclog_http::forward::CommandRunner {
    Arc::new(move |command| {
        let command: Command = serde_json::from_value(command).map_err(|error| {
            format!("not a cclog command this server knows ({error}); are client and server the same version?")
        })?;
        if !command.runs_on_server() {
            return Err("this command does not run through `cclog serve`".into());
        }
        let data = data.clone();
        Ok(Box::new(move |io| {
            crate::output::forwarded(io, || match dispatch(&data, command) {
                Ok(code) => code,
                Err(error) => {
                    crate::errln!("cclog: {}", crate::render_error(&error));
                    crate::exit_code(&error)
                }
            })
        }))
    })
}

fn dispatch(data: &Path, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Append(args) => append::run(data, args),
        Command::Log(args) => log::run(data, args),
        Command::Verify(args) => verify::run(data, args),
        Command::Stats(args) => stats::run(data, args),
        Command::Import(args) => import::run(data, args),
        Command::Capture(args) => capture::run(data, args),
        Command::Sessions(args) => sessions::list(data, args),
        Command::Show(args) => sessions::show(data, args),
        Command::Tree(args) => sessions::tree(data, args),
        Command::Replay(args) => replay::run(data, args),
        Command::Diff(args) => diff::run(data, args),
        Command::Usage(args) => usage::run(data, args),
        Command::Rebuild(args) => rebuild::run(data, args),
        Command::Salvage(args) => salvage::run(data, args),
        Command::Compact(args) => compact::run(data, args),
        Command::Serve(args) => serve::run(data, args),
        Command::Run(command) => runs::run(data, command),
        Command::Runs(args) => runs::list(data, args),
        Command::Kv(command) => kv::run(data, command),
        Command::Mcp(args) => mcp::run(data, args),
        Command::Team(args) => team::run(data, args),
        Command::Plan(command) => plan::run(data, command),
    }
}

/// `--data`, else `CCLOG_DATA` (through clap), else the platform data directory.
fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    if let Some(dir) = database_path_dir()? {
        return Ok(dir);
    }
    dirs::data_dir()
        .map(|dir| dir.join("cclog"))
        .context("no platform data directory is known here; pass --data DIR or set CCLOG_DATA")
}

/// CC Manager's `DATABASE_PATH` (its SQLite file), for people moving from it: without
/// `--data` or `CCLOG_DATA`, the file's directory is the data directory.
fn database_path_dir() -> anyhow::Result<Option<PathBuf>> {
    let Some(database) = std::env::var_os("DATABASE_PATH").filter(|path| !path.is_empty()) else { return Ok(None) };
    let database = PathBuf::from(database);
    let dir = match database.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).with_context(|| format!("DATABASE_PATH={}", database.display()))?;
    Ok(Some(dir))
}

/// The log with every standard projection: the server's when running for a client, else
/// opened here.
pub fn open_log(data: &std::path::Path) -> anyhow::Result<Arc<Log>> {
    if let Some(log) = crate::output::forwarded_log() {
        return Ok(log);
    }
    match Log::open(data, log_options()) {
        Ok(log) => Ok(Arc::new(log)),
        Err(error @ cclog_engine::Error::Locked { .. }) => match cclog_http::server::Advertisement::read(data) {
            Some(server) => Err(anyhow::Error::new(error).context(format!(
                "`cclog serve` owns {} and answers at {url}: other commands run through it, but this one reads \
                 this terminal's stdin and needs the directory to itself. Stop the server, or pass --data DIR \
                 (to record runs while it serves, start them with `cclog run` or POST {url}/api/runs/start)",
                data.display(),
                url = server.url
            ))),
            None => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// A log opened only to be read: the data directory's own or, when its files show it
/// damaged, a salvaged copy of it that lives as long as this does.
pub struct LogToRead {
    // Declared first, so the log closes before its copy is removed.
    log: Arc<Log>,
    _copy: Option<tempfile::TempDir>,
}

impl std::ops::Deref for LogToRead {
    type Target = Arc<Log>;

    fn deref(&self) -> &Arc<Log> {
        &self.log
    }
}

/// [`open_log`] for commands that only read (`log`, `replay`, `diff`, `sessions`, `show`,
/// `stats`, `runs`). A store whose files show damage is never opened — sled's recovery
/// would cut it short — so these read every event that can be proven instead: the store is
/// salvaged into a temporary directory (`cclog salvage`, which only reads it), the copy is
/// opened, and stderr says so and what is missing.
pub fn open_log_to_read(data: &std::path::Path) -> anyhow::Result<LogToRead> {
    let error = match open_log(data) {
        Ok(log) => return Ok(LogToRead { log, _copy: None }),
        Err(error) => error,
    };
    let Some(cclog_engine::Error::DamagedFiles { detail, .. }) = error.downcast_ref::<cclog_engine::Error>() else {
        return Err(error);
    };
    let copy =
        tempfile::Builder::new().prefix("cclog-salvaged-").tempdir().context("a directory for a salvaged copy")?;
    let bar = crate::output::byte_progress_bar("salvaging");
    let report = cclog_engine::salvage(data, copy.path(), &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("reading the damaged store in {} through a salvaged copy", data.display()))?;
    bar.finish_and_clear();
    let missing: Vec<String> = report
        .missing
        .iter()
        .map(|&(first, last)| if first == last { format!("{first}") } else { format!("{first}..={last}") })
        .collect();
    crate::errln!(
        "cclog: warning: the store in {} is damaged ({detail}); it was left untouched, and this shows the {} a          salvage proves intact{} — `cclog verify` names what is lost, `cclog salvage --to DIR` keeps a working copy",
        data.display(),
        crate::output::count(report.events, "event"),
        if missing.is_empty() { String::new() } else { format!(" (missing seqs {})", missing.join(", ")) }
    );
    let log = Log::open(copy.path(), log_options()).context("opening the salvaged copy")?;
    Ok(LogToRead { log: Arc::new(log), _copy: Some(copy) })
}

/// How long a short command waits for another short one that owns the data directory.
const OWNER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// [`open_log`], waiting (at most [`OWNER_WAIT`], saying so once on stderr) while another
/// process that is not a server owns the directory: for commands that hold it a moment, such
/// as `cclog kv`, so that several run at once without a server and none is lost.
pub fn open_log_waiting(data: &std::path::Path) -> anyhow::Result<Arc<Log>> {
    let deadline = std::time::Instant::now() + OWNER_WAIT;
    let mut told = false;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match open_log(data) {
            Err(error)
                if std::time::Instant::now() < deadline
                    && cclog_http::server::Advertisement::read(data).is_none()
                    && matches!(
                        error.downcast_ref::<cclog_engine::Error>(),
                        Some(cclog_engine::Error::Locked { .. })
                    ) =>
            {
                if !told {
                    crate::errln!("cclog: {error}; waiting up to {} s for it", OWNER_WAIT.as_secs());
                    told = true;
                }
                // Spread the waiters out, so that they do not retry in step.
                std::thread::sleep(pause + std::time::Duration::from_millis(u64::from(std::process::id() % 17)));
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// Fails unless `data` already holds a log, so that read commands never create one.
/// The price table `--pricing` / `CCLOG_PRICING` names, else the built-in one.
pub fn price_table(
    args: &crate::args::PricingArgs,
) -> anyhow::Result<std::borrow::Cow<'static, cclog_projections::pricing::PriceTable>> {
    use cclog_projections::pricing::PriceTable;
    Ok(match &args.pricing {
        Some(path) => std::borrow::Cow::Owned(PriceTable::load(path)?),
        None => std::borrow::Cow::Borrowed(PriceTable::built_in()),
    })
}

pub fn require_store(data: &std::path::Path) -> anyhow::Result<()> {
    if data.join("sled").join("db").exists() || data.join(cclog_engine::ANCHOR_FILE).exists() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} holds no cclog log yet: `cclog import` archives your Claude Code history into it \
             (or pass --data DIR for another one)",
            data.display()
        )
    }
}
