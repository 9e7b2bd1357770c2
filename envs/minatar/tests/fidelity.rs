//! Replays the committed MinAtar 1.0.15 traces (2 seeds per game, 5,000
//! steps each, sticky actions 0.1, difficulty ramping) and requires every
//! frame, reward and terminal flag to match.
//!
//! Regenerate or extend them with `tests/reference/make_traces.py`.

use rl_minatar::Game;
use rl_minatar::trace::{Trace, replay};
use std::path::Path;

fn committed() -> Vec<Trace> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/traces");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/reference/traces exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("readable trace");
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

#[test]
fn every_game_has_two_committed_seeds() {
    let traces = committed();
    for game in Game::ALL {
        let n = traces
            .iter()
            .filter(|t| t.game == game.name() && t.steps >= 5000 && t.sticky_action_prob > 0.0)
            .count();
        assert!(n >= 2, "{game}: {n} traces of 5,000 sticky steps");
    }
}

#[test]
fn committed_traces_replay_exactly() {
    let traces = committed();
    assert!(!traces.is_empty());
    let mut failures = Vec::new();
    for trace in &traces {
        if let Err(e) = replay(trace) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
