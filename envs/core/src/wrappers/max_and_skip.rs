//! [`MaxAndSkip`]: ALE-style frame skipping with max-pooling.

use super::buffers::max_in_place;
use super::{forward_render, inner_access};
use crate::{Action, Env, Error, Frame, GridView, Info, Observation, Result, Space, StepOutcome};

/// Repeats each action `k` times and returns the elementwise maximum of
/// the last two frames it saw, with the rewards summed (the frame skip of
/// Mnih et al. 2015, as SB3's `MaxAndSkipEnv` and Gymnasium's
/// `AtariPreprocessing(frame_skip=k)`).
///
/// - It stops early when a step terminates or truncates; the flags and the
///   `info` of that step are returned.
/// - The max is over the last two frames *of this call*. If only one step
///   was taken (`k = 1`, or the episode ended on the first repeat) that
///   frame is returned as it is, never pooled with a frame from before.
///   (SB3 and Gymnasium pool with a stale buffer in that case.)
///
/// Needs an array observation (`Box` or `MultiBinary`).
pub struct MaxAndSkip<E> {
    env: E,
    k: usize,
    /// The frame before the newest, swapped with the caller's buffer.
    previous: Observation,
}

/// The name for the same wrapper.
pub type FrameSkip<E> = MaxAndSkip<E>;

impl<E: Env> MaxAndSkip<E> {
    /// Wraps `env`, repeating each action `k ≥ 1` times.
    pub fn new(env: E, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::config(
                "max_and_skip",
                "must repeat each action at least once",
            ));
        }
        if let Space::Discrete { .. } = env.observation_space() {
            return Err(Error::Space(format!(
                "max_and_skip needs an array observation space, not {}",
                env.observation_space()
            )));
        }
        Ok(MaxAndSkip {
            previous: env.observation_space().zeros(),
            env,
            k,
        })
    }
}

inner_access!(MaxAndSkip);

impl<E: Env> Env for MaxAndSkip<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        self.env.reset_into(seed, obs)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let mut total = 0.0;
        let mut taken = 0;
        let mut out = loop {
            if taken > 0 {
                // Keep the frame just written; write the next one into the
                // older buffer. Swapping moves no pixels.
                std::mem::swap(obs, &mut self.previous);
            }
            let out = self.env.step_into(action, obs)?;
            total += out.reward;
            taken += 1;
            if taken == self.k || out.terminated || out.truncated {
                break out;
            }
        };
        if taken >= 2 {
            max_in_place(obs, &self.previous)?;
        }
        out.reward = total;
        Ok(out)
    }
    forward_render!();
}
