//! One line of a Claude Code transcript, read as little as cclog needs. The raw bytes are
//! what the log stores; this module only looks into them: [`EntryFacts`] borrows the few
//! fields the read models fold (type, uuid, parent, session, time, model, usage, titles),
//! and [`TopLevel`] finds the byte span of each top-level value so that a copied entry can
//! be described as "the original with these values replaced" and rebuilt byte for byte.
//!
//! A line that is not a JSON object is still a line: it is stored and replayed like any
//! other and counted as malformed. A JSON object is always an entry: a fact whose value
//! has an unexpected type is skipped and named (`EntryFacts::drifted`), never fatal.

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
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
///
/// Each fact is read on its own: a field whose value has a type this version does not
/// expect (schema drift in a new Claude Code, or an old one's other shape) is skipped and
/// named in `drifted`, and every other fact of the line is still read. Only a line that is
/// not a JSON object is malformed.
#[derive(Debug, Default)]
pub struct EntryFacts<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub subtype: Option<Cow<'a, str>>,
    pub uuid: Option<Cow<'a, str>>,
    pub parent_uuid: Option<Cow<'a, str>>,
    pub logical_parent_uuid: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    pub timestamp: Option<Cow<'a, str>>,
    pub cwd: Option<Cow<'a, str>>,
    pub is_sidechain: Option<bool>,
    /// Claude Code's own messages in the user's place (caveats, command output).
    pub is_meta: Option<bool>,
    pub agent_id: Option<Cow<'a, str>>,
    pub summary: Option<Cow<'a, str>>,
    pub ai_title: Option<Cow<'a, str>>,
    pub custom_title: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub message: Option<MessageFacts<'a>>,
    pub tool_use_result: Option<ToolUseResultFacts<'a>>,
    /// The fields (dotted paths, `message.usage.input_tokens`) whose values had a type
    /// this version does not expect, and were skipped.
    pub drifted: Vec<&'static str>,
}

/// The API message inside a `user` or `assistant` entry.
#[derive(Debug, Default)]
pub struct MessageFacts<'a> {
    pub id: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    pub usage: Option<ReportedUsage>,
    pub content: Option<&'a RawValue>,
}

/// What a tool result says about the tool run; an `Agent`/`Task` result names the
/// subagent it started.
#[derive(Debug, Default)]
pub struct ToolUseResultFacts<'a> {
    pub agent_id: Option<Cow<'a, str>>,
}

/// Token usage of one API request, as Claude Code records it in `message.usage`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReportedUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// `cache_creation`: the cache writes kept 5 minutes and kept 1 hour, where Claude Code
    /// records the split (it bills them differently).
    pub cache_creation: Option<(u64, u64)>,
    /// `speed: "fast"`: a fast-mode request, billed at a multiple.
    pub fast: bool,
}

impl ReportedUsage {
    /// Reads `message.usage` from a parsed JSON value, leniently as [`parse`] does.
    pub fn from_json(value: &serde_json::Value) -> Option<ReportedUsage> {
        Nested::<ReportedUsage>::deserialize(value).ok()?.value
    }
}

/// Tokens, summed over requests, of the kind a price applies to, and per kind those beyond
/// each request's first [`LONG_CONTEXT_TOKENS`] (priced at the long-context rate where a
/// model has one): sums of requests that price exactly.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Cache writes, both durations.
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Of `cache_creation_input_tokens`, the writes kept an hour.
    pub cache_creation_1h_input_tokens: u64,
    pub above_200k: TokensAbove,
}

/// Per kind, the tokens of requests beyond their first [`LONG_CONTEXT_TOKENS`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensAbove {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// Where a request's long-context tier begins, per kind of token (as LiteLLM's
/// `…_above_200k_tokens` prices, and ccusage, apply it).
pub const LONG_CONTEXT_TOKENS: u64 = 200_000;

impl TokensAbove {
    fn add(&mut self, other: &TokensAbove) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_write_5m_tokens += other.cache_write_5m_tokens;
        self.cache_write_1h_tokens += other.cache_write_1h_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }

    fn subtract(&mut self, other: &TokensAbove) {
        self.input_tokens = self.input_tokens.saturating_sub(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(other.output_tokens);
        self.cache_write_5m_tokens = self.cache_write_5m_tokens.saturating_sub(other.cache_write_5m_tokens);
        self.cache_write_1h_tokens = self.cache_write_1h_tokens.saturating_sub(other.cache_write_1h_tokens);
        self.cache_read_input_tokens = self.cache_read_input_tokens.saturating_sub(other.cache_read_input_tokens);
    }
}

impl Usage {
    /// One request's usage. Where Claude Code records the 5-minute/1-hour split, the cache
    /// writes are its sum (as ccusage counts them).
    pub fn of_request(reported: &ReportedUsage) -> Usage {
        let (write_5m, write_1h) = reported.cache_creation.unwrap_or((reported.cache_creation_input_tokens, 0));
        let above = |tokens: u64| tokens.saturating_sub(LONG_CONTEXT_TOKENS);
        Usage {
            input_tokens: reported.input_tokens,
            output_tokens: reported.output_tokens,
            cache_creation_input_tokens: write_5m.saturating_add(write_1h),
            cache_read_input_tokens: reported.cache_read_input_tokens,
            cache_creation_1h_input_tokens: write_1h,
            above_200k: TokensAbove {
                input_tokens: above(reported.input_tokens),
                output_tokens: above(reported.output_tokens),
                cache_write_5m_tokens: above(write_5m),
                cache_write_1h_tokens: above(write_1h),
                cache_read_input_tokens: above(reported.cache_read_input_tokens),
            },
        }
    }

    /// The usage a run's `result` reports: the sum of requests it does not split, so none of
    /// its tokens is known to lie beyond a request's first 200,000.
    pub fn of_requests(reported: &ReportedUsage) -> Usage {
        Usage { above_200k: TokensAbove::default(), ..Usage::of_request(reported) }
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_creation_1h_input_tokens += other.cache_creation_1h_input_tokens;
        self.above_200k.add(&other.above_200k);
    }

    pub fn subtract(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_sub(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(other.output_tokens);
        self.cache_creation_input_tokens =
            self.cache_creation_input_tokens.saturating_sub(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self.cache_read_input_tokens.saturating_sub(other.cache_read_input_tokens);
        self.cache_creation_1h_input_tokens =
            self.cache_creation_1h_input_tokens.saturating_sub(other.cache_creation_1h_input_tokens);
        self.above_200k.subtract(&other.above_200k);
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
    let mut deserializer = serde_json::Deserializer::from_str(text);
    match deserializer.deserialize_map(EntryVisitor).and_then(|facts| deserializer.end().map(|()| facts)) {
        Ok(facts) => Parsed::Entry(Box::new(facts)),
        Err(_) => Parsed::Malformed("not valid JSON"),
    }
}

/// A value as the line has it, whatever its type: what a fact takes from it. Arrays and
/// objects are read through and kept as `Other`.
enum Leaf<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Text(Cow<'a, str>),
    Other,
}

impl<'de> Deserialize<'de> for Leaf<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LeafVisitor)
    }
}

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Leaf<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Null)
    }

    fn visit_none<E>(self) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Unsigned(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Leaf<'de>, E> {
        Ok(u64::try_from(value).map_or(Leaf::Other, Leaf::Unsigned))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Other)
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Text(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Text(Cow::Owned(value.to_string())))
    }

    fn visit_string<E>(self, value: String) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Text(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Leaf<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }
}

/// A string fact: null or absent is `None`; any other type drifted.
fn text<'a>(leaf: Leaf<'a>, field: &'static str, drifted: &mut Vec<&'static str>) -> Option<Cow<'a, str>> {
    match leaf {
        Leaf::Text(text) => Some(text),
        Leaf::Null => None,
        _ => {
            drifted.push(field);
            None
        }
    }
}

/// A flag: null or absent is `None`; any other type drifted.
fn flag(leaf: Leaf<'_>, field: &'static str, drifted: &mut Vec<&'static str>) -> Option<bool> {
    match leaf {
        Leaf::Bool(value) => Some(value),
        Leaf::Null => None,
        _ => {
            drifted.push(field);
            None
        }
    }
}

/// A count: null or absent is 0; any other type drifted.
fn count(leaf: Leaf<'_>, field: &'static str, drifted: &mut Vec<&'static str>) -> u64 {
    match leaf {
        Leaf::Unsigned(value) => value,
        Leaf::Null => 0,
        _ => {
            drifted.push(field);
            0
        }
    }
}

/// An object fact: the visitor reads the object's fields; a value of another type is
/// read through and named as drifted (unless `other_shapes_expected`).
struct Nested<T> {
    value: Option<T>,
    drifted: Vec<&'static str>,
}

trait NestedFields<'de>: Default {
    /// The field's dotted name, for `drifted`.
    const NAME: &'static str;
    /// Whether a value that is not an object is one of the shapes Claude Code writes (no
    /// drift, no facts).
    const OTHER_SHAPES_EXPECTED: bool = false;
    fn read<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        drifted: &mut Vec<&'static str>,
    ) -> Result<(), A::Error>;
}

impl<'de, T: NestedFields<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NestedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: NestedFields<'de>> Visitor<'de> for NestedVisitor<T> {
            type Value = Nested<T>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nested<T>, A::Error> {
                let mut value = T::default();
                let mut drifted = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    value.read(&key, &mut map, &mut drifted)?;
                }
                Ok(Nested { value: Some(value), drifted })
            }

            fn visit_unit<E>(self) -> Result<Nested<T>, E> {
                Ok(Nested { value: None, drifted: Vec::new() })
            }

            fn visit_none<E>(self) -> Result<Nested<T>, E> {
                Ok(Nested { value: None, drifted: Vec::new() })
            }

            fn visit_bool<E>(self, _: bool) -> Result<Nested<T>, E> {
                Ok(Self::other())
            }

            fn visit_u64<E>(self, _: u64) -> Result<Nested<T>, E> {
                Ok(Self::other())
            }

            fn visit_i64<E>(self, _: i64) -> Result<Nested<T>, E> {
                Ok(Self::other())
            }

            fn visit_f64<E>(self, _: f64) -> Result<Nested<T>, E> {
                Ok(Self::other())
            }

            fn visit_str<E>(self, _: &str) -> Result<Nested<T>, E> {
                Ok(Self::other())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nested<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Self::other())
            }
        }
        impl<'de, T: NestedFields<'de>> NestedVisitor<T> {
            fn other() -> Nested<T> {
                let drifted = if T::OTHER_SHAPES_EXPECTED { Vec::new() } else { vec![T::NAME] };
                Nested { value: None, drifted }
            }
        }
        deserializer.deserialize_any(NestedVisitor(std::marker::PhantomData))
    }
}

impl<'de> NestedFields<'de> for MessageFacts<'de> {
    const NAME: &'static str = "message";

    fn read<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        drifted: &mut Vec<&'static str>,
    ) -> Result<(), A::Error> {
        match key {
            "id" => self.id = text(map.next_value()?, "message.id", drifted),
            "model" => self.model = text(map.next_value()?, "message.model", drifted),
            "usage" => {
                let usage: Nested<ReportedUsage> = map.next_value()?;
                drifted.extend(usage.drifted);
                self.usage = usage.value;
            }
            "content" => self.content = Some(map.next_value::<&'de RawValue>()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> NestedFields<'de> for ToolUseResultFacts<'de> {
    const NAME: &'static str = "toolUseResult";
    // Claude Code 1.0 writes some tool results as a plain string, and some as an array.
    const OTHER_SHAPES_EXPECTED: bool = true;

    fn read<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        drifted: &mut Vec<&'static str>,
    ) -> Result<(), A::Error> {
        match key {
            "agentId" => self.agent_id = text(map.next_value()?, "toolUseResult.agentId", drifted),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> NestedFields<'de> for ReportedUsage {
    const NAME: &'static str = "message.usage";

    fn read<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        drifted: &mut Vec<&'static str>,
    ) -> Result<(), A::Error> {
        match key {
            "input_tokens" => self.input_tokens = count(map.next_value()?, "message.usage.input_tokens", drifted),
            "output_tokens" => self.output_tokens = count(map.next_value()?, "message.usage.output_tokens", drifted),
            "cache_creation_input_tokens" => {
                self.cache_creation_input_tokens =
                    count(map.next_value()?, "message.usage.cache_creation_input_tokens", drifted)
            }
            "cache_read_input_tokens" => {
                self.cache_read_input_tokens =
                    count(map.next_value()?, "message.usage.cache_read_input_tokens", drifted)
            }
            "cache_creation" => {
                let split: Nested<CacheCreation> = map.next_value()?;
                drifted.extend(split.drifted);
                self.cache_creation = split.value.map(|split| (split.ephemeral_5m, split.ephemeral_1h));
            }
            "speed" => self.fast = text(map.next_value()?, "message.usage.speed", drifted).as_deref() == Some("fast"),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `message.usage.cache_creation`.
#[derive(Default)]
struct CacheCreation {
    ephemeral_5m: u64,
    ephemeral_1h: u64,
}

impl<'de> NestedFields<'de> for CacheCreation {
    const NAME: &'static str = "message.usage.cache_creation";

    fn read<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        drifted: &mut Vec<&'static str>,
    ) -> Result<(), A::Error> {
        match key {
            "ephemeral_5m_input_tokens" => {
                self.ephemeral_5m =
                    count(map.next_value()?, "message.usage.cache_creation.ephemeral_5m_input_tokens", drifted)
            }
            "ephemeral_1h_input_tokens" => {
                self.ephemeral_1h =
                    count(map.next_value()?, "message.usage.cache_creation.ephemeral_1h_input_tokens", drifted)
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads a whole line's facts, one field at a time.
struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = EntryFacts<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryFacts<'de>, A::Error> {
        let mut facts = EntryFacts::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let drifted = &mut facts.drifted;
            match key.as_ref() {
                "type" => facts.kind = text(map.next_value()?, "type", drifted),
                "subtype" => facts.subtype = text(map.next_value()?, "subtype", drifted),
                "uuid" => facts.uuid = text(map.next_value()?, "uuid", drifted),
                "parentUuid" => facts.parent_uuid = text(map.next_value()?, "parentUuid", drifted),
                "logicalParentUuid" => {
                    facts.logical_parent_uuid = text(map.next_value()?, "logicalParentUuid", drifted)
                }
                "sessionId" => facts.session_id = text(map.next_value()?, "sessionId", drifted),
                "timestamp" => facts.timestamp = text(map.next_value()?, "timestamp", drifted),
                "cwd" => facts.cwd = text(map.next_value()?, "cwd", drifted),
                "isSidechain" => facts.is_sidechain = flag(map.next_value()?, "isSidechain", drifted),
                "isMeta" => facts.is_meta = flag(map.next_value()?, "isMeta", drifted),
                "agentId" => facts.agent_id = text(map.next_value()?, "agentId", drifted),
                "summary" => facts.summary = text(map.next_value()?, "summary", drifted),
                "aiTitle" => facts.ai_title = text(map.next_value()?, "aiTitle", drifted),
                "customTitle" => facts.custom_title = text(map.next_value()?, "customTitle", drifted),
                "title" => facts.title = text(map.next_value()?, "title", drifted),
                "message" => {
                    let message: Nested<MessageFacts<'de>> = map.next_value()?;
                    drifted.extend(message.drifted);
                    facts.message = message.value;
                }
                "toolUseResult" => {
                    let result: Nested<ToolUseResultFacts<'de>> = map.next_value()?;
                    drifted.extend(result.drifted);
                    facts.tool_use_result = result.value;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(facts)
    }
}

impl EntryFacts<'_> {
    /// Whether the entry's type is one cclog knows.
    pub fn is_known_type(&self) -> bool {
        self.kind.as_deref().is_some_and(|kind| KNOWN_TYPES.contains(&kind))
    }

    /// The first line of what the user typed, when this entry is a prompt a person wrote —
    /// not a tool result, a slash command or its output, a caveat or an interruption, nor a
    /// subagent's prompt — cut to 100 characters: a session's title when it has no other.
    pub fn first_line_of_prompt(&self) -> Option<String> {
        const NOT_TYPED: &[&str] = &[
            "<command-name>",
            "<command-message>",
            "<command-args>",
            "<local-command-stdout>",
            "<local-command-stderr>",
            "<local-command-caveat>",
            "<system-reminder>",
            "<bash-input>",
            "<bash-stdout>",
            "Caveat:",
            "[Request interrupted",
        ];
        if self.kind.as_deref() != Some("user") || self.is_meta == Some(true) || self.is_sidechain == Some(true) {
            return None;
        }
        let content = self.message.as_ref()?.content?;
        let text = match serde_json::from_str::<Cow<'_, str>>(content.get()) {
            Ok(text) => text.into_owned(),
            Err(_) => {
                #[derive(Deserialize)]
                struct Block {
                    #[serde(rename = "type")]
                    kind: Option<String>,
                    text: Option<String>,
                }
                let blocks: Vec<Block> = serde_json::from_str(content.get()).ok()?;
                if blocks.iter().any(|block| block.kind.as_deref() == Some("tool_result")) {
                    return None;
                }
                blocks.into_iter().find(|block| block.kind.as_deref() == Some("text"))?.text?
            }
        };
        let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
        if NOT_TYPED.iter().any(|marker| line.starts_with(marker)) {
            return None;
        }
        // A prompt that opens with a Markdown heading (`## Goal`) is titled by its words.
        let heading = line.trim_start_matches('#');
        let line = match heading.strip_prefix([' ', '\t']) {
            Some(words)
                if heading.len() < line.len() && line.len() - heading.len() <= 6 && !words.trim().is_empty() =>
            {
                words.trim()
            }
            _ => line,
        };
        let mut title: String = line.chars().take(100).collect();
        if line.chars().count() > 100 {
            title.push('…');
        }
        Some(title)
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

    #[test]
    fn a_tool_result_as_a_string_is_an_entry_not_a_malformed_line() {
        // Claude Code 1.0.51 writes some tool results as plain strings.
        let line = br#"{"type":"user","uuid":"u2","parentUuid":"u1","sessionId":"s","toolUseResult":"Error: no such file","message":{"role":"user","content":[]}}"#;
        let Parsed::Entry(facts) = parse(line) else { panic!("a valid JSON object is an entry") };
        assert_eq!((facts.uuid.as_deref(), facts.parent_uuid.as_deref()), (Some("u2"), Some("u1")));
        assert!(facts.tool_use_result.is_none() && facts.drifted.is_empty(), "{:?}", facts.drifted);
        let drifted = br#"{"type":"user","uuid":7,"timestamp":"t","message":{"usage":{"input_tokens":-1}}}"#;
        let Parsed::Entry(facts) = parse(drifted) else { panic!("a valid JSON object is an entry") };
        assert_eq!(facts.drifted, vec!["uuid", "message.usage.input_tokens"]);
        assert_eq!(facts.timestamp.as_deref(), Some("t"));
    }

    #[test]
    fn the_first_prompt_a_person_typed_is_a_title_and_nothing_else_is() {
        let title = |line: &str| match parse(line.as_bytes()) {
            Parsed::Entry(facts) => facts.first_line_of_prompt(),
            Parsed::Malformed(why) => panic!("{why}"),
        };
        assert_eq!(
            title(r#"{"type":"user","message":{"content":"\n  Fix the parser\nand more"}}"#),
            Some("Fix the parser".into())
        );
        assert_eq!(
            title(r#"{"type":"user","message":{"content":[{"type":"text","text":"Add a test"}]}}"#),
            Some("Add a test".into())
        );
        assert_eq!(
            title(r###"{"type":"user","message":{"content":"## Goal: ship the parser\nsteps"}}"###),
            Some("Goal: ship the parser".into())
        );
        for kept in ["#123 is flaky", "####### seven", "## "] {
            let line = format!(r#"{{"type":"user","message":{{"content":"{kept}"}}}}"#);
            assert_eq!(title(&line), Some(kept.trim().to_string()), "{kept}");
        }
        let long = format!(r#"{{"type":"user","message":{{"content":"{}"}}}}"#, "é".repeat(150));
        assert_eq!(title(&long), Some(format!("{}…", "é".repeat(100))));
        for not_typed in [
            r#"{"type":"user","message":{"content":"<command-name>/clear</command-name>"}}"#,
            r#"{"type":"user","message":{"content":"Caveat: The messages below were generated"}}"#,
            r#"{"type":"user","isMeta":true,"message":{"content":"hello"}}"#,
            r#"{"type":"user","isSidechain":true,"message":{"content":"a subagent's prompt"}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}}"#,
            r#"{"type":"user","message":{"content":"[Request interrupted by user]"}}"#,
            r#"{"type":"assistant","message":{"content":"I will"}}"#,
        ] {
            assert_eq!(title(not_typed), None, "{not_typed}");
        }
    }

    /// Every fact of a line, by the field it comes from, as text.
    fn facts_by_field(facts: &EntryFacts<'_>) -> Vec<(&'static str, &'static str, Option<String>)> {
        let text = |value: &Option<Cow<'_, str>>| value.as_deref().map(str::to_string);
        let message = facts.message.as_ref();
        vec![
            ("type", "", text(&facts.kind)),
            ("subtype", "", text(&facts.subtype)),
            ("uuid", "", text(&facts.uuid)),
            ("parentUuid", "", text(&facts.parent_uuid)),
            ("logicalParentUuid", "", text(&facts.logical_parent_uuid)),
            ("sessionId", "", text(&facts.session_id)),
            ("timestamp", "", text(&facts.timestamp)),
            ("cwd", "", text(&facts.cwd)),
            ("isSidechain", "", facts.is_sidechain.map(|value| value.to_string())),
            ("agentId", "", text(&facts.agent_id)),
            ("summary", "", text(&facts.summary)),
            ("aiTitle", "", text(&facts.ai_title)),
            ("customTitle", "", text(&facts.custom_title)),
            ("title", "", text(&facts.title)),
            ("message", "id", message.and_then(|message| text(&message.id))),
            ("message", "model", message.and_then(|message| text(&message.model))),
            ("message", "usage", message.and_then(|message| message.usage).map(|usage| format!("{usage:?}"))),
            ("message", "content", message.and_then(|message| message.content).map(|raw| raw.get().to_string())),
            ("toolUseResult", "agentId", facts.tool_use_result.as_ref().and_then(|result| text(&result.agent_id))),
        ]
    }

    fn complete_entry() -> serde_json::Value {
        serde_json::json!({
            "type": "assistant", "subtype": "s", "uuid": "u-1", "parentUuid": "u-0",
            "logicalParentUuid": "l-0", "sessionId": "s-1", "timestamp": "2026-01-01T00:00:00Z",
            "cwd": "/w", "isSidechain": false, "agentId": "a-1", "summary": "sum", "aiTitle": "ai",
            "customTitle": "custom", "title": "t",
            "message": {"id": "m-1", "model": "claude-x", "content": [{"type": "text", "text": "hi"}],
                "usage": {"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 3,
                    "cache_read_input_tokens": 4}},
            "toolUseResult": {"agentId": "g-1"},
            "somethingNew": {"x": [1, 2]},
        })
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    const TOP_FIELDS: [&str; 16] = [
        "type",
        "subtype",
        "uuid",
        "parentUuid",
        "logicalParentUuid",
        "sessionId",
        "timestamp",
        "cwd",
        "isSidechain",
        "agentId",
        "summary",
        "aiTitle",
        "customTitle",
        "title",
        "message",
        "toolUseResult",
    ];

    proptest::proptest! {
        #[test]
        fn any_value_in_any_known_field_leaves_every_other_fact_intact(
            field in 0..TOP_FIELDS.len(),
            nested in proptest::option::of(0..4usize),
            value in any_json(),
        ) {
            let expected = {
                let line = serde_json::to_vec(&complete_entry()).unwrap();
                let Parsed::Entry(facts) = parse(&line) else { panic!("the complete entry parses") };
                facts_by_field(&facts)
            };
            let mut entry = complete_entry();
            // Either a top-level field, or one inside the message.
            let (replaced, inner) = match nested {
                Some(index) => {
                    let inner = ["id", "model", "usage", "content"][index];
                    entry["message"][inner] = value;
                    ("message", inner)
                }
                None => {
                    entry[TOP_FIELDS[field]] = value;
                    (TOP_FIELDS[field], "")
                }
            };
            let line = serde_json::to_vec(&entry).unwrap();
            let Parsed::Entry(facts) = parse(&line) else { panic!("a JSON object is an entry: {entry}") };
            for ((field, sub, fact), (_, _, wanted)) in facts_by_field(&facts).into_iter().zip(expected) {
                let touched = field == replaced && (inner.is_empty() || sub == inner);
                if !touched {
                    proptest::prop_assert_eq!(&fact, &wanted, "{}.{} changed when {} was replaced", field, sub, replaced);
                }
            }
        }
    }
}
