//! `cclog compact`: copy the store into fresh sled files and put them in its place, so that
//! the room sled's old page versions take is given back (`cclog_engine::compact`).

use std::path::Path;

use crate::args::CompactArgs;
use crate::{output, EXIT_OK};

pub fn run(data: &Path, args: CompactArgs) -> anyhow::Result<u8> {
    super::require_store(data)?;
    let report = cclog_engine::compact::compact(data)?;
    if args.json {
        crate::outln!("{}", crate::json_style::line(&report)?);
        return Ok(EXIT_OK);
    }
    crate::outln!(
        "compacted {}: {} before, {} now ({} keys, {} of them and their values)",
        data.display(),
        output::bytes(report.bytes_before),
        output::bytes(report.bytes_after),
        output::grouped(report.keys),
        output::bytes(report.live_bytes)
    );
    Ok(EXIT_OK)
}
