//! Blocks: how events are laid out in the `log` tree's `'E'` keyspace (see `store`). The
//! writer stores each commit
//! group as one or more blocks of consecutive events, keyed by the block's first seq. Every
//! event keeps its own record — header, payload hash, prev and hash verbatim — so damage is
//! always pinned to one event; the payloads of a block share one zstd stream, flushed after
//! each event, so that similar JSON payloads compress against each other while each event's
//! compressed bytes stay a separate segment of the block.
//!
//! Encoding format (value of `'E' ‖ first seq`):
//!
//! ```text
//! block   = BLOCK_VERSION (1 byte) ‖ count (varint) ‖ record × count
//! record  = record_len (varint, bytes after itself)
//!           ‖ header_len (varint) ‖ header (postcard Header, hashed as stored)
//!           ‖ payload_hash (32) ‖ prev (32) ‖ hash (32)
//!           ‖ codec (1): 0 = payload raw, 1 = segment of the block's zstd stream
//!           ‖ body
//! ```
//!
//! Varints are LEB128 (postcard's encoding of u64). A codec-1 segment decodes only after the
//! segments before it in the block; a damaged segment therefore also garbles the payloads
//! after it, but verification reports the first bad event, which is the damaged one.

use std::ops::Range;

use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};

use crate::envelope::{read_varint, write_varint, Header, MAX_PAYLOAD_LEN};
use crate::{Error, Event, Hash, Result};

pub const BLOCK_VERSION: u8 = 1;
/// A block holds at most this many events …
pub const MAX_BLOCK_EVENTS: usize = 128;
/// … and at most about this many payload bytes, so that reading one event stays cheap.
pub const MAX_BLOCK_PAYLOAD: usize = 256 << 10;

const CODEC_RAW: u8 = 0;
const CODEC_STREAM: u8 = 1;
/// Shorter payloads are stored raw: a stream segment costs a few bytes of framing.
const STREAM_MIN_LEN: usize = 24;
const ZSTD_LEVEL: i32 = 3;

/// One event's fields as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub header_bytes: Vec<u8>,
    pub payload_hash: Hash,
    pub prev: Hash,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

/// Builds blocks. Reused across blocks so that the zstd context is made once.
pub struct BlockEncoder {
    zstd: Encoder<'static>,
    records: Vec<u8>,
    count: u64,
    payload_bytes: usize,
    segment: Vec<u8>,
}

fn zstd_error(error: std::io::Error) -> Error {
    Error::Storage(format!("zstd: {error}"))
}

impl BlockEncoder {
    pub fn new() -> Result<BlockEncoder> {
        let mut zstd = Encoder::new(ZSTD_LEVEL).map_err(zstd_error)?;
        zstd.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(false)).map_err(zstd_error)?;
        zstd.set_parameter(zstd::stream::raw::CParameter::ContentSizeFlag(false)).map_err(zstd_error)?;
        Ok(BlockEncoder { zstd, records: Vec::new(), count: 0, payload_bytes: 0, segment: Vec::new() })
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether one more event of `payload_len` bytes would overflow the block.
    pub fn is_full_for(&self, payload_len: usize) -> bool {
        self.count > 0
            && (self.count as usize >= MAX_BLOCK_EVENTS || self.payload_bytes + payload_len > MAX_BLOCK_PAYLOAD)
    }

    /// Appends one event's record, its fields written verbatim.
    pub fn push(
        &mut self,
        header_bytes: &[u8],
        payload_hash: &Hash,
        prev: &Hash,
        hash: &Hash,
        payload: &[u8],
    ) -> Result<()> {
        let (codec, body): (u8, &[u8]) = if payload.len() < STREAM_MIN_LEN {
            (CODEC_RAW, payload)
        } else {
            self.compress_segment(payload)?;
            (CODEC_STREAM, &self.segment)
        };
        let mut prefix = Vec::with_capacity(12);
        write_varint(&mut prefix, header_bytes.len() as u64);
        let record_len = prefix.len() + header_bytes.len() + 96 + 1 + body.len();
        write_varint(&mut self.records, record_len as u64);
        self.records.extend_from_slice(&prefix);
        self.records.extend_from_slice(header_bytes);
        self.records.extend_from_slice(&payload_hash.0);
        self.records.extend_from_slice(&prev.0);
        self.records.extend_from_slice(&hash.0);
        self.records.push(codec);
        self.records.extend_from_slice(body);
        self.count += 1;
        self.payload_bytes += payload.len();
        Ok(())
    }

    /// Feeds a payload into the block's stream and flushes, leaving its segment in
    /// `self.segment`.
    fn compress_segment(&mut self, payload: &[u8]) -> Result<()> {
        self.segment.clear();
        self.segment.reserve(zstd::zstd_safe::compress_bound(payload.len()) + 64);
        let mut input = InBuffer::around(payload);
        while input.pos() < payload.len() {
            self.ensure_room();
            let filled = self.segment.len();
            let mut output = OutBuffer::around_pos(&mut self.segment, filled);
            self.zstd.run(&mut input, &mut output).map_err(zstd_error)?;
        }
        loop {
            self.ensure_room();
            let filled = self.segment.len();
            let mut output = OutBuffer::around_pos(&mut self.segment, filled);
            let remaining = self.zstd.flush(&mut output).map_err(zstd_error)?;
            if remaining == 0 {
                return Ok(());
            }
        }
    }

    fn ensure_room(&mut self) {
        if self.segment.capacity() - self.segment.len() < 1024 {
            self.segment.reserve(64 << 10);
        }
    }

    /// The finished block; the encoder is ready for the next one.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        let mut block = Vec::with_capacity(11 + self.records.len());
        block.push(BLOCK_VERSION);
        write_varint(&mut block, self.count);
        block.append(&mut self.records);
        self.count = 0;
        self.payload_bytes = 0;
        self.zstd.reinit().map_err(zstd_error)?;
        Ok(block)
    }
}

/// Byte ranges of one record's fields within its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLayout {
    pub header: Range<usize>,
    pub payload_hash: Range<usize>,
    pub prev: Range<usize>,
    pub hash: Range<usize>,
    pub codec: usize,
    pub body: Range<usize>,
}

/// Why a stored record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFault {
    /// The framing (versions, lengths) is damaged.
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

/// One record read from a block, payload decoded if it could be.
#[derive(Debug, Clone)]
pub struct BlockRecord<'a> {
    pub layout: RecordLayout,
    pub header_bytes: &'a [u8],
    pub payload_hash: Hash,
    pub prev: Hash,
    pub hash: Hash,
    pub payload: std::result::Result<Vec<u8>, RecordFault>,
}

impl BlockRecord<'_> {
    pub fn header(&self) -> std::result::Result<Header, RecordFault> {
        decode_header(self.header_bytes)
    }

    /// The whole event, or the first fault that keeps it from being read.
    pub fn event(&self) -> std::result::Result<Event, RecordFault> {
        let header = self.header()?;
        let payload = self.payload.clone()?;
        if payload.len() as u64 != header.payload_len {
            return Err(RecordFault::Payload(format!(
                "payload is {} bytes; its header says {}",
                payload.len(),
                header.payload_len
            )));
        }
        Ok(Event { header, payload_hash: self.payload_hash, prev: self.prev, hash: self.hash, payload })
    }
}

pub fn decode_header(bytes: &[u8]) -> std::result::Result<Header, RecordFault> {
    match postcard::take_from_bytes::<Header>(bytes) {
        Ok((header, [])) => Ok(header),
        Ok((_, rest)) => Err(RecordFault::Header(format!("{} trailing bytes", rest.len()))),
        Err(error) => Err(RecordFault::Header(error.to_string())),
    }
}

/// A parsed block: the records that could be framed, and a framing fault that stopped the
/// parse early, if any.
pub struct ParsedBlock<'a> {
    pub records: Vec<BlockRecord<'a>>,
    pub framing_fault: Option<RecordFault>,
}

fn hash_at(bytes: &[u8], range: Range<usize>) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[range]);
    Hash(out)
}

/// Parses a block without trusting any of it; never panics.
pub fn parse_block(bytes: &[u8]) -> ParsedBlock<'_> {
    let records = Vec::new();
    let fault = |detail: String| Some(RecordFault::Framing(detail));
    let Some(&version) = bytes.first() else {
        return ParsedBlock { records, framing_fault: fault("empty block".into()) };
    };
    if version != BLOCK_VERSION {
        return ParsedBlock { records, framing_fault: fault(format!("unknown block version {version}")) };
    }
    let Some((count, count_len)) = read_varint(&bytes[1..]) else {
        return ParsedBlock { records, framing_fault: fault("event count is not a varint".into()) };
    };
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Decoder::new().ok();
        }
        match slot.as_mut() {
            Some(decoder) => match decoder.reinit() {
                Ok(()) => parse_records(bytes, 1 + count_len, count, decoder),
                Err(error) => ParsedBlock { records, framing_fault: fault(format!("zstd: {error}")) },
            },
            None => ParsedBlock { records, framing_fault: fault("zstd: no decoder".into()) },
        }
    })
}

thread_local! {
    // A zstd decoding context is costly to make; each thread keeps one for every block.
    static DECODER: std::cell::RefCell<Option<Decoder<'static>>> = const { std::cell::RefCell::new(None) };
}

fn parse_records<'a>(bytes: &'a [u8], mut at: usize, count: u64, decoder: &mut Decoder<'static>) -> ParsedBlock<'a> {
    let mut records = Vec::new();
    let fault = |detail: String| Some(RecordFault::Framing(detail));
    for index in 0..count {
        match frame_record(bytes, at) {
            Ok((layout, end)) => {
                let payload = decode_payload(decoder, bytes, &layout);
                records.push(BlockRecord {
                    header_bytes: &bytes[layout.header.clone()],
                    payload_hash: hash_at(bytes, layout.payload_hash.clone()),
                    prev: hash_at(bytes, layout.prev.clone()),
                    hash: hash_at(bytes, layout.hash.clone()),
                    layout,
                    payload,
                });
                at = end;
            }
            Err(detail) => {
                return ParsedBlock { records, framing_fault: fault(format!("record {index} of {count}: {detail}")) };
            }
        }
    }
    let framing_fault =
        (at != bytes.len()).then(|| RecordFault::Framing(format!("{} bytes after the last record", bytes.len() - at)));
    ParsedBlock { records, framing_fault }
}

pub(crate) fn frame_record(bytes: &[u8], at: usize) -> std::result::Result<(RecordLayout, usize), String> {
    let rest = bytes.get(at..).ok_or("block ends early")?;
    let (record_len, len_len) = read_varint(rest).ok_or("record length is not a varint")?;
    let start = at + len_len;
    let end =
        usize::try_from(record_len).ok().and_then(|len| start.checked_add(len)).ok_or("record length overflows")?;
    if end > bytes.len() {
        return Err(format!("record of {record_len} bytes runs past the block"));
    }
    let (header_len, header_len_len) = read_varint(&bytes[start..end]).ok_or("header length is not a varint")?;
    let header_start = start + header_len_len;
    let header_end = usize::try_from(header_len)
        .ok()
        .and_then(|len| header_start.checked_add(len))
        .ok_or("header length overflows")?;
    let codec = header_end.checked_add(96).ok_or("header length overflows")?;
    if codec >= end {
        return Err("record is shorter than its fields".into());
    }
    let layout = RecordLayout {
        header: header_start..header_end,
        payload_hash: header_end..header_end + 32,
        prev: header_end + 32..header_end + 64,
        hash: header_end + 64..codec,
        codec,
        body: codec + 1..end,
    };
    Ok((layout, end))
}

fn decode_payload(
    decoder: &mut Decoder<'static>,
    bytes: &[u8],
    layout: &RecordLayout,
) -> std::result::Result<Vec<u8>, RecordFault> {
    let body = &bytes[layout.body.clone()];
    match bytes[layout.codec] {
        CODEC_RAW => Ok(body.to_vec()),
        CODEC_STREAM => decode_segment(decoder, body),
        other => Err(RecordFault::Payload(format!("unknown codec {other}"))),
    }
}

/// Decodes one flushed segment of the block's stream: everything the segment yields.
fn decode_segment(decoder: &mut Decoder<'static>, body: &[u8]) -> std::result::Result<Vec<u8>, RecordFault> {
    let mut payload: Vec<u8> = Vec::with_capacity(body.len() * 4 + 64);
    let mut input = InBuffer::around(body);
    loop {
        if payload.capacity() - payload.len() < 4096 {
            if payload.len() >= MAX_PAYLOAD_LEN {
                return Err(RecordFault::Payload("segment decodes past the payload limit".into()));
            }
            payload.reserve(payload.capacity().max(4096));
        }
        let before = (input.pos(), payload.len());
        let mut output = OutBuffer::around_pos(&mut payload, before.1);
        decoder.run(&mut input, &mut output).map_err(|error| RecordFault::Payload(format!("zstd: {error}")))?;
        // The segment ends with a flush: once it is consumed and the decoder stopped with
        // room to spare, everything it encodes has come out.
        if input.pos() == body.len() && payload.len() < payload.capacity() {
            return Ok(payload);
        }
        if (input.pos(), payload.len()) == before {
            return Err(RecordFault::Payload("zstd made no progress".into()));
        }
    }
}

/// Decodes every event of a block, or fails with the first damaged one.
pub fn decode_block(first_seq: u64, bytes: &[u8]) -> Result<Vec<Event>> {
    let parsed = parse_block(bytes);
    let mut events = Vec::with_capacity(parsed.records.len());
    for (index, record) in parsed.records.iter().enumerate() {
        let seq = first_seq + index as u64;
        events.push(record.event().map_err(|fault| Error::Corruption { at: Some(seq), detail: fault.to_string() })?);
    }
    if let Some(fault) = parsed.framing_fault {
        return Err(Error::Corruption { at: Some(first_seq + events.len() as u64), detail: fault.to_string() });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{chain_hash, encode_header, payload_hash, GENESIS};
    use proptest::prelude::*;

    fn build(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<Event>) {
        let mut encoder = BlockEncoder::new().unwrap();
        let mut prev = GENESIS;
        let mut events = Vec::new();
        for (seq, payload) in payloads.iter().enumerate() {
            let header = Header {
                seq: seq as u64,
                ts_us: 7,
                stream: "s".into(),
                kind: "k".into(),
                payload_len: payload.len() as u64,
            };
            let header_bytes = encode_header(&header).unwrap();
            let payload_hash = payload_hash(payload);
            let hash = chain_hash(&header_bytes, &payload_hash, &prev);
            encoder.push(&header_bytes, &payload_hash, &prev, &hash, payload).unwrap();
            events.push(Event { header, payload_hash, prev, hash, payload: payload.clone() });
            prev = hash;
        }
        (encoder.finish().unwrap(), events)
    }

    proptest! {
        #[test]
        fn blocks_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..20)) {
            let (bytes, events) = build(&payloads);
            prop_assert_eq!(decode_block(0, &bytes).unwrap(), events);
        }

        #[test]
        fn parsing_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let parsed = parse_block(&bytes);
            for record in &parsed.records {
                let _ = record.event();
            }
        }
    }

    #[test]
    fn similar_payloads_compress_against_each_other() {
        let payloads: Vec<Vec<u8>> = (0..64)
            .map(|index| format!(r#"{{"type":"assistant","session_id":"6f1e2d3c","message":{{"id":"msg_{index:04}","text":"the log keeps every message"}}}}"#).into_bytes())
            .collect();
        let raw: usize = payloads.iter().map(Vec::len).sum();
        let (bytes, _) = build(&payloads);
        let overhead = 64 * (96 + 20);
        assert!(bytes.len() - overhead < raw / 3, "{} payload bytes stored as {}", raw, bytes.len() - overhead);
    }

    #[test]
    fn a_reused_encoder_starts_each_block_afresh() {
        let payload = br#"{"text":"a payload long enough to be compressed into the stream"}"#.to_vec();
        let mut encoder = BlockEncoder::new().unwrap();
        let header_bytes = encode_header(&Header {
            seq: 0,
            ts_us: 0,
            stream: "s".into(),
            kind: "k".into(),
            payload_len: payload.len() as u64,
        })
        .unwrap();
        let hash = payload_hash(&payload);
        encoder.push(&header_bytes, &hash, &GENESIS, &GENESIS, &payload).unwrap();
        let first = encoder.finish().unwrap();
        encoder.push(&header_bytes, &hash, &GENESIS, &GENESIS, &payload).unwrap();
        let second = encoder.finish().unwrap();
        assert_eq!(first, second);
    }
}
