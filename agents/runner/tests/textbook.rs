//! The textbook results, reproduced through the one training loop.
//! Sutton & Barto, *Reinforcement Learning: An Introduction* (2nd ed.).

use rl_agent::sink::NullSink;
use rl_runner::train::NoHooks;
use rl_runner::{CancelFlag, Counters, Engine, RunSpec, Summary};
use serde_json::{Value, json};

fn run(spec: Value) -> Summary {
    let engine = Engine::default();
    let mut prepared = engine
        .prepare(RunSpec::from_value(&spec).expect("spec parses"))
        .expect("spec builds");
    prepared
        .execute(
            &mut NullSink,
            &mut NoHooks,
            &CancelFlag::new(),
            Counters::default(),
        )
        .expect("run completes")
}

fn cliff(agent: &str, seed: u64) -> Summary {
    run(json!({
        "env": {"id": "gridworld/cliff-walking"},
        "agent": {"id": agent, "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
        "budget": {"episodes": 500}, "seed": seed, "eval": {"episodes": 1}
    }))
}

/// Example 6.6: Q-learning learns the optimal path along the cliff edge
/// (13 steps, return −13); SARSA learns the safer path further up, and
/// because of that does better online while ε-greedy exploration continues.
#[test]
fn cliff_walking_q_learning_is_optimal_and_sarsa_is_safer() {
    let (mut sarsa_safe_paths, seeds) = (0, 10);
    for seed in 0..seeds {
        let q = cliff("q-learning", seed);
        let s = cliff("sarsa", seed);
        assert_eq!(q.eval.mean_return, Some(-13.0), "Q-learning, seed {seed}");
        let sarsa_return = s.eval.mean_return.unwrap();
        assert!(sarsa_return < -13.0, "SARSA seed {seed}: {sarsa_return}");
        if (-19.0..=-15.0).contains(&sarsa_return) {
            sarsa_safe_paths += 1;
        }
        let (q_online, s_online) = (
            q.train_mean_return_last_100.unwrap(),
            s.train_mean_return_last_100.unwrap(),
        );
        assert!(
            s_online > q_online,
            "seed {seed}: SARSA online {s_online} should beat Q-learning's {q_online}"
        );
    }
    // With a constant α of 0.5 SARSA's greedy policy is noisy; most seeds
    // give a safe path of 15–19 steps (the others loop under a purely
    // greedy policy and hit the evaluation cap).
    assert!(
        sarsa_safe_paths >= 7,
        "{sarsa_safe_paths}/{seeds} safe paths"
    );
    // The exact setting (seed 1 of examples/01).
    assert_eq!(
        cliff("q-learning", 1).policy_grid.unwrap()[2],
        "→→→→→→→→→→→↓"
    );
}

/// Example 6.5: SARSA on the windy gridworld, α 0.5, ε 0.1, 200 episodes.
#[test]
fn windy_gridworld_sarsa_finds_the_15_step_path() {
    let windy = |seed: u64| {
        run(json!({
            "env": {"id": "gridworld/windy"},
            "agent": {"id": "sarsa", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
            "budget": {"episodes": 200}, "seed": seed, "eval": {"episodes": 1}
        }))
    };
    let best = windy(0);
    assert_eq!(best.eval.mean_length, Some(15.0));
    assert_eq!(best.eval.mean_return, Some(-15.0));
    // Across seeds the greedy path is 15 to 20 steps in most runs.
    let short = (0..10)
        .filter(|&seed| windy(seed).eval.mean_length.unwrap() <= 20.0)
        .count();
    assert!(short >= 7, "{short}/10");
}

fn plan(env: &str, agent: &str, config: Value) -> Summary {
    run(
        json!({"env": {"id": env}, "agent": {"id": agent, "config": config}, "eval": {"episodes": 0}}),
    )
}

/// Example 4.1 / Figure 4.1: v_π of the uniform random policy, γ = 1.
#[test]
fn policy_evaluation_reproduces_figure_4_1() {
    let s = plan(
        "gridworld/example-4-1",
        "policy-evaluation",
        json!({"gamma": 1.0, "theta": 1e-10}),
    );
    let expected = [
        [0.0, -14.0, -20.0, -22.0],
        [-14.0, -18.0, -20.0, -20.0],
        [-20.0, -20.0, -18.0, -14.0],
        [-22.0, -20.0, -14.0, 0.0],
    ];
    let grid = s.value_grid.unwrap();
    for r in 0..4 {
        for c in 0..4 {
            let v = grid[r][c].unwrap();
            assert!((v - expected[r][c]).abs() < 1e-6, "({r},{c}) {v}");
        }
    }
    assert_eq!(s.converged, Some(true));
    assert!(s.sweeps.unwrap() > 100);
}

/// Example 3.8 / Figure 3.5: v* of the 5x5 gridworld with jumps, γ = 0.9.
#[test]
fn value_iteration_reproduces_figure_3_5() {
    let s = plan(
        "gridworld/example-3-5",
        "value-iteration",
        json!({"gamma": 0.9}),
    );
    let expected = [
        [22.0, 24.4, 22.0, 19.4, 17.5],
        [19.8, 22.0, 19.8, 17.8, 16.0],
        [17.8, 19.8, 17.8, 16.0, 14.4],
        [16.0, 17.8, 16.0, 14.4, 13.0],
        [14.4, 16.0, 14.4, 13.0, 11.7],
    ];
    let grid = s.value_grid.unwrap();
    for r in 0..5 {
        for c in 0..5 {
            let v = grid[r][c].unwrap();
            assert!((v - expected[r][c]).abs() < 0.05, "({r},{c}) {v}");
        }
    }
    // Figure 3.2: the random policy's value of A is 8.8 and of B 5.3.
    let random = plan(
        "gridworld/example-3-5",
        "policy-evaluation",
        json!({"gamma": 0.9}),
    );
    let grid = random.value_grid.unwrap();
    assert!((grid[0][1].unwrap() - 8.8).abs() < 0.05);
    assert!((grid[0][3].unwrap() - 5.3).abs() < 0.05);
}

const PRESETS: [&str; 6] = [
    "gridworld/frozen-lake-4x4",
    "gridworld/frozen-lake-8x8",
    "gridworld/cliff-walking",
    "gridworld/windy",
    "gridworld/example-3-5",
    "gridworld/example-4-1",
];

/// Both dynamic-programming methods find v*, and each one's policy is
/// greedy with respect to the other's values.
#[test]
fn policy_iteration_and_value_iteration_agree_on_every_preset() {
    for env in PRESETS {
        let vi = plan(env, "value-iteration", json!({"gamma": 0.95}));
        let pi = plan(env, "policy-iteration", json!({"gamma": 0.95}));
        assert_eq!(
            (vi.converged, pi.converged),
            (Some(true), Some(true)),
            "{env}"
        );
        let (a, b) = (vi.value_grid.unwrap(), pi.value_grid.unwrap());
        for (row_a, row_b) in a.iter().zip(&b) {
            for (x, y) in row_a.iter().zip(row_b) {
                match (x, y) {
                    (Some(x), Some(y)) => assert!((x - y).abs() < 1e-6, "{env}: {x} vs {y}"),
                    (x, y) => assert_eq!(x, y),
                }
            }
        }
        // Both greedy policies earn the same on evaluation.
        let vi_eval = run(
            json!({"env": {"id": env}, "agent": {"id": "value-iteration", "config": {"gamma": 0.95}}, "seed": 3, "eval": {"episodes": 50}}),
        );
        let pi_eval = run(
            json!({"env": {"id": env}, "agent": {"id": "policy-iteration", "config": {"gamma": 0.95}}, "seed": 3, "eval": {"episodes": 50}}),
        );
        if vi.policy_grid == pi.policy_grid {
            assert_eq!(vi_eval.eval.returns, pi_eval.eval.returns, "{env}");
        }
    }
}

/// On a small deterministic map Monte Carlo control's greedy policy is
/// optimal: its return equals value iteration's.
#[test]
fn monte_carlo_control_finds_the_optimal_policy() {
    let env = json!({"id": "gridworld", "config": {
        "map": ["S...", ".##.", "...G"], "step_reward": -1, "goal_reward": 0, "max_steps": 50}});
    for first_visit in [true, false] {
        let mc = run(
            json!({"env": env, "agent": {"id": "monte-carlo", "config": {
            "gamma": 1.0, "first_visit": first_visit,
            "epsilon": {"linear": {"start": 1.0, "end": 0.05, "episodes": 1500}}}},
            "budget": {"episodes": 2000}, "seed": 4, "eval": {"episodes": 1}}),
        );
        let vi = run(
            json!({"env": env, "agent": {"id": "value-iteration", "config": {"gamma": 1.0}}, "eval": {"episodes": 1}}),
        );
        assert_eq!(vi.eval.mean_return, Some(-4.0));
        assert_eq!(
            mc.eval.mean_return, vi.eval.mean_return,
            "first_visit {first_visit}"
        );
    }
}

/// Every TD and MC agent reaches the goal of the cliff walk greedily.
#[test]
fn every_learning_agent_learns_the_cliff() {
    for agent in ["expected-sarsa", "double-q-learning", "n-step-sarsa"] {
        let s = cliff(agent, 2);
        let r = s.eval.mean_return.unwrap();
        assert!((-25.0..=-13.0).contains(&r), "{agent}: {r}");
    }
}

/// Monte Carlo prediction of the random policy approaches DP's v_π.
#[test]
fn monte_carlo_prediction_approaches_policy_evaluation() {
    let mc = run(json!({"env": {"id": "gridworld/example-4-1"},
        "agent": {"id": "monte-carlo-prediction", "config": {"gamma": 1.0}},
        "budget": {"episodes": 20000}, "seed": 5, "eval": {"episodes": 0}}));
    let grid = mc.value_grid.unwrap();
    // v_π(1) = −14 and v_π(corner) = −22; the sample means are within a few percent.
    assert!((grid[0][1].unwrap() + 14.0).abs() < 1.0, "{:?}", grid[0][1]);
    assert!((grid[3][0].unwrap() + 22.0).abs() < 1.5, "{:?}", grid[3][0]);
}

/// The same seed gives the same run, for every agent.
#[test]
fn every_agent_is_deterministic_under_a_seed() {
    let engine = Engine::default();
    for entry in engine.agents.entries() {
        let spec = json!({"env": {"id": "gridworld/frozen-lake-4x4"}, "agent": {"id": entry.id},
            "budget": {"episodes": 30}, "seed": 9, "eval": {"episodes": 5}});
        let (a, b) = (run(spec.clone()), run(spec));
        assert_eq!(a.steps, b.steps, "{}", entry.id);
        assert_eq!(a.value_grid, b.value_grid, "{}", entry.id);
        assert_eq!(a.eval.returns, b.eval.returns, "{}", entry.id);
    }
}
