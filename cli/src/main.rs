//! The `cclog` binary: everything lives in the `cclog_cli` library; `main` only hands over.

// sled allocates for every key it touches; mimalloc makes the writer's hot path measurably
// faster than glibc's allocator (see README's Performance section, measured with it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc option numbers (`mi_option_e` in mimalloc 3's `mimalloc.h`; libmimalloc-sys
/// names only some of them).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's options before anything allocates (an ELF constructor runs ahead of the
/// Rust runtime, whose first allocation makes mimalloc reserve its arena).
///
/// By default mimalloc commits whole arenas up front and returns freed pages lazily; the
/// importer allocates on one thread and frees on the writer's, so that kept ~100 MiB of freed
/// memory resident during a 1 GiB import. Committing on demand and purging freed pages at
/// once keeps the peak near what is live, for a few percent of throughput. An explicit
/// `MIMALLOC_*` variable in the environment still wins.
extern "C" fn configure_allocator() {
    // SAFETY: mi_option_set_default only stores a default (a `MIMALLOC_*` variable still
    // overrides it); it does not allocate.
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() -> std::process::ExitCode {
    #[cfg(not(target_os = "linux"))]
    configure_allocator();
    cclog_cli::main()
}
