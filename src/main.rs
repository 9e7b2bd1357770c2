//! The `rl-lab` command-line tool.

fn main() -> std::process::ExitCode {
    malloc::tune();
    rl_lab::cli::Lab::default().main()
}

/// glibc's allocator, tuned for a server that runs for days: see
/// docs/server.md#load for the soak figures behind each setting.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc {
    use std::time::Duration;

    /// How often freed memory goes back to the kernel. Under the soak's
    /// load a trim took 0.1 to 3 ms (one arena of about 30 MB); a 5-minute
    /// soak with it saw step latencies of p50 3.2 ms and p99 23.9 ms,
    /// against 3.5 and 24.7 ms over 30 minutes without. Every command
    /// starts the thread; a short one has exited before its first trim.
    const TRIM_PERIOD: Duration = Duration::from_secs(2);

    /// Blocks this large or larger get pages of their own, returned to the
    /// kernel when they are freed. glibc's own threshold starts at 128 KiB
    /// and rises to the largest such block ever freed, after which those
    /// blocks come from the heap and stay there until a trim. Fixed here
    /// above what the request path's largest blocks should be (a store
    /// batch or a page of events, by their sizes about 100 to 200 KiB; not
    /// measured), and below a checkpoint's (a DQN checkpoint holds its
    /// replay buffer: 1 to 3 MiB of copies for CartPole). Whether it costs
    /// step throughput is not yet measured apart (docs/server.md#load).
    const LARGE_BLOCK: i32 = 512 * 1024;

    /// Runs before any other thread starts.
    ///
    /// - One arena. By default glibc hands busy threads arenas of their
    ///   own (up to eight per core), and each arena keeps the pages of its
    ///   own busiest moment. The server's threads (HTTP workers, the
    ///   store's writer and readers, run workers) take turns at bursts, so
    ///   RSS ratcheted up towards the sum of those peaks: under
    ///   `benches/soak.py` it grew 15% in 30 minutes while heaptrack showed
    ///   the live heap flat. With one arena, memory one thread frees serves
    ///   the next that asks; glibc's per-thread caches still serve small
    ///   sizes without the arena's lock.
    /// - A periodic `malloc_trim`. Even one arena keeps free pages between
    ///   live chunks, and the high-water mark of that fragmentation only
    ///   rises: with one arena alone, RSS still climbed in 0.6 MiB steps
    ///   over 30 minutes. glibc returns those pages only when asked.
    /// - Large blocks on pages of their own ([`LARGE_BLOCK`]). With the
    ///   trim alone, every DQN checkpoint (each 30 s) left a 2.5 MiB bump
    ///   for up to a trim period, and the soak's RSS samples caught it.
    pub fn tune() {
        #[allow(unsafe_code)]
        // SAFETY: `mallopt` sets one of the allocator's tunables; it takes
        // no pointers, and no other thread exists yet to be allocating.
        let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK) };
        // Without the thread the process still works; it only keeps more
        // memory, so a failure to spawn is not worth refusing to start.
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_PERIOD);
                    #[allow(unsafe_code)]
                    // SAFETY: `malloc_trim` takes the arenas' own locks and
                    // touches only memory that is free.
                    let _ = unsafe { libc::malloc_trim(0) };
                }
            });
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod malloc {
    pub fn tune() {}
}
