//! `cclog capture`: record stream-json from stdin as a run, optionally passing it through.

use std::io::Write;
use std::path::Path;

use cclog_ingest::capture;

use crate::args::CaptureArgs;
use crate::EXIT_OK;

pub fn run(data: &Path, args: CaptureArgs) -> anyhow::Result<u8> {
    let log = super::open_log(data)?;
    let stdin = std::io::BufReader::new(std::io::stdin());
    let mut stdout = std::io::stdout().lock();
    let echo: Option<&mut dyn Write> = if args.passthrough { Some(&mut stdout) } else { None };
    let report = capture::capture(&log, stdin, echo, &mut |refusal| {
        crate::errln!("cclog: {refusal}\n  the capture waits (up to 10 minutes) and loses nothing; it goes on once the log takes appends again");
    })?;
    let summary = if args.json {
        crate::json_style::line(&report)?
    } else {
        format!(
            "captured run {}: {} messages, session {}, {}",
            report.run,
            report.messages,
            report.session.as_deref().unwrap_or("(no init message)"),
            report.status
        )
    };
    if args.passthrough {
        crate::errln!("{summary}");
    } else {
        crate::outln!("{summary}");
    }
    Ok(EXIT_OK)
}
