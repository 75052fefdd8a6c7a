//! Blocks: how events are laid out in the `log` tree's `'E'` keyspace (see `store`). The
//! writer stores each commit group as one or more blocks of consecutive events, keyed by
//! the block's first seq. Every event keeps its own record — header, payload hash, prev and
//! hash verbatim — so verification checks each event on its own; a block's records are
//! compressed together, as one zstd frame, so that what repeats from event to event (the
//! stream name in every header, each `prev` that is the hash before it, similar JSON
//! payloads) is stored once.
//!
//! Encoding format (value of `'E' ‖ first seq`), version 2 (written since format 3):
//!
//! ```text
//! block   = 0x02 ‖ count (varint) ‖ frame_len (varint) ‖ frame
//! frame   = zstd frame (level 3, content size and checksum) of record × count
//! record  = record_len (varint, bytes after itself)
//!           ‖ header_len (varint) ‖ header (postcard Header, hashed as stored)
//!           ‖ payload_hash (32) ‖ prev (32) ‖ hash (32)
//!           ‖ codec (1) = 0 ‖ payload
//! ```
//!
//! Version 1 (formats 1 and 2) is read as it is: the same records stored uncompressed
//! after the count, each payload either raw (codec 0) or the next segment of one zstd
//! stream shared by the block and flushed after each payload (codec 1).
//!
//! Varints are LEB128 (postcard's encoding of u64). A damaged byte in a version-2 frame
//! fails its checksum and costs the block's events (at most [`MAX_BLOCK_EVENTS`]); in
//! version 1, a damaged segment also garbles the payloads after it in its block.

use std::borrow::Cow;
use std::ops::Range;

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use crate::envelope::{read_varint, write_varint, Header, MAX_KIND_LEN, MAX_PAYLOAD_LEN, MAX_STREAM_LEN};
use crate::{Error, Event, Hash, Result};

/// The version of the blocks the writer stores.
pub const BLOCK_VERSION: u8 = 2;
/// Blocks of formats 1 and 2: records stored uncompressed, payloads as segments of a stream.
pub const BLOCK_VERSION_1: u8 = 1;
/// A block holds at most this many events …
pub const MAX_BLOCK_EVENTS: usize = 128;
/// … and at most about this many payload bytes, so that reading one event stays cheap.
pub const MAX_BLOCK_PAYLOAD: usize = 256 << 10;
/// The most a block's records can take decompressed: one payload of the largest size (a
/// block holds at least one event), the rest of a full block, and every record's framing.
const MAX_RECORDS_LEN: usize =
    MAX_PAYLOAD_LEN + MAX_BLOCK_PAYLOAD + MAX_BLOCK_EVENTS * (MAX_STREAM_LEN + MAX_KIND_LEN + 160);

const CODEC_RAW: u8 = 0;
const CODEC_STREAM: u8 = 1;
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
    zstd: zstd::bulk::Compressor<'static>,
    records: Vec<u8>,
    count: u64,
    payload_bytes: usize,
}

fn zstd_error(error: std::io::Error) -> Error {
    Error::Storage(format!("zstd: {error}"))
}

impl BlockEncoder {
    pub fn new() -> Result<BlockEncoder> {
        let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zstd_error)?;
        zstd.include_checksum(true).map_err(zstd_error)?;
        zstd.include_contentsize(true).map_err(zstd_error)?;
        Ok(BlockEncoder { zstd, records: Vec::new(), count: 0, payload_bytes: 0 })
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
        let mut prefix = Vec::with_capacity(12);
        write_varint(&mut prefix, header_bytes.len() as u64);
        let record_len = prefix.len() + header_bytes.len() + 96 + 1 + payload.len();
        write_varint(&mut self.records, record_len as u64);
        self.records.extend_from_slice(&prefix);
        self.records.extend_from_slice(header_bytes);
        self.records.extend_from_slice(&payload_hash.0);
        self.records.extend_from_slice(&prev.0);
        self.records.extend_from_slice(&hash.0);
        self.records.push(CODEC_RAW);
        self.records.extend_from_slice(payload);
        self.count += 1;
        self.payload_bytes += payload.len();
        Ok(())
    }

    /// The finished block; the encoder is ready for the next one.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        // Taken for the call and given back, so its capacity serves the next block.
        let mut records = std::mem::take(&mut self.records);
        let block = self.seal(self.count, &records);
        records.clear();
        self.records = records;
        let block = block?;
        self.count = 0;
        self.payload_bytes = 0;
        Ok(block)
    }

    /// A version-2 block of `count` records given as their bytes, which are not checked:
    /// how [`finish`](Self::finish) seals a block, and how forensic tools and tests store
    /// records they changed on purpose.
    pub fn seal(&mut self, count: u64, records: &[u8]) -> Result<Vec<u8>> {
        let frame = self.zstd.compress(records).map_err(zstd_error)?;
        let mut block = Vec::with_capacity(21 + frame.len());
        block.push(BLOCK_VERSION);
        write_varint(&mut block, count);
        write_varint(&mut block, frame.len() as u64);
        block.extend_from_slice(&frame);
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
pub struct BlockRecord {
    /// Where its fields are in [`ParsedBlock::record_bytes`].
    pub layout: RecordLayout,
    pub header_bytes: Vec<u8>,
    pub payload_hash: Hash,
    pub prev: Hash,
    pub hash: Hash,
    pub payload: std::result::Result<Vec<u8>, RecordFault>,
}

impl BlockRecord {
    pub fn header(&self) -> std::result::Result<Header, RecordFault> {
        decode_header(&self.header_bytes)
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
    pub version: u8,
    /// The bytes the records' layouts point into: the stored block itself (version 1), or
    /// its frame decompressed (version 2; empty when it did not decompress).
    pub record_bytes: Cow<'a, [u8]>,
    /// How many stored bytes the block takes, when its framing says so (version 2: the
    /// frame's end); a scan of sled's files may skip that far once a record is proven.
    pub stored_len: Option<usize>,
    pub records: Vec<BlockRecord>,
    pub framing_fault: Option<RecordFault>,
}

impl ParsedBlock<'_> {
    /// A block none of whose records could be read, and why.
    fn unreadable(version: u8, detail: String) -> ParsedBlock<'static> {
        ParsedBlock {
            version,
            record_bytes: Cow::Borrowed(&[][..]),
            stored_len: None,
            records: Vec::new(),
            framing_fault: Some(RecordFault::Framing(detail)),
        }
    }

    /// How far past the block's start the stored bytes of `record` reach: the record's end
    /// (version 1), or the whole block (version 2, where records are known only together).
    pub fn stored_end_of(&self, record: &BlockRecord) -> usize {
        self.stored_len.unwrap_or(record.layout.body.end)
    }
}

fn hash_at(bytes: &[u8], range: Range<usize>) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[range]);
    Hash(out)
}

/// Where a version-2 block's frame lies in its stored bytes, from its first bytes alone:
/// its event count and the frame's range, or why the framing is damaged.
pub(crate) fn frame_of(bytes: &[u8]) -> std::result::Result<(u64, Range<usize>), String> {
    let (count, count_len) = read_varint(bytes.get(1..).unwrap_or_default()).ok_or("event count is not a varint")?;
    let at = 1 + count_len;
    let (frame_len, frame_len_len) =
        read_varint(bytes.get(at..).unwrap_or_default()).ok_or("frame length is not a varint")?;
    let start = at + frame_len_len;
    let end = usize::try_from(frame_len).ok().and_then(|len| start.checked_add(len)).ok_or("frame length overflows")?;
    if end > bytes.len() {
        return Err(format!("a frame of {frame_len} bytes runs past the block"));
    }
    Ok((count, start..end))
}

/// Decompresses a version-2 frame, refusing one that claims more than a block can hold.
pub(crate) fn decompress_frame(frame: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => return Err("the frame does not say its size".into()),
        Err(_) => return Err("not a zstd frame".into()),
    };
    let capacity = usize::try_from(size)
        .ok()
        .filter(|size| *size <= MAX_RECORDS_LEN)
        .ok_or_else(|| format!("the frame claims {size} bytes, more than a block holds"))?;
    BULK_DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        let decoder = slot.as_mut().ok_or("zstd: no decoder")?;
        let records = decoder.decompress(frame, capacity).map_err(|error| format!("zstd: {error}"))?;
        if records.len() != capacity {
            return Err(format!("the frame holds {} bytes, not the {capacity} it says", records.len()));
        }
        Ok(records)
    })
}

/// Parses a block without trusting any of it; never panics.
pub fn parse_block(bytes: &[u8]) -> ParsedBlock<'_> {
    let Some(&version) = bytes.first() else { return ParsedBlock::unreadable(0, "empty block".into()) };
    let (record_bytes, at, count, stored_len) = match version {
        BLOCK_VERSION => {
            let (count, frame) = match frame_of(bytes) {
                Ok(found) => found,
                Err(detail) => return ParsedBlock::unreadable(version, detail),
            };
            match decompress_frame(&bytes[frame.clone()]) {
                Ok(records) => (Cow::Owned(records), 0, count, Some(frame.end)),
                Err(detail) => {
                    return ParsedBlock::unreadable(version, format!("the block's frame does not decode: {detail}"))
                }
            }
        }
        BLOCK_VERSION_1 => match read_varint(&bytes[1..]) {
            Some((count, count_len)) => (Cow::Borrowed(bytes), 1 + count_len, count, None),
            None => return ParsedBlock::unreadable(version, "event count is not a varint".into()),
        },
        other => return ParsedBlock::unreadable(other, format!("unknown block version {other}")),
    };
    match with_stream_decoder(|decoder| parse_records(&record_bytes, at, count, decoder)) {
        Ok((records, framing_fault)) => ParsedBlock { version, record_bytes, stored_len, records, framing_fault },
        Err(detail) => ParsedBlock::unreadable(version, detail),
    }
}

/// Runs `parse` with this thread's zstd stream decoder (for version-1 segments), reset.
fn with_stream_decoder<T>(parse: impl FnOnce(&mut Decoder<'static>) -> T) -> std::result::Result<T, String> {
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Decoder::new().ok();
        }
        let decoder = slot.as_mut().ok_or("zstd: no decoder")?;
        decoder.reinit().map_err(|error| format!("zstd: {error}"))?;
        Ok(parse(decoder))
    })
}

thread_local! {
    // A zstd decoding context is costly to make; each thread keeps one of each kind.
    static DECODER: std::cell::RefCell<Option<Decoder<'static>>> = const { std::cell::RefCell::new(None) };
    static BULK_DECODER: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The records of `bytes` from `at`, and a framing fault that stopped them early.
fn parse_records(
    bytes: &[u8],
    mut at: usize,
    count: u64,
    decoder: &mut Decoder<'static>,
) -> (Vec<BlockRecord>, Option<RecordFault>) {
    let mut records = Vec::new();
    for index in 0..count {
        match frame_record(bytes, at) {
            Ok((layout, end)) => {
                let payload = decode_payload(decoder, bytes, &layout);
                records.push(BlockRecord {
                    header_bytes: bytes[layout.header.clone()].to_vec(),
                    payload_hash: hash_at(bytes, layout.payload_hash.clone()),
                    prev: hash_at(bytes, layout.prev.clone()),
                    hash: hash_at(bytes, layout.hash.clone()),
                    layout,
                    payload,
                });
                at = end;
            }
            Err(detail) => {
                return (records, Some(RecordFault::Framing(format!("record {index} of {count}: {detail}"))))
            }
        }
    }
    let framing_fault =
        (at != bytes.len()).then(|| RecordFault::Framing(format!("{} bytes after the last record", bytes.len() - at)));
    (records, framing_fault)
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

/// Decodes one flushed segment of a version-1 block's stream: everything the segment yields.
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
        fn compressible_blocks_round_trip(
            payloads in proptest::collection::vec(("[a-z ]{0,12}", 0usize..400), 1..MAX_BLOCK_EVENTS),
        ) {
            let payloads: Vec<Vec<u8>> =
                payloads.iter().map(|(text, times)| text.repeat(*times).into_bytes()).collect();
            let (bytes, events) = build(&payloads);
            prop_assert_eq!(decode_block(0, &bytes).unwrap(), events);
        }

        /// No damaged byte of a block ever reads as an event: the frame's checksum, its
        /// length or the count catches it.
        #[test]
        fn any_flipped_byte_makes_the_block_unreadable(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut bytes, _) = build(&payloads);
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            prop_assert!(decode_block(0, &bytes).is_err(), "byte {} of {} flipped", at, bytes.len());
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
        // The payload hash and hash of each event are random; everything else repeats.
        let random = 64 * 64;
        assert!(bytes.len() - random < raw / 3, "{} payload bytes stored as {}", raw, bytes.len() - random);
    }

    /// A block as formats 1 and 2 wrote it (version 1): a short payload raw, two as
    /// segments of one zstd stream. Written by the encoder of that time.
    const VERSION_1_BLOCK: &str = "0103890122008080898b948b91030f73657373696f6e2f66697874757265076d65737361676505f4d7686a97015f77785aed9a660e26685080b627e72895538245527892fa7bd2000000000000000000000000000000000000000000000000000000000000000012c1a4cba9e7ea413873a6975bc629def9a328f2d271fe861d035a059667aaf90073686f7274de0122018180898b948b91030f73657373696f6e2f66697874757265076d657373616765631caab5ac3ea9210b047de6a5eae620c869bab8a4bc4a8760e87de30c8be0f32712c1a4cba9e7ea413873a6975bc629def9a328f2d271fe861d035a059667aaf9d0b76c46e6e9dff9c8b60867424a16453219c5f30779b3fcc804aed4a687afb90128b52ffd00588c02008245121790296d5df5720d45f0bdada56acdd68174597ad6dd20044962cd00a14c60a4ced5ac7ee7b8b2a2c2dcb0b33407449b2bdd062edefb1e1a8669a4f807a91e6180f3aa70f1138b35120100b2319db60122028280898b948b91030f73657373696f6e2f66697874757265076d65737361676570502ce7ca745fd5dd9ae972b3a9f04f59b0509def9d851e9c314f78979d0bb0b0d0b76c46e6e9dff9c8b60867424a16453219c5f30779b3fcc804aed4a687afb9e9a70aec1c7a40f9ded514b16118b9bb3a452bb2fa8aff431fd934c9ac961d01017c0100f8617373697374616e745420657870656374732061206e65776c696e65227d7d0500615c81030c4139b0c63fb30840";

    #[test]
    fn a_version_1_block_reads_as_it_was_written() {
        let bytes: Vec<u8> = (0..VERSION_1_BLOCK.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&VERSION_1_BLOCK[at..at + 2], 16).unwrap())
            .collect();
        let events = decode_block(0, &bytes).unwrap();
        let payloads: Vec<&[u8]> = events.iter().map(|event| event.payload.as_slice()).collect();
        assert_eq!(payloads[0], b"short");
        assert!(payloads[1].starts_with(br#"{"type":"user""#));
        assert!(payloads[2].ends_with(br#"expects a newline"}}"#));
        let mut prev = GENESIS;
        for event in &events {
            let header_bytes = encode_header(&event.header).unwrap();
            assert_eq!(event.payload_hash, payload_hash(&event.payload));
            assert_eq!(event.prev, prev);
            assert_eq!(event.hash, chain_hash(&header_bytes, &event.payload_hash, &prev));
            prev = event.hash;
        }
        assert_eq!(prev.to_hex(), "e9a70aec1c7a40f9ded514b16118b9bb3a452bb2fa8aff431fd934c9ac961d01");
        assert_eq!(parse_block(&bytes).version, BLOCK_VERSION_1);
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
