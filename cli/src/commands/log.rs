//! `cclog log`: list events, as a table for people or JSON lines for scripts. Rows stream
//! (a log may hold millions), so the table's layout comes from the width, not the rows:
//! at 80 columns a stream is cut to its domain and the end of its name, and the payload — cclog's own
//! typed payloads decoded to JSON — gets what is left. Times are in the local zone (`--utc`,
//! `--timezone`), which the heading names.

use std::io::Write;
use std::path::Path;

use cclog_engine::Event;

use crate::args::LogArgs;
use crate::output::{self, paint};
use crate::{Failure, EXIT_BAD_INPUT, EXIT_OK};
use cclog_projections::StreamStats;

pub fn run(data: &Path, args: LogArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let log = super::open_log_to_read(data)?;
    if args.from > 0 && args.from >= log.len() {
        return Err(cclog_engine::Error::OutOfRange { from: args.from, len: log.len() }.into());
    }
    if let Some(stream) = &args.stream {
        require_stream(&log, stream)?;
    }
    let events: Box<dyn Iterator<Item = cclog_engine::Result<Event>>> = match &args.stream {
        Some(stream) => Box::new(log.stream(stream, args.from)),
        None => Box::new(log.range(args.from)),
    };
    let limit = args.limit.unwrap_or(u64::MAX);
    let colour = output::colour_stdout();
    let layout = RowLayout::for_width(output::table_width(args.wide), args.zone.zone()?);
    let mut out = std::io::BufWriter::new(output::Stdout);
    if !args.json {
        writeln!(out, "{}", paint(colour, output::BOLD, &layout.header()))?;
    }
    for event in events.take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let event = event?;
        let written =
            if args.json { write_json(&mut out, &event) } else { writeln!(out, "{}", layout.row(&event, colour)) };
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

/// Refuses a stream the log has never had (exit 2), naming the streams whose names
/// contain what was given.
fn require_stream(log: &cclog_engine::Log, stream: &str) -> anyhow::Result<()> {
    if StreamStats::read(log, stream)?.is_some() {
        return Ok(());
    }
    let similar: Vec<String> =
        StreamStats::all(log)?.into_iter().map(|(name, _)| name).filter(|name| name.contains(stream)).collect();
    let hint = match similar.as_slice() {
        [] => "`cclog log` shows each event's stream".to_string(),
        [only] => format!("did you mean {only}?"),
        many => format!(
            "{} streams contain it, e.g. {}",
            many.len(),
            many.iter().take(3).map(String::as_str).collect::<Vec<_>>().join(", ")
        ),
    };
    Err(Failure { code: EXIT_BAD_INPUT, message: format!("no stream {stream:?} in the log; {hint}") }.into())
}

/// The columns of a row, fixed for the whole listing.
struct RowLayout {
    /// How times are written: `13:16:59` at 80 columns, `12-03 13:16:59` from 120, RFC 3339
    /// with microseconds and the offset at full width; all in `zone`.
    time: TimeStyle,
    zone: jiff::tz::TimeZone,
    /// `TIME (Europe/Paris)`, or `TIME (CET)` where the zone's name does not fit.
    time_heading: String,
    time_width: usize,
    /// `None`: full width, nothing cut.
    stream: Option<usize>,
    kind: Option<usize>,
    hash: bool,
    payload: usize,
}

#[derive(Clone, Copy)]
enum TimeStyle {
    Clock,
    DayAndClock,
    Full,
}

impl TimeStyle {
    fn width(self) -> usize {
        match self {
            TimeStyle::Clock => 10,
            TimeStyle::DayAndClock => 15,
            TimeStyle::Full => 32,
        }
    }
}

const SEQ_WIDTH: usize = 7;

impl RowLayout {
    fn for_width(width: Option<usize>, zone: jiff::tz::TimeZone) -> RowLayout {
        let roomy = width.is_none_or(|width| width >= 120);
        let time = match width {
            None => TimeStyle::Full,
            Some(_) if roomy => TimeStyle::DayAndClock,
            Some(_) => TimeStyle::Clock,
        };
        let mut time_heading = output::time_heading("TIME", &zone);
        if time_heading.chars().count() > time.width() {
            let now = jiff::Timestamp::now().to_zoned(zone.clone());
            time_heading = format!("TIME ({})", now.strftime("%Z"));
        }
        let time_width = time.width().max(time_heading.chars().count());
        let mut layout =
            RowLayout { time, zone, time_heading, time_width, stream: None, kind: None, hash: true, payload: 200 };
        if let Some(width) = width {
            let (stream, kind) = if roomy { (36, 20) } else { (24, 10) };
            let fixed = SEQ_WIDTH + time_width + stream + kind + if roomy { 14 } else { 0 } + 8;
            layout.stream = Some(stream);
            layout.kind = Some(kind);
            layout.hash = roomy;
            layout.payload = width.saturating_sub(fixed + 1).max(16);
        }
        layout
    }

    fn header(&self) -> String {
        let mut line = format!(
            "{:>SEQ_WIDTH$}  {:<time$}  {:<stream$}  {:<kind$}  ",
            "SEQ",
            self.time_heading,
            "STREAM",
            "KIND",
            time = self.time_width,
            stream = self.stream.unwrap_or(0),
            kind = self.kind.unwrap_or(0)
        );
        if self.hash {
            line.push_str(&format!("{:<12}  ", "HASH"));
        }
        line.push_str("PAYLOAD");
        line
    }

    fn row(&self, event: &Event, colour: bool) -> String {
        let format = match self.time {
            TimeStyle::Full => "%Y-%m-%dT%H:%M:%S%.6f%:z",
            TimeStyle::DayAndClock => "%m-%d %H:%M:%S",
            TimeStyle::Clock => "%H:%M:%S",
        };
        let time = jiff::Timestamp::from_microsecond(i64::try_from(event.header.ts_us).unwrap_or(i64::MAX))
            .map(|at| at.to_zoned(self.zone.clone()).strftime(format).to_string())
            .unwrap_or_default();
        let (stream, kind) = match (self.stream, self.kind) {
            (Some(stream_width), Some(kind_width)) => {
                // `transcript.line` of a `transcript/…` stream is `line`: the stream says the rest.
                let domain = event.stream().split('/').next().unwrap_or("");
                let kind =
                    event.kind().strip_prefix(domain).and_then(|kind| kind.strip_prefix('.')).unwrap_or(event.kind());
                (short_stream(event.stream(), stream_width), cclog_projections::lineage::shorten(kind, kind_width))
            }
            _ => (event.stream().to_string(), event.kind().to_string()),
        };
        let mut line = format!(
            "{:>SEQ_WIDTH$}  {}  {:<stream_width$}  {:<kind_width$}  ",
            paint(colour, output::BOLD, &event.seq().to_string()),
            paint(colour, output::DIM, &format!("{time:<time_width$}", time_width = self.time_width)),
            stream,
            kind,
            stream_width = self.stream.unwrap_or(0),
            kind_width = self.kind.unwrap_or(0),
        );
        if self.hash {
            line.push_str(&paint(colour, output::DIM, &event.hash.to_hex()[..12]));
            line.push_str("  ");
        }
        let payload = match cclog_projections::events::payload_json(event.kind(), &event.payload) {
            Some(decoded) => output::preview(decoded.to_string().as_bytes(), self.payload),
            None => output::preview(&event.payload, self.payload),
        };
        line.push_str(&payload);
        line
    }
}

/// A stream name in `width` characters: its domain and the end of its name —
/// `transcript/…/handy-cli/0b7c6a1e.jsonl`, or the start of a file name too long for
/// that (`transcript/dag_compact_aft…`).
fn short_stream(stream: &str, width: usize) -> String {
    if stream.chars().count() <= width {
        return stream.to_string();
    }
    let Some((domain, name)) = stream.split_once('/') else {
        return cclog_projections::lineage::shorten(stream, width);
    };
    let room = width.saturating_sub(domain.len() + 1);
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.chars().count() + 2 <= room {
        format!("{domain}/{}", output::path_tail(name, room))
    } else {
        format!("{domain}/{}", cclog_projections::lineage::shorten(last, room))
    }
}

fn write_json(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    let json = crate::json_style::line(&cclog_http::views::EventView::new(event))?;
    writeln!(out, "{json}")
}

#[cfg(test)]
mod tests {
    use super::short_stream;

    #[test]
    fn a_stream_keeps_its_domain_and_the_end_of_its_name() {
        assert_eq!(short_stream("run/1", 24), "run/1");
        assert_eq!(
            short_stream("transcript//home/dev/.claude/projects/-home-dev-app/a1.jsonl", 24),
            "transcript/…/a1.jsonl"
        );
        assert_eq!(
            short_stream("transcript//corpus/dag_compact_after_rewind_preserved.jsonl", 24),
            "transcript/dag_compact_…"
        );
        assert_eq!(short_stream("scope/a-very-long-scope-name-indeed", 16), "scope/a-very-lo…");
    }
}
