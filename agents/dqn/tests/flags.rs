//! DQN never bootstraps through a termination, whatever `truncated` says:
//! the agent is fed random episodes, seeded, ending in each of the three
//! ways (terminated, truncated, both at once, as Gymnasium's `TimeLimit`
//! reports a time limit on the terminal step) or abandoned, and every batch
//! its replay samples must carry discount 0 exactly where the n-step chain
//! reached a terminal state, and γᵐ elsewhere.
//!
//! Each observation is a unique state index, so a sampled row names the
//! step it came from.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::testing::Ending;
use rl_agent::{Agent, EnvContext, Transition};
use rl_dqn::replay::Batch;
use rl_dqn::{Dqn, DqnConfig};
use rl_env::{Action, Observation, Space};
use serde_json::json;

const STATES: usize = 400;
const GAMMA: f32 = 0.9;

/// What was fed at one state index: the reward and how the step ended.
#[derive(Clone, Copy, Debug, Default)]
struct Fed {
    reward: f32,
    terminated: bool,
    /// The episode ended here (either flag).
    ended: bool,
    /// Whether this index was the observation of a step at all.
    stepped: bool,
}

#[test]
fn sampled_targets_never_bootstrap_through_termination() {
    for n_step in [1usize, 3] {
        let config: DqnConfig = serde_json::from_value(json!({
            "learning_starts": 10, "batch_size": 16, "replay": {"capacity": 1024},
            "n_step": n_step, "gamma": GAMMA, "target_update_period": 7, "log_every": 5,
            "network": [{"affine": 8}, "relu", {"affine": "actions"}],
        }))
        .unwrap();
        let (obs_space, act_space) = (Space::discrete(STATES as u64), Space::discrete(3));
        let ctx = EnvContext {
            num_envs: 1,
            total_steps: None,
            observation_space: &obs_space,
            action_space: &act_space,
            model: None,
            env_id: "test",
        };
        let mut agent = Dqn::new(config, &ctx, 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7 + n_step as u64);
        let mut fed = vec![Fed::default(); STATES];
        let mut next_index = 0usize;
        let mut endings = [0; 4];
        while next_index + 9 < STATES {
            let ending = Ending::random(&mut rng);
            endings[ending as usize] += 1;
            agent.begin_episode(0);
            let length = rng.random_range(1..=6);
            for t in 0..length {
                let s = next_index + t;
                let obs = Observation::Discrete(s as i64);
                let action = agent.act(0, &obs).unwrap();
                assert!(matches!(action, Action::Discrete(0..=2)));
                let (terminated, truncated) = ending.flags(t + 1 == length);
                // A reward that is exact in f32 and sums without rounding.
                let reward = rng.random_range(-8i32..8) as f32 / 8.0;
                fed[s] = Fed {
                    reward,
                    terminated,
                    ended: terminated || truncated,
                    stepped: true,
                };
                agent
                    .observe(&Transition {
                        lane: 0,
                        obs: &obs,
                        action: &action,
                        reward: f64::from(reward),
                        next_obs: &Observation::Discrete(s as i64 + 1),
                        terminated,
                        truncated,
                    })
                    .unwrap();
            }
            // The final observation takes an index of its own.
            next_index += length + 1;
        }
        assert!(endings.iter().all(|&n| n > 10), "{endings:?}");
        assert!(agent.updates() > 20, "the agent learned along the way");

        let mut batch = Batch::new(16, &[STATES]).unwrap();
        let mut sample_rng = ChaCha8Rng::seed_from_u64(99);
        let mut terminal_rows = 0;
        for _ in 0..200 {
            assert!(
                agent
                    .replay()
                    .sample(&mut sample_rng, &mut batch, n_step, GAMMA)
            );
            for i in 0..batch.len() {
                let row = batch.obs.index_axis(ndarray::Axis(0), i);
                let start = row.iter().position(|&x| x == 1.0).expect("one-hot");
                assert!(fed[start].stepped, "row {i} is a step");
                // Walk the chain as the target must: up to n rewards, stopping
                // at the episode's end; no bootstrap past a termination.
                let (mut ret, mut discount) = (0.0f32, 1.0f32);
                let mut terminal = false;
                for k in 0..n_step {
                    let step = fed[start + k];
                    ret += discount * step.reward;
                    discount *= GAMMA;
                    if step.ended {
                        terminal = step.terminated;
                        break;
                    }
                }
                if terminal {
                    terminal_rows += 1;
                    assert_eq!(batch.discounts[i], 0.0, "n = {n_step}, row from {start}");
                } else {
                    assert_eq!(
                        batch.discounts[i], discount,
                        "n = {n_step}, row from {start}"
                    );
                }
                assert!(
                    (batch.returns[i] - ret).abs() <= 1e-5,
                    "n = {n_step}, row from {start}: return {} vs {ret}",
                    batch.returns[i]
                );
            }
        }
        assert!(
            terminal_rows > 100,
            "n = {n_step}: {terminal_rows} terminal rows"
        );
    }
}
