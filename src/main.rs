//! The `rl-lab` command-line tool.

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    rl_lab::cli::Lab::default().main()
}

/// Gives the process one glibc malloc arena, before any other thread starts.
///
/// By default glibc hands busy threads arenas of their own (up to eight per
/// core), and each arena keeps the pages of its own busiest moment. The
/// server's threads (HTTP workers, the store's writer and readers, run
/// workers) take turns at bursts, so RSS ratcheted up towards the sum of
/// those peaks: under `benches/soak.py` it grew 15% in 30 minutes, and
/// heaptrack showed the live heap flat under that load. With one arena,
/// memory one thread frees serves the next that asks. What allocates is
/// request handling and metrics, not training's inner loops; glibc's
/// per-thread caches still serve small sizes without the arena's lock, and
/// the soak's step latency did not suffer (docs/server.md#load has the
/// figures).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` sets one of the allocator's tunables; it takes no
    // pointers, and no other thread exists yet to be allocating.
    let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}
