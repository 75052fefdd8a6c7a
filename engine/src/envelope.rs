//! The envelope: what one event is, how it is hashed into the chain, and how it is laid out
//! as bytes in the `events` tree. This file is the format document's source of truth; the
//! layout below is what `verify` and forensic tools parse.
//!
//! Encoding format (value of `events/<seq>`):
//!
//! ```text
//! offset  size  field
//! 0       1     FORMAT_VERSION (1)
//! 1       1-10  header_len, LEB128 varint (postcard's u64 encoding)
//! ..      n     header: postcard(Header { seq, ts_us, stream, kind, payload_len })
//! ..      32    payload_hash = BLAKE3(payload)
//! ..      32    prev         = hash of event seq-1 (32 zero bytes for seq 0)
//! ..      32    hash         = BLAKE3-derive-key(HASH_CONTEXT; header ‖ payload_hash ‖ prev)
//! ..      1     codec: 0 = payload stored raw, 1 = zstd frame
//! ..      rest  payload body (raw or compressed)
//! ```
//!
//! The hash covers the header bytes exactly as stored, never a re-serialisation, and the
//! payload only through its hash: a payload may later be redacted while the chain verifies.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Version byte written first in every stored record.
pub const FORMAT_VERSION: u8 = 1;

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

/// Payloads shorter than this are stored raw: zstd's frame overhead outweighs any gain.
const COMPRESS_MIN_LEN: usize = 64;
const ZSTD_LEVEL: i32 = 3;

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

/// The chain hash over the stored header bytes, the payload hash and the previous hash.
pub fn chain_hash(header_bytes: &[u8], payload_hash: &Hash, prev: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(header_bytes);
    hasher.update(&payload_hash.0);
    hasher.update(&prev.0);
    Hash(*hasher.finalize().as_bytes())
}

/// How the payload body is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
}

/// A record encoded for storage, with the numbers `stats` reports.
pub struct EncodedRecord {
    pub bytes: Vec<u8>,
    pub hash: Hash,
    pub payload_hash: Hash,
}

/// Builds the stored bytes of an event and its chain hash.
pub fn encode_record(header: &Header, payload: &[u8], prev: &Hash) -> Result<EncodedRecord> {
    let header_bytes = postcard::to_stdvec(header)
        .map_err(|error| Error::InvalidEvent(format!("header does not encode: {error}")))?;
    let payload_hash = payload_hash(payload);
    let hash = chain_hash(&header_bytes, &payload_hash, prev);

    let compressed = if payload.len() >= COMPRESS_MIN_LEN {
        compress(payload).filter(|body| body.len() < payload.len())
    } else {
        None
    };
    let (codec, body) = match &compressed {
        Some(body) => (Codec::Zstd, body.as_slice()),
        None => (Codec::Raw, payload),
    };

    let mut bytes = Vec::with_capacity(1 + 10 + header_bytes.len() + 97 + body.len());
    bytes.push(FORMAT_VERSION);
    write_varint(&mut bytes, header_bytes.len() as u64);
    bytes.extend_from_slice(&header_bytes);
    bytes.extend_from_slice(&payload_hash.0);
    bytes.extend_from_slice(&prev.0);
    bytes.extend_from_slice(&hash.0);
    bytes.push(codec as u8);
    bytes.extend_from_slice(body);
    Ok(EncodedRecord { bytes, hash, payload_hash })
}

/// Byte ranges of one stored record's fields, found without trusting their content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLayout {
    pub header: std::ops::Range<usize>,
    pub payload_hash: std::ops::Range<usize>,
    pub prev: std::ops::Range<usize>,
    pub hash: std::ops::Range<usize>,
    pub codec: usize,
    pub body: std::ops::Range<usize>,
}

impl RecordLayout {
    /// Locates the fields of a stored record; fails only if the framing itself is damaged.
    pub fn parse(bytes: &[u8]) -> std::result::Result<RecordLayout, String> {
        let version = *bytes.first().ok_or("empty record")?;
        if version != FORMAT_VERSION {
            return Err(format!("unknown record format version {version}"));
        }
        let (header_len, varint_len) = read_varint(&bytes[1..]).ok_or("header length is not a varint")?;
        let header_len = usize::try_from(header_len).map_err(|_| "header length overflows")?;
        let header_start = 1 + varint_len;
        let header_end = header_start.checked_add(header_len).ok_or("header length overflows")?;
        let codec = header_end + 96;
        if bytes.len() <= codec {
            return Err(format!("record of {} bytes is shorter than its framing", bytes.len()));
        }
        Ok(RecordLayout {
            header: header_start..header_end,
            payload_hash: header_end..header_end + 32,
            prev: header_end + 32..header_end + 64,
            hash: header_end + 64..header_end + 96,
            codec,
            body: codec + 1..bytes.len(),
        })
    }
}

/// A stored record split into its parts, payload still encoded.
pub struct StoredRecord<'a> {
    pub header_bytes: &'a [u8],
    pub payload_hash: Hash,
    pub prev: Hash,
    pub hash: Hash,
    pub codec: u8,
    pub body: &'a [u8],
}

/// Why a stored record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFault {
    /// The framing (version, lengths) is damaged.
    Framing(String),
    /// The header bytes do not decode.
    Header(String),
    /// The payload body does not decode under its codec.
    Payload(String),
}

impl std::fmt::Display for RecordFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFault::Framing(detail) => write!(f, "record framing damaged: {detail}"),
            RecordFault::Header(detail) => write!(f, "header does not decode: {detail}"),
            RecordFault::Payload(detail) => write!(f, "payload does not decode: {detail}"),
        }
    }
}

impl<'a> StoredRecord<'a> {
    pub fn split(bytes: &'a [u8]) -> std::result::Result<StoredRecord<'a>, RecordFault> {
        let layout = RecordLayout::parse(bytes).map_err(RecordFault::Framing)?;
        let hash_at = |range: std::ops::Range<usize>| {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes[range]);
            Hash(out)
        };
        Ok(StoredRecord {
            header_bytes: &bytes[layout.header.clone()],
            payload_hash: hash_at(layout.payload_hash),
            prev: hash_at(layout.prev),
            hash: hash_at(layout.hash),
            codec: bytes[layout.codec],
            body: &bytes[layout.body],
        })
    }

    pub fn header(&self) -> std::result::Result<Header, RecordFault> {
        match postcard::take_from_bytes::<Header>(self.header_bytes) {
            Ok((header, [])) => Ok(header),
            Ok((_, rest)) => Err(RecordFault::Header(format!("{} trailing bytes", rest.len()))),
            Err(error) => Err(RecordFault::Header(error.to_string())),
        }
    }

    pub fn payload(&self, payload_len: u64) -> std::result::Result<Vec<u8>, RecordFault> {
        let expected = usize::try_from(payload_len)
            .ok()
            .filter(|len| *len <= MAX_PAYLOAD_LEN)
            .ok_or_else(|| RecordFault::Header(format!("payload length {payload_len} is out of range")))?;
        let payload = match self.codec {
            0 => self.body.to_vec(),
            1 => decompress(self.body, expected).map_err(|error| RecordFault::Payload(format!("zstd: {error}")))?,
            other => return Err(RecordFault::Payload(format!("unknown codec {other}"))),
        };
        if payload.len() != expected {
            return Err(RecordFault::Payload(format!(
                "payload is {} bytes; its header says {expected}",
                payload.len()
            )));
        }
        Ok(payload)
    }

    /// Decodes the whole event without checking any hash.
    pub fn decode(&self) -> std::result::Result<Event, RecordFault> {
        let header = self.header()?;
        let payload = self.payload(header.payload_len)?;
        Ok(Event { header, payload_hash: self.payload_hash, prev: self.prev, hash: self.hash, payload })
    }
}

/// Decodes a stored record into an event, reporting faults as corruption at `seq`.
pub fn decode_record(seq: u64, bytes: &[u8]) -> Result<Event> {
    StoredRecord::split(bytes)
        .and_then(|record| record.decode())
        .map_err(|fault| Error::Corruption { at: Some(seq), detail: fault.to_string() })
}

thread_local! {
    // zstd contexts are costly to create; one per thread serves every record.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

fn compress(payload: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        slot.as_mut()?.compress(payload).ok()
    })
}

fn decompress(body: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(body, capacity),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
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

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
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
        Header { seq, ts_us: 1_700_000_000_000_000 + seq, stream: "s/1".into(), kind: "k".into(), payload_len: payload_len as u64 }
    }

    proptest! {
        #[test]
        fn record_round_trips(seq in any::<u64>(), ts in any::<u64>(), stream in "[a-z/]{1,40}",
                              kind in "[a-z.]{1,20}", payload in proptest::collection::vec(any::<u8>(), 0..2000),
                              prev in any::<[u8; 32]>()) {
            let header = Header { seq, ts_us: ts, stream, kind, payload_len: payload.len() as u64 };
            let record = encode_record(&header, &payload, &Hash(prev)).unwrap();
            let event = decode_record(seq, &record.bytes).unwrap();
            prop_assert_eq!(&event.header, &header);
            prop_assert_eq!(&event.payload, &payload);
            prop_assert_eq!(event.prev, Hash(prev));
            prop_assert_eq!(event.hash, record.hash);
            prop_assert_eq!(event.payload_hash, payload_hash(&payload));
        }

        #[test]
        fn varint_round_trips(value in any::<u64>()) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(read_varint(&out), Some((value, out.len())));
            prop_assert_eq!(postcard::to_stdvec(&value).unwrap(), out);
        }
    }

    #[test]
    fn hash_covers_header_payload_and_prev() {
        let payload = br#"{"a":1}"#;
        let base = encode_record(&header(3, payload.len()), payload, &GENESIS).unwrap().hash;
        let other_seq = encode_record(&header(4, payload.len()), payload, &GENESIS).unwrap().hash;
        let other_payload = encode_record(&header(3, payload.len()), br#"{"a":2}"#, &GENESIS).unwrap().hash;
        let other_prev = encode_record(&header(3, payload.len()), payload, &Hash([1; 32])).unwrap().hash;
        assert_ne!(base, other_seq);
        assert_ne!(base, other_payload);
        assert_ne!(base, other_prev);
    }

    #[test]
    fn compressible_payloads_are_stored_compressed() {
        let payload = br#"{"type":"assistant","text":"hello hello hello hello hello hello hello hello hello"}"#.repeat(4);
        let record = encode_record(&header(0, payload.len()), &payload, &GENESIS).unwrap();
        assert!(record.bytes.len() < payload.len());
        let layout = RecordLayout::parse(&record.bytes).unwrap();
        assert_eq!(record.bytes[layout.codec], Codec::Zstd as u8);
    }

    #[test]
    fn names_are_validated() {
        assert!(NewEvent::new("", "k", vec![]).validate().is_err());
        assert!(NewEvent::new("s", "k\n", vec![]).validate().is_err());
        assert!(NewEvent::new("s".repeat(600), "k", vec![]).validate().is_err());
        assert!(NewEvent::new("session/abc", "run.started", b"{}".to_vec()).validate().is_ok());
    }
}
