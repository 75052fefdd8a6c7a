//! Terminal concerns: where a command's output goes, whether to colour, progress bars on
//! stderr, the stop flag of commands that run until interrupted, and formatting of times,
//! byte counts and payload previews.
//!
//! A command prints through [`outln!`](crate::outln), [`errln!`](crate::errln), [`Stdout`]
//! and [`Stderr`], never to the process's streams directly: run for a client by `cclog
//! serve` (see [`forwarded`]), the same code prints into the client's terminal instead.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use cclog_http::forward::CommandIo;

thread_local! {
    /// Set while this thread runs a command for a client.
    static FORWARDED: RefCell<Option<CommandIo>> = const { RefCell::new(None) };
}

/// Runs `command` with its output going to a client's frames, its log the server's, and its
/// stop flag the request's.
pub fn forwarded<R>(io: CommandIo, command: impl FnOnce() -> R) -> R {
    /// Takes the client's output back off the thread however the command ends — a panic
    /// included — so the thread never keeps a client's senders.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            FORWARDED.with(|forwarded| forwarded.borrow_mut().take());
        }
    }
    FORWARDED.with(|forwarded| *forwarded.borrow_mut() = Some(io));
    let restore = Restore;
    let result = command();
    drop(restore);
    result
}

fn with_forwarded<R>(use_it: impl FnOnce(&mut CommandIo) -> R) -> Option<R> {
    FORWARDED.with(|forwarded| forwarded.borrow_mut().as_mut().map(use_it))
}

/// The server's log when running for a client.
pub fn forwarded_log() -> Option<Arc<cclog_engine::Log>> {
    with_forwarded(|io| Arc::clone(&io.log))
}

/// This process's stop flag (a forwarded command has its own).
static STOP: std::sync::LazyLock<Arc<AtomicBool>> = std::sync::LazyLock::new(Arc::default);

/// Set by SIGINT or SIGTERM, or when output can no longer be written (a closed pipe, a
/// client that went away); commands that run until interrupted watch it.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    if let Some(stop) = with_forwarded(|io| Arc::clone(&io.stop)) {
        return Ok(stop);
    }
    static SIGNALS: OnceLock<Result<(), String>> = OnceLock::new();
    SIGNALS
        .get_or_init(|| {
            [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM].into_iter().try_for_each(|signal| {
                signal_hook::flag::register(signal, Arc::clone(&STOP))
                    .map(drop)
                    .map_err(|error| format!("installing a handler for signal {signal}: {error}"))
            })
        })
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(Arc::clone(&STOP))
}

/// The command's standard output.
pub struct Stdout;

/// The command's standard error.
pub struct Stderr;

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = with_forwarded(|io| io.stdout.write(bytes)).unwrap_or_else(|| std::io::stdout().write(bytes));
        if written.is_err() {
            // Nobody reads any more: whatever runs until stopped can stop.
            STOP.store(true, Ordering::Relaxed);
        }
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        with_forwarded(|io| io.stdout.flush()).unwrap_or_else(|| std::io::stdout().flush())
    }
}

impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        with_forwarded(|io| io.stderr.write(bytes)).unwrap_or_else(|| std::io::stderr().write(bytes))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        with_forwarded(|io| io.stderr.flush()).unwrap_or_else(|| std::io::stderr().flush())
    }
}

/// `println!` for commands: to [`Stdout`]. A reader that went away sets the stop flag (see
/// [`stop_flag`]), never a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::output::Stdout, $($arg)*);
    }};
}

/// `eprintln!` for commands: to [`Stderr`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::output::Stderr, $($arg)*);
    }};
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

/// Colour only on a terminal and never with `NO_COLOR` set (for a client: its terminal).
pub fn colour_stdout() -> bool {
    with_forwarded(|io| io.colour).unwrap_or_else(|| std::io::stdout().is_terminal() && !no_color())
}

/// The same rule for stderr.
pub fn colour_stderr() -> bool {
    with_forwarded(|io| io.colour_stderr).unwrap_or_else(|| std::io::stderr().is_terminal() && !no_color())
}

/// A pager that this process's stdout goes through until it is dropped, as git's does:
/// `CCLOG_PAGER`, else `PAGER`, else `less` (with `LESS=FRX` unless `LESS` is set, so that
/// what fits one screen is printed and the pager exits at once).
pub struct Pager {
    child: std::process::Child,
}

impl Pager {
    /// Starts the pager when stdout is this process's own terminal (not a pipe, not a
    /// client's); `None` otherwise, or when the pager is `cat` or empty, or cannot start.
    pub fn start() -> Option<Pager> {
        use std::os::fd::AsRawFd;
        if with_forwarded(|_| ()).is_some() || !std::io::stdout().is_terminal() {
            return None;
        }
        let pager = std::env::var("CCLOG_PAGER").or_else(|_| std::env::var("PAGER")).unwrap_or_else(|_| "less".into());
        if pager.trim().is_empty() || pager.trim() == "cat" {
            return None;
        }
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(&pager).stdin(std::process::Stdio::piped());
        if std::env::var_os("LESS").is_none() {
            command.env("LESS", "FRX");
        }
        let mut child = command.spawn().ok()?;
        let input = child.stdin.take()?;
        // SAFETY: dup2 onto stdout of a descriptor this process owns; `input` is closed after.
        if unsafe { libc::dup2(input.as_raw_fd(), libc::STDOUT_FILENO) } < 0 {
            let _ = child.kill();
            return None;
        }
        drop(input);
        Some(Pager { child })
    }
}

impl Drop for Pager {
    /// Ends the pager's input and waits for the person to quit it.
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        // SAFETY: closes this process's stdout, which only the pager reads now.
        unsafe { libc::close(libc::STDOUT_FILENO) };
        let _ = self.child.wait();
    }
}

/// Whether progress bars may be drawn: on this process's own terminal only.
fn draw_progress() -> bool {
    with_forwarded(|_| ()).is_none() && std::io::stderr().is_terminal()
}

/// Wraps `text` in an ANSI style when `on`.
pub fn paint(on: bool, style: &str, text: &str) -> String {
    if on {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub const DIM: &str = "2";
pub const BOLD: &str = "1";
pub const RED: &str = "31";
pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    if !draw_progress() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{what} {{bar:30}} {{human_pos}}/{{human_len}} events, {{eta}} left"
    )) {
        bar.set_style(style);
    }
    bar
}

/// A progress bar over bytes on stderr, drawn only when stderr is a terminal.
pub fn byte_progress_bar(what: &str) -> indicatif::ProgressBar {
    if !draw_progress() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{what} {{bar:30}} {{binary_bytes}}/{{binary_total_bytes}}, {{binary_bytes_per_sec}}, {{eta}} left"
    )) {
        bar.set_style(style);
    }
    bar
}

/// RFC 3339 UTC with microseconds.
pub fn timestamp(ts_us: u64) -> String {
    cclog_http::views::timestamp(ts_us)
}

/// A short single-line preview of a payload.
pub fn preview(payload: &[u8], width: usize) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut out = String::with_capacity(width + 3);
    for ch in text.chars() {
        if out.chars().count() >= width {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Human byte counts: 1.5 KiB, 3.2 MiB.
pub fn bytes(count: u64) -> String {
    cclog_engine::describe_bytes(count)
}

/// "1 event", "2 events", "12,345 events".
pub fn count(n: u64, noun: &str) -> String {
    count_of(n, noun, &format!("{noun}s"))
}

/// [`count`] of a noun whose plural is not its singular and an s: "1 entry", "2 entries".
pub fn count_of(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", grouped(n))
    }
}

/// Dollars with `places` decimals, or `unpriced` for a cost the price table cannot give.
pub fn dollars(usd: Option<f64>, places: usize) -> String {
    match usd {
        Some(usd) => format!("${usd:.places$}"),
        None => "unpriced".to_string(),
    }
}

/// A difference in dollars to the cent, signed: `+$1.23`, `-$0.04`, or `unpriced`.
pub fn signed_dollars(usd: Option<f64>) -> String {
    match usd {
        Some(usd) if usd < 0.0 => format!("-${:.2}", -usd),
        Some(usd) => format!("+${usd:.2}"),
        None => "unpriced".to_string(),
    }
}

/// A signed count with thousands separators: `+12,345`, `-7`.
pub fn signed_grouped(n: i128) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    format!("{sign}{}", grouped(u64::try_from(n.unsigned_abs()).unwrap_or(u64::MAX)))
}

/// The width of this process's terminal (`COLUMNS` first); `None` off a terminal and for a
/// client's command, whose tables then fit 80 columns.
pub fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|columns| columns.trim().parse().ok()) {
        return Some(columns);
    }
    if with_forwarded(|_| ()).is_some() || !std::io::stdout().is_terminal() {
        return None;
    }
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills the winsize it is given; stdout is a terminal.
    let answered = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (answered && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The width a table is fitted to: the terminal's, or 80 columns off one; `None` (as wide
/// as its cells) with `--wide`.
pub fn table_width(wide: bool) -> Option<usize> {
    (!wide).then(|| terminal_width().unwrap_or(80))
}

/// `12,345,678`.
pub fn grouped(n: u64) -> String {
    cclog_projections::render::grouped(n)
}

/// `950`, `12.3K`, `4.56M`, `1.20B`: three significant digits.
pub fn compact_count(n: u64) -> String {
    let value = n as f64;
    let (scaled, unit) = match n {
        0..1_000 => return n.to_string(),
        1_000..1_000_000 => (value / 1e3, "K"),
        1_000_000..1_000_000_000 => (value / 1e6, "M"),
        _ => (value / 1e9, "B"),
    };
    let places = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.places$}{unit}")
}

/// The zone times are shown in: the client's for a command run for one, else the
/// system's (`TZ` honoured).
pub fn time_zone() -> jiff::tz::TimeZone {
    with_forwarded(|io| io.time_zone.clone())
        .flatten()
        .and_then(|name| jiff::tz::TimeZone::get(&name).ok())
        .unwrap_or_else(jiff::tz::TimeZone::system)
}

/// An RFC 3339 instant as `2026-12-03 14:05` (or, `with_seconds`, `14:05:09`) in `zone`;
/// text that is not one as it is.
pub fn local_time(at: &str, zone: &jiff::tz::TimeZone, with_seconds: bool) -> String {
    local_time_as(at, zone, if with_seconds { "%Y-%m-%d %H:%M:%S" } else { "%Y-%m-%d %H:%M" })
}

/// [`local_time`] with the zone's abbreviation at that instant: `2025-08-11 02:56 CEST`.
pub fn local_time_zoned(at: &str, zone: &jiff::tz::TimeZone) -> String {
    local_time_as(at, zone, "%Y-%m-%d %H:%M %Z")
}

/// An RFC 3339 instant in `zone`, as `format` (strftime) says; text that is not one as it is.
pub fn local_time_as(at: &str, zone: &jiff::tz::TimeZone, format: &str) -> String {
    match at.parse::<jiff::Timestamp>() {
        Ok(at) => at.to_zoned(zone.clone()).strftime(format).to_string(),
        Err(_) => at.to_string(),
    }
}

/// A time column's heading, naming the zone its times are in: `LAST (Europe/Paris)`, `LAST
/// (UTC)` — the zone's name, since its abbreviation changes with the season of each row.
pub fn time_heading(what: &str, zone: &jiff::tz::TimeZone) -> String {
    let name = match zone.iana_name() {
        Some(name) => name.to_string(),
        None => jiff::Timestamp::now().to_zoned(zone.clone()).strftime("%Z").to_string(),
    };
    format!("{what} ({name})")
}

/// A column of a [`Table`].
#[derive(Debug, Clone)]
pub struct Column {
    pub heading: String,
    /// Numbers are right-aligned.
    pub numeric: bool,
    /// Columns are dropped highest first while a table is too wide; 0: never dropped.
    pub drop_rank: u8,
    /// The one column that is cut (with `…`) to what the others leave of the width, and
    /// the characters it keeps at least: columns are dropped until it has them.
    pub flexible: Option<usize>,
}

impl Column {
    pub fn text(heading: &str) -> Column {
        Column { heading: heading.to_string(), numeric: false, drop_rank: 0, flexible: None }
    }

    pub fn number(heading: &str) -> Column {
        Column { numeric: true, ..Column::text(heading) }
    }

    /// Dropped (after any of a higher rank) when the table does not fit.
    pub fn droppable(mut self, rank: u8) -> Column {
        self.drop_rank = rank;
        self
    }

    pub fn flexible(mut self, at_least: usize) -> Column {
        self.flexible = Some(at_least);
        self
    }
}

/// A table for people: a header row, rows, an optional totals row; columns two spaces
/// apart. Within `width` (`None`: as wide as its cells), it drops columns by rank until the
/// flexible one keeps what it asks for, and then cuts that one.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    pub totals: Option<Vec<String>>,
    /// Rows printed dim (a breakdown under the row it details), by index into `rows`.
    pub dim: Vec<usize>,
}

impl Table {
    /// The table's lines: the header, the rows, the totals.
    pub fn lines(&self, width: Option<usize>) -> Vec<String> {
        let cell_width = |row: &[String], index: usize| row.get(index).map_or(0, |cell| cell.chars().count());
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|index| {
                self.rows
                    .iter()
                    .chain(self.totals.iter())
                    .map(|row| cell_width(row, index))
                    .chain([self.columns[index].heading.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut shown: Vec<usize> = (0..self.columns.len()).collect();
        let mut widths = natural.clone();
        if let Some(width) = width {
            let needed = |shown: &[usize]| -> usize {
                let cells: usize = shown
                    .iter()
                    .map(|&index| match self.columns[index].flexible {
                        Some(at_least) => natural[index].min(at_least),
                        None => natural[index],
                    })
                    .sum();
                cells + 2 * shown.len().saturating_sub(1)
            };
            while needed(&shown) > width {
                let Some(position) = (0..shown.len())
                    .filter(|&position| self.columns[shown[position]].drop_rank > 0)
                    .max_by_key(|&position| self.columns[shown[position]].drop_rank)
                else {
                    break;
                };
                shown.remove(position);
            }
            if let Some((flexible, at_least)) =
                shown.iter().find_map(|&index| self.columns[index].flexible.map(|at_least| (index, at_least)))
            {
                let others: usize = shown.iter().filter(|&&index| index != flexible).map(|&index| natural[index]).sum();
                let room = width.saturating_sub(others + 2 * shown.len().saturating_sub(1));
                widths[flexible] = natural[flexible].min(room.max(at_least.min(natural[flexible])));
            }
        }
        let render = |row: &[String]| {
            let mut line = String::new();
            for (position, &index) in shown.iter().enumerate() {
                let column = &self.columns[index];
                let cell = row.get(index).map(String::as_str).unwrap_or("");
                let cell = if cell.chars().count() > widths[index] {
                    let cut: String = cell.chars().take(widths[index].saturating_sub(1)).collect();
                    format!("{cut}…")
                } else {
                    cell.to_string()
                };
                if position > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[index].saturating_sub(cell.chars().count()));
                if column.numeric {
                    line.push_str(&pad);
                    line.push_str(&cell);
                } else {
                    line.push_str(&cell);
                    line.push_str(&pad);
                }
            }
            line.trim_end().to_string()
        };
        let headings: Vec<String> = self.columns.iter().map(|column| column.heading.clone()).collect();
        let mut lines = vec![render(&headings)];
        lines.extend(self.rows.iter().map(|row| render(row)));
        lines.extend(self.totals.iter().map(|row| render(row)));
        lines
    }

    /// Whether every line fits in `width`.
    pub fn fits(&self, width: usize) -> bool {
        self.lines(Some(width)).iter().all(|line| line.chars().count() <= width)
    }

    /// Prints the table on stdout, the header and totals in bold, `dim` rows dim.
    pub fn print(&self, width: Option<usize>) {
        let colour = colour_stdout();
        let lines = self.lines(width);
        let last = lines.len() - 1;
        for (index, line) in lines.iter().enumerate() {
            let strong = index == 0 || (self.totals.is_some() && index == last);
            let dim = index > 0 && self.dim.contains(&(index - 1));
            let style = if strong {
                Some(BOLD)
            } else if dim {
                Some(DIM)
            } else {
                None
            };
            crate::outln!("{}", style.map_or_else(|| line.clone(), |style| paint(colour, style, line)));
        }
    }
}

/// Prints `label`, padded to `label_width`, and `value` wrapped at spaces within `width`,
/// its next lines under its first (a word longer than the room keeps a line of its own);
/// `label` may be painted, its padding counts what is visible.
pub fn labelled(label: &str, label_width: usize, value: &str, width: Option<usize>) {
    for line in labelled_lines(label, label_width, value, width) {
        crate::outln!("{line}");
    }
}

fn labelled_lines(label: &str, label_width: usize, value: &str, width: Option<usize>) -> Vec<String> {
    let room = width.map_or(usize::MAX, |width| width.saturating_sub(label_width).max(20));
    let mut lines = vec![String::new()];
    for word in value.split(' ') {
        let Some(last) = lines.last_mut() else { break };
        if last.is_empty() || last.chars().count() + 1 + word.chars().count() <= room {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        } else {
            lines.push(word.to_string());
        }
    }
    let visible = visible_width(label);
    let pad = " ".repeat(label_width.saturating_sub(visible).max(usize::from(visible >= label_width)));
    let indent = " ".repeat(label_width);
    lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| if index == 0 { format!("{label}{pad}{line}") } else { format!("{indent}{line}") })
        .collect()
}

/// Characters a terminal shows of `text`: its ANSI colour sequences take none.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// The last components of a path that fit in `width`, cut from the left: `src/handy-cli`
/// for `/home/someone/src/handy-cli` in 16, `…y-long-name` when even the last one is wider.
pub fn path_tail(path: &str, width: usize) -> String {
    let path = path.trim_end_matches('/');
    if path.chars().count() <= width {
        return path.to_string();
    }
    let mut tail = String::new();
    for component in path.rsplit('/').filter(|component| !component.is_empty()) {
        let candidate = if tail.is_empty() { component.to_string() } else { format!("{component}/{tail}") };
        if candidate.chars().count() + 2 > width {
            break;
        }
        tail = candidate;
    }
    if tail.is_empty() {
        let last = path.rsplit('/').next().unwrap_or(path);
        let keep: String =
            last.chars().rev().take(width.saturating_sub(1)).collect::<Vec<_>>().into_iter().rev().collect();
        return format!("…{keep}");
    }
    format!("…/{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec![
                Column::text("ID"),
                Column::number("TOKENS").droppable(1),
                Column::number("COST"),
                Column::text("TITLE").flexible(8),
            ],
            rows: vec![
                vec!["a1".into(), "12,345".into(), "$1.00".into(), "a title much longer than the room left".into()],
                vec!["b2".into(), "7".into(), "$10.25".into(), "short".into()],
            ],
            totals: Some(vec!["TOTAL".into(), "12,352".into(), "$11.25".into(), String::new()]),
            dim: Vec::new(),
        }
    }

    #[test]
    fn a_labelled_value_wraps_under_itself_and_a_painted_label_pads_as_it_shows() {
        let lines = labelled_lines("title", 11, "one two three four five six seven", Some(40));
        assert_eq!(lines, ["title      one two three four five six", "           seven"]);
        let painted = labelled_lines(&paint(true, RED, "left"), 11, "x", Some(40));
        assert_eq!(painted, [format!("{}       x", paint(true, RED, "left"))]);
        assert_eq!(labelled_lines("file", 11, &"a".repeat(50), Some(40)), [format!("file       {}", "a".repeat(50))]);
        assert_eq!(labelled_lines("a-very-long-label", 11, "x", None), ["a-very-long-label x"]);
    }

    #[test]
    fn a_table_fits_its_width_by_cutting_the_flexible_column_then_dropping_by_rank() {
        let wide = table().lines(None);
        assert_eq!(wide[1], "a1     12,345   $1.00  a title much longer than the room left");
        let cut = table().lines(Some(40));
        assert!(cut.iter().all(|line| line.chars().count() <= 40), "{cut:#?}");
        assert_eq!(cut[0], "ID     TOKENS    COST  TITLE");
        assert!(cut[1].ends_with('…') && cut[1].contains("12,345"), "{cut:#?}");
        // Too narrow for TOKENS and an 8-character title: TOKENS goes first.
        let narrow = table().lines(Some(26));
        assert_eq!(narrow[0], "ID       COST  TITLE");
        assert!(narrow.iter().all(|line| line.chars().count() <= 26), "{narrow:#?}");
        assert_eq!(narrow[3], "TOTAL  $11.25");
    }

    #[test]
    fn a_path_keeps_its_last_components() {
        assert_eq!(path_tail("/home/someone/src/handy-cli", 16), "…/src/handy-cli");
        assert_eq!(path_tail("/srv/app", 16), "/srv/app");
        assert_eq!(path_tail("/a/an-extremely-long-folder-name", 10), "…lder-name");
    }
}
