//! Recovery after a failed write. sled does not keep a commit group atomic when a write
//! inside it fails: the keys before the failure stay applied, and its next flush may write
//! them (seen on a full disk: blocks past the recorded head, a hole inside the chain, a
//! head that lags its blocks). What the engine promised is narrower than what sled kept:
//! every acknowledged event is at or before the head anchor (`anchor`), written only after
//! the group's fsync and before any appender hears of it. So when the anchor file carries a
//! fault record, or blocks lie past the recorded head, the open cuts the log back to the
//! anchor (or, with no fault recorded, to the recorded head): blocks past it go, stream
//! index runs are shortened, the head is rewritten, and every projection is folded again
//! from what is left, since sled may have kept part of their updates too. The cut is one
//! batch, flushed and fsynced before the fault record is cleared; `Log::open` then appends
//! a `log.recovered` event on the `log` stream saying what was cut and why.
//!
//! An acknowledged event that is missing cannot be cut back to: recovery then changes
//! nothing and leaves the store for `verify` to describe (and `check_anchor` refuses to
//! append on top of it).

use serde::Serialize;

use crate::anchor::{read_anchor, read_fault, AnchorState};
use crate::block::{parse_block, BlockEncoder};
use crate::durability::DurableFiles;
use crate::envelope::encode_header;
use crate::store::{be_u64, block_key, block_seq, meta_key, stream_run_value, Head, Store, HEAD_KEY, STREAMS};
use crate::{Error, Event, Result};

/// The stream and kind of the event that records a recovery.
pub const RECOVERY_STREAM: &str = "log";
pub const RECOVERY_KIND: &str = "log.recovered";

/// What a recovery cut, as recorded in its `log.recovered` event (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// The last event kept; `None` when nothing was acknowledged.
    pub kept_through: Option<u64>,
    /// The first and last seq found past it, and how many events that was.
    pub cut_first: Option<u64>,
    pub cut_last: Option<u64>,
    pub cut_events: u64,
    /// Seqs missing between `cut_first` and `cut_last` (a hole sled left).
    pub holes: u64,
    /// Why: the recorded fault, or what was found.
    pub reason: String,
}

impl Recovery {
    /// A recovery that found nothing past the acknowledged head to cut.
    pub(crate) fn nothing_cut(kept_through: Option<u64>, reason: String) -> Recovery {
        Recovery { kept_through, cut_first: None, cut_last: None, cut_events: 0, holes: 0, reason }
    }

    pub fn describe(&self) -> String {
        let kept = match self.kept_through {
            Some(seq) => format!("kept events 0..={seq}"),
            None => "kept no event".to_string(),
        };
        let cut = match (self.cut_first, self.cut_last) {
            (Some(first), Some(last)) => format!(
                "cut {} unacknowledged event(s) {first}..={last}{}",
                self.cut_events,
                if self.holes > 0 { format!(" ({} missing among them)", self.holes) } else { String::new() }
            ),
            _ => "cut no event".to_string(),
        };
        format!("recovered after a failed write ({}): {kept}, {cut}", self.reason)
    }

    pub(crate) fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The last seq stored in any block, and the block's first seq.
fn last_stored(store: &Store) -> Result<Option<u64>> {
    let Some(item) = store.log.range(block_key(0)..block_key(u64::MAX)).next_back() else { return Ok(None) };
    let (key, value) = item?;
    let first = block_seq(&key).ok_or_else(|| Error::Corruption { at: None, detail: "damaged block key".into() })?;
    let count = parse_block(&value).records.len() as u64;
    Ok(Some(first + count.saturating_sub(1)))
}

/// What the open must do before the writer starts: nothing (the common case), or cut the
/// log back. Returns what was cut.
pub(crate) fn recover(store: &Store, files: &mut DurableFiles) -> Result<Option<Recovery>> {
    let fault = read_fault(&store.dir);
    let head = store.stored_head()?;
    let last = last_stored(store)?;
    let consistent = last == head.map(|head| head.seq);
    if fault.is_none() && consistent {
        return Ok(None);
    }
    let keep = match (&fault, read_anchor(&store.dir)) {
        (Some(_), AnchorState::Head { seq, hash }) => {
            // The acknowledged head must still be there, or there is nothing safe to cut to.
            match store.read_event(seq) {
                Ok(Some(event)) if event.hash == hash => Some(event),
                _ => return Ok(None),
            }
        }
        (Some(_), AnchorState::Absent) => None,
        (Some(_), AnchorState::Unreadable) => return Ok(None),
        (None, _) => match head {
            Some(head) => match store.read_event(head.seq) {
                Ok(Some(event)) if event.hash == head.hash => Some(event),
                _ => return Ok(None),
            },
            None => None,
        },
    };
    let keep_seq = keep.as_ref().map(Event::seq);
    let mut batch = sled::Batch::default();
    let mut cut = Cut::default();
    cut_blocks(store, keep_seq, &mut batch, &mut cut)?;
    cut_stream_index(store, keep_seq, &mut batch)?;
    match &keep {
        Some(event) => batch.insert(
            meta_key(HEAD_KEY),
            Head { seq: event.seq(), hash: event.hash, ts_us: event.header.ts_us }.encode().to_vec(),
        ),
        None => batch.remove(meta_key(HEAD_KEY)),
    }
    // Every projection folds again from what is left.
    for item in store.log.scan_prefix(meta_key(b"projection/")) {
        let (key, _) = item?;
        batch.remove(key);
    }
    store.log.apply_batch(batch)?;
    store.db.flush()?;
    files.sync()?;
    match keep_seq.zip(keep.as_ref()) {
        Some((seq, event)) => store.anchor.write(seq, &event.hash)?,
        None => store.anchor.clear()?,
    }
    store.anchor.clear_fault()?;
    store.forget_decoded_blocks();
    let reason = fault.unwrap_or_else(|| match (head, last) {
        (Some(head), Some(last)) => format!("blocks reach seq {last} past the recorded head {}", head.seq),
        (None, Some(last)) => format!("blocks reach seq {last} but no head is recorded"),
        _ => "the recorded head has no block".to_string(),
    });
    Ok(Some(Recovery {
        kept_through: keep_seq,
        cut_first: cut.first,
        cut_last: cut.last,
        cut_events: cut.events,
        holes: cut.holes(),
        reason,
    }))
}

#[derive(Default)]
struct Cut {
    first: Option<u64>,
    last: Option<u64>,
    events: u64,
}

impl Cut {
    fn add(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.first = Some(self.first.map_or(first, |known| known.min(first)));
        self.last = Some(self.last.map_or(first + count - 1, |known| known.max(first + count - 1)));
        self.events += count;
    }

    fn holes(&self) -> u64 {
        match (self.first, self.last) {
            (Some(first), Some(last)) => (last - first + 1).saturating_sub(self.events),
            _ => 0,
        }
    }
}

/// Removes every block past `keep` and shortens the one that holds it.
fn cut_blocks(store: &Store, keep: Option<u64>, batch: &mut sled::Batch, cut: &mut Cut) -> Result<()> {
    let from = keep.map_or(0, |seq| seq + 1);
    if let Some(seq) = keep {
        if let Some((first, bytes)) = store.block_containing(seq)? {
            let parsed = parse_block(&bytes);
            let kept = usize::try_from(seq - first + 1).unwrap_or(usize::MAX);
            if parsed.records.len() > kept {
                let mut encoder = BlockEncoder::new()?;
                for record in &parsed.records[..kept] {
                    let event = record
                        .event()
                        .map_err(|fault| Error::Corruption { at: Some(seq), detail: fault.to_string() })?;
                    let header_bytes = encode_header(&event.header)?;
                    encoder.push(&header_bytes, &event.payload_hash, &event.prev, &event.hash, &event.payload)?;
                }
                batch.insert(block_key(first).to_vec(), encoder.finish()?);
                cut.add(seq + 1, (parsed.records.len() - kept) as u64);
            }
        }
    }
    for item in store.log.range(block_key(from)..block_key(u64::MAX)) {
        let (key, value) = item?;
        let Some(first) = block_seq(&key) else { continue };
        cut.add(first, (parse_block(&value).records.len() as u64).max(1));
        batch.remove(key);
    }
    Ok(())
}

/// Removes stream-index runs that start past `keep` and ends those that reach past it there.
fn cut_stream_index(store: &Store, keep: Option<u64>, batch: &mut sled::Batch) -> Result<()> {
    for item in store.log.scan_prefix([STREAMS]) {
        let (key, value) = item?;
        let Some(first) = key.len().checked_sub(8).and_then(|at| be_u64(&key[at..])) else { continue };
        let last = if value.is_empty() { Some(first) } else { be_u64(&value) };
        match keep {
            Some(keep) if first <= keep => {
                if last.is_some_and(|last| last > keep) {
                    batch.insert(key, stream_run_value(first, keep));
                }
            }
            _ => batch.remove(key),
        }
    }
    Ok(())
}
