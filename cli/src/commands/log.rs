//! `cclog log`: list events, as a table for people or JSON lines for scripts.

use std::io::Write;
use std::path::Path;

use cclog_engine::Event;

use crate::args::LogArgs;
use crate::output::{self, paint};
use crate::EXIT_OK;

pub fn run(data: &Path, args: LogArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let log = super::open_log_to_read(data)?;
    let events: Box<dyn Iterator<Item = cclog_engine::Result<Event>>> = match &args.stream {
        Some(stream) => Box::new(log.stream(stream, args.from)),
        None => Box::new(log.range(args.from)),
    };
    let limit = args.limit.unwrap_or(u64::MAX);
    let colour = output::colour_stdout();
    let mut out = std::io::BufWriter::new(output::Stdout);
    for event in events.take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let event = event?;
        let written = if args.json { write_json(&mut out, &event) } else { write_row(&mut out, &event, colour) };
        if let Err(error) = written {
            // A closed pipe (`cclog log | head`) is the reader saying it has enough.
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(EXIT_OK);
            }
            return Err(error.into());
        }
    }
    match out.flush() {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(EXIT_OK),
    }
}

fn write_row(out: &mut impl Write, event: &Event, colour: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>8}  {}  {}  {}  {}  {}",
        paint(colour, output::BOLD, &event.seq().to_string()),
        paint(colour, output::DIM, &output::timestamp(event.header.ts_us)),
        event.stream(),
        event.kind(),
        paint(colour, output::DIM, &event.hash.to_hex()[..12]),
        output::preview(&event.payload, 80),
    )
}

fn write_json(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    let json = cclog_http::views::EventView::new(event);
    serde_json::to_writer(&mut *out, &json)?;
    out.write_all(b"\n")
}
