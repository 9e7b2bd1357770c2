//! The tabular speed figures behind `rl-lab bench tabular` and
//! `benches/tabular.rs`. The Python peer (`benches/peers/tabular_peer.py`)
//! runs the same work: Q-learning (α 0.5, ε 0.1, γ 1) on CliffWalking,
//! value iteration (γ 0.99, θ 1e-10) on FrozenLake 8x8, random steps on
//! FrozenLake 8x8 with auto-reset.

use crate::run::Engine;
use crate::spec::RunSpec;
use crate::train::{CancelFlag, Counters, NoHooks};
use rand::{RngExt, SeedableRng};
use rl_agent::sink::NullSink;
use rl_env::Action;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// Steps per second of one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    /// Environment steps (with updates, where there is an agent) per second.
    pub steps_per_second: f64,
}

/// Time of one planning workload.
#[derive(Clone, Debug, Serialize)]
pub struct PlanTime {
    /// Best wall-clock seconds over the repeats.
    pub seconds: f64,
    /// Sweeps until convergence.
    pub sweeps: u64,
}

/// `rl-lab bench tabular --json`'s object.
#[derive(Clone, Debug, Serialize)]
pub struct TabularReport {
    /// Q-learning on CliffWalking through the shared training loop.
    pub q_learning_cliff_walking: Rate,
    /// Value iteration on FrozenLake 8x8's model.
    pub value_iteration_frozen_lake_8x8: PlanTime,
    /// Random actions on FrozenLake 8x8, with auto-reset.
    pub gridworld_steps_per_second: f64,
}

fn spec(env: &str, agent: serde_json::Value, steps: u64) -> RunSpec {
    RunSpec::from_value(&json!({
        "env": {"id": env},
        "agent": agent,
        "budget": {"steps": steps},
        "seed": 0,
        "eval": {"episodes": 0}
    }))
    .expect("the benchmark specs are valid")
}

/// Runs every tabular workload for about `budget` each.
pub fn tabular(budget: Duration) -> crate::Result<TabularReport> {
    let engine = Engine::default();

    // Q-learning: calibrate on a short run, then one run of about `budget`.
    let q_learning =
        json!({"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}});
    let mut steps = 100_000u64;
    let rate = loop {
        let mut run = engine.prepare(spec("CliffWalking-v1", q_learning.clone(), steps))?;
        let began = Instant::now();
        run.execute(
            &mut NullSink,
            &mut NoHooks,
            &CancelFlag::new(),
            Counters::default(),
        )?;
        let elapsed = began.elapsed();
        if elapsed >= budget / 2 {
            break steps as f64 / elapsed.as_secs_f64();
        }
        steps *= (budget.as_secs_f64() / elapsed.as_secs_f64().max(1e-6)).clamp(2.0, 100.0) as u64;
    };

    // Value iteration: best of repeats.
    let mut best = f64::INFINITY;
    let mut sweeps = 0;
    let began = Instant::now();
    while began.elapsed() < budget || best.is_infinite() {
        let mut run = engine.prepare(spec(
            "gridworld/frozen-lake-8x8",
            json!({"id": "value-iteration", "config": {"gamma": 0.99, "theta": 1e-10}}),
            1,
        ))?;
        let t = Instant::now();
        let summary = run.execute(
            &mut NullSink,
            &mut NoHooks,
            &CancelFlag::new(),
            Counters::default(),
        )?;
        best = best.min(t.elapsed().as_secs_f64());
        sweeps = summary.sweeps.unwrap_or(0);
    }

    // Raw stepping with random actions.
    let mut env = engine
        .envs
        .make("gridworld/frozen-lake-8x8", &serde_json::Value::Null)
        .map_err(crate::Error::Env)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(0), &mut obs)
        .map_err(crate::Error::Env)?;
    let (mut count, began) = (0u64, Instant::now());
    while began.elapsed() < budget {
        for _ in 0..10_000 {
            let out = env
                .step_into(&Action::Discrete(rng.random_range(0..4)), &mut obs)
                .map_err(crate::Error::Env)?;
            if out.terminated || out.truncated {
                env.reset_into(None, &mut obs).map_err(crate::Error::Env)?;
            }
        }
        count += 10_000;
    }
    let gridworld = count as f64 / began.elapsed().as_secs_f64();

    Ok(TabularReport {
        q_learning_cliff_walking: Rate {
            steps_per_second: rate,
        },
        value_iteration_frozen_lake_8x8: PlanTime {
            seconds: best,
            sweeps,
        },
        gridworld_steps_per_second: gridworld,
    })
}

/// Env steps per second of an agent while it trains.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRate {
    /// Env steps per second once learning runs: acting, stepping, storing
    /// and the agent's updates, over the whole timed window.
    pub train_steps_per_second: f64,
}

/// `rl-lab bench dqn --json`'s and `rl-lab bench ppo --json`'s object,
/// keyed by env id: `{"minatar/breakout": {"train_steps_per_second": …}}`.
pub type TrainReport = std::collections::BTreeMap<String, TrainRate>;

/// DQN with its defaults (MinAtar's `dqn.py`: batch 32, centered RMSProp,
/// one update per step) on `minatar/breakout` (all six actions, sticky 0.1,
/// ramping, rewards clipped after episode statistics), through the shared
/// training loop. The first `learning_starts` random steps fill the buffer
/// untimed; then training runs for about `budget`, timed. The Python peer
/// is `benches/peers/dqn_peer.py`.
pub fn dqn(budget: Duration) -> crate::Result<TrainReport> {
    let spec = json!({
        "env": {"id": "minatar/breakout", "wrappers": ["episode_statistics", "clip_reward"]},
        "agent": {"id": "dqn"}
    });
    train_rate(
        spec,
        rl_dqn::DqnConfig::default().learning_starts + 1,
        budget,
    )
}

/// PPO on `minatar/breakout` (all six actions, sticky 0.1, ramping) over 8
/// env copies: rollouts of 128 steps per copy, 4 epochs of 4 minibatches,
/// the MinAtar torso (Conv 16 3×3, Affine 128, ReLU) with a 6-way policy
/// head and a value head, Adam; the learning rate held constant, as no
/// horizon is set. One rollout and its update run untimed; then training
/// runs for about `budget`, timed. The Python peer is
/// `benches/peers/ppo_peer.py`.
pub fn ppo(budget: Duration) -> crate::Result<TrainReport> {
    let spec = json!({
        "env": {"id": "minatar/breakout", "num_envs": 8, "wrappers": ["episode_statistics"]},
        "agent": {"id": "ppo", "config": {
            "num_steps": 128, "num_minibatches": 4, "update_epochs": 4, "anneal_lr": false}}
    });
    train_rate(spec, 8 * 128, budget)
}

/// Trains the run `spec` (given its env and agent; seed 0) for `warmup`
/// steps untimed, then for about `budget`, and reports the timed window's
/// env steps per second.
fn train_rate(
    mut spec: serde_json::Value,
    warmup: u64,
    budget: Duration,
) -> crate::Result<TrainReport> {
    use crate::spec::Budget;
    use crate::train::{LoopSettings, train};
    let env_id = spec["env"]["id"].as_str().unwrap_or_default().to_string();
    spec["budget"] = json!({"steps": 1});
    spec["seed"] = 0.into();
    spec["eval"] = json!({"episodes": 0});
    let mut run = Engine::default()
        .prepare(RunSpec::from_value(&spec).expect("the benchmark spec is valid"))?;
    let mut phase = |start: Counters, steps: u64, cancel: &CancelFlag| {
        train(
            &mut run.envs,
            &mut run.agent,
            LoopSettings {
                budget: Budget::Steps(start.steps.saturating_add(steps)),
                seed: 0,
                checkpoint_every: None,
                cancel,
                start,
                periodic_eval: None,
            },
            &mut NullSink,
            &mut NoHooks,
        )
        .map(|outcome| outcome.counters)
    };
    let warmed = phase(Counters::default(), warmup, &CancelFlag::new())?;
    // Train until a timer cancels the run; the loop stops at the next episode boundary.
    let cancel = CancelFlag::new();
    let began = Instant::now();
    let trained = std::thread::scope(|scope| {
        let timer = cancel.clone();
        scope.spawn(move || {
            std::thread::sleep(budget);
            timer.cancel();
        });
        phase(warmed, u64::MAX, &cancel)
    })?;
    let rate = (trained.steps - warmed.steps) as f64 / began.elapsed().as_secs_f64();
    Ok(TrainReport::from([(
        env_id,
        TrainRate {
            train_steps_per_second: rate,
        },
    )]))
}
