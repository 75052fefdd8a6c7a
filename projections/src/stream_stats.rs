//! `StreamStats`: per stream, how many events it has, the seq of its last one and how many
//! payload bytes its events carry. It is what `cclog stats` reports and the smallest real
//! proof of the projection framework.
//!
//! Keys: the stream name's bytes. Encoding format: postcard(`StreamSummary`).

use cclog_engine::{ApplyError, Event, Log, Projection, ProjectionState};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const NAME: &str = "stream_stats";

/// The `stream_stats` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamStats;

/// What the projection keeps for one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSummary {
    pub events: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub payload_bytes: u64,
}

/// Sums over every stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub streams: u64,
    pub events: u64,
    pub payload_bytes: u64,
}

impl Projection for StreamStats {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        let key = event.stream().as_bytes();
        let mut summary = match state.get(key)? {
            Some(bytes) => postcard::from_bytes::<StreamSummary>(&bytes)?,
            None => StreamSummary { first_seq: event.seq(), ..StreamSummary::default() },
        };
        summary.events += 1;
        summary.last_seq = event.seq();
        summary.payload_bytes += event.header.payload_len;
        state.insert(key, postcard::to_stdvec(&summary)?);
        Ok(())
    }
}

impl StreamStats {
    /// One stream's summary, if it has events.
    pub fn read(log: &Log, stream: &str) -> Result<Option<StreamSummary>> {
        let view = log.projection(NAME).ok_or(Error::NotOpen(NAME))?;
        view.get(stream.as_bytes())?.map(|bytes| decode(&bytes)).transpose()
    }

    /// Every stream with its summary, in name order.
    pub fn all(log: &Log) -> Result<Vec<(String, StreamSummary)>> {
        let view = log.projection(NAME).ok_or(Error::NotOpen(NAME))?;
        view.iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((String::from_utf8_lossy(&key).into_owned(), decode(&value)?))
            })
            .collect()
    }

    /// Sums over every stream.
    pub fn totals(log: &Log) -> Result<Totals> {
        let mut totals = Totals::default();
        for (_, summary) in Self::all(log)? {
            totals.streams += 1;
            totals.events += summary.events;
            totals.payload_bytes += summary.payload_bytes;
        }
        Ok(totals)
    }
}

fn decode(bytes: &[u8]) -> Result<StreamSummary> {
    postcard::from_bytes(bytes).map_err(|error| Error::Damaged { projection: NAME, detail: error.to_string() })
}
