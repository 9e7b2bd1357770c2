//! The policy-gradient agents end to end: the loop's env copies, the
//! rollout and the update together learn CartPole. The full runs are the
//! example specs (`examples/cartpole-{ppo,a2c,reinforce}.json`); these are
//! their short, seeded regressions.

use rl_agent::sink::NullSink;
use rl_runner::train::{Hooks, Progress};
use rl_runner::{CancelFlag, Counters, Engine, RunSpec};

/// The best 100-episode mean the run reached.
#[derive(Default)]
struct Best(f64);

impl Hooks for Best {
    fn on_episode(&mut self, progress: &Progress) {
        if progress.counters.episodes >= 100
            && let Some(mean) = progress.recent_mean_return
        {
            self.0 = self.0.max(mean);
        }
    }
}

fn cartpole(agent: &str, steps: u64, seed: u64) -> RunSpec {
    let path = format!(
        "{}/../../examples/cartpole-{agent}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    spec["budget"] = serde_json::json!({ "steps": steps });
    spec["seed"] = seed.into();
    RunSpec::from_value(&spec).unwrap()
}

/// Trains `agent` on CartPole for `steps` steps with seed 0 and the
/// portable kernels (the same floating-point results on every x86-64 CPU,
/// where AVX2 and FMA would round differently); returns the best
/// 100-episode mean it reached.
fn best_mean(agent: &str, steps: u64) -> f64 {
    rl_layers::set_simd_limit(rl_layers::Simd::Baseline);
    let mut run = Engine::default()
        .prepare(cartpole(agent, steps, 0))
        .unwrap();
    let mut best = Best::default();
    let summary = run
        .execute(
            &mut NullSink,
            &mut best,
            &CancelFlag::new(),
            Counters::default(),
        )
        .unwrap();
    println!(
        "{agent}, seed 0, {steps} steps: best 100-episode mean {:.1}, final {:?}, greedy eval {:?}",
        best.0, summary.train_mean_return_last_100, summary.eval.mean_return
    );
    best.0
}

#[test]
fn ppo_reaches_a_mean_of_200_on_cartpole_within_50k_steps() {
    assert!(best_mean("ppo", 50_000) >= 200.0);
}

#[test]
fn a2c_reaches_a_mean_of_200_on_cartpole_within_100k_steps() {
    assert!(best_mean("a2c", 100_000) >= 200.0);
}

#[test]
fn reinforce_reaches_a_mean_of_200_on_cartpole_within_50k_steps() {
    assert!(best_mean("reinforce", 50_000) >= 200.0);
}

/// REINFORCE on one-hot (tabular) observations, with and without its
/// baseline, over four copies whose episodes end at different steps:
/// deterministic FrozenLake's greedy policy walks to the goal.
#[test]
fn reinforce_learns_frozen_lake_from_one_hot_states() {
    rl_layers::set_simd_limit(rl_layers::Simd::Baseline);
    for baseline in [true, false] {
        let spec = RunSpec::from_value(&serde_json::json!({
            "env": {"id": "FrozenLake-v1", "num_envs": 4, "config": {"is_slippery": false}},
            "agent": {"id": "reinforce", "config": {
                "baseline": baseline, "episodes_per_update": 4, "ent_coef": 0.01,
                "optimizer": {"kind": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}},
            "budget": {"steps": 30_000},
            "seed": 3,
            "eval": {"episodes": 5, "max_steps": 100}
        }))
        .unwrap();
        let mut run = Engine::default().prepare(spec).unwrap();
        let summary = run
            .execute(
                &mut NullSink,
                &mut Best::default(),
                &CancelFlag::new(),
                Counters::default(),
            )
            .unwrap();
        println!(
            "baseline {baseline}: final 100-episode mean {:?}, greedy eval {:?}",
            summary.train_mean_return_last_100, summary.eval.returns
        );
        assert_eq!(summary.eval.mean_return, Some(1.0), "baseline {baseline}");
    }
}

/// One env copy: a step where the only copy resets asks for no action,
/// and a rollout of `num_steps` steps spans episodes; checkpoints of the
/// agent restore.
#[test]
fn on_policy_agents_run_on_one_copy_and_resume_from_a_checkpoint() {
    rl_layers::set_simd_limit(rl_layers::Simd::Baseline);
    for agent in ["ppo", "a2c", "reinforce"] {
        let mut spec = serde_json::to_value(cartpole(agent, 3_000, 1)).unwrap();
        spec["env"]["num_envs"] = 1.into();
        spec["checkpoint"] = serde_json::json!({"every_episodes": 20});
        let spec = RunSpec::from_value(&spec).unwrap();
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let folder = rl_runner::RunFolder::create(dir.path().join("run")).unwrap();
        let mut whole = engine.prepare(spec.clone()).unwrap();
        let summary = whole
            .execute_in(&folder, &CancelFlag::new(), |_| {})
            .unwrap();
        assert_eq!(summary.steps, 3_000, "{agent}");
        let text = std::fs::read_to_string(folder.path().join("checkpoint.json")).unwrap();
        let checkpoint: rl_runner::folder::Checkpoint = serde_json::from_str(&text).unwrap();
        assert!(checkpoint.counters.episodes >= 20, "{agent}");
        let mut resumed = engine.prepare(spec).unwrap();
        let start = resumed.restore(&checkpoint).unwrap();
        let continued = resumed
            .execute(
                &mut NullSink,
                &mut Best::default(),
                &CancelFlag::new(),
                start,
            )
            .unwrap();
        assert_eq!(continued.steps, 3_000, "{agent}");
        // A one-copy run resumed at an episode boundary is the same run.
        assert_eq!(continued.eval.returns, summary.eval.returns, "{agent}");
    }
}

/// An env whose episodes outrun `max_batch_steps` fails the run with an
/// error that names the field, instead of holding ever more steps.
#[test]
fn reinforce_refuses_episodes_longer_than_its_batch() {
    let spec = RunSpec::from_value(&serde_json::json!({
        "env": {"id": "CliffWalking-v1"},
        "agent": {"id": "reinforce", "config": {"max_batch_steps": 5}},
        "budget": {"steps": 1_000},
        "seed": 0
    }))
    .unwrap();
    let mut run = Engine::default().prepare(spec).unwrap();
    let error = run
        .execute(
            &mut NullSink,
            &mut Best::default(),
            &CancelFlag::new(),
            Counters::default(),
        )
        .unwrap_err();
    assert!(error.to_string().contains("max_batch_steps"), "{error}");
}
