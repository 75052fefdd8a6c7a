//! `cclog stats`: how big the log is, its head, what storing it costs on disk, and where
//! those bytes go (the engine's footprint: each part of the stored format, and sled's own
//! overhead).

use std::path::Path;

use cclog_engine::footprint::Footprint;
use cclog_projections::StreamStats;

use crate::args::StatsArgs;
use crate::output::{self, Column, Table};
use crate::EXIT_OK;

pub fn run(data: &Path, args: StatsArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let log = super::open_log_to_read(data)?;
    let totals = StreamStats::totals(&log)?;
    let head = log.head();
    let footprint = log.footprint()?;
    let on_disk = footprint.files.total;
    let ratio = if totals.payload_bytes == 0 { None } else { Some(on_disk as f64 / totals.payload_bytes as f64) };
    if args.json {
        let json = serde_json::json!({
            "data_dir": data,
            "events": log.len(),
            "streams": totals.streams,
            "head": head.map(|head| serde_json::json!({
                "seq": head.seq,
                "hash": head.hash.to_hex(),
                "ts": output::timestamp(head.ts_us),
            })),
            "raw_payload_bytes": totals.payload_bytes,
            "bytes_on_disk": on_disk,
            "disk_per_payload_byte": ratio,
            "footprint": footprint,
        });
        crate::outln!("{json}");
        return Ok(EXIT_OK);
    }
    crate::outln!("data dir       {}", data.display());
    crate::outln!("events         {}", log.len());
    crate::outln!("streams        {}", totals.streams);
    match head {
        Some(head) => {
            crate::outln!("head           seq {} {} at {}", head.seq, head.hash, output::timestamp(head.ts_us))
        }
        None => crate::outln!("head           (empty log)"),
    }
    crate::outln!("payload bytes  {} ({})", totals.payload_bytes, output::bytes(totals.payload_bytes));
    crate::outln!("bytes on disk  {} ({})", on_disk, output::bytes(on_disk));
    if let Some(ratio) = ratio {
        crate::outln!("disk/payload   {ratio:.2}×");
    }
    crate::outln!();
    breakdown(&footprint, totals.payload_bytes).print(output::terminal_width());
    Ok(EXIT_OK)
}

/// Where the bytes on disk go, a row per part, each with its share of the payload bytes;
/// under the blocks, dim, what their records hold before compression.
fn breakdown(footprint: &Footprint, payload_bytes: u64) -> Table {
    let blocks = &footprint.blocks;
    let mut parts: Vec<(String, Option<u64>, u64)> = vec![
        ("event blocks (compressed)".into(), Some(blocks.stored.keys), blocks.stored.bytes()),
        ("  uncompressed: payloads".into(), Some(blocks.events), blocks.payload_bytes),
        ("  uncompressed: headers".into(), None, blocks.header_bytes),
        ("  uncompressed: hashes".into(), None, blocks.hash_bytes),
        ("stream index".into(), Some(footprint.stream_index.keys), footprint.stream_index.bytes()),
    ];
    for (name, part) in &footprint.projections {
        parts.push((format!("projection {name}"), Some(part.keys), part.bytes()));
    }
    let rest = footprint.meta.bytes() + footprint.other.bytes();
    parts.push(("metadata".into(), Some(footprint.meta.keys + footprint.other.keys), rest));
    parts.push(("sled overhead and garbage".into(), None, footprint.sled_overhead));
    parts.push(("cclog's own files".into(), None, footprint.files.cclog));
    let share = |bytes: u64| {
        if payload_bytes == 0 {
            String::new()
        } else {
            format!("{:.3}×", bytes as f64 / payload_bytes as f64)
        }
    };
    Table {
        columns: vec![
            Column::text("WHERE THE BYTES GO").flexible(12),
            Column::number("KEYS").droppable(1),
            Column::number("BYTES"),
            Column::number("PER PAYLOAD BYTE"),
        ],
        rows: parts
            .into_iter()
            .map(|(name, keys, bytes)| {
                vec![name, keys.map(output::grouped).unwrap_or_default(), output::bytes(bytes), share(bytes)]
            })
            .collect(),
        totals: Some(vec![
            "on disk".into(),
            String::new(),
            output::bytes(footprint.files.total),
            share(footprint.files.total),
        ]),
        // What the blocks hold before compression details their row; it is not on disk.
        dim: vec![1, 2, 3],
    }
}
