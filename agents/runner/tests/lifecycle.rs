//! Cancellation and checkpoints: what the server builds on.

use rl_agent::sink::NullSink;
use rl_runner::folder::Checkpoint;
use rl_runner::train::NoHooks;
use rl_runner::{CancelFlag, Counters, Engine, RunFolder, RunSpec, RunStatus};
use serde_json::json;

fn spec(every: Option<u64>, agent: &str) -> RunSpec {
    RunSpec::from_value(&json!({
        "env": {"id": "gridworld/frozen-lake-4x4"},
        "agent": {"id": agent, "config": {"alpha": 0.2, "gamma": 0.95,
            "epsilon": {"linear": {"start": 1.0, "end": 0.1, "episodes": 150}}}},
        "budget": {"episodes": 200}, "seed": 11, "eval": {"episodes": 20},
        "checkpoint": {"every_episodes": every}
    }))
    .unwrap()
}

#[test]
fn a_cancelled_run_stops_and_says_so() {
    let engine = Engine::default();
    let mut run = engine.prepare(spec(None, "q-learning")).unwrap();
    let cancel = CancelFlag::new();
    cancel.cancel();
    let summary = run
        .execute(&mut NullSink, &mut NoHooks, &cancel, Counters::default())
        .unwrap();
    assert_eq!(summary.status, RunStatus::Cancelled);
    assert_eq!(summary.episodes, 0);
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly() {
    let engine = Engine::default();
    for agent in [
        "q-learning",
        "sarsa",
        "n-step-sarsa",
        "monte-carlo",
        "double-q-learning",
    ] {
        // Uninterrupted: 200 episodes, checkpointing every 80 into a folder.
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::create(dir.path().join("run")).unwrap();
        let mut whole = engine.prepare(spec(Some(80), agent)).unwrap();
        let uninterrupted = whole
            .execute_in(&folder, &CancelFlag::new(), |_| {})
            .unwrap();
        // The last checkpoint was taken at episode 160; resume a fresh run from it.
        let text = std::fs::read_to_string(folder.path().join("checkpoint.json")).unwrap();
        let checkpoint: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(checkpoint.counters.episodes, 160);
        let mut resumed = engine.prepare(spec(None, agent)).unwrap();
        let start = resumed.restore(&checkpoint).unwrap();
        let continued = resumed
            .execute(&mut NullSink, &mut NoHooks, &CancelFlag::new(), start)
            .unwrap();
        assert_eq!(continued.steps, uninterrupted.steps, "{agent}");
        assert_eq!(continued.value_grid, uninterrupted.value_grid, "{agent}");
        assert_eq!(
            continued.eval.returns, uninterrupted.eval.returns,
            "{agent}"
        );
    }
}
