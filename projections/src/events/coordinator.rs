//! The session coordinator's vocabulary. Every key-value write is an event on
//! `scope/<scope>` — `kv.set`, `kv.delete` (a [`KeyWrite`]) or `scope.delete` (a
//! [`ScopeDelete`]) — and every instance claim on `instances/<machine>:<project>` —
//! `instance.claimed` or `instance.released` (an [`InstanceChange`]). Each names its
//! [`Writer`].
//!
//! [`KeyWrite`] is at format 3, which adds a value's time to live; format 2 added where an
//! imported value came from ([`Imported`]). Older payloads read as writes without them.

use serde::{Deserialize, Serialize};

/// Stream of one scope's writes.
pub fn scope_stream(scope: &str) -> String {
    format!("scope/{scope}")
}

/// A value set.
pub const KIND_KV_SET: &str = "kv.set";
/// A key deleted.
pub const KIND_KV_DELETE: &str = "kv.delete";
/// Every live key of a scope deleted.
pub const KIND_SCOPE_DELETE: &str = "scope.delete";

/// Stream of one machine and project's instance claims.
pub fn instances_stream(machine_project: &str) -> String {
    format!("instances/{machine_project}")
}

/// An instance claimed by a holder.
pub const KIND_INSTANCE_CLAIMED: &str = "instance.claimed";
/// An instance released.
pub const KIND_INSTANCE_RELEASED: &str = "instance.released";

/// The payload of `instance.claimed` and `instance.released`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub instance: String,
    /// Who claims it (an MCP connection, a client); empty on release.
    pub holder: String,
}

/// Who made a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// The coordinator instance (`claude_1`, …), or `cli` for `cclog kv`.
    pub instance: String,
    pub machine: String,
    pub project: String,
}

/// The payload of `kv.set` and `kv.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWrite {
    pub key: String,
    /// The value as JSON text; `None` for a deletion.
    pub value: Option<String>,
    pub writer: Writer,
    /// For a value brought in from another store (`cclog kv import-legacy`): where from.
    pub imported: Option<Imported>,
    /// How long the value lives after this event's log time (µs); `None`: until changed.
    pub ttl_us: Option<u64>,
}

/// Where an imported value came from, with the times its store kept for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// The file it was read from.
    pub file: String,
    /// When that store says the key was first and last written, as it wrote them.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Format 1 of [`KeyWrite`]: no `imported`.
#[derive(Deserialize)]
struct KeyWriteV1 {
    key: String,
    value: Option<String>,
    writer: Writer,
}

/// Format 2 of [`KeyWrite`]: no `ttl_us`.
#[derive(Deserialize)]
struct KeyWriteV2 {
    key: String,
    value: Option<String>,
    writer: Writer,
    imported: Option<Imported>,
}

const KEY_WRITE_FORMAT: u8 = 3;

impl KeyWrite {
    /// Format 3: the format byte, then postcard.
    pub fn encode(&self) -> crate::Result<Vec<u8>> {
        super::encode_as(KEY_WRITE_FORMAT, self)
    }

    /// Reads any format.
    pub fn decode(bytes: &[u8]) -> crate::Result<KeyWrite> {
        match bytes.first() {
            Some(&KEY_WRITE_FORMAT) => super::decode_as(KEY_WRITE_FORMAT, "kv write", bytes),
            Some(2) => {
                let old: KeyWriteV2 = super::decode_as(2, "kv write", bytes)?;
                Ok(KeyWrite {
                    key: old.key,
                    value: old.value,
                    writer: old.writer,
                    imported: old.imported,
                    ttl_us: None,
                })
            }
            _ => {
                let old: KeyWriteV1 = super::decode("kv write", bytes)?;
                Ok(KeyWrite { key: old.key, value: old.value, writer: old.writer, imported: None, ttl_us: None })
            }
        }
    }
}

/// The payload of `scope.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDelete {
    pub writer: Writer,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write as cclog stored it before format 2.
    #[derive(Serialize)]
    struct WrittenAtFormat1<'a> {
        key: &'a str,
        value: Option<&'a str>,
        writer: Writer,
    }

    /// A write as cclog stored it before format 3.
    #[derive(Serialize)]
    struct WrittenAtFormat2<'a> {
        key: &'a str,
        value: Option<&'a str>,
        writer: Writer,
        imported: Option<Imported>,
    }

    #[test]
    fn a_write_reads_back_at_every_format() {
        let writer = Writer { instance: "claude_1".into(), machine: "m".into(), project: "p".into() };
        let plain =
            KeyWrite { key: "k".into(), value: Some("1".into()), writer: writer.clone(), imported: None, ttl_us: None };
        let format_1 = crate::events::encode(&WrittenAtFormat1 { key: "k", value: Some("1"), writer: writer.clone() })
            .expect("encode");
        assert_eq!(KeyWrite::decode(&format_1).expect("format 1 decodes"), plain);
        let imported =
            Imported { file: "/s/a.json".into(), created_at: Some("2025-11-02T09:00:00".into()), updated_at: None };
        let format_2 = crate::events::encode_as(
            2,
            &WrittenAtFormat2 { key: "k", value: Some("1"), writer: writer.clone(), imported: Some(imported.clone()) },
        )
        .expect("encode");
        assert_eq!(
            KeyWrite::decode(&format_2).expect("format 2 decodes"),
            KeyWrite { imported: Some(imported.clone()), ..plain.clone() }
        );
        let new = KeyWrite { key: "k".into(), value: None, writer, imported: Some(imported), ttl_us: Some(1_500_000) };
        assert_eq!(new.encode().expect("encode")[0], 3);
        assert_eq!(KeyWrite::decode(&new.encode().expect("encode")).expect("format 3 decodes"), new);
        assert!(KeyWrite::decode(&[7, 1, 2]).is_err(), "an unknown format is an error, not a guess");
    }
}
