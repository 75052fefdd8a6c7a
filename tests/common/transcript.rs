//! Generated transcripts shaped like Claude Code 2.1's — user prompts, assistant replies
//! with tool calls and usage, tool results, `last-prompt` metadata — for the import
//! benchmarks and the import crash test. Included by path from both, so they import the
//! same kind of data.

use std::io::Write;
use std::path::Path;

/// A random-looking version-4 uuid, as Claude Code writes them, fixed by `seed` and `line`
/// so that runs repeat and uuids of different seeds never meet.
fn uuid_v4(seed: u32, line: u64) -> String {
    // splitmix64: consecutive lines get uuids scattered over the keyspace, like real ones.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let high = mix(u64::from(seed) << 40 ^ line);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        0x8000 | (line >> 48 & 0x3fff),
        (u64::from(seed) << 40 | line) & 0xffff_ffff_ffff
    )
}

/// Writes a transcript of about `bytes` bytes for `session`; `seed` keeps the uuids of
/// different transcripts apart. Returns the number of lines.
pub fn generate(path: &Path, session: &str, seed: u32, bytes: u64) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut lines, mut parent) = (0u64, 0u64, "null".to_string());
    let filler = "The quick brown fox jumps over the lazy dog; ".repeat(20);
    while written < bytes {
        let uuid = uuid_v4(seed, lines);
        let line = match lines % 4 {
            0 => format!(
                r#"{{"parentUuid":{parent},"isSidechain":false,"promptId":"p-{lines}","type":"user","message":{{"role":"user","content":"Please look at item {lines}. {}"}},"uuid":"{uuid}","timestamp":"2026-11-21T10:00:00.000Z","permissionMode":"default","userType":"external","entrypoint":"cli","cwd":"/home/dev/app","sessionId":"{session}","version":"2.1.329","gitBranch":"main"}}"#,
                &filler[..200]
            ),
            1 => format!(
                r#"{{"parentUuid":{parent},"isSidechain":false,"message":{{"id":"msg_{seed:08x}{lines:016}","model":"claude-sonnet-4-5","role":"assistant","type":"message","content":[{{"type":"tool_use","id":"toolu_{lines}","name":"Bash","input":{{"command":"grep -rn item{lines} src/","description":"search"}}}}],"stop_reason":"tool_use","usage":{{"input_tokens":1200,"cache_creation_input_tokens":300,"cache_read_input_tokens":9000,"output_tokens":80}}}},"type":"assistant","uuid":"{uuid}","timestamp":"2026-11-21T10:00:01.000Z","userType":"external","cwd":"/home/dev/app","sessionId":"{session}","version":"2.1.329","gitBranch":"main"}}"#
            ),
            2 => format!(
                r#"{{"parentUuid":{parent},"isSidechain":false,"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_{}","type":"tool_result","content":"{filler}"}}]}},"uuid":"{uuid}","timestamp":"2026-11-21T10:00:02.000Z","toolUseResult":{{"stdout":"{}","stderr":"","interrupted":false}},"cwd":"/home/dev/app","sessionId":"{session}","version":"2.1.329"}}"#,
                lines - 1,
                &filler[..400]
            ),
            _ => format!(
                r#"{{"type":"last-prompt","lastPrompt":"Please look at item {lines}","leafUuid":"{uuid}","sessionId":"{session}"}}"#
            ),
        };
        if lines % 4 != 3 {
            parent = format!("\"{uuid}\"");
        }
        writeln!(out, "{line}")?;
        written += line.len() as u64 + 1;
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

/// What [`generate_history`] wrote.
#[allow(dead_code)]
pub struct History {
    pub files: u64,
    pub bytes: u64,
    pub lines: u64,
}

/// Writes a `~/.claude/projects`-shaped history of `files` transcripts under `projects`:
/// sizes spread like a real one's (median about 30 KB, log-normal, a few over 3 MB), 20
/// project folders, and every fourth session with a subagent's file under
/// `<session>/subagents/`.
#[allow(dead_code)]
pub fn generate_history(projects: &Path, files: u64, seed: u32) -> std::io::Result<History> {
    let mut state = u64::from(seed) ^ 0x005e_ed0f_4157_0a7e;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let mut history = History { files: 0, bytes: 0, lines: 0 };
    let mut number = 0u32;
    while history.files < files {
        let session = uuid_v4(seed.wrapping_mul(7919).wrapping_add(number), u64::MAX >> 16);
        let project = projects.join(format!("-home-dev-project-{}", number % 20));
        std::fs::create_dir_all(&project)?;
        // Log-normal around 30 KB (Box–Muller); one file in 600 is a long session of 3–5 MB.
        let normal = (-2.0 * next().max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * next()).cos();
        let bytes = if number % 600 == 599 {
            3_000_000 + (next() * 2_000_000.0) as u64
        } else {
            ((30_000.0 * (1.1 * normal).exp()) as u64).clamp(1_500, 2_500_000)
        };
        let file_seed = seed.wrapping_mul(100_003).wrapping_add(number * 2);
        let main = project.join(format!("{session}.jsonl"));
        history.lines += generate(&main, &session, file_seed, bytes)?;
        history.bytes += std::fs::metadata(&main)?.len();
        history.files += 1;
        if number % 4 == 3 && history.files < files {
            let agents = project.join(&session).join("subagents");
            std::fs::create_dir_all(&agents)?;
            let agent = agents.join(format!("agent-a{number:07x}.jsonl"));
            history.lines += generate(&agent, &session, file_seed + 1, bytes / 3 + 1_000)?;
            history.bytes += std::fs::metadata(&agent)?.len();
            history.files += 1;
        }
        number += 1;
    }
    Ok(history)
}
