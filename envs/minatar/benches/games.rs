//! Single-thread steps per second of each MinAtar game, random actions,
//! auto-reset, the observation written every step.
//!
//! Run with: `cargo bench -p rl-minatar --bench games [-- SECONDS]`
//! (default 3 seconds per game). Prints one JSON object, the same shape as
//! `benches/peers/minatar_peer.py`'s output, so the two compare directly.

use rl_minatar::{Game, bench};
use std::time::Duration;

fn main() {
    // `cargo bench` passes `--bench`; a number, if given, is the seconds per game.
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let mut fields = Vec::new();
    for game in Game::ALL {
        // Warm up caches and the branch predictor, then measure.
        bench::run(game, 100_000, Some(Duration::from_millis(200)));
        let t = bench::run(game, u64::MAX, Some(Duration::from_secs_f64(seconds)));
        eprintln!(
            "{:<15} {:>12.0} steps/s ({} steps, {} episodes)",
            game.name(),
            t.rate(),
            t.steps,
            t.episodes
        );
        fields.push(format!("\"{}\": {:.0}", game.name(), t.rate()));
    }
    println!("{{{}}}", fields.join(", "));
}
