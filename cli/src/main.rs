//! The `cclog` binary: everything lives in the `cclog_cli` library; `main` only hands over.

// sled allocates for every key it touches; mimalloc makes the writer's hot path measurably
// faster than glibc's allocator (see README's Performance section, measured with it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cclog_cli::main()
}
