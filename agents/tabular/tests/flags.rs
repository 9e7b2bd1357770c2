//! A terminated step never bootstraps, whatever `truncated` says.
//!
//! Gymnasium's `TimeLimit` reports both flags when the terminal step is
//! also the last allowed one, and n-step SARSA once read past its action
//! queue there. Here every tabular learner is fed random episodes, seeded,
//! that end in each of the three ways (terminated, truncated, both), some
//! abandoned half-way as a spent budget leaves them; with α = 1 each
//! update overwrites its entry with its target, so after an episode that
//! terminated the entries it last updated must hold the hand-computed
//! return with no bootstrap term. The initial values (5) are far from any
//! return the rewards (in [−1, 1]) can make, so a bootstrap would show.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::testing::Ending;
use rl_agent::{Agent, AgentRegistry, AnyAgent, EnvContext, Transition};
use rl_env::{Action, Observation, Space};
use serde_json::{Value, json};
use std::collections::HashMap;

const STATES: usize = 6;
const ACTIONS: usize = 3;
const GAMMA: f64 = 0.9;
const INITIAL: f64 = 5.0;

fn learner(id: &str, config: Value, seed: u64) -> Box<dyn Agent> {
    let mut registry = AgentRegistry::new();
    rl_tabular::register(&mut registry);
    let (obs, act) = (
        Space::discrete(STATES as u64),
        Space::discrete(ACTIONS as u64),
    );
    let ctx = EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space: &obs,
        action_space: &act,
        model: None,
        env_id: "test",
    };
    let entry = registry.get(id).expect("registered");
    match (entry.make)(&config, &ctx, seed).expect("valid config") {
        AnyAgent::Learner(agent) => agent,
        AnyAgent::Planner(_) => panic!("{id} is a planner"),
    }
}

/// One recorded step: S_t, A_t, R_{t+1}.
type Step = (usize, usize, f64);

/// Plays one random episode of `length` steps through the agent, as the
/// loop would: act, then observe a transition to a random next state.
fn play(agent: &mut dyn Agent, rng: &mut impl Rng, length: usize, ending: Ending) -> Vec<Step> {
    agent.begin_episode(0);
    let mut s = rng.random_range(0..STATES);
    let mut steps = Vec::new();
    for t in 0..length {
        let action = agent.act(0, &Observation::Discrete(s as i64)).unwrap();
        let Action::Discrete(a) = action else {
            panic!("a discrete action")
        };
        let next = rng.random_range(0..STATES);
        let reward = rng.random_range(-1.0..1.0);
        let (terminated, truncated) = ending.flags(t + 1 == length);
        agent
            .observe(&Transition {
                lane: 0,
                obs: &Observation::Discrete(s as i64),
                action: &action,
                reward,
                next_obs: &Observation::Discrete(next as i64),
                terminated,
                truncated,
            })
            .unwrap();
        steps.push((s, a as usize, reward));
        s = next;
    }
    steps
}

/// The entries the final updates of a terminated episode wrote, with the
/// targets they must hold: for each τ from `T − n` to `T − 1`, in the order
/// the agent updates them (a later update of the same entry wins),
/// G = Σ_{i=τ+1}^{T} γ^{i−τ−1} R_i — and nothing bootstrapped after R_T.
fn terminal_targets(steps: &[Step], n: usize) -> HashMap<(usize, usize), f64> {
    let end = steps.len();
    let mut targets = HashMap::new();
    for tau in end.saturating_sub(n)..end {
        let (mut g, mut discount) = (0.0, 1.0);
        for &(_, _, reward) in &steps[tau..end] {
            g += discount * reward;
            discount *= GAMMA;
        }
        targets.insert((steps[tau].0, steps[tau].1), g);
    }
    targets
}

/// Monte Carlo with α = 1: each (s, a) holds the return from its earliest
/// visit (first-visit updates only that one; every-visit updates it last).
fn monte_carlo_targets(steps: &[Step]) -> HashMap<(usize, usize), f64> {
    let mut targets = HashMap::new();
    let mut g = 0.0;
    for &(s, a, reward) in steps.iter().rev() {
        g = GAMMA * g + reward;
        targets.insert((s, a), g);
    }
    targets
}

fn q(agent: &dyn Agent, s: usize, a: usize) -> f64 {
    agent.tables().expect("tables").q.expect("a Q table")[s][a]
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
        "{what}: {got}, want {want}"
    );
}

/// Feeds `episodes` random episodes with every ending and checks each
/// terminated one with `check(agent, steps)`.
fn run(
    id: &str,
    config: Value,
    episodes: u64,
    mut check: impl FnMut(&dyn Agent, &[Step], Ending),
) -> [u64; 4] {
    let mut seen = [0u64; 4];
    for seed in 0..episodes / 50 {
        let mut agent = learner(id, config.clone(), seed);
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        for _ in 0..50 {
            let ending = Ending::random(&mut rng);
            seen[ending as usize] += 1;
            let length = rng.random_range(1..=7);
            let steps = play(agent.as_mut(), &mut rng, length, ending);
            check(agent.as_ref(), &steps, ending);
        }
    }
    seen
}

#[test]
fn one_step_td_targets_stop_at_termination() {
    let config = json!({"alpha": 1.0, "gamma": GAMMA, "epsilon": 0.3, "initial_q": INITIAL});
    for id in ["sarsa", "q-learning", "expected-sarsa"] {
        let seen = run(id, config.clone(), 2000, |agent, steps, ending| {
            if ending.terminates() {
                let &(s, a, reward) = steps.last().unwrap();
                // y = r + γ · (1 − terminated) · (…) = r
                assert_close(q(agent, s, a), reward, &format!("{id}, {ending:?}"));
            }
        });
        assert!(seen.iter().all(|&n| n > 300), "{id}: {seen:?}");
    }
}

#[test]
fn double_q_learning_targets_stop_at_termination() {
    let config = json!({"alpha": 1.0, "gamma": GAMMA, "epsilon": 0.3, "initial_q": INITIAL});
    run("double-q-learning", config, 2000, |agent, steps, ending| {
        if ending.terminates() {
            let &(s, a, reward) = steps.last().unwrap();
            // One of the two tables took the update; it holds r exactly.
            let state = agent.save().unwrap();
            let entry = |table: &str| state[table]["values"][s * ACTIONS + a].as_f64().unwrap();
            let (q_a, q_b) = (entry("q_a"), entry("q_b"));
            let close = |q: f64| (q - reward).abs() <= 1e-12;
            assert!(
                close(q_a) || close(q_b),
                "{ending:?}: Q_A {q_a}, Q_B {q_b}, want one of them {reward}"
            );
        }
    });
}

#[test]
fn n_step_sarsa_targets_stop_at_termination() {
    for n in [1, 2, 3, 5] {
        let config =
            json!({"n": n, "alpha": 1.0, "gamma": GAMMA, "epsilon": 0.3, "initial_q": INITIAL});
        let seen = run("n-step-sarsa", config, 2000, |agent, steps, ending| {
            if ending.terminates() {
                for ((s, a), g) in terminal_targets(steps, n) {
                    assert_close(q(agent, s, a), g, &format!("n = {n}, {ending:?}"));
                }
            }
        });
        assert!(seen.iter().all(|&n| n > 300), "n = {n}: {seen:?}");
    }
}

#[test]
fn monte_carlo_returns_never_bootstrap() {
    for first_visit in [true, false] {
        let config = json!({"alpha": 1.0, "gamma": GAMMA, "epsilon": 0.3,
                            "initial_q": INITIAL, "first_visit": first_visit});
        run("monte-carlo", config, 1000, |agent, steps, ending| {
            // Monte Carlo never bootstraps, not even through truncation.
            if ending != Ending::Abandoned {
                for ((s, a), g) in monte_carlo_targets(steps) {
                    assert_close(q(agent, s, a), g, &format!("{first_visit}, {ending:?}"));
                }
            }
        });
    }
    let config = json!({"alpha": 1.0, "gamma": GAMMA});
    run(
        "monte-carlo-prediction",
        config,
        1000,
        |agent, steps, ending| {
            if ending != Ending::Abandoned {
                let v = agent.tables().unwrap().v;
                let mut g = 0.0;
                let mut first: HashMap<usize, f64> = HashMap::new();
                for &(s, _, reward) in steps.iter().rev() {
                    g = GAMMA * g + reward;
                    first.insert(s, g);
                }
                for (s, g) in first {
                    assert_close(v[s], g, &format!("prediction, {ending:?}"));
                }
            }
        },
    );
}

/// The reproduction from the issue, at the agent: a time limit of 3 on a
/// terminal third step, n = 2. It read past the action queue before.
#[test]
fn n_step_sarsa_survives_termination_on_the_time_limit_step() {
    let config =
        json!({"n": 2, "epsilon": 0.5, "alpha": 1.0, "gamma": GAMMA, "initial_q": INITIAL});
    let mut agent = learner("n-step-sarsa", config, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..100 {
        let steps = play(agent.as_mut(), &mut rng, 3, Ending::Both);
        for ((s, a), g) in terminal_targets(&steps, 2) {
            assert_close(
                q(agent.as_ref(), s, a),
                g,
                "time limit on the terminal step",
            );
        }
    }
}
