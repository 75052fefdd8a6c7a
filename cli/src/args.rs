//! The command-line surface: every subcommand, flag and help text.

use std::path::PathBuf;

use cclog_projections::session_list::SessionSort;
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// cclog — the complete, verifiable archive of your Claude Code history.
///
/// Every event is a hash-chained append to one log; `verify` proves nothing was altered.
#[derive(Debug, Parser)]
#[command(name = "cclog", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Data directory holding the log [default: the directory of DATABASE_PATH (CC Manager's setting) when it is set, else the platform data dir, e.g. ~/.local/share/cclog]
    #[arg(long, global = true, env = "CCLOG_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Free space to keep on the data directory's disk: an append that would eat into it is refused ("disk full", exit 74) before anything of it is written, so a full disk never damages the log. Bytes, or with a K, M or G suffix (powers of 1024)
    #[arg(long, global = true, env = "CCLOG_DISK_RESERVE", value_name = "BYTES", default_value = "8M", value_parser = parse_bytes)]
    pub disk_reserve: u64,
}

/// "8M", "512K", "1G" or plain bytes.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => return Err(format!("unknown unit {unit:?}: use K, M or G")),
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let value: u64 = digits.trim().parse().map_err(|_| format!("{text:?} is not a byte count such as 8M"))?;
    value.checked_shl(shift).filter(|bytes| bytes >> shift == value).ok_or_else(|| format!("{text} is too large"))
}

#[derive(Debug, Serialize, Deserialize, Subcommand)]
pub enum Command {
    /// Append JSON lines from stdin, one event per line; prints `<seq> <hash>` per event once durable
    ///
    /// Each line is stored byte for byte. A line that is not JSON stops the command with its
    /// line number (exit 2); the lines before it stay appended.
    Append(AppendArgs),
    /// List events
    Log(LogArgs),
    /// Check every hash and link; exit 0 when intact, 3 with the first bad seq when damaged
    Verify(VerifyArgs),
    /// Events, streams, head hash, and payload bytes against bytes on disk
    Stats(StatsArgs),
    /// Archive Claude Code transcripts (default ~/.claude/projects) into the log
    ///
    /// Every line is stored byte for byte; entries copied by --resume and --fork-session are
    /// recorded as pointers. Incremental: a second run reads only what was appended, a
    /// rewritten file gets a new revision (the old one stays), a deleted file is recorded as
    /// deleted. Malformed lines are kept and reported, never fatal.
    Import(ImportArgs),
    /// Record `claude -p --output-format stream-json --verbose` output from stdin as a run
    ///
    /// Example: claude -p "fix the tests" --output-format stream-json --verbose | cclog capture --passthrough
    Capture(CaptureArgs),
    /// List archived sessions
    Sessions(SessionsArgs),
    /// One session: project, title, times, usage and cost, forks, subagents, files, runs
    Show(ShowArgs),
    /// The fork tree (forks and resumes that copied a parent's history)
    Tree(TreeArgs),
    /// Print a session as a conversation, as Markdown, or as its exact transcript file
    Replay(ReplayArgs),
    /// Compare two sessions: common ancestor, fork point, and what each branch did after it
    Diff(DiffArgs),
    /// Tokens and cost by day, month, session or 5-hour billing block, as ccusage reports them
    ///
    /// Read from the archive, not the transcripts: instant on any history, and it still
    /// covers what Claude Code has since deleted. Costs are priced per request from LiteLLM's
    /// table (5-minute and 1-hour cache writes, cache reads, long-context tiers); a model the
    /// table does not price is named in a warning and left out of the cost.
    Usage(UsageArgs),
    /// Fold the whole log into fresh projections and report whether they equal the live ones
    Rebuild(RebuildArgs),
    /// Copy every event that can be proven from a damaged data directory into a new one
    ///
    /// Reads sled's files directly — sled refuses a whole page, or the whole store, over one
    /// bad byte — and keeps every record whose hashes hold, following the chain back from the
    /// head anchor. The new directory holds those events with their original hashes; its
    /// `verify` names exactly the seqs that were lost. Exit 0 when nothing is missing, 3 when
    /// some events could not be recovered. The damaged directory is only read (its lock is
    /// taken, so that no other cclog writes it meanwhile).
    Salvage(SalvageArgs),
    /// Reclaim the room sled's old page versions take: copy the store into fresh files
    ///
    /// sled keeps old versions of the pages it rewrote, and segments it has not yet cleaned,
    /// in its log file (`cclog stats` shows them as "sled overhead and garbage"). This copies
    /// every key of the store, in order, into new files beside it and puts them in its place;
    /// the log is unchanged, key for key. Safe under a crash: until the new files are
    /// complete and durable the old store stays whole, and after that the next open finishes
    /// the swap. The store must not be in use (stop `cclog serve` first); it needs free space
    /// for the copy, about the store's live size.
    Compact(CompactArgs),
    /// Serve the REST API (CC Manager's endpoints, SSE, events, verify) and MCP on this data directory
    ///
    /// Starts, resumes, forks and cancels Claude Code runs (CCLOG_CLAUDE_BIN, default `claude`;
    /// at most CCLOG_MAX_RUNS at once, default 4) and records every message as it arrives. Keeps
    /// archiving ~/.claude/projects. While it runs it owns the data directory and advertises its
    /// address there; `cclog run` and `cclog runs` then go through it. Requests addressed to a
    /// host name it does not know, or sent by a web page on another origin, are refused (403):
    /// this API runs code on this host. LOG_LEVEL sets the log level (debug, info, warn, error).
    Serve(ServeArgs),
    /// Start, resume, fork or cancel a Claude Code run; messages print as they arrive
    #[command(subcommand)]
    Run(RunCommand),
    /// List runs, newest first
    Runs(RunsArgs),
    /// The session coordinator's key-values: scopes, keys, values, and every version of each
    ///
    /// Every write is an event; nothing is overwritten or lost. Scopes are full names, as
    /// `cclog kv scopes` lists them (the MCP tools prefix `machine:project:` themselves).
    #[command(subcommand)]
    Kv(KvCommand),
    /// The session coordinator as an MCP server on stdin/stdout (`claude mcp add cclog -- cclog mcp`)
    ///
    /// Relays to the `cclog serve` that owns the data directory (its /mcp endpoint),
    /// starting one in the background when none runs, so any number of Claude Code sessions
    /// can each start their own `cclog mcp`. Remembers the instance `sign_on` gave this
    /// connection and acts as it in later calls.
    Mcp(McpArgs),
    /// Teams of Claude Code agents, each in its own container, all in one tmux session
    ///
    /// A team is agents (default leader, researcher, writer), each a container `NAME-<agent>`
    /// from --image with its own home (its own ~/.claude) kept under the data directory and
    /// the project mounted at the same path, and a tmux session NAME with one window per
    /// agent running its Claude Code. Containers come from the engine DOCKER_HOST names
    /// (Docker, or podman's `system service`). Every change is an event on `team/NAME`, and
    /// every agent's transcripts are archived, so a team's history outlives its containers.
    Team(TeamArgs),
    /// Plans: ordered tasks run in one Claude Code session, with a TTL, fallback and retries
    ///
    /// The first task starts a session and each next task resumes it (`--resume`), so every
    /// task knows what the earlier ones did. Every step is an event on `plan/ID`.
    #[command(subcommand)]
    Plan(PlanCommand),
}

#[derive(Debug, Serialize, Deserialize, Subcommand)]
pub enum PlanCommand {
    /// Run a plan file (JSON, or TOML by its .toml extension) to its end: each task's
    /// messages as JSON lines on stdout (as `cclog run` prints them), each step of the plan on
    /// stderr, then a summary (`--json`: the plan, as the last line on stdout)
    Run {
        file: PathBuf,
        /// The directory the tasks run in, when the plan names none
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// The session's TTL after its last use, when the plan names none [default: the
        /// server's --plan-ttl, else 1h]
        #[arg(long, value_name = "DURATION", env = "CCLOG_PLAN_TTL")]
        ttl: Option<String>,
        /// The plan as one JSON object, the last line on stdout (the tasks' messages still print before it)
        #[arg(long)]
        json: bool,
    },
    /// Continue a plan at its first unfinished task (after a crash, a cancel or a failure),
    /// printing as `plan run` does
    Resume {
        id: String,
        /// The plan as one JSON object, the last line on stdout, as `plan run --json`
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running plan: its running task's run is cancelled, the plan marked cancelled
    Cancel {
        id: String,
        /// The cancelled plan as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Plans, by id
    List {
        /// The plans as one JSON array (each as `plan show --json` has it under `plan`)
        #[arg(long)]
        json: bool,
    },
    /// Across every plan: session resume success rate, tasks per session, retries, expired
    /// sessions, cost per task
    Stats {
        /// The statistics as one JSON object
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pricing: PricingArgs,
    },
    /// One plan: its tasks, their runs and sessions, retries and session changes, and each
    /// task's tokens, cost and duration
    Show {
        id: String,
        /// One JSON object: `plan` (tasks, runs, sessions, status), `spec` (the plan as read) and `metrics` (each task's tokens, cost and duration)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pricing: PricingArgs,
    },
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct TeamArgs {
    #[command(subcommand)]
    pub command: TeamCommand,
    /// The client's engine address and host variables, when `cclog serve` runs the command
    /// for it (filled in by [`Command::for_server`], never from the command line).
    #[arg(skip)]
    #[serde(default)]
    pub client_env: Option<cclog_ingest::team::HostEnv>,
}

#[derive(Debug, Serialize, Deserialize, Subcommand)]
pub enum TeamCommand {
    /// Create a team: a container per agent, started, and a tmux session with a window per agent
    Create(Box<TeamCreateArgs>),
    /// Bring a team back after a stop or a reboot: start its stopped containers, recreate
    /// missing ones exactly as they were made, reopen its tmux session, and resume each
    /// agent's last Claude Code session (a fresh one, with a note, when there is none)
    Resume {
        name: String,
        /// What was done as one JSON object: each agent's container action and resumed session, the attach command, notes
        #[arg(long)]
        json: bool,
    },
    /// Stop a team's containers (kept, not removed) and close its tmux session
    Stop {
        name: String,
        /// The stopped team as one JSON object (as `team list --json` shows a team)
        #[arg(long)]
        json: bool,
    },
    /// Teams, with each agent's container state (running, stopped, missing) and tmux's
    List {
        /// Each agent's container and Claude Code session too
        #[arg(long, short)]
        verbose: bool,
        /// Removed teams too
        #[arg(long)]
        all: bool,
        /// The teams as one JSON array: name, phase, image, cwd, each agent's container state and session, tmux
        #[arg(long)]
        json: bool,
    },
    /// Check a team against its containers and tmux session; exit 0 healthy, 3 broken
    ///
    /// Each problem is named with the command that fixes it, and recorded in the team's
    /// history.
    Health {
        name: String,
        /// `{healthy, team, problems}` as one JSON object, each problem with the command that fixes it
        #[arg(long)]
        json: bool,
    },
    /// Remove teams' containers, tmux sessions and agent directories, or repair broken teams
    ///
    /// The log keeps every event of a removed team and every transcript of its agents. Without
    /// --yes (or --interactive) nothing is changed: it prints what would be done.
    Cleanup(TeamCleanupArgs),
    /// Write a team's metadata, event history and every transcript its agents wrote (byte for
    /// byte) into a new directory, with a manifest of hashes; removed teams too
    Export {
        name: String,
        /// The directory to create (it must be empty or not exist)
        #[arg(long, short, value_name = "DIR")]
        output: PathBuf,
        /// The export's report as one JSON object: files, hashes, events
        #[arg(long)]
        json: bool,
    },
    /// Check an export against its manifest, and against the log's record of it when this
    /// data directory has the log; exit 0 intact, 3 damaged
    CheckExport {
        dir: PathBuf,
        /// `{intact, report}` as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Run an agent's command in its container on this terminal (what each tmux window runs)
    Attach {
        /// The agent's container, `TEAM-AGENT`
        container: String,
        /// Working directory in the container
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// The command and its arguments [default: claude]
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct TeamCreateArgs {
    /// Letters, digits, `-`, `_` and `.`
    pub name: String,
    /// Agent names, comma-separated, in window order
    #[arg(long, value_delimiter = ',', default_value = "leader,researcher,writer")]
    pub agents: Vec<String>,
    /// The image every agent's container is made from; it needs Claude Code (or --mount it)
    #[arg(long, env = "CCLOG_TEAM_IMAGE", default_value = "node:20")]
    pub image: String,
    /// Memory limit per container: 4g, 512m, or bytes
    #[arg(long, value_name = "SIZE")]
    pub container_memory: Option<String>,
    /// CPUs per container: 2, 0.5
    #[arg(long, value_name = "N")]
    pub container_cpus: Option<String>,
    /// The project, mounted at the same path in every container [default: the current directory]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// KEY=VALUE for every container (repeatable; recorded in the log, so no secrets here:
    /// ANTHROPIC_* and CLAUDE_CODE_* are passed from the host without being recorded)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Do not pass the host's ANTHROPIC_* and CLAUDE_CODE_* variables
    #[arg(long)]
    pub no_host_env: bool,
    /// Container network: bridge, host or none
    #[arg(long, default_value = "bridge")]
    pub network: String,
    /// The containers' long-lived command [default: the image's own]
    #[arg(long, value_name = "CMD")]
    pub keepalive: Option<String>,
    /// What each agent's window runs in its container
    #[arg(long, value_name = "CMD", default_value = "claude")]
    pub agent_command: String,
    /// An extra bind mount for every container, SRC:DST or SRC:DST:ro (repeatable)
    #[arg(long = "mount", value_name = "SRC:DST[:ro]")]
    pub mounts: Vec<String>,
    /// The home directory inside the containers (each agent's is its own host directory)
    #[arg(long, value_name = "DIR", default_value = "/root")]
    pub container_home: String,
    /// A private tmux server socket name (`tmux -L NAME`) [default: tmux's own]
    #[arg(long, value_name = "NAME", env = "CCLOG_TMUX_SOCKET")]
    pub tmux_socket: Option<String>,
    /// Do not register cclog's session coordinator (the running `cclog serve`'s MCP
    /// endpoint) in the agents' Claude Code
    #[arg(long)]
    pub no_coordinator: bool,
    /// The coordinator's URL as the containers reach it, e.g.
    /// http://host.containers.internal:3000 for a server bound off loopback with a token
    /// [default: the URL `cclog serve` advertises, reachable with --network host]
    #[arg(long, value_name = "URL")]
    pub mcp_url: Option<String>,
    /// Replace a tmux session or containers of the same names
    #[arg(long)]
    pub force: bool,
    /// What was made as one JSON object, as `team resume --json`
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
#[group(id = "which", required = true, multiple = true)]
pub struct TeamCleanupArgs {
    /// Ask about each team on this terminal (refused without one)
    #[arg(long, group = "which")]
    pub interactive: bool,
    /// This team
    #[arg(long, value_name = "NAME", group = "which")]
    pub remove: Option<String>,
    /// Teams whose names match GLOB (`*`, `?`, `[...]`)
    #[arg(long, value_name = "GLOB", group = "which")]
    pub pattern: Option<String>,
    /// Teams with no container running
    #[arg(long, group = "which")]
    pub stopped_only: bool,
    /// Recreate the missing containers of the chosen teams (all teams, when no other choice
    /// is given) instead of removing anything
    #[arg(long, group = "which")]
    pub fix_broken: bool,
    /// With --fix-broken: drop the agents whose containers are missing from their teams
    /// instead of recreating them (their transcripts stay in the log)
    #[arg(long, requires = "fix_broken")]
    pub drop_missing: bool,
    /// Do it; without this, print what would be done
    #[arg(long, short)]
    pub yes: bool,
    /// `{done, dry_run, plans, chosen}` as one JSON object: what was (or would be) done
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct McpArgs {
    /// Coordinator configuration file (JSON: machine_id, project, lease_seconds); else
    /// CCLOG_COORDINATOR_CONFIG or CLAUDE_SESSION_COORDINATOR_CONFIG, then
    /// ./.claude/session-coordinator-config.json, then ~/.config/cclog/coordinator.json
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Print the effective configuration and where each value came from, then exit
    #[arg(long)]
    pub check_config: bool,
    /// With --check-config: as JSON
    #[arg(long, requires = "check_config")]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Subcommand)]
pub enum KvCommand {
    /// Scopes that hold keys, optionally only those matching a glob (`*`, `?`, `[...]`)
    Scopes {
        pattern: Option<String>,
        /// The scopes as one JSON array of names
        #[arg(long)]
        json: bool,
    },
    /// The keys of SCOPE
    Ls {
        scope: String,
        /// The keys as one JSON array of names
        #[arg(long)]
        json: bool,
    },
    /// The value of KEY in SCOPE (as JSON), now or as it was
    Get {
        scope: String,
        key: String,
        /// Read the value as of a log position (a number) or a time (RFC 3339)
        #[arg(long, value_name = "SEQ|TIME")]
        as_of: Option<String>,
        /// Print the version, writer, time and log position too
        #[arg(long)]
        json: bool,
    },
    /// Set KEY in SCOPE to a JSON value
    Set {
        scope: String,
        key: String,
        /// Any JSON: 42, "text", {"done": true}
        value: String,
        /// Only if the key's current version is N (0: only if it does not exist); else exit 4
        #[arg(long, value_name = "N")]
        expect_version: Option<u64>,
        /// Let the value expire after DURATION (30s, 10m, 2h; 1ms to 365 days): the key then
        /// reads as absent, and --expect-version 0 may set it again. Its history keeps the write
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// `{version, seq}` (and `expires_at` with --ttl) as JSON; `{conflict, current}` when
        /// --expect-version found another version
        #[arg(long)]
        json: bool,
    },
    /// Delete KEY from SCOPE (its history stays)
    Rm {
        scope: String,
        key: String,
        /// `{deleted, version}` as JSON
        #[arg(long)]
        json: bool,
    },
    /// Bring the Python coordinator's local-file store into the log: each key of each scope
    /// file becomes a write by instance `import`, the file's times kept with it; a key the log
    /// already holds at that value is left alone, so a second run adds nothing
    ImportLegacy {
        /// The store's directory [default: the `storage.config.base_path` of a local adapter
        /// in the coordinator's configuration, else ./.claude/session-state]
        dir: Option<PathBuf>,
        /// The report as JSON: dir, files, scopes, imported, unchanged, malformed
        #[arg(long)]
        json: bool,
    },
    /// Print each write to SCOPE (or only to its KEY) as it is recorded, until interrupted:
    /// values set, keys deleted, the scope deleted. Through the `cclog serve` that owns the
    /// data directory (one is started in the background when none runs, as `cclog mcp` does)
    Watch {
        /// The scope in full, as `kv scopes` lists it (`machine:project:name` for MCP clients')
        scope: String,
        key: Option<String>,
        /// Start at log position SEQ, printing the writes recorded since, then follow
        /// [default: only writes from now on]
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        #[command(flatten)]
        zone: ZoneArgs,
        /// One JSON object a line: scope, key (null for a scope deletion), change (set, delete,
        /// scope_delete), version, value, writer, at, seq, expires_at
        #[arg(long)]
        json: bool,
    },
    /// Every version of KEY: the value (or deletion), who wrote it, when, at which log position
    History {
        scope: String,
        key: String,
        #[command(flatten)]
        zone: ZoneArgs,
        /// Every version as one JSON array: value (null when deleted), version, writer, time, seq
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// Whether `cclog serve` runs this command for a client while it owns the data
    /// directory. Not: `serve` itself, `run`, `runs` and `mcp` (clients of its API
    /// already), and `append` and `capture`, which read this process's stdin.
    pub fn runs_on_server(&self) -> bool {
        // Exhaustive on purpose: a new command must say whether the server runs it.
        match self {
            // A client of the server's /api/kv/stream already.
            Command::Kv(KvCommand::Watch { .. }) => false,
            Command::Log(_)
            | Command::Verify(_)
            | Command::Stats(_)
            | Command::Import(_)
            | Command::Sessions(_)
            | Command::Show(_)
            | Command::Tree(_)
            | Command::Replay(_)
            | Command::Diff(_)
            | Command::Usage(_)
            | Command::Rebuild(_)
            | Command::Kv(_)
            | Command::Plan(PlanCommand::List { .. } | PlanCommand::Show { .. } | PlanCommand::Stats { .. }) => true,
            // Run, resume and cancel are clients of the server's API when one runs: the
            // tasks go through its runner.
            Command::Plan(_) => false,
            // An attach is this terminal's; it needs no log.
            Command::Team(args) => !matches!(args.command, TeamCommand::Attach { .. }),
            Command::Serve(_)
            | Command::Run(_)
            | Command::Runs(_)
            | Command::Append(_)
            | Command::Capture(_)
            | Command::Salvage(_)
            // It needs the store closed: a server that owns it is stopped first.
            | Command::Compact(_)
            | Command::Mcp(_) => false,
        }
    }

    /// The command as the server should run it: paths made absolute against this process's
    /// working directory.
    pub fn for_server(mut self) -> std::io::Result<Command> {
        let pricing = match &mut self {
            Command::Import(args) => {
                for path in &mut args.paths {
                    *path = std::path::absolute(&*path)?;
                }
                None
            }
            Command::Team(args) => {
                match &mut args.command {
                    TeamCommand::Create(create) => {
                        let cwd = create.cwd.take().map_or_else(std::env::current_dir, Ok)?;
                        create.cwd = Some(std::path::absolute(cwd)?);
                    }
                    TeamCommand::Export { output: path, .. } | TeamCommand::CheckExport { dir: path, .. } => {
                        *path = std::path::absolute(&*path)?;
                    }
                    _ => {}
                }
                args.client_env = Some(cclog_ingest::team::HostEnv::from_process());
                None
            }
            Command::Kv(KvCommand::ImportLegacy { dir, .. }) => {
                let cwd = std::env::current_dir()?;
                let chosen = dir.take().unwrap_or_else(|| crate::commands::coordinator_config::legacy_store_dir(&cwd));
                *dir = Some(std::path::absolute(chosen)?);
                None
            }
            Command::Sessions(args) => Some(&mut args.pricing),
            Command::Show(args) => Some(&mut args.pricing),
            Command::Diff(args) => Some(&mut args.pricing),
            Command::Plan(PlanCommand::Stats { pricing, .. } | PlanCommand::Show { pricing, .. }) => Some(pricing),
            Command::Usage(args) => Some(&mut args.pricing),
            _ => None,
        };
        if let Some(PricingArgs { pricing: Some(path) }) = pricing {
            *path = std::path::absolute(&*path)?;
        }
        Ok(self)
    }
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:$PORT, PORT defaulting to 3000]
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<std::net::SocketAddr>,
    /// Require `Authorization: Bearer TOKEN` on /api and /mcp (required off loopback, 16
    /// bytes at least). Prefer CCLOG_TOKEN or --token-file: a command line is visible to
    /// every user in `ps`
    #[arg(long, env = "CCLOG_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Read the token from FILE (its first line)
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Also answer requests addressed to NAME (a host name this server is reached by, e.g.
    /// behind a proxy); loopback names and the bound address are always accepted. Repeatable
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Let web pages on ORIGIN (e.g. http://localhost:5173) call the API, with CORS; pages
    /// on any other origin are refused. Repeatable
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Close a connection that has not sent a whole request head within this time — slow
    /// clients and idle keep-alive connections alike; a request body that stalls this long
    /// is dropped too
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Serve at most N connections at once [default: the descriptor limit less 48]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Transcript directory to keep archiving [default: ~/.claude/projects]
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Do not archive transcripts while serving
    #[arg(long, conflicts_with = "archive")]
    pub no_archive: bool,
    /// On shutdown, let active runs finish instead of cancelling them
    #[arg(long)]
    pub finish_runs: bool,
    /// A plan's session TTL after its last use, when the plan names none
    #[arg(long, value_name = "DURATION", env = "CCLOG_PLAN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub plan_ttl: std::time::Duration,
    /// Exit once no connection has been open and no run active for DURATION (what a server
    /// that `cclog mcp` or `cclog kv watch` starts in the background does, after
    /// CCLOG_IDLE_EXIT, default 30m); without it the server stays until stopped
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_exit: Option<std::time::Duration>,
    /// Print the API's OpenAPI 3.1 document (also served at /api/openapi.json) and exit
    #[arg(long)]
    pub openapi: bool,
    /// The price table of the API's costs (/api/sessions, /api/usage)
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Serialize, Deserialize, Subcommand)]
pub enum RunCommand {
    /// Start a new session in DIR
    Start {
        /// Working directory of the run
        #[arg(long, value_name = "DIR")]
        cwd: PathBuf,
        /// The prompt, sent to Claude Code on stdin
        prompt: String,
        #[command(flatten)]
        options: RunFlags,
    },
    /// Continue SESSION (a unique prefix is enough) with PROMPT, in a new session branched off
    /// it (as CC Manager does, so that history stays immutable); --in-place continues SESSION
    /// itself
    Resume {
        /// The session's id, or a unique prefix of it
        session: String,
        /// The prompt, sent to Claude Code on stdin
        prompt: String,
        /// Continue SESSION itself instead of a new session branched off it; refused while
        /// another run writes SESSION
        #[arg(long)]
        in_place: bool,
        #[command(flatten)]
        options: RunFlags,
    },
    /// Fork SESSION into a new session that continues with PROMPT
    Fork {
        /// The session's id, or a unique prefix of it
        session: String,
        /// The prompt, sent to Claude Code on stdin
        prompt: String,
        #[command(flatten)]
        options: RunFlags,
    },
    /// Cancel an active run (SIGINT, then SIGTERM, then SIGKILL); needs `cclog serve`
    Cancel {
        /// The run's id, or a unique prefix of it
        run: String,
        /// Print the run as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize, Deserialize, Args, Clone, Default)]
pub struct RunFlags {
    /// Model for the run
    #[arg(long)]
    pub model: Option<String>,
    /// Claude Code permission mode
    #[arg(long)]
    pub permission_mode: Option<String>,
    /// Tools allowed without asking (repeatable)
    #[arg(long = "allowed-tool", value_name = "TOOL")]
    pub allowed_tools: Vec<String>,
    /// Tools denied (repeatable)
    #[arg(long = "disallowed-tool", value_name = "TOOL")]
    pub disallowed_tools: Vec<String>,
    /// Text appended to the system prompt
    #[arg(long)]
    pub append_system_prompt: Option<String>,
    /// Most agentic turns
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Print the run as JSON at the end instead of a summary (messages still stream)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct RunsArgs {
    /// Only runs still going
    #[arg(long)]
    pub active: bool,
    /// Full ids and prompts (the table otherwise fits the terminal, or 80 columns)
    #[arg(long, short)]
    pub wide: bool,
    #[command(flatten)]
    pub zone: ZoneArgs,
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct ImportArgs {
    /// Directories or files to import [default: ~/.claude/projects]
    pub paths: Vec<PathBuf>,
    /// Keep importing as files change, until interrupted
    #[arg(long)]
    pub watch: bool,
    /// After importing, replay every file under PATHS and compare it byte for byte with the
    /// file on disk; exit 3 if any differs (the import conformance check)
    #[arg(long)]
    pub verify_replay: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct CaptureArgs {
    /// Echo every line to stdout as it is read, so capture can sit in a pipe
    #[arg(long)]
    pub passthrough: bool,
    /// Print the run summary as JSON (on stderr with --passthrough)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct SessionsArgs {
    /// Only sessions of projects whose folder name or cwd contains this text
    #[arg(long, short)]
    pub project: Option<String>,
    /// Only the sessions of this team's agents (`cclog team list`), removed teams too
    #[arg(long, value_name = "NAME")]
    pub team: Option<String>,
    /// Only sessions active since then: a date (YYYY-MM-DD or YYYYMMDD, local) or a time ago (7d, 12h, 2w)
    #[arg(long, short, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only sessions active until then (a date includes that whole day)
    #[arg(long, short, value_name = "WHEN")]
    pub until: Option<String>,
    /// Order: time (last activity), cost, messages (user and assistant), tokens; largest or newest first
    #[arg(long, value_name = "KEY", default_value = "time", value_parser = clap::builder::PossibleValuesParser::new(SessionSort::NAMES))]
    pub sort: String,
    /// Oldest, cheapest or shortest first
    #[arg(long, short)]
    pub reverse: bool,
    /// At most this many sessions (the totals row still adds up every match)
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
    /// Every column at full width (the table otherwise fits the terminal, or 80 columns)
    #[arg(long, short)]
    pub wide: bool,
    #[command(flatten)]
    pub zone: ZoneArgs,
    /// One JSON array of session objects (filtered, sorted and limited as the table)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

/// Which zone times are shown in.
#[derive(Debug, Default, Clone, Serialize, Deserialize, Args)]
pub struct ZoneArgs {
    /// Times in UTC [default: the local zone, TZ honoured]
    #[arg(long, conflicts_with = "timezone")]
    pub utc: bool,
    /// Time zone for times and dates (IANA name, e.g. Europe/Paris) [default: the system's, TZ honoured]
    #[arg(long, short = 'z', value_name = "ZONE")]
    pub timezone: Option<String>,
}

impl ZoneArgs {
    /// The zone asked for: `--utc`, `--timezone`, else the local one (a forwarded command's
    /// client's); a name that is no zone is bad input.
    pub fn zone(&self) -> Result<jiff::tz::TimeZone, crate::Failure> {
        match (&self.timezone, self.utc) {
            (_, true) => Ok(jiff::tz::TimeZone::UTC),
            (Some(name), false) => jiff::tz::TimeZone::get(name).map_err(|_| crate::Failure {
                code: crate::EXIT_BAD_INPUT,
                message: format!("{name:?} is not a time zone (try UTC or Europe/Paris)"),
            }),
            (None, false) => Ok(crate::output::time_zone()),
        }
    }
}

/// Which price table costs are computed from.
#[derive(Debug, Default, Clone, Serialize, Deserialize, Args)]
pub struct PricingArgs {
    /// Price table to compute costs from: LiteLLM's model_prices_and_context_window.json (or a
    /// file of the same rows under "models") [default: the Claude rows built in]
    #[arg(long, env = "CCLOG_PRICING", value_name = "FILE")]
    pub pricing: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct UsageArgs {
    /// daily, monthly, session or blocks (5-hour billing windows)
    #[arg(value_enum)]
    pub report: UsageReportKind,
    /// First day included, YYYYMMDD or YYYY-MM-DD (local to --timezone)
    #[arg(long, short)]
    pub since: Option<String>,
    /// Last day included, YYYYMMDD or YYYY-MM-DD
    #[arg(long, short)]
    pub until: Option<String>,
    /// Only this project: its folder name under ~/.claude/projects, or text only one such name contains
    #[arg(long, short)]
    pub project: Option<String>,
    /// A row per model under each row
    #[arg(long, short)]
    pub breakdown: bool,
    /// Time zone for days, months and block times (IANA name, e.g. UTC, Europe/Paris) [default: the system's]
    #[arg(long, short = 'z', value_name = "ZONE")]
    pub timezone: Option<String>,
    /// The report as JSON, with ccusage's field names
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, clap::ValueEnum)]
pub enum UsageReportKind {
    Daily,
    Monthly,
    Session,
    Blocks,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct ShowArgs {
    /// Session: its id or a unique prefix of it (any case), or one of its transcripts (a path, or the end of one such as its file name)
    pub id: String,
    /// The session as one JSON object (full precision; the fields of `sessions --json`, and its runs)
    #[arg(long)]
    pub json: bool,
    /// Lines as long as they are, paths whole (they otherwise wrap, and paths are cut from
    /// the left, to fit the terminal or 80 columns)
    #[arg(long, short)]
    pub wide: bool,
    #[command(flatten)]
    pub zone: ZoneArgs,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct TreeArgs {
    /// Only the tree containing this session (id, unique prefix or transcript)
    pub id: Option<String>,
    /// The trees as a JSON array of nodes (id, title, entries, fork point, owner, children)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum ReplayFormat {
    /// A readable conversation
    Text,
    /// The conversation as Markdown (also `md`)
    #[value(alias = "md")]
    Markdown,
    /// The session's transcript file, byte for byte
    Jsonl,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct ReplayArgs {
    /// Session: its id or a unique prefix of it (any case), or one of its transcripts (a path, or the end of one such as its file name)
    pub id: String,
    /// text, markdown (md) or jsonl
    #[arg(long, short, value_enum, default_value_t = ReplayFormat::Text)]
    pub format: ReplayFormat,
    /// The transcript's JSON lines byte for byte: `--format jsonl`
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Keep printing as new entries are written to the session's transcript
    #[arg(long)]
    pub follow: bool,
    /// Show long tool results and thinking whole
    #[arg(long)]
    pub full: bool,
    /// Replay this revision of the file instead of the current one (jsonl)
    #[arg(long)]
    pub revision: Option<u32>,
    /// Replay this subagent's transcript instead of the main one (agent id or prefix)
    #[arg(long)]
    pub agent: Option<String>,
    /// Markdown: how much to show — user (the prompts), assistant (and the replies), all (and tool calls with their results)
    #[arg(long, value_name = "DEPTH", default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(["user", "assistant", "all"]))]
    pub depth: String,
    #[command(flatten)]
    pub zone: ZoneArgs,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct DiffArgs {
    /// Left session (id, unique prefix or transcript)
    pub a: String,
    /// Right session (id, unique prefix or transcript)
    pub b: String,
    /// The diff as one JSON object (ancestor, fork point, each branch's entries, tool calls, files, usage and cost)
    #[arg(long)]
    pub json: bool,
    /// Lines as long as they are (they otherwise wrap, or are cut with `…`, to fit the
    /// terminal or 80 columns)
    #[arg(long, short)]
    pub wide: bool,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct RebuildArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct SalvageArgs {
    /// The new data directory to write (must not exist, or be empty)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct CompactArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct AppendArgs {
    /// Stream the events belong to, e.g. `session/<id>`
    #[arg(long, short)]
    pub stream: String,
    /// Kind of every event, e.g. `message`
    #[arg(long, short)]
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct LogArgs {
    /// First seq to list
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// List at most this many events
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only this stream's events
    #[arg(long)]
    pub stream: Option<String>,
    /// One JSON object per line, payload embedded as JSON when it is JSON (cclog's own
    /// typed payloads decoded in `payload_decoded`)
    #[arg(long)]
    pub json: bool,
    /// Full streams, times and hashes (rows otherwise fit the terminal, or 80 columns)
    #[arg(long, short)]
    pub wide: bool,
    #[command(flatten)]
    pub zone: ZoneArgs,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct VerifyArgs {
    /// Start at this seq (its link to the event before it is checked too)
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Deserialize, Args)]
pub struct StatsArgs {
    /// Print the statistics as JSON
    #[arg(long)]
    pub json: bool,
}
