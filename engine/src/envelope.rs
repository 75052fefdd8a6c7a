//! The envelope: what one event is and how it is hashed into the chain.
//!
//! ```text
//! header       = postcard(Header { seq, ts_us, stream, kind, payload_len })
//! payload_hash = BLAKE3(payload)
//! prev         = hash of event seq-1 (32 zero bytes for seq 0)
//! hash         = BLAKE3-derive-key(HASH_CONTEXT; header ‖ payload_hash ‖ prev)
//! ```
//!
//! The hash covers the header bytes exactly as stored (see `block` for the layout), never a
//! re-serialisation, and the payload only through its hash: a payload may later be redacted
//! while the chain still verifies.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Version of the stored format, kept in the `meta` tree.
pub const FORMAT_VERSION: u8 = 3;

/// BLAKE3 key-derivation context: the chain's domain tag. Changing it changes every hash.
pub const HASH_CONTEXT: &str = "cclog 2026-11 event chain v1";

/// The `prev` of the first event.
pub const GENESIS: Hash = Hash([0; 32]);

/// Longest accepted stream name, in bytes.
pub const MAX_STREAM_LEN: usize = 512;
/// Longest accepted kind, in bytes.
pub const MAX_KIND_LEN: usize = 128;
/// Largest accepted payload, in bytes (uncompressed).
pub const MAX_PAYLOAD_LEN: usize = 64 << 20;

/// A 32-byte BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Hash> {
        blake3::Hash::from_hex(text).ok().map(|hash| Hash(*hash.as_bytes()))
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hashed description of an event.
///
/// # Invariants
/// `seq` equals the event's key in the `events` tree and is one more than its predecessor's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub seq: u64,
    /// UTC microseconds since the Unix epoch, never decreasing along the log.
    pub ts_us: u64,
    pub stream: String,
    pub kind: String,
    /// Length of the uncompressed payload.
    pub payload_len: u64,
}

/// What a caller asks to append. The payload is stored byte for byte as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub stream: String,
    pub kind: String,
    pub payload: Vec<u8>,
}

impl NewEvent {
    pub fn new(stream: impl Into<String>, kind: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        NewEvent { stream: stream.into(), kind: kind.into(), payload: payload.into() }
    }

    /// Refuses names that would break keys or terminals, and oversized payloads.
    pub fn validate(&self) -> Result<()> {
        check_name("stream", &self.stream, MAX_STREAM_LEN)?;
        check_name("kind", &self.kind, MAX_KIND_LEN)?;
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(Error::InvalidEvent(format!(
                "payload of {} bytes exceeds the {MAX_PAYLOAD_LEN}-byte limit",
                self.payload.len()
            )));
        }
        Ok(())
    }
}

fn check_name(what: &str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidEvent(format!("{what} must not be empty")));
    }
    if name.len() > max {
        return Err(Error::InvalidEvent(format!("{what} is {} bytes; the limit is {max}", name.len())));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidEvent(format!("{what} {name:?} contains a control character")));
    }
    Ok(())
}

/// One event as read back from the log: its header, chain links and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub header: Header,
    pub payload_hash: Hash,
    pub prev: Hash,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn seq(&self) -> u64 {
        self.header.seq
    }
    pub fn stream(&self) -> &str {
        &self.header.stream
    }
    pub fn kind(&self) -> &str {
        &self.header.kind
    }
}

/// `BLAKE3(payload)`.
pub fn payload_hash(payload: &[u8]) -> Hash {
    Hash(*blake3::hash(payload).as_bytes())
}

/// The header as stored: postcard, which the chain hash covers byte for byte.
pub fn encode_header(header: &Header) -> Result<Vec<u8>> {
    postcard::to_stdvec(header).map_err(|error| Error::InvalidEvent(format!("header does not encode: {error}")))
}

/// The chain hash over the stored header bytes, the payload hash and the previous hash.
pub fn chain_hash(header_bytes: &[u8], payload_hash: &Hash, prev: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(header_bytes);
    hasher.update(&payload_hash.0);
    hasher.update(&prev.0);
    Hash(*hasher.finalize().as_bytes())
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(seq: u64, payload_len: usize) -> Header {
        Header {
            seq,
            ts_us: 1_700_000_000_000_000 + seq,
            stream: "s/1".into(),
            kind: "k".into(),
            payload_len: payload_len as u64,
        }
    }

    proptest! {
        #[test]
        fn varint_round_trips(value in any::<u64>()) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(read_varint(&out), Some((value, out.len())));
            prop_assert_eq!(postcard::to_stdvec(&value).unwrap(), out);
        }
    }

    fn hash_of(header: &Header, payload: &[u8], prev: &Hash) -> Hash {
        chain_hash(&encode_header(header).unwrap(), &payload_hash(payload), prev)
    }

    #[test]
    fn hash_covers_header_payload_and_prev() {
        let payload = br#"{"a":1}"#;
        let base = hash_of(&header(3, payload.len()), payload, &GENESIS);
        let other_seq = hash_of(&header(4, payload.len()), payload, &GENESIS);
        let other_payload = hash_of(&header(3, payload.len()), br#"{"a":2}"#, &GENESIS);
        let other_prev = hash_of(&header(3, payload.len()), payload, &Hash([1; 32]));
        assert_ne!(base, other_seq);
        assert_ne!(base, other_payload);
        assert_ne!(base, other_prev);
    }

    #[test]
    fn names_are_validated() {
        assert!(NewEvent::new("", "k", vec![]).validate().is_err());
        assert!(NewEvent::new("s", "k\n", vec![]).validate().is_err());
        assert!(NewEvent::new("s".repeat(600), "k", vec![]).validate().is_err());
        assert!(NewEvent::new("session/abc", "run.started", b"{}".to_vec()).validate().is_ok());
    }
}
