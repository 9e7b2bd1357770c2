//! Steps one game for a while, for profilers.
//!
//! Run with: `cargo run -p rl-minatar --release --example profile_game -- breakout 3`

use rl_minatar::{Game, bench};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let game: Game = args
        .next()
        .unwrap_or_else(|| "breakout".into())
        .parse()
        .expect("a MinAtar game name");
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let t = bench::run(game, u64::MAX, Some(Duration::from_secs_f64(seconds)));
    println!("{game}: {:.0} steps/s", t.rate());
}
