//! Renders transcript entries as a readable conversation, as plain (optionally coloured)
//! text for a terminal or as Markdown: user turns, assistant text, tool calls with their
//! inputs, tool results (shortened unless asked for whole), thinking folded to a line.
//! Metadata entries (titles, snapshots, queue operations, ...) are not part of the
//! conversation and render as nothing.

use serde_json::Value;

use crate::lineage::Entry;

/// Output format of a rendered conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
}

/// How to render.
#[derive(Debug, Clone)]
pub struct Style {
    pub format: Format,
    /// ANSI colour (text only).
    pub colour: bool,
    /// Show tool results and thinking whole.
    pub full: bool,
    /// The zone of each entry's time (`2026-12-01 11:00:00 CET`).
    pub zone: jiff::tz::TimeZone,
}

impl Style {
    /// No colour, times in UTC: what the API serves.
    pub fn plain(format: Format, full: bool) -> Style {
        Style { format, colour: false, full, zone: jiff::tz::TimeZone::UTC }
    }
}

const RESULT_LINES: usize = 12;

/// `12,345,678`: a count as people read it, on every surface.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn paint(style: &Style, code: &str, text: &str) -> String {
    if style.colour && style.format == Format::Text {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn shorten_block(text: &str, full: bool) -> String {
    fold(text, full, RESULT_LINES)
}

/// A long block folded to its first `max_lines` lines, each cut at [`LINE_CHARS`]
/// characters (a tool's input is often one line of thousands) — unless `full`.
pub(crate) fn fold(text: &str, full: bool, max_lines: usize) -> String {
    if full {
        return text.trim_end().to_string();
    }
    let lines: Vec<String> = text.trim_end().lines().map(shorten_line).collect();
    if lines.len() <= max_lines {
        return lines.join("\n");
    }
    format!("{}\n… {} more lines (--full shows them)", lines[..max_lines].join("\n"), lines.len() - max_lines)
}

/// Lines longer than this many characters are cut when a block is folded.
const LINE_CHARS: usize = 400;

fn shorten_line(line: &str) -> String {
    let length = line.chars().count();
    if length <= LINE_CHARS {
        return line.to_string();
    }
    let kept: String = line.chars().take(LINE_CHARS).collect();
    format!("{kept}… ({} more characters; --full shows them)", length - LINE_CHARS)
}

/// A tool result's content as text: its text blocks, other blocks named (`[image]`).
pub(crate) fn result_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block["type"].as_str() {
                Some("text") => block["text"].as_str().unwrap_or_default().to_string(),
                Some(other) => format!("[{other}]"),
                None => block.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An entry's RFC 3339 time as `2026-12-01 11:00:00 CET` in `zone`; other text as it is.
fn local_time(at: &str, zone: &jiff::tz::TimeZone) -> String {
    match at.parse::<jiff::Timestamp>() {
        Ok(at) => at.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => at.to_string(),
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}")).collect::<Vec<_>>().join("\n")
}

/// One entry as text; empty for entries that are not conversation.
pub fn render_entry(entry: &Entry, style: &Style) -> String {
    let markdown = style.format == Format::Markdown;
    let side = if entry.is_sidechain() { " (subagent)" } else { "" };
    let time = entry.value["timestamp"].as_str().map(|at| local_time(at, &style.zone)).unwrap_or_default();
    let mut parts: Vec<String> = Vec::new();
    let heading = |who: &str, code: &str| {
        if markdown {
            format!("### {who}{side} · {time}")
        } else {
            paint(style, code, &format!("── {who}{side} {time}"))
        }
    };
    let content = &entry.value["message"]["content"];
    match entry.kind.as_str() {
        "user" | "assistant" => {
            let who = if entry.kind == "user" { "User" } else { "Assistant" };
            let code = if entry.kind == "user" { "1;32" } else { "1;36" };
            let blocks: Vec<Value> = match content {
                Value::String(text) => vec![serde_json::json!({"type": "text", "text": text})],
                Value::Array(blocks) => blocks.clone(),
                _ => Vec::new(),
            };
            let mut body = Vec::new();
            for block in &blocks {
                match block["type"].as_str() {
                    Some("text") => body.push(block["text"].as_str().unwrap_or_default().trim_end().to_string()),
                    Some("thinking") => {
                        let thinking = block["thinking"].as_str().unwrap_or_default();
                        body.push(if style.full {
                            paint(style, "2", &format!("(thinking)\n{thinking}"))
                        } else {
                            paint(style, "2", &format!("(thinking, {} characters folded)", thinking.chars().count()))
                        });
                    }
                    Some("tool_use") => {
                        let name = block["name"].as_str().unwrap_or("tool");
                        let input = shorten_block(
                            &serde_json::to_string_pretty(&block["input"]).unwrap_or_default(),
                            style.full,
                        );
                        body.push(if markdown {
                            format!("**Tool call `{name}`**\n\n```json\n{input}\n```")
                        } else {
                            format!("{}\n{}", paint(style, "33", &format!("→ {name}")), indent(&input, "  "))
                        });
                    }
                    Some("tool_result") => {
                        let error = block["is_error"].as_bool().unwrap_or(false);
                        let text = shorten_block(&result_text(&block["content"]), style.full);
                        let label = if error { "← tool error" } else { "← tool result" };
                        body.push(if markdown {
                            format!("**{}**\n\n```\n{text}\n```", label.trim_start_matches("← "))
                        } else {
                            format!("{}\n{}", paint(style, if error { "31" } else { "2" }, label), indent(&text, "  "))
                        });
                    }
                    Some("image") => body.push("[image]".into()),
                    _ => {}
                }
            }
            if body.iter().all(|part| part.trim().is_empty()) {
                return String::new();
            }
            parts.push(heading(who, code));
            parts.extend(body);
        }
        "system" => {
            let text = entry.value["content"].as_str().unwrap_or_default();
            let subtype = entry.value["subtype"].as_str().unwrap_or("system");
            if subtype == "compact_boundary" || !text.is_empty() {
                parts.push(heading(&format!("System: {subtype}"), "35"));
                if !text.is_empty() {
                    parts.push(shorten_block(text, style.full));
                }
            }
        }
        "summary" => {
            if let Some(summary) = entry.value["summary"].as_str() {
                parts.push(if markdown {
                    format!("> Summary: {summary}")
                } else {
                    paint(style, "2", &format!("Summary: {summary}"))
                });
            }
        }
        "" if entry.value.is_null() => {
            parts.push(paint(style, "31", &format!("[malformed line at seq {}]", entry.line.seq)));
        }
        _ => {}
    }
    if parts.is_empty() {
        String::new()
    } else {
        parts.join("\n") + "\n\n"
    }
}

/// The session's main transcript, rendered in `style` (Markdown as the document of
/// [`crate::markdown`]), or — with no style — byte for byte as Claude Code wrote it (a
/// fork's shared prefix rebuilt through its pointer).
pub fn session_replay(
    log: &cclog_engine::Log,
    session: &crate::archive::SessionRecord,
    style: Option<&Style>,
    prices: &crate::pricing::PriceTable,
) -> crate::Result<Vec<u8>> {
    use crate::archive::Archive;
    use crate::Error;
    let path =
        session.main_file().ok_or_else(|| Error::NotFound { what: "transcript of session", id: session.id.clone() })?;
    let file =
        Archive::file(log, path)?.ok_or_else(|| Error::NotFound { what: "archived file", id: path.to_string() })?;
    let mut out = Vec::new();
    match style {
        None => crate::replay::write_file(log, &file, None, &mut out)?,
        Some(style) if style.format == Format::Markdown => {
            let mut entries = Vec::new();
            crate::replay::for_each_line(log, &file, None, |line| {
                entries.push(Entry::from_line(line));
                Ok(())
            })?;
            let options = crate::markdown::Options { full: style.full, ..Default::default() };
            out = crate::markdown::document(session, &entries, prices, options).into_bytes();
        }
        Some(style) => crate::replay::for_each_line(log, &file, None, |line| {
            out.extend_from_slice(render_entry(&Entry::from_line(line), style).as_bytes());
            Ok(())
        })?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Line;

    fn write_call(content: &str) -> Entry {
        let value = serde_json::json!({
            "type": "assistant", "uuid": "u1", "timestamp": "2026-12-01T10:00:00.000Z",
            "message": {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": "/tmp/a.rs", "content": content}},
            ]},
        });
        Entry::from_line(Line {
            bytes: value.to_string().into_bytes(),
            seq: 0,
            copied: false,
            origin: 0,
            terminated: true,
        })
    }

    #[test]
    fn a_long_tool_input_is_folded_as_a_long_result_is_unless_full() {
        let content = "x".repeat(22_025);
        let folded = render_entry(&write_call(&content), &Style::plain(Format::Text, false));
        assert!(folded.lines().all(|line| line.chars().count() < LINE_CHARS + 80), "{folded}");
        let cut = folded.lines().find(|line| line.contains("more characters; --full shows them")).expect("a cut line");
        assert!(cut.trim_start().starts_with(r#""content": "xxx"#), "{cut}");
        let whole = render_entry(&write_call(&content), &Style::plain(Format::Markdown, true));
        assert!(whole.contains(&content), "--full keeps every character");
    }
}
