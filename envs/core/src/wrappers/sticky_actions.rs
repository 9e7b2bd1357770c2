//! [`StickyActions`]: repeat the previous action at random.

use super::{forward_render, inner_access};
use crate::{Action, Env, Error, Frame, GridView, Info, Observation, Result, Space, StepOutcome};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ChaCha stream of the stickiness draws.
const STICKY_STREAM: u64 = 0x7374_6963;

/// With probability `p`, ignores the agent's action and repeats the one
/// executed on the previous step (Machado et al. 2018; Gymnasium's
/// `StickyAction`). The first step after a reset always executes the
/// agent's action. One uniform draw is made per step after the first;
/// the generator is the wrapper's own, reseeded by `reset(Some(seed))`.
///
/// This is for any env. MinAtar's games have their own sticky actions,
/// drawn from the game's generator as the Python package does; use those
/// for fidelity with MinAtar.
pub struct StickyActions<E> {
    env: E,
    p: f64,
    last: Option<Action>,
    rng: ChaCha8Rng,
}

fn generator(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(STICKY_STREAM);
    rng
}

impl<E: Env> StickyActions<E> {
    /// Wraps `env` with repeat probability `p ∈ [0, 1]`.
    pub fn new(env: E, p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(
                "sticky_actions",
                format!("{p} is not a probability in [0, 1]"),
            ));
        }
        Ok(StickyActions {
            env,
            p,
            last: None,
            rng: generator(0),
        })
    }
}

inner_access!(StickyActions);

impl<E: Env> Env for StickyActions<E> {
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
        self.last = None;
        self.env.reset_into(seed, obs)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        crate::check_action(self.env.action_space(), action)?;
        let sticks = self.last.is_some() && self.rng.random::<f64>() < self.p;
        if !sticks {
            // `clone_from` reuses a continuous action's vector.
            match &mut self.last {
                Some(last) => last.clone_from(action),
                None => self.last = Some(action.clone()),
            }
        }
        let executed = self.last.as_ref().expect("set above or on an earlier step");
        self.env.step_into(executed, obs)
    }
    forward_render!();
}
