//! Replays every MinAtar reference trace in a directory and reports.
//!
//! Run with:
//! `cargo run -p rl-minatar --release --example replay_traces -- DIR`
//! after `tests/reference/make_traces.py --seeds 0-9 --out DIR`.

use rl_minatar::trace::{Trace, replay};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "envs/minatar/tests/reference/traces".into());
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let (mut passed, mut failed, mut steps) = (0, 0, 0);
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("readable trace");
        let trace: Trace = serde_json::from_str(&text).expect("a trace");
        match replay(&trace) {
            Ok(r) => {
                passed += 1;
                steps += r.steps;
                println!(
                    "ok   {}: {} steps, {} episodes, return {}",
                    path.display(),
                    r.steps,
                    r.episodes,
                    r.total_reward
                );
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", path.display());
            }
        }
    }
    println!("{passed} traces match ({steps} steps), {failed} differ");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
