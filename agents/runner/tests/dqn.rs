//! DQN through the one training loop: it learns a gridworld, its metrics
//! are deterministic, a checkpoint resumes bit for bit, and a NaN stops the
//! run as `failed` with the step named. Each test is seeded and small.

use rl_agent::{Record, Sink};
use rl_env::{Action, Env, Frame, Info, Observation, Space, StepOutcome};
use rl_runner::folder::Checkpoint;
use rl_runner::train::NoHooks;
use rl_runner::{CancelFlag, Engine, PreparedRun, RunFolder, RunSpec, Summary};
use serde_json::{Value, json};

fn spec(value: Value) -> RunSpec {
    RunSpec::from_value(&value).unwrap()
}

/// Every metrics line, without the fields that measure wall time.
fn lines_without_time(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| !v["name"].as_str().is_some_and(|n| n.starts_with("time/")))
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("wall_seconds");
            v
        })
        .collect()
}

/// Keeps records in memory.
#[derive(Default)]
struct Memory(Vec<Value>);

impl Sink for Memory {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.0.push(serde_json::to_value(record).unwrap());
        Ok(())
    }
}

/// Runs a prepared run from step 0 to its budget, keeping metrics in memory.
fn run_from_the_start(run: &mut PreparedRun) -> Summary {
    run.execute(
        &mut Memory::default(),
        &mut NoHooks,
        &CancelFlag::new(),
        Default::default(),
    )
    .unwrap()
}

#[test]
fn dqn_finds_the_shortest_path_of_a_gridworld() {
    let engine = Engine::default();
    let mut run = engine
        .prepare(spec(json!({
            "env": {"id": "gridworld", "config": {"map": ["S...", ".#..", "...G"], "step_reward": -1,
                    "goal_reward": 0, "observation": "one_hot", "max_steps": 40}},
            "agent": {"id": "dqn", "config": {"learning_starts": 200, "epsilon_decay_steps": 1500,
                "epsilon_end": 0.05, "replay": {"capacity": 5000}, "target_update_period": 100,
                "gamma": 0.95, "log_every": 500,
                "optimizer": {"kind": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}},
            "budget": {"steps": 3000}, "seed": 0, "eval": {"episodes": 1, "max_steps": 40}
        })))
        .unwrap();
    let summary = run_from_the_start(&mut run);
    // Right, right, right, down, down (or any 5-step path): 4 steps of −1, then the goal's 0.
    assert_eq!(summary.eval.mean_length, Some(5.0), "{:?}", summary.eval);
    assert_eq!(summary.eval.mean_return, Some(-4.0));
}

/// MinAtar Breakout with sticky actions (whose last action survives a
/// reset, so the checkpoint carries it through the wrappers; the env tests
/// show that dropping it changes the next episode), a small convolutional
/// network whose 256 → 64 layer is large enough for the target network's
/// sparse forward (its input is about 84% non-zero here, so the test lifts
/// the density limit), a buffer small enough to wrap, periodic evaluation,
/// checkpoints.
fn breakout(every: Option<u64>) -> RunSpec {
    spec(json!({
        "env": {"id": "minatar/breakout", "config": {"sticky_action_prob": 0.5},
                "wrappers": ["episode_statistics", "clip_reward"]},
        "agent": {"id": "dqn", "config": {
            "network": [{"conv": {"out": 4, "kernel": 3}}, "relu", "flatten", {"affine": 64},
                        "relu", {"affine": "actions"}],
            "learning_starts": 100, "epsilon_decay_steps": 400, "batch_size": 8,
            "replay": {"capacity": 300}, "target_update_period": 40, "log_every": 50}},
        "budget": {"steps": 1200}, "seed": 5,
        "eval": {"episodes": 2, "max_steps": 100, "every_steps": 400},
        "checkpoint": {"every_episodes": every}
    }))
}

/// CartPole with two stacked frames stored once each, and n-step Double DQN.
fn stacked_cartpole(every: Option<u64>) -> RunSpec {
    spec(json!({
        "env": {"id": "CartPole-v1", "wrappers": ["episode_statistics", {"frame_stack": 2}]},
        "agent": {"id": "dqn", "config": {
            "learning_starts": 100, "epsilon_decay_steps": 400, "batch_size": 8,
            "replay": {"capacity": 250, "frame_stack": 2}, "target_update_period": 30,
            "n_step": 3, "double_dqn": true, "dueling": true, "tau": 0.5, "log_every": 50}},
        "budget": {"steps": 1200}, "seed": 9,
        "eval": {"episodes": 2, "max_steps": 100, "every_steps": 500},
        "checkpoint": {"every_episodes": every}
    }))
}

/// A spec with checkpoints every so many episodes, or none.
type MakeSpec = fn(Option<u64>) -> RunSpec;

#[test]
fn resuming_from_a_checkpoint_continues_bit_for_bit() {
    let engine = Engine::default();
    // Eligible fully connected layers always take the sparse eval forward.
    let limit = rl_layers::set_sparse_max_density(1.0);
    let cases: [(MakeSpec, bool); 2] = [(breakout, true), (stacked_cartpole, false)];
    for (make, has_sparse_layer) in cases {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::create(dir.path().join("run")).unwrap();
        let mut whole = engine.prepare(make(Some(50))).unwrap();
        let uninterrupted = whole
            .execute_in(&folder, &CancelFlag::new(), |_| {})
            .unwrap();
        let read = |name: &str| std::fs::read_to_string(folder.path().join(name)).unwrap();
        let checkpoint: Checkpoint = serde_json::from_str(&read("checkpoint.json")).unwrap();
        assert!(checkpoint.counters.episodes >= 50);
        assert!(
            checkpoint.agent["replay"].is_object(),
            "the buffer is in the checkpoint"
        );
        if checkpoint.envs.train.is_null() {
            assert!(checkpoint.envs.is_empty(), "CartPole carries nothing");
        } else {
            assert!(checkpoint.envs.train["last_action"].is_u64());
            assert!(checkpoint.envs.eval["last_action"].is_u64());
        }

        let mut resumed = engine.prepare(make(None)).unwrap();
        let start = resumed.restore(&checkpoint).unwrap();
        let mut metrics = Memory::default();
        let continued = resumed
            .execute(&mut metrics, &mut NoHooks, &CancelFlag::new(), start)
            .unwrap();

        // The metrics after the checkpoint are the uninterrupted run's.
        let all = lines_without_time(&read("metrics.jsonl"));
        let after: Vec<Value> = all
            .into_iter()
            .filter(|v| v["step"].as_u64().unwrap() > start.steps)
            .collect();
        let again = lines_without_time(
            &metrics
                .0
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert!(
            after.len() > 20,
            "{} lines after the checkpoint {:?} of {}",
            after.len(),
            start,
            uninterrupted.episodes
        );
        assert_eq!(again, after);
        assert_eq!(continued.steps, uninterrupted.steps);
        assert_eq!(continued.eval.returns, uninterrupted.eval.returns);
        // And so is everything the agent holds: weights, optimiser, buffer, streams.
        let finished: Checkpoint = serde_json::from_str(&read("agent.json")).unwrap();
        assert_eq!(resumed.agent.policy().save().unwrap(), finished.agent);

        // The Breakout run took the sparse target forward (which rounds
        // differently from the dense one), so resuming was tested across it.
        if has_sparse_layer {
            rl_layers::set_sparse_max_density(-1.0);
            let mut dense = engine.prepare(make(None)).unwrap();
            run_from_the_start(&mut dense);
            rl_layers::set_sparse_max_density(1.0);
            assert_ne!(dense.agent.policy().save().unwrap(), finished.agent);
        }
    }
    rl_layers::set_sparse_max_density(limit);
}

#[test]
fn the_same_spec_gives_the_same_metrics() {
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    let mut texts = Vec::new();
    for name in ["a", "b"] {
        let folder = RunFolder::create(dir.path().join(name)).unwrap();
        let mut run = engine.prepare(breakout(None)).unwrap();
        run.execute_in(&folder, &CancelFlag::new(), |_| {}).unwrap();
        texts.push(std::fs::read_to_string(folder.path().join("metrics.jsonl")).unwrap());
    }
    let (a, b) = (lines_without_time(&texts[0]), lines_without_time(&texts[1]));
    assert_eq!(a, b);
    let names: std::collections::BTreeSet<&str> =
        a.iter().filter_map(|v| v["name"].as_str()).collect();
    for name in [
        "train/loss",
        "train/q_mean",
        "train/epsilon",
        "eval/mean_return",
        "replay/bytes_per_transition",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(texts[0].contains("time/steps_per_second"));
    assert!(a.iter().any(|v| v["kind"] == "episode"));
}

/// One state, two actions; the reward of the 60th step is NaN.
struct NanAt {
    observation_space: Space,
    action_space: Space,
    steps: u64,
}

impl Env for NanAt {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn reset_into(&mut self, _seed: Option<u64>, obs: &mut Observation) -> rl_env::Result<Info> {
        *obs = Observation::Discrete(0);
        Ok(Info::default())
    }
    fn step_into(&mut self, _: &Action, obs: &mut Observation) -> rl_env::Result<StepOutcome> {
        self.steps += 1;
        *obs = Observation::Discrete(0);
        let reward = if self.steps == 60 { f64::NAN } else { 1.0 };
        Ok(StepOutcome::new(reward, self.steps.is_multiple_of(10)))
    }
    fn render_text(&self) -> String {
        String::new()
    }
    fn render_rgb(&self) -> Frame {
        Frame::zeros((1, 1, 3))
    }
}

#[test]
fn a_nan_fails_the_run_and_names_the_step() {
    let mut engine = Engine::default();
    engine
        .envs
        .register("test/nan", "a NaN reward at step 60", json!({}), |_| {
            Ok(Box::new(NanAt {
                observation_space: Space::discrete(1),
                action_space: Space::discrete(2),
                steps: 0,
            }))
        });
    let mut run = engine
        .prepare(spec(json!({
            "env": {"id": "test/nan"},
            "agent": {"id": "dqn", "config": {"learning_starts": 20, "batch_size": 64,
                      "replay": {"capacity": 64}}},
            "budget": {"steps": 500}, "seed": 1
        })))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = RunFolder::create(dir.path().join("nan")).unwrap();
    let err = run
        .execute_in(&folder, &CancelFlag::new(), |_| {})
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("diverged at env step"), "{message}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "failed");
    let step: u64 = message
        .split("env step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step in {message}"));
    // The NaN entered the buffer at step 60; the first batch that draws it fails.
    assert!((60..200).contains(&step), "{message}");
    assert_eq!(summary["error"].as_str().unwrap(), message);
}
