//! `cclog replay`: a session as a readable conversation (text, colour on a terminal), as
//! Markdown, or as its exact transcript file (`jsonl`, byte for byte, a fork's shared
//! prefix rebuilt through its pointer). `--follow` then keeps archiving the transcript as
//! Claude Code writes it and prints each new entry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use cclog_engine::Log;
use cclog_ingest::watch::{self, WatchOptions};
use cclog_projections::archive::{Archive, FileState};
use cclog_projections::events;
use cclog_projections::lineage::Entry;
use cclog_projections::markdown;
use cclog_projections::render::{self, Format, Style};
use cclog_projections::replay::{self, Line};

use crate::args::{ReplayArgs, ReplayFormat};
use crate::{output, Failure, EXIT_BAD_INPUT, EXIT_OK};

fn bad(message: String) -> anyhow::Error {
    Failure { code: EXIT_BAD_INPUT, message }.into()
}

pub fn run(data: &Path, mut args: ReplayArgs) -> anyhow::Result<u8> {
    if args.json {
        args.format = ReplayFormat::Jsonl;
    }
    super::require_store(data)?;
    let log = super::open_log_to_read(data)?;
    let session = Archive::session(&log, &args.id)?;
    let path = match &args.agent {
        None => session.main_file().map(str::to_string),
        Some(agent) => {
            let found: Vec<_> = session.subagents.iter().filter(|(id, _)| id.starts_with(agent.as_str())).collect();
            let names = |agents: &mut dyn Iterator<Item = &String>| {
                agents.take(5).map(String::as_str).collect::<Vec<_>>().join(", ")
            };
            match found.as_slice() {
                [(_, link)] => link.path.clone(),
                [] if session.subagents.is_empty() => {
                    return Err(bad(format!("session {} has no subagents (no --agent to give)", session.id)))
                }
                [] => {
                    return Err(bad(format!(
                        "session {} has no subagent {agent:?}; its subagents: {}",
                        session.id,
                        names(&mut session.subagents.keys())
                    )))
                }
                _ => {
                    return Err(bad(format!(
                        "{agent:?} matches {} subagents ({}); give more of the id",
                        found.len(),
                        names(&mut found.iter().map(|(id, _)| *id))
                    )))
                }
            }
        }
    };
    let path = path.with_context(|| format!("session {} has no archived transcript file", session.id))?;
    let file = Archive::file(&log, &path)?.with_context(|| format!("{path} is not archived"))?;
    if let Some(revision) = args.revision.filter(|&revision| revision > file.revision) {
        let have = match file.revision {
            0 => "only revision 0 (it was never rewritten)".to_string(),
            last => format!("revisions 0 to {last}"),
        };
        return Err(bad(format!("{path} has no revision {revision}: it has {have}")));
    }
    let style = Style {
        format: if args.format == ReplayFormat::Markdown { Format::Markdown } else { Format::Text },
        colour: output::colour_stdout(),
        full: args.full,
        zone: args.zone.zone()?,
    };
    // A conversation is paged on a terminal (decided after the colour, which the pager shows).
    let _pager = (args.format != ReplayFormat::Jsonl && !args.follow).then(output::Pager::start).flatten();
    let mut out = output::Stdout;
    let mut printer = Printer { format: args.format, style, out: &mut out };
    if args.format == ReplayFormat::Markdown {
        let mut entries = Vec::new();
        replay::for_each_line(&log, &file, args.revision, |line| {
            entries.push(Entry::from_line(line));
            Ok(())
        })?;
        let options =
            markdown::Options { depth: markdown::Depth::parse(&args.depth).unwrap_or_default(), full: args.full };
        let prices = super::price_table(&args.pricing)?;
        printer.out.write_all(markdown::document(&session, &entries, &prices, options).as_bytes())?;
    } else {
        replay::for_each_line(&log, &file, args.revision, |line| printer.line(line))?;
    }
    printer.out.flush()?;
    if args.follow {
        follow(&log, &file, &mut printer)?;
    }
    Ok(EXIT_OK)
}

struct Printer<'o> {
    format: ReplayFormat,
    style: Style,
    out: &'o mut dyn Write,
}

impl Printer<'_> {
    fn line(&mut self, line: Line) -> cclog_projections::Result<()> {
        let written = match self.format {
            ReplayFormat::Jsonl => self.out.write_all(&line.bytes).and_then(|()| {
                if line.terminated {
                    self.out.write_all(b"\n")
                } else {
                    Ok(())
                }
            }),
            ReplayFormat::Text | ReplayFormat::Markdown => {
                let text = render::render_entry(&Entry::from_line(line), &self.style);
                self.out.write_all(text.as_bytes())
            }
        };
        written.map_err(|source| cclog_projections::Error::Io { source })
    }
}

/// Keeps importing the file as it changes and prints every line added after `file`'s
/// current state, until interrupted.
fn follow(log: &Log, file: &FileState, printer: &mut Printer<'_>) -> anyhow::Result<()> {
    let stop = output::stop_flag()?;
    let stream = events::transcript_stream(&file.path);
    let mut next = log.len();
    let mut failure = None;
    let root = PathBuf::from(&file.path);
    let options = WatchOptions { debounce: std::time::Duration::from_millis(100), ..WatchOptions::default() };
    watch::watch(log, &[root], &options, &|| stop.load(Ordering::Relaxed), &mut |_| {
        let from = next;
        next = log.len();
        for event in log.stream(&stream, from) {
            let printed = event.map_err(cclog_projections::Error::from).and_then(|event| {
                replay::lines_of_event(log, &event, |line| printer.line(line))?;
                printer.out.flush().map_err(|source| cclog_projections::Error::Io { source })
            });
            if let Err(error) = printed {
                failure = Some(error);
                stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    })?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}
