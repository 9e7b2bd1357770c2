//! The `rl-lab` command-line tool.

fn main() -> std::process::ExitCode {
    rl_lab::cli::Lab::default().main()
}

/// jemalloc for every allocation in the process, SQLite's included (the
/// crate's unprefixed `malloc`). A server runs for days, and under
/// `benches/soak.py` glibc's allocator let RSS creep: +15% in 30 minutes
/// with its defaults, +6% still with one arena, a fixed mmap threshold and
/// a trim every 2 s, while the live heap stayed flat. jemalloc held flat
/// over 30 minutes and served steps faster (docs/server.md#load has the
/// figures). `.cargo/config.toml` builds it to purge freed pages within a
/// second (`dirty_decay_ms:1000,muzzy_decay_ms:0`): with its default of
/// 10 s RSS swung by 14 MiB between samples.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
