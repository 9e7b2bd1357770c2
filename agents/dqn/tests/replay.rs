//! The replay buffer's property: every sampled transition pairs its
//! observation with its true successor (n steps on, or the true final
//! observation), with the right action, return and discount, across
//! wrap-around, episode boundaries (terminated, truncated, both at once,
//! abandoned) and frame stacking, for bit-packed and `f32` frames, with
//! one env copy or several interleaving their episodes.

use ndarray::ArrayD;
use proptest::prelude::*;
use rand::SeedableRng;
use rl_dqn::encode::ObsCodec;
use rl_dqn::replay::{Batch, Replay, Step};
use rl_env::{DType, Observation, Space};
use std::collections::HashMap;

const BITS: usize = 12;
const GAMMA: f32 = 0.9;

#[derive(Clone, Copy, Debug)]
enum End {
    Terminated,
    Truncated,
    /// A time limit on the terminal step (Gymnasium's `TimeLimit` sets
    /// both flags): still a termination, never bootstrapped.
    Both,
    /// The loop stopped the episode without an end (a budget, a resume).
    Abandoned,
}

/// A frame that encodes its id: 12 bits as 0/1 bytes, or `[id, −id]` as floats.
fn frame_values(id: u32, bits: bool) -> Vec<f64> {
    if bits {
        (0..BITS).map(|b| f64::from((id >> b) & 1)).collect()
    } else {
        vec![f64::from(id), -f64::from(id)]
    }
}

fn frame_len(bits: bool) -> usize {
    if bits { BITS } else { 2 }
}

fn space(bits: bool, stack: usize) -> Space {
    let len = frame_len(bits);
    let shape: Vec<usize> = if stack > 1 {
        vec![stack, len]
    } else {
        vec![len]
    };
    if bits {
        Space::uniform_box(0.0, 1.0, &shape, DType::U8)
    } else {
        Space::uniform_box(f64::NEG_INFINITY, f64::INFINITY, &shape, DType::F32)
    }
}

/// The stacked observation at step `t` of an episode whose frames are `ids`,
/// padded with the first frame as the frame_stack wrapper does.
fn observation(ids: &[u32], t: usize, stack: usize, bits: bool) -> Observation {
    let mut values = Vec::new();
    for j in 0..stack {
        let i = (t + j + 1).saturating_sub(stack);
        values.extend(frame_values(ids[i], bits));
    }
    let shape: Vec<usize> = if stack > 1 {
        vec![stack, frame_len(bits)]
    } else {
        vec![frame_len(bits)]
    };
    if bits {
        Observation::U8(
            ArrayD::from_shape_vec(shape, values.iter().map(|&v| v as u8).collect()).unwrap(),
        )
    } else {
        Observation::F32(
            ArrayD::from_shape_vec(shape, values.iter().map(|&v| v as f32).collect()).unwrap(),
        )
    }
}

/// Decodes a frame id from network input.
fn frame_id(values: &[f32], bits: bool) -> u32 {
    if bits {
        values
            .iter()
            .enumerate()
            .map(|(b, &v)| (v as u32) << b)
            .sum()
    } else {
        values[0] as u32
    }
}

struct Episode {
    ids: Vec<u32>,
    end: End,
}

fn check_batch(
    batch: &Batch,
    episodes: &[Episode],
    by_frame: &HashMap<u32, (usize, usize)>,
    stack: usize,
    bits: bool,
    n_step: usize,
) {
    let len = frame_len(bits);
    let input = stack * len;
    let obs = batch.obs.as_slice().unwrap();
    let next = batch.next_obs.as_slice().unwrap();
    for i in 0..batch.len() {
        let o = &obs[i * input..(i + 1) * input];
        let newest = frame_id(&o[(stack - 1) * len..], bits);
        let (e, t) = by_frame[&newest];
        let ep = &episodes[e];
        let steps = ep.ids.len() - 1;
        assert!(
            t < steps,
            "frame {newest} is a final observation, not a transition"
        );
        // The whole stack is the episode's, reset-padded.
        for j in 0..stack {
            let want = ep.ids[(t + j + 1).saturating_sub(stack)];
            assert_eq!(
                frame_id(&o[j * len..(j + 1) * len], bits),
                want,
                "obs frame {j}"
            );
        }
        assert_eq!(batch.actions[i], (ep.ids[t] % 3) as usize);
        // n-step successor: m = min(n, steps left) steps on.
        let m = n_step.min(steps - t);
        let terminal = matches!(ep.end, End::Terminated | End::Both) && t + m == steps;
        let mut ret = 0.0f32;
        let mut discount = 1.0f32;
        for k in 0..m {
            ret += discount * ep.ids[t + k] as f32;
            discount *= GAMMA;
        }
        if terminal {
            discount = 0.0;
        }
        assert!(
            (batch.returns[i] - ret).abs() <= 1e-3 * ret.abs().max(1.0),
            "return {} vs {ret}",
            batch.returns[i]
        );
        assert_eq!(batch.discounts[i], discount, "discount");
        let x = &next[i * input..(i + 1) * input];
        for j in 0..stack {
            let want = ep.ids[(t + m + j + 1).saturating_sub(stack)];
            assert_eq!(
                frame_id(&x[j * len..(j + 1) * len], bits),
                want,
                "next frame {j}"
            );
        }
    }
}

/// Plays `plan` (steps, end kind) into a buffer of `lanes` rings, episode
/// `i` in lane `i % lanes`, the lanes' steps interleaved one by one as a
/// loop over several env copies pushes them; samples after every step that
/// ends an episode. Returns how many batches were drawn.
fn run(
    capacity: usize,
    lanes: usize,
    stack: usize,
    n_step: usize,
    bits: bool,
    plan: &[(usize, u8)],
    seed: u64,
) -> usize {
    let codec = ObsCodec::new(&space(bits, stack), stack).unwrap();
    let mut replay = Replay::with_lanes(codec, capacity, lanes).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut batch = Batch::new(16, &[stack * frame_len(bits)]).unwrap();
    let mut episodes = Vec::new();
    let mut by_frame = HashMap::new();
    let mut next_id = 1u32;
    for &(steps, end) in plan {
        let end = match end % 4 {
            0 => End::Terminated,
            1 => End::Truncated,
            2 => End::Both,
            _ => End::Abandoned,
        };
        let ids: Vec<u32> = (0..=steps as u32).map(|k| next_id + k).collect();
        next_id += steps as u32 + 1;
        for (t, &id) in ids.iter().enumerate() {
            by_frame.insert(id, (episodes.len(), t));
        }
        // An abandoned episode's last frame stays a pending slot: chains
        // that would need the step after it are never sampled, so every
        // sampled chain of it has m = n.
        episodes.push(Episode { ids, end });
    }
    // Each lane's episodes in order, and where it stands: (episode, step).
    let queues: Vec<Vec<usize>> = (0..lanes)
        .map(|lane| (lane..episodes.len()).step_by(lanes).collect())
        .collect();
    let mut at = vec![(0usize, 0usize); lanes];
    let mut sampled = 0;
    loop {
        let mut moved = false;
        let mut ended = false;
        for lane in 0..lanes {
            let (k, t) = at[lane];
            let Some(&e) = queues[lane].get(k) else {
                continue;
            };
            let Episode { ids, end } = &episodes[e];
            let steps = ids.len() - 1;
            if t == 0 {
                replay.begin_episode(lane);
            }
            let last = t + 1 == steps;
            replay
                .push_to(
                    lane,
                    &Step {
                        obs: &observation(ids, t, stack, bits),
                        action: (ids[t] % 3) as usize,
                        reward: f64::from(ids[t]),
                        next_obs: &observation(ids, t + 1, stack, bits),
                        terminated: last && matches!(end, End::Terminated | End::Both),
                        truncated: last && matches!(end, End::Truncated | End::Both),
                    },
                )
                .unwrap();
            moved = true;
            at[lane] = if last { (k + 1, 0) } else { (k, t + 1) };
            ended |= last;
        }
        if !moved {
            break;
        }
        if ended && replay.sample(&mut rng, &mut batch, n_step, GAMMA) {
            sampled += 1;
            check_batch(&batch, &episodes, &by_frame, stack, bits, n_step);
        }
    }
    sampled
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        // Seeded, so that CI runs the same cases every time.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        .. ProptestConfig::default()
    })]

    #[test]
    fn samples_pair_each_observation_with_its_true_successor(
        capacity in 6usize..48,
        lanes in 1usize..4,
        stack in 1usize..4,
        n_step in 1usize..4,
        bits in any::<bool>(),
        plan in prop::collection::vec((1usize..10, 0u8..4), 1..30),
        seed in any::<u64>(),
    ) {
        run(capacity, lanes, stack, n_step, bits, &plan, seed);
    }
}

#[test]
fn wrap_around_with_long_episodes_and_stacks() {
    // Fixed cases that surely wrap several times.
    for (capacity, stack, n_step, bits) in [(7, 3, 1, true), (9, 4, 3, false), (50, 2, 2, true)] {
        let plan: Vec<(usize, u8)> = (0..40).map(|i| (1 + (i * 7) % 11, (i % 4) as u8)).collect();
        assert!(run(capacity, 1, stack, n_step, bits, &plan, 3) > 30);
        // Three env copies interleave their episodes, each in its own ring.
        assert!(run(3 * capacity, 3, stack, n_step, bits, &plan, 3) > 10);
    }
}

#[test]
fn minatar_breakout_frames_take_57_bytes() {
    let codec = ObsCodec::new(&Space::uniform_box(0.0, 1.0, &[4, 10, 10], DType::U8), 1).unwrap();
    let replay = Replay::new(codec, 1_000_000).unwrap();
    // 400 cells as bits (50 bytes), action u16, reward f32, flags u8.
    assert_eq!(replay.bytes_per_transition(), 57);
    assert!(replay.memory_bytes() <= 80_000_000);
}

#[test]
fn the_memory_estimate_covers_what_the_agent_allocates() {
    use rl_agent::EnvContext;
    use rl_dqn::{Dqn, DqnConfig};
    let observation_space = Space::uniform_box(0.0, 1.0, &[4, 10, 10], DType::U8);
    let action_space = Space::discrete(6);
    let ctx = EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space: &observation_space,
        action_space: &action_space,
        model: None,
        env_id: "minatar/breakout",
    };
    let config = DqnConfig::default();
    let estimate = Dqn::memory_bytes(&config, &ctx).unwrap();
    let agent = Dqn::new(config, &ctx, 0).unwrap();
    // Replay, then the online and target weights and gradients and the
    // centered RMSProp's two buffers: six copies of the parameters.
    let held = agent.replay().memory_bytes() + 6 * 4 * agent.online().param_count();
    assert!(estimate as usize >= held, "{estimate} < {held}");
    assert!(
        (estimate as usize) < 2 * held,
        "{estimate} is far above {held}"
    );
    // A capacity within its bound weighs what its frames cost.
    let large = DqnConfig {
        replay: rl_dqn::ReplayConfig {
            capacity: 100_000_000,
            ..Default::default()
        },
        ..DqnConfig::default()
    };
    assert!(Dqn::memory_bytes(&large, &ctx).unwrap() >= 5_700_000_000);
}
