//! `cclog stats`: how big the log is, its head, and what storing it costs on disk.

use std::path::Path;

use cclog_projections::StreamStats;

use crate::args::StatsArgs;
use crate::{output, EXIT_OK};

pub fn run(data: &Path, args: StatsArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let log = super::open_log_to_read(data)?;
    let totals = StreamStats::totals(&log)?;
    let head = log.head();
    let on_disk = log.disk_usage()?;
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
    Ok(EXIT_OK)
}
