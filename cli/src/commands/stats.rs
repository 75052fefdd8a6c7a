//! `cclog stats`: how big the log is, its head, and what storing it costs on disk.

use std::path::Path;
use std::process::ExitCode;

use cclog_projections::StreamStats;

use crate::args::StatsArgs;
use crate::output;

pub fn run(data: &Path, args: StatsArgs) -> anyhow::Result<ExitCode> {
    super::require_store(data)?;
    let log = super::open_log(data)?;
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
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("data dir       {}", data.display());
    println!("events         {}", log.len());
    println!("streams        {}", totals.streams);
    match head {
        Some(head) => println!("head           seq {} {} at {}", head.seq, head.hash, output::timestamp(head.ts_us)),
        None => println!("head           (empty log)"),
    }
    println!("payload bytes  {} ({})", totals.payload_bytes, output::bytes(totals.payload_bytes));
    println!("bytes on disk  {} ({})", on_disk, output::bytes(on_disk));
    if let Some(ratio) = ratio {
        println!("disk/payload   {ratio:.2}×");
    }
    Ok(ExitCode::SUCCESS)
}
