//! One JSON style for every `--json`: struct fields in snake_case, whatever the type's
//! serde names. The REST API speaks camelCase (CC Manager's), and several of its views —
//! runs, teams, plans — are what the CLI prints too; [`line`] serializes any of them with
//! each struct field's name in snake_case, through a serializer adapter.
//!
//! Only struct fields are renamed: a map's keys are data (a key-value's JSON value, a
//! transcript line decoded), and `RawValue`s — Claude Code's own messages, byte for byte —
//! pass through untouched. Names are converted once and kept for the process (a type has
//! finitely many fields), because serde wants `&'static str` field names.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::ser::{self, Serializer};
use serde::Serialize;

/// `value` as one line of JSON, its struct fields in snake_case.
pub fn line<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(&Snake(value))
}

/// `value` as a `serde_json::Value`, its struct fields in snake_case (for commands that add
/// to it before printing).
pub fn value<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(Snake(value))
}

/// `sessionId` → `session_id`, `costUSD` → `cost_usd`, `HTTPServer` → `http_server`; a name
/// already in snake_case is unchanged.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (at, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let previous = at.checked_sub(1).map(|before| chars[before]);
            let next = chars.get(at + 1).copied();
            let starts_word = match previous {
                None | Some('_') => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                // The last capital of an acronym starts the next word: `HTTPServer`.
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                Some(_) => false,
            };
            if starts_word {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The snake_case spelling of a field name, converted once per name.
fn field_name(name: &'static str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return name;
    }
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    names.entry(name).or_insert_with(|| Box::leak(snake_case(name).into_boxed_str()))
}

/// serde_json's `RawValue` serializes as a struct of this name: its bytes must pass through.
fn is_raw_value(name: &str) -> bool {
    name.starts_with("$serde_json::private::")
}

/// A value serialized with its struct fields renamed; inside `json!` it renames what it wraps.
pub struct Snake<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> Serialize for Snake<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Renaming(serializer))
    }
}

/// The adapter: forwards everything to the inner serializer, wrapping every nested value.
struct Renaming<S>(S);

/// A compound (sequence, map, struct…) whose elements are wrapped in turn; `raw` passes a
/// `RawValue`'s one field through as it is.
struct Compound<C> {
    inner: C,
    raw: bool,
}

impl<C> Compound<C> {
    fn new(inner: C) -> Self {
        Compound { inner, raw: false }
    }
}

macro_rules! forward {
    ($($method:ident($type:ty)),* $(,)?) => {
        $(fn $method(self, value: $type) -> Result<S::Ok, S::Error> {
            self.0.$method(value)
        })*
    };
}

impl<S: Serializer> Serializer for Renaming<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Snake(value))
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_variant(self, name: &'static str, index: u32, variant: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Snake(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(name, index, variant, &Snake(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Compound::new)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Compound::new)
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Compound::new)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len).map(Compound::new)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Compound::new)
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        let raw = is_raw_value(name);
        self.0.serialize_struct(name, len).map(|inner| Compound { inner, raw })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(Compound::new)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Sequences and tuples: each element wrapped.
macro_rules! wrap_elements {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(impl<C: ser::$trait> ser::$trait for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                self.inner.$method(&Snake(value))
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        })*
    };
}

wrap_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// A map's keys are data and keep their spelling; its values are wrapped.
impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.inner.serialize_key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_value(&Snake(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), C::Error> {
        if self.raw {
            self.inner.serialize_field(key, value)
        } else {
            self.inner.serialize_field(field_name(key), &Snake(value))
        }
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(field_name(key), &Snake(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, value::RawValue};

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Agent {
        container_action: String,
        exit_code: Option<i32>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase", tag = "kind")]
    enum Step {
        TaskStarted { task_id: u32 },
        Ended,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    enum External {
        Moved { from_path: String },
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Run {
        session_id: String,
        result_json: Box<RawValue>,
        value: serde_json::Value,
        agents: Vec<Agent>,
        lead: Option<Agent>,
        step: Step,
        end: Step,
        moved: External,
        #[serde(rename = "totalCostUSD")]
        total_cost_usd: f64,
        v2: u8,
        by_name: std::collections::BTreeMap<String, Agent>,
        pair: (Agent, u8),
    }

    #[test]
    fn renames_every_struct_field_and_nothing_else() {
        let run = Run {
            session_id: "s".into(),
            result_json: RawValue::from_string(r#"{"modelUsage" : {"aB":1}}"#.into()).unwrap(),
            value: json!({"fooBar": {"bazQux": [{"deepKey": 1}]}}),
            agents: vec![Agent { container_action: "created".into(), exit_code: None }],
            lead: Some(Agent { container_action: "started".into(), exit_code: Some(0) }),
            step: Step::TaskStarted { task_id: 1 },
            end: Step::Ended,
            moved: External::Moved { from_path: "a".into() },
            total_cost_usd: 1.5,
            v2: 2,
            by_name: [("someAgent".to_string(), Agent { container_action: "x".into(), exit_code: None })]
                .into_iter()
                .collect(),
            pair: (Agent { container_action: "y".into(), exit_code: None }, 1),
        };
        assert_eq!(
            line(&run).unwrap(),
            concat!(
                r#"{"session_id":"s","result_json":{"modelUsage" : {"aB":1}},"#,
                r#""value":{"fooBar":{"bazQux":[{"deepKey":1}]}},"#,
                r#""agents":[{"container_action":"created","exit_code":null}],"#,
                r#""lead":{"container_action":"started","exit_code":0},"#,
                r#""step":{"kind":"taskStarted","task_id":1},"end":{"kind":"ended"},"#,
                r#""moved":{"moved":{"from_path":"a"}},"total_cost_usd":1.5,"v2":2,"#,
                r#""by_name":{"someAgent":{"container_action":"x","exit_code":null}},"#,
                r#""pair":[{"container_action":"y","exit_code":null},1]}"#
            )
        );
    }

    #[test]
    fn names_split_where_words_begin() {
        for (camel, snake) in [
            ("sessionId", "session_id"),
            ("session_id", "session_id"),
            ("costUSD", "cost_usd"),
            ("HTTPServer", "http_server"),
            ("v2Count", "v2_count"),
            ("id", "id"),
            ("Name", "name"),
        ] {
            assert_eq!(snake_case(camel), snake, "{camel}");
        }
    }

    proptest::proptest! {
        /// JSON data — maps, arrays, scalars, at any depth — comes out exactly as it went in.
        #[test]
        fn data_keeps_its_keys(value in json_value()) {
            proptest::prop_assert_eq!(line(&value).unwrap(), serde_json::to_string(&value).unwrap());
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-zA-Z_ ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }
}
