//! The `rl-lab` command-line tool.

fn main() -> std::process::ExitCode {
    tune_malloc();
    rl_lab::cli::Lab::default().main()
}

/// Sets two of glibc's malloc tunables, before any other thread starts, so
/// that a long-lived server's RSS follows its live heap.
///
/// - One arena. By default glibc hands busy threads arenas of their own (up
///   to eight per core), and each keeps the pages of its own busiest
///   moment. The server's threads (HTTP workers, the store's writer and
///   readers, run workers) take turns at bursts, so RSS ratcheted up
///   towards the sum of those peaks: under `benches/soak.py` it grew 15% in
///   30 minutes while the live heap (heaptrack) stayed flat. With one
///   arena, memory one thread frees serves the next that asks. What
///   allocates is request handling and metrics, not training's inner loops;
///   glibc's per-thread caches still serve small sizes without the arena's
///   lock, and the soak's step latency did not change.
/// - A fixed mmap threshold (glibc's default, 128 KiB). Blocks that large
///   get a mapping of their own, handed back when freed. By default glibc
///   raises the threshold to the largest such block freed (up to 32 MiB),
///   after which a DQN's replay, SQLite's page-cache bulks and large read
///   results came from the heap, and each that landed at its top left the
///   heap higher for good: RSS still rose in steps of about 0.6 MiB.
///
/// The figures are in docs/server.md#load.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` sets one of the allocator's tunables; it takes no
    // pointers, and no other thread exists yet to be allocating.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
