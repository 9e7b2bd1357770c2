//! Zero heap allocations per training step after warm-up: act, observe
//! (store in the replay buffer), sample, update, target update. Counted by a
//! counting global allocator (`stats_alloc`).
//!
//! This file holds a single test so that no other test's allocations run
//! concurrently with the counted region.

use ndarray::ArrayD;
use rl_agent::{Agent, EnvContext, Transition, parse_config};
use rl_dqn::Dqn;
use rl_env::{DType, Observation, Space};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn training_steps_do_not_allocate_after_warm_up() {
    let space = Space::uniform_box(0.0, 1.0, &[4, 10, 10], DType::U8);
    let actions = Space::discrete(6);
    let ctx = EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space: &space,
        action_space: &actions,
        model: None,
        env_id: "planes",
    };
    for config in [
        json!({"learning_starts": 50, "replay": {"capacity": 500}, "target_update_period": 7,
               "log_every": 1000000}),
        json!({"learning_starts": 50, "replay": {"capacity": 500}, "target_update_period": 1,
               "tau": 0.01, "double_dqn": true, "dueling": true, "n_step": 3,
               "grad_clip": {"global_norm": 10.0}, "log_every": 1000000}),
    ] {
        let mut agent = Dqn::new(parse_config(&config).unwrap(), &ctx, 1).unwrap();
        // Observations with a moving cell, reused as the loop reuses its buffers.
        let mut obs = Observation::U8(ArrayD::zeros(vec![4, 10, 10]));
        let mut next = obs.clone();
        let step = |agent: &mut Dqn, k: usize, obs: &mut Observation, next: &mut Observation| {
            if let Observation::U8(a) = next {
                a.fill(0);
                a.as_slice_mut().unwrap()[(k * 7) % 400] = 1;
            }
            let action = agent.act(0, obs).unwrap();
            agent
                .observe(&Transition {
                    lane: 0,
                    obs,
                    action: &action,
                    reward: (k % 3) as f64,
                    next_obs: next,
                    terminated: k % 40 == 39,
                    truncated: k % 55 == 54,
                })
                .unwrap();
            if k % 40 == 39 || k % 55 == 54 {
                agent.begin_episode(0);
            }
            std::mem::swap(obs, next);
        };
        for k in 0..120 {
            step(&mut agent, k, &mut obs, &mut next);
        }
        let region = Region::new(GLOBAL);
        for k in 120..220 {
            step(&mut agent, k, &mut obs, &mut next);
        }
        let stats = region.change();
        assert!(agent.updates() > 150, "{config}");
        assert_eq!(
            stats.allocations + stats.reallocations,
            0,
            "{config}: {stats:?} over 100 training steps"
        );
    }
}
