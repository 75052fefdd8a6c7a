//! Terminal concerns: whether to colour, progress bars on stderr, and formatting of times,
//! byte counts and payload previews.

use std::io::IsTerminal;

/// Colour only on a terminal and never with `NO_COLOR` set.
pub fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// The same rule for stderr.
pub fn colour_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
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

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
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
    if !std::io::stderr().is_terminal() {
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
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// "1 event", "2 events".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
