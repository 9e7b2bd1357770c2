//! Properties every registered agent keeps, whatever new agents are added:
//! learners survive any mix of `terminated` and `truncated` (both at once
//! included), planners report a metric sink that fails, and evaluation
//! shows its frames to a watcher.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::{Agent, AnyAgent, EnvContext, Record, Sink, Transition};
use rl_env::{Action, Observation, Space};
use rl_runner::train::{EvalSettings, evaluate_watched};
use rl_runner::{Engine, RunSpec};
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};

const STATES: u64 = 7;
const ACTIONS: u64 = 3;

/// A config that makes the agent learn within a few hundred steps; agents
/// not named here take their defaults.
fn small_config(id: &str) -> Value {
    match id {
        "dqn" => json!({
            "learning_starts": 16, "batch_size": 8, "replay": {"capacity": 128},
            "n_step": 3, "target_update_period": 10, "log_every": 10, "double_dqn": true,
            "network": [{"affine": 16}, "relu", {"affine": "actions"}],
        }),
        "n-step-sarsa" => json!({"n": 3}),
        _ => json!({}),
    }
}

/// Drives `agent` as the loop does for `steps` steps of a random
/// environment whose steps end in each of the four flag combinations, and
/// now and then abandons an episode as a spent budget does. Every action
/// must lie in the action space, every call must succeed.
fn drive(agent: &mut dyn Agent, seed: u64, steps: usize) -> [usize; 4] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut flags_seen = [0; 4];
    let mut scalars = Vec::new();
    let mut obs = Observation::Discrete(rng.random_range(0..STATES) as i64);
    agent.begin_episode(0);
    for _ in 0..steps {
        let action = agent.act(0, &obs).unwrap();
        assert!(
            matches!(action, Action::Discrete(a) if (0..ACTIONS as i64).contains(&a)),
            "{action:?}"
        );
        let next_obs = Observation::Discrete(rng.random_range(0..STATES) as i64);
        // Episodes last about five steps; each way of ending is as likely.
        let (terminated, truncated) = match rng.random_range(0..16) {
            0 => (true, false),
            1 => (false, true),
            2 => (true, true),
            _ => (false, false),
        };
        flags_seen[usize::from(terminated) * 2 + usize::from(truncated)] += 1;
        agent
            .observe(&Transition {
                lane: 0,
                obs: &obs,
                action: &action,
                reward: rng.random_range(-1.0..1.0),
                next_obs: &next_obs,
                terminated,
                truncated,
            })
            .unwrap();
        agent.take_scalars(&mut scalars);
        scalars.clear();
        obs = next_obs;
        if terminated || truncated || rng.random_range(0..40) == 0 {
            agent.begin_episode(0);
            obs = Observation::Discrete(rng.random_range(0..STATES) as i64);
        }
    }
    flags_seen
}

#[test]
fn every_learner_survives_every_combination_of_end_flags() {
    let engine = Engine::default();
    let (obs_space, act_space) = (Space::discrete(STATES), Space::discrete(ACTIONS));
    let ctx = EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space: &obs_space,
        action_space: &act_space,
        model: None,
        env_id: "test",
    };
    let mut learners = Vec::new();
    for entry in engine.agents.entries() {
        // Planners need a model; this environment has none, and they say so.
        let built = (entry.make)(&small_config(&entry.id), &ctx, 0);
        if let Err(rl_agent::Error::Incompatible(_)) = built {
            continue;
        }
        let AnyAgent::Learner(_) = built.unwrap() else {
            panic!("{}: a planner built without a model", entry.id)
        };
        for seed in 0..4 {
            let AnyAgent::Learner(mut agent) =
                (entry.make)(&small_config(&entry.id), &ctx, seed).unwrap()
            else {
                unreachable!("built as a learner above")
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| drive(agent.as_mut(), seed, 600)));
            let flags_seen =
                outcome.unwrap_or_else(|_| panic!("{} panicked on seed {seed}", entry.id));
            assert!(flags_seen.iter().all(|&n| n > 10), "{flags_seen:?}");
            // What it learned survives a save and a load.
            let saved = agent.save().unwrap();
            agent.load(&saved).unwrap();
            assert_eq!(agent.save().unwrap(), saved, "{}", entry.id);
        }
        learners.push(entry.id.clone());
    }
    for id in [
        "dqn",
        "double-q-learning",
        "expected-sarsa",
        "monte-carlo",
        "monte-carlo-prediction",
        "n-step-sarsa",
        "q-learning",
        "sarsa",
    ] {
        assert!(
            learners.iter().any(|l| l == id),
            "{id} not driven: {learners:?}"
        );
    }
}

/// A sink whose disk is full.
struct FullDisk;

impl Sink for FullDisk {
    fn record(&mut self, _record: &Record) -> std::io::Result<()> {
        Err(std::io::Error::other("no space left on device"))
    }
}

#[test]
fn planners_stop_on_a_failing_sink() {
    let engine = Engine::default();
    for agent in ["value-iteration", "policy-iteration", "policy-evaluation"] {
        let spec = RunSpec::from_value(&json!({
            "env": {"id": "FrozenLake-v1"}, "agent": {"id": agent}, "seed": 0
        }))
        .unwrap();
        let mut run = engine.prepare(spec).unwrap();
        assert!(matches!(run.agent, AnyAgent::Planner(_)));
        let err = run
            .execute(
                &mut FullDisk,
                &mut rl_runner::train::NoHooks,
                &rl_runner::CancelFlag::new(),
                rl_runner::Counters::default(),
            )
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("metrics") && message.contains("no space left"),
            "{agent}: {message}"
        );
    }
}

#[test]
fn evaluation_shows_every_frame_it_scores() {
    let engine = Engine::default();
    let spec = RunSpec::from_value(&json!({
        "env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"}, "seed": 3
    }))
    .unwrap();
    let mut run = engine.prepare(spec).unwrap();
    let mut frames = vec![0u64; 3];
    let mut valued = vec![0u64; 3];
    let mut chosen: Option<usize> = None;
    let report = evaluate_watched(
        run.eval_env.as_mut(),
        run.agent.policy_mut(),
        EvalSettings {
            episodes: 3,
            max_steps: 500,
            seed: 3,
            epsilon: 0.0,
            round: 0,
            action_values: true,
        },
        &mut |watched| {
            let env = watched.env;
            assert_eq!(env.observation_space(), run.envs.single_observation_space());
            frames[watched.episode as usize] += 1;
            // Greedy play: the action taken is the argmax of the values
            // shown in the state before.
            match (watched.step, chosen.take()) {
                (Some((Action::Discrete(a), _)), Some(best)) => assert_eq!(*a as usize, best),
                (None, None) => {}
                (Some(_), None) if watched.episode > 0 => {}
                other => panic!("a step without values before it, or values unused: {other:?}"),
            }
            if let Some(values) = watched.action_values {
                assert_eq!(values.len(), 2, "CartPole's two actions");
                valued[watched.episode as usize] += 1;
                let best =
                    (0..values.len()).fold(0, |b, i| if values[i] > values[b] { i } else { b });
                chosen = Some(best);
            }
            Ok(())
        },
    )
    .unwrap();
    // The reset's frame, then one per step; values in every state acted in
    // during the first episode (the one a replay records), none after.
    let want: Vec<u64> = report.lengths.iter().map(|length| length + 1).collect();
    assert_eq!(frames, want);
    assert_eq!(valued, [report.lengths[0], 0, 0]);
}

/// The reproduction, through the time limit and the loop: on
/// FrozenLake with a limit of 3 steps, a hole reached on the third step
/// ends the episode terminated and truncated at once. n-step SARSA read
/// past its action queue there and panicked.
#[test]
fn n_step_sarsa_trains_when_termination_falls_on_the_time_limit() {
    let spec = RunSpec::from_value(&json!({
        "env": {"id": "FrozenLake-v1", "config": {"max_steps": 3, "is_slippery": true}},
        "agent": {"id": "n-step-sarsa", "config": {"n": 2, "epsilon": 0.5}},
        "budget": {"episodes": 20000}, "seed": 0
    }))
    .unwrap();
    let mut run = Engine::default().prepare(spec).unwrap();
    let summary = run
        .execute(
            &mut rl_agent::sink::NullSink,
            &mut rl_runner::train::NoHooks,
            &rl_runner::CancelFlag::new(),
            rl_runner::Counters::default(),
        )
        .unwrap();
    assert_eq!(summary.episodes, 20000);
    assert!(summary.steps > 20000, "{} steps", summary.steps);
}
