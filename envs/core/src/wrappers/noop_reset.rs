//! [`NoopReset`]: random no-op starts.

use super::{forward_render, inner_access};
use crate::{Action, Env, Error, Frame, GridView, Info, Observation, Result, Space, StepOutcome};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ChaCha stream of the no-op counts, apart from any env's stream 0.
const NOOP_STREAM: u64 = 0x6e6f_6f70;

/// After each reset, takes a uniformly random number of no-op steps in
/// `1..=max` (Mnih et al. 2015's "up to 30 no-op actions"; SB3's
/// `NoopResetEnv`, Gymnasium's `AtariPreprocessing(noop_max=…)`). If an
/// episode ends during the no-ops, the env is reset again and the no-ops
/// continue. `max = 0` turns it off.
///
/// The no-op is the first action of the `Discrete` action space (ALE's
/// NOOP, MinAtar's `n`). The counts come from the wrapper's own generator,
/// reseeded by `reset(Some(seed))`.
pub struct NoopReset<E> {
    env: E,
    max: u32,
    noop: Action,
    rng: ChaCha8Rng,
}

fn generator(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(NOOP_STREAM);
    rng
}

impl<E: Env> NoopReset<E> {
    /// Wraps `env`, whose action space must be `Discrete`.
    pub fn new(env: E, max: u32) -> Result<Self> {
        let Space::Discrete { start, .. } = *env.action_space() else {
            return Err(Error::Space(format!(
                "noop_reset needs a Discrete action space, not {}",
                env.action_space()
            )));
        };
        Ok(NoopReset {
            env,
            max,
            noop: Action::Discrete(start),
            rng: generator(0),
        })
    }
}

inner_access!(NoopReset);

impl<E: Env> Env for NoopReset<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(seed) = seed {
            self.rng = generator(seed);
        }
        let mut info = self.env.reset_into(seed, obs)?;
        if self.max == 0 {
            return Ok(info);
        }
        let noops = self.rng.random_range(1..=self.max);
        for _ in 0..noops {
            let out = self.env.step_into(&self.noop, obs)?;
            if out.terminated || out.truncated {
                info = self.env.reset_into(None, obs)?;
            }
        }
        Ok(info)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        self.env.step_into(action, obs)
    }
    forward_render!();
}
