//! Import benchmarks, and replay's. `import_throughput` (criterion) imports generated transcript JSONL
//! into a fresh log and reports MB/s and entries/s: one 64 MiB file, and a history of
//! 3,000 files shaped like a real `~/.claude/projects` (median about 30 KB, a few over
//! 3 MB, subagent folders). The many-file run also times claude-code-log 1.7.0 (the peer;
//! pip-installed into `target/bench-venv` on first use) building its cache and combined
//! transcripts of the same history, when Python can install it. `import_memory` (run with
//! `cargo bench --bench import -- import_memory`) generates a 1 GiB transcript, imports it
//! with the release `cclog` binary as a child process and reports the child's peak RSS
//! from `getrusage(RUSAGE_CHILDREN)`. Each throughput run also prints the bytes on disk per
//! payload byte of one import, by part (`Log::footprint`). `replay_session` writes a
//! 10,000-entry session's transcript back from the log, as `cclog replay` does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cclog_engine::{Log, LogOptions};
use cclog_ingest::import::{ImportReport, Importer};
use criterion::{criterion_group, Criterion, Throughput};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SESSION: &str = "0b5e7a1c-3d2f-4e6a-9b8c-7d6e5f4a3b2c";

#[path = "../tests/common/transcript.rs"]
mod transcript;

fn generate(path: &Path, bytes: u64) -> u64 {
    transcript::generate(path, SESSION, 0, bytes).unwrap()
}

fn project_dir(root: &Path) -> PathBuf {
    let dir = root.join("projects").join("-home-dev-app");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Imports `projects` into a fresh log `iterations` times; the time of the imports alone.
fn time_imports(iterations: u64, projects: &Path, check: impl Fn(&ImportReport)) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    for _ in 0..iterations {
        let data = tempfile::tempdir().unwrap();
        let log = Log::open(data.path(), LogOptions::with_projections(cclog_projections::standard())).unwrap();
        let started = Instant::now();
        let report = Importer::new(&log).import(&[projects.to_path_buf()], &|_| {}).unwrap();
        total += started.elapsed();
        check(&report);
    }
    total
}

/// Imports `projects` once into a fresh log and prints where its bytes go on disk, per
/// payload byte (issue 22's target: at most 0.25 for transcript imports).
fn report_footprint(label: &str, projects: &Path) {
    let data = tempfile::tempdir().unwrap();
    let log = Log::open(data.path(), LogOptions::with_projections(cclog_projections::standard())).unwrap();
    Importer::new(&log).import(&[projects.to_path_buf()], &|_| {}).unwrap();
    let footprint = log.footprint().unwrap();
    let payload = footprint.blocks.payload_bytes as f64;
    let share = |bytes: u64| bytes as f64 / payload;
    let projections: u64 = footprint.projections.values().map(|part| part.bytes()).sum();
    eprintln!(
        "{label}: {:.3} bytes on disk per payload byte (blocks {:.3}, projections {:.3}, sled's overhead {:.3})",
        share(footprint.files.total),
        share(footprint.blocks.stored.bytes()),
        share(projections),
        share(footprint.sled_overhead)
    );
}

fn import_throughput(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let file = project_dir(root.path()).join(format!("{SESSION}.jsonl"));
    let bytes = 64 << 20;
    let lines = generate(&file, bytes);
    let size = std::fs::metadata(&file).unwrap().len();
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size));
    group.bench_function("64MiB_transcript", |b| {
        b.iter_custom(|iterations| {
            time_imports(iterations, &root.path().join("projects"), |report| assert_eq!(report.new_entries, lines))
        })
    });
    group.finish();
    eprintln!(
        "import: {lines} entries, {size} bytes per iteration (entries/s = MB/s × {:.0})",
        lines as f64 / (size as f64 / 1e6)
    );
    report_footprint("import of 64 MiB", &root.path().join("projects"));
}

fn import_many_files(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    let history = transcript::generate_history(&projects, 3_000, 1).unwrap();
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(history.bytes));
    group.bench_function("3000_files", |b| {
        b.iter_custom(|iterations| {
            time_imports(iterations, &projects, |report| {
                assert_eq!((report.files, report.new_entries), (history.files, history.lines))
            })
        })
    });
    group.finish();
    eprintln!("import: {} files, {} entries, {} bytes per iteration", history.files, history.lines, history.bytes);
    report_footprint("import of 3,000 files", &projects);
    if let Some(peer) = claude_code_log() {
        let output = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let status = std::process::Command::new(&peer)
            .args(["--all-projects", "--no-individual-sessions", "--projects-dir"])
            .arg(&projects)
            .arg("--output")
            .arg(output.path())
            .env("HOME", root.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert!(status.success(), "claude-code-log failed");
        eprintln!(
            "claude-code-log 1.7.0 on the same {} files: {elapsed:.1} s, {:.1} MB/s",
            history.files,
            history.bytes as f64 / 1e6 / elapsed
        );
    }
}

/// claude-code-log 1.7.0 in the benchmark's own venv, installed from PyPI on first use.
fn claude_code_log() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let bin = venv.join("bin/claude-code-log");
    let installed = || {
        std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "claude-code-log==1.7.0"])
            .status()
            .is_ok_and(|status| status.success())
    };
    if !bin.exists() {
        let made = std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        if !made.is_ok_and(|status| status.success()) || !installed() {
            eprintln!("claude-code-log 1.7.0 could not be installed (python3 -m venv, pip); the peer is not timed");
            return None;
        }
    }
    Some(bin)
}

/// Imports a 1 GiB transcript with the release binary and reports its peak RSS.
fn import_memory() {
    let root = tempfile::tempdir().unwrap();
    let file = project_dir(root.path()).join(format!("{SESSION}.jsonl"));
    let lines = generate(&file, 1 << 30);
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/cclog");
    assert!(bin.exists(), "build it first: cargo build --release --bin cclog");
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let status = std::process::Command::new(&bin)
        .arg("--data")
        .arg(data.path())
        .arg("import")
        .arg(root.path().join("projects"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(status.success());
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "import_memory: {lines} entries, {:.2} GiB in {:.1} s ({:.1} MB/s); peak RSS of `cclog import`: {} MiB",
        size as f64 / (1u64 << 30) as f64,
        elapsed.as_secs_f64(),
        size as f64 / 1e6 / elapsed.as_secs_f64(),
        usage.ru_maxrss / 1024
    );
}

/// `cclog replay`'s work for a 10,000-entry session: its transcript's exact bytes written
/// back from the log (every block of it decoded).
fn replay_session(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let file = project_dir(root.path()).join(format!("{SESSION}.jsonl"));
    let mut bytes = 6_400_000;
    let mut lines = generate(&file, bytes);
    while lines < 10_000 {
        bytes += 50_000;
        lines = generate(&file, bytes);
    }
    let data = tempfile::tempdir().unwrap();
    let log = Log::open(data.path(), LogOptions::with_projections(cclog_projections::standard())).unwrap();
    Importer::new(&log).import(&[root.path().join("projects")], &|_| {}).unwrap();
    let path = std::fs::canonicalize(&file).unwrap().to_string_lossy().into_owned();
    let state = cclog_projections::archive::Archive::file(&log, &path).unwrap().unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    let mut group = c.benchmark_group("replay");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(size));
    group.bench_function(format!("{lines}_entries"), |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(size as usize);
            cclog_projections::replay::write_file(&log, &state, None, &mut out).unwrap();
            assert_eq!(out.len() as u64, size);
        })
    });
    group.finish();
}

criterion_group!(benches, import_throughput, import_many_files, replay_session);

fn main() {
    if std::env::args().any(|arg| arg == "import_memory") {
        import_memory();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
