//! One line of a Claude Code transcript, read as little as cclog needs. The raw bytes are
//! what the log stores; this module only looks into them: [`EntryFacts`] borrows the few
//! fields the read models fold (type, uuid, parent, session, time, model, usage, titles),
//! and [`TopLevel`] finds the byte span of each top-level value so that a copied entry can
//! be described as "the original with these values replaced" and rebuilt byte for byte.
//!
//! A line that is not a JSON object is still a line: it is stored and replayed like any
//! other and counted as malformed.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Entry types this version of cclog knows the meaning of. Anything else is kept, replayed
/// and counted as unknown; it is never an error.
pub const KNOWN_TYPES: &[&str] = &[
    "user",
    "assistant",
    "system",
    "attachment",
    "progress",
    "summary",
    "queue-operation",
    "last-prompt",
    "mode",
    "file-history-snapshot",
    "ai-title",
    "custom-title",
    "atis-latch",
    "api-request",
    "api-request-blob",
    "api-request-shape",
    "tools-used",
    "cost-state",
    "agent-name",
    "tag",
    "pr-link",
];

/// The fields of a transcript entry the read models use, borrowed from the line.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryFacts<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub subtype: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub parent_uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub logical_parent_uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub cwd: Option<Cow<'a, str>>,
    #[serde(default)]
    pub is_sidechain: Option<bool>,
    #[serde(borrow, default)]
    pub agent_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub summary: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub ai_title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub custom_title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub message: Option<MessageFacts<'a>>,
    #[serde(borrow, default)]
    pub tool_use_result: Option<ToolUseResultFacts<'a>>,
}

/// The API message inside a `user` or `assistant` entry.
#[derive(Debug, Default, Deserialize)]
pub struct MessageFacts<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(borrow, default)]
    pub content: Option<&'a RawValue>,
}

/// What a tool result says about the tool run; an `Agent`/`Task` result names the
/// subagent it started.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseResultFacts<'a> {
    #[serde(borrow, default)]
    pub agent_id: Option<Cow<'a, str>>,
}

/// Token usage of one API message, as Claude Code records it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }

    pub fn subtract(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_sub(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(other.output_tokens);
        self.cache_creation_input_tokens =
            self.cache_creation_input_tokens.saturating_sub(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self.cache_read_input_tokens.saturating_sub(other.cache_read_input_tokens);
    }

    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }
}

/// How a line parses.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A JSON object; its facts.
    Entry(Box<EntryFacts<'a>>),
    /// Not UTF-8, not JSON, or not an object.
    Malformed(&'static str),
}

/// Reads the facts of one line (without its newline).
pub fn parse(line: &[u8]) -> Parsed<'_> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Parsed::Malformed("not UTF-8");
    };
    if !text.trim_start().starts_with('{') {
        return Parsed::Malformed("not a JSON object");
    }
    match serde_json::from_str::<EntryFacts<'_>>(text) {
        Ok(facts) => Parsed::Entry(Box::new(facts)),
        Err(_) => Parsed::Malformed("not valid JSON"),
    }
}

impl EntryFacts<'_> {
    /// Whether the entry's type is one cclog knows.
    pub fn is_known_type(&self) -> bool {
        self.kind.as_deref().is_some_and(|kind| KNOWN_TYPES.contains(&kind))
    }

    /// The entry this one follows in its conversation: `parentUuid`, or across a compaction
    /// boundary `logicalParentUuid`.
    pub fn chain_parent(&self) -> Option<&str> {
        self.parent_uuid.as_deref().or(self.logical_parent_uuid.as_deref())
    }
}

/// A top-level field of an object line: its key and the byte span of its raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub key: String,
    pub start: usize,
    pub end: usize,
}

/// The top-level fields of a JSON object line, in order, with the byte spans of their
/// values in that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopLevel {
    pub fields: Vec<Field>,
}

/// How a copied entry differs from its original: a few top-level values replaced, and
/// possibly top-level fields appended at the end (Claude Code 2.1 adds
/// `requestSessionId` to copied assistant entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Rewrite {
    /// `(key, raw JSON of the new value)`.
    pub replace: Vec<(String, String)>,
    /// Raw bytes inserted after the last original field, e.g. `,"k":"v"`.
    pub append: String,
}

/// A copy run's rewrites, one per entry type (keyed by the raw JSON of the `type` value,
/// `""` for none): copies of a user entry and of an assistant entry differ differently.
pub type Variants = Vec<(String, Rewrite)>;

/// A copy may only differ in small top-level values (a session id, a prompt id); a line
/// that differs in more, or in something large, is a different entry and stored whole.
const MAX_REWRITTEN_FIELDS: usize = 4;
const MAX_REWRITTEN_VALUE: usize = 256;
const MAX_APPENDED: usize = 512;
/// Fields that make an entry what it is; a line that differs in one of them is not a copy.
const IDENTITY_FIELDS: &[&str] = &["type", "uuid", "parentUuid", "message", "content", "toolUseResult"];

impl TopLevel {
    /// `None` when the line is not a JSON object.
    pub fn parse(line: &[u8]) -> Option<TopLevel> {
        let text = std::str::from_utf8(line).ok()?;
        let base = text.as_ptr() as usize;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let raw = deserializer.deserialize_map(FieldsVisitor).ok()?;
        deserializer.end().ok()?;
        let fields = raw
            .into_iter()
            .map(|(key, value)| {
                let start = value.get().as_ptr() as usize - base;
                Field { key: key.into_owned(), start, end: start + value.get().len() }
            })
            .collect();
        Some(TopLevel { fields })
    }

    /// The raw JSON of the `type` value, `""` when there is none.
    pub fn type_key<'l>(&self, line: &'l [u8]) -> &'l [u8] {
        self.fields.iter().find(|field| field.key == "type").map_or(&[], |field| &line[field.start..field.end])
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(fields)
    }
}

fn splice(original: &[u8], top: &TopLevel, rewrite: &Rewrite) -> Vec<u8> {
    let mut out = Vec::with_capacity(original.len() + rewrite.append.len() + 16);
    let mut at = 0;
    for field in &top.fields {
        if let Some((_, value)) = rewrite.replace.iter().find(|(key, _)| *key == field.key) {
            out.extend_from_slice(&original[at..field.start]);
            out.extend_from_slice(value.as_bytes());
            at = field.end;
        }
    }
    let insert_at = top.fields.last().map_or(at, |field| field.end.max(at));
    out.extend_from_slice(&original[at..insert_at]);
    out.extend_from_slice(rewrite.append.as_bytes());
    out.extend_from_slice(&original[insert_at..]);
    out
}

/// `original` with `rewrite` applied, byte for byte elsewhere. `None` if the original is
/// not an object.
pub fn apply_rewrite(original: &[u8], rewrite: &Rewrite) -> Option<Vec<u8>> {
    if rewrite.replace.is_empty() && rewrite.append.is_empty() {
        return Some(original.to_vec());
    }
    Some(splice(original, &TopLevel::parse(original)?, rewrite))
}

/// `original` with the variant for its type applied; `None` if there is none for it.
pub fn apply_variants(original: &[u8], variants: &Variants) -> Option<Vec<u8>> {
    let top = TopLevel::parse(original)?;
    let kind = top.type_key(original);
    let (_, rewrite) = variants.iter().find(|(key, _)| key.as_bytes() == kind)?;
    Some(splice(original, &top, rewrite))
}

/// If `copy` is `original` with a few small top-level values replaced and perhaps a few
/// fields appended, that rewrite: applying it to `original` gives `copy` exactly.
pub fn rewrite_between(original: &[u8], copy: &[u8]) -> Option<Rewrite> {
    if original == copy {
        return Some(Rewrite::default());
    }
    let (from, to) = (TopLevel::parse(original)?, TopLevel::parse(copy)?);
    if to.fields.len() < from.fields.len() {
        return None;
    }
    let mut rewrite = Rewrite::default();
    for (a, b) in from.fields.iter().zip(&to.fields) {
        if a.key != b.key {
            return None;
        }
        let (old, new) = (&original[a.start..a.end], &copy[b.start..b.end]);
        if old != new {
            if new.len() > MAX_REWRITTEN_VALUE
                || rewrite.replace.len() == MAX_REWRITTEN_FIELDS
                || IDENTITY_FIELDS.contains(&b.key.as_str())
            {
                return None;
            }
            rewrite.replace.push((b.key.clone(), String::from_utf8(new.to_vec()).ok()?));
        }
    }
    if let (Some(last_shared), Some(last)) = (to.fields.get(from.fields.len().wrapping_sub(1)), to.fields.last()) {
        if to.fields.len() > from.fields.len() {
            if to.fields[from.fields.len()..].iter().any(|field| IDENTITY_FIELDS.contains(&field.key.as_str())) {
                return None;
            }
            let appended = &copy[last_shared.end..last.end];
            if appended.len() > MAX_APPENDED {
                return None;
            }
            rewrite.append = String::from_utf8(appended.to_vec()).ok()?;
        }
    } else if to.fields.len() > from.fields.len() {
        return None;
    }
    (splice(original, &from, &rewrite).as_slice() == copy).then_some(rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_described_by_its_replaced_values_and_rebuilt_exactly() {
        let original = br#"{"parentUuid":null, "uuid":"u1","sessionId":"s1","message":{"sessionId":"s1"}}"#;
        let copy = br#"{"parentUuid":null, "uuid":"u1","sessionId":"s2","message":{"sessionId":"s1"}}"#;
        let rewrite = rewrite_between(original, copy).unwrap();
        assert_eq!(rewrite.replace, vec![("sessionId".to_string(), "\"s2\"".to_string())]);
        assert_eq!(apply_rewrite(original, &rewrite).unwrap(), copy.to_vec());
        let grown = br#"{"parentUuid":null, "uuid":"u1","sessionId":"s2","message":{"sessionId":"s1"},"requestSessionId":"s1"}"#;
        let rewrite = rewrite_between(original, grown).unwrap();
        assert_eq!(rewrite.append, r#","requestSessionId":"s1""#);
        assert_eq!(apply_rewrite(original, &rewrite).unwrap(), grown.to_vec());
    }

    #[test]
    fn different_content_is_not_a_copy() {
        let original = br#"{"uuid":"u1","message":{"content":"a"}}"#;
        let copy = br#"{"uuid":"u1","message":{"content":"b"}}"#;
        assert_eq!(rewrite_between(original, copy), None);
        let small = br#"{"uuid":"u1","promptId":"p1"}"#;
        let long = format!(r#"{{"uuid":"u1","promptId":"{}"}}"#, "x".repeat(300));
        assert_eq!(rewrite_between(small, long.as_bytes()), None);
        assert_eq!(rewrite_between(original, br#"{"message":{"content":"a"},"uuid":"u1"}"#), None);
    }

    #[test]
    fn facts_are_read_and_bad_lines_are_named() {
        let line = br#"{"type":"assistant","uuid":"u","message":{"id":"m","model":"claude","usage":{"input_tokens":3,"output_tokens":4}},"extra":[1,2]}"#;
        let Parsed::Entry(facts) = parse(line) else { panic!("should parse") };
        assert_eq!(facts.message.as_ref().unwrap().usage.unwrap().output_tokens, 4);
        assert!(matches!(parse(b"{\"type\":"), Parsed::Malformed("not valid JSON")));
        assert!(matches!(parse(b"\xff\xfe"), Parsed::Malformed("not UTF-8")));
        assert!(matches!(parse(b"[1]"), Parsed::Malformed("not a JSON object")));
    }
}
