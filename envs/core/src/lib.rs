//! The rl-lab environment API.
//!
//! It follows Gymnasium's semantics so that intuitions carry over:
//! `reset(seed)` gives `(observation, info)`, `step(action)` gives
//! `(observation, reward, terminated, truncated, info)`, and truncation
//! (a time limit) is never confused with termination (a terminal state).
//!
//! Environments write observations into a buffer the caller owns
//! ([`Env::reset_into`], [`Env::step_into`]), so a training loop that
//! reuses its buffers allocates nothing per step; [`Env::reset`] and
//! [`Env::step`] are the allocating conveniences.
//!
//! ```
//! use rl_env::{Env, Action, wrappers::{TimeLimit, EpisodeStatistics}};
//! # use rl_env::{Space, Observation, Info, StepOutcome, Frame};
//! # struct Coin { space: Space, obs: Space, done: bool }
//! # impl Env for Coin {
//! #   fn observation_space(&self) -> &Space { &self.obs }
//! #   fn action_space(&self) -> &Space { &self.space }
//! #   fn reset_into(&mut self, _: Option<u64>, o: &mut Observation) -> rl_env::Result<Info> { *o = Observation::Discrete(0); Ok(Info::default()) }
//! #   fn step_into(&mut self, _: &Action, o: &mut Observation) -> rl_env::Result<StepOutcome> { *o = Observation::Discrete(0); Ok(StepOutcome::new(1.0, false)) }
//! #   fn render_text(&self) -> String { String::new() }
//! #   fn render_rgb(&self) -> Frame { Frame::zeros((1, 1, 3)) }
//! # }
//! # let coin = Coin { space: Space::discrete(2), obs: Space::discrete(1), done: false };
//! let mut env = EpisodeStatistics::new(TimeLimit::new(coin, 3));
//! env.reset(Some(7)).unwrap();
//! let mut steps = 0;
//! loop {
//!     let step = env.step(&Action::Discrete(0)).unwrap();
//!     steps += 1;
//!     if step.terminated || step.truncated {
//!         assert!(step.truncated && !step.terminated);
//!         assert_eq!(step.info.episode.unwrap().length, 3);
//!         break;
//!     }
//! }
//! assert_eq!(steps, 3);
//! ```
#![warn(missing_docs)]

mod error;
pub mod model;
pub mod numpy_random;
pub mod registry;
pub mod render;
pub mod space;
#[cfg(test)]
mod testing;
pub mod vector;
pub mod wrappers;

pub use error::{Error, Result};
pub use model::{GridView, Model, Outcome};
pub use registry::{FedCopies, Registry, parse_config};
pub use render::{Frame, GifWriter, save_png};
pub use space::{Bounds, DType, Space};
pub use vector::{Batch, Column, CopyCall, Feed, VectorEnv};

use ndarray::ArrayD;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeSeq};

/// One observation. The variant matches the observation space:
/// `Discrete` for a `Discrete` space, an array of the space's dtype for a `Box`.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// An element of a `Discrete` space, e.g. a gridworld state index.
    Discrete(i64),
    /// A `uint8` array, e.g. MinAtar's `[C, 10, 10]` planes or a `MultiBinary`.
    U8(ArrayD<u8>),
    /// A `float32` array, e.g. a one-hot encoding.
    F32(ArrayD<f32>),
    /// A `float64` array, e.g. CartPole's state.
    F64(ArrayD<f64>),
}

impl Observation {
    /// The state index of a `Discrete` observation.
    pub fn as_index(&self) -> Option<i64> {
        match self {
            Observation::Discrete(s) => Some(*s),
            _ => None,
        }
    }

    /// Makes this a copy of `src`, in this observation's own buffer when
    /// kind and shape match: a loop that keeps observations between steps
    /// then allocates nothing.
    pub fn copy_from(&mut self, src: &Observation) {
        wrappers::buffers::copy_into(self, src);
    }
}

/// Writes `a` as nested sequences, each element through `widen`.
fn serialize_nested<S: Serializer, T: Copy, U: Serialize>(
    a: ndarray::ArrayViewD<'_, T>,
    widen: fn(T) -> U,
    s: S,
) -> Result<S::Ok, S::Error> {
    struct Nested<'a, T, U>(ndarray::ArrayViewD<'a, T>, fn(T) -> U);
    impl<T: Copy, U: Serialize> Serialize for Nested<'_, T, U> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_nested(self.0.view(), self.1, s)
        }
    }
    if a.ndim() == 0 {
        let only = *a.iter().next().expect("a 0-d array has one element");
        return widen(only).serialize(s);
    }
    let mut seq = s.serialize_seq(Some(a.shape()[0]))?;
    for sub in a.outer_iter() {
        seq.serialize_element(&Nested(sub, widen))?;
    }
    seq.end()
}

/// Observations serialise as Gymnasium's would print: an integer, or
/// nested arrays in row-major order. A `float32` element is written as
/// the `float64` it widens to exactly (`0.1f32` as `0.10000000149011612`),
/// as Python's `json` writes `obs.tolist()`: any reader, parsing into
/// float32 or float64, gets the very value back, and a served observation
/// compares equal to the same observation made in process.
impl Serialize for Observation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Observation::Discrete(x) => s.serialize_i64(*x),
            Observation::U8(a) => serialize_nested(a.view(), |x| x, s),
            Observation::F32(a) => serialize_nested(a.view(), f64::from, s),
            Observation::F64(a) => serialize_nested(a.view(), |x| x, s),
        }
    }
}

/// One action: an integer for `Discrete` action spaces, a vector for `Box`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Action {
    /// An element of a `Discrete` space.
    Discrete(i64),
    /// An element of a `Box` space, flattened row-major.
    Continuous(Vec<f64>),
}

/// Episode totals, put in `info` when an episode ends by
/// [`wrappers::EpisodeStatistics`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    /// Undiscounted sum of the rewards the wrapper saw.
    #[serde(rename = "return")]
    pub episode_return: f64,
    /// Number of steps.
    pub length: u64,
}

/// Gymnasium's `info` dictionary, with the keys rl-lab uses typed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Info {
    /// Set on the last step of an episode by `EpisodeStatistics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<EpisodeStats>,
    /// Probability of the transition just taken, for environments with a model
    /// (Gymnasium's FrozenLake `prob`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prob: Option<f64>,
    /// Set by vectorised runners on auto-reset: the true last observation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_observation: Option<Box<Observation>>,
}

/// What `step_into` returns besides the observation it wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    /// Reward for the transition.
    pub reward: f64,
    /// A terminal state was reached: do not bootstrap from the next state.
    pub terminated: bool,
    /// The episode was cut short (time limit): bootstrap from the next state.
    pub truncated: bool,
    /// Extra information.
    pub info: Info,
}

impl StepOutcome {
    /// An outcome with no truncation and empty info.
    pub fn new(reward: f64, terminated: bool) -> Self {
        StepOutcome {
            reward,
            terminated,
            truncated: false,
            info: Info::default(),
        }
    }
}

/// Gymnasium's five-tuple, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Observation,
    /// Reward for the transition.
    pub reward: f64,
    /// A terminal state was reached.
    pub terminated: bool,
    /// The episode was cut short.
    pub truncated: bool,
    /// Extra information.
    pub info: Info,
}

/// An environment: Gymnasium's `Env`, with observations written in place.
pub trait Env: Send {
    /// The set observations are drawn from.
    fn observation_space(&self) -> &Space;
    /// The set of valid actions.
    fn action_space(&self) -> &Space;
    /// Starts an episode. With `Some(seed)` the environment's generator is
    /// reseeded, so the same seed and actions give the same trajectory;
    /// with `None` it continues its stream.
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info>;
    /// Takes one step, writing the next observation into `obs`.
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome>;
    /// A text picture of the current state, for terminals.
    fn render_text(&self) -> String;
    /// An RGB picture of the current state, `[H, W, 3]`.
    fn render_rgb(&self) -> Frame;
    /// The exact dynamics, for environments that know them.
    fn model(&self) -> Option<&dyn Model> {
        None
    }
    /// The grid layout of state indices, for grid-shaped environments,
    /// so that values and policies can be drawn as grids.
    fn grid(&self) -> Option<GridView> {
        None
    }
    /// What the next episode depends on besides its reset seed: state that
    /// survives a reset, such as MinAtar's last action, which its sticky
    /// actions may repeat on the first step. A checkpoint taken between
    /// episodes stores it, so that a resumed run's next episode is the one
    /// the uninterrupted run would have played. `Null` when the reset seed
    /// alone decides the episode.
    fn carried_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Puts back what [`Env::carried_state`] returned, on an environment
    /// made from the same id and config.
    fn restore_carried_state(&mut self, state: &serde_json::Value) -> Result<()> {
        if state.is_null() {
            Ok(())
        } else {
            Err(Error::config(
                "carried_state",
                format!("this environment carries nothing between episodes, not {state}"),
            ))
        }
    }

    /// Where the environment lives when it is not in this process: for a
    /// remote env, its URL, id and wire dialect, so that a run's summary
    /// can say what it trained on. `None` for in-process environments.
    fn connection(&self) -> Option<serde_json::Value> {
        None
    }

    /// `reset_into` with a fresh observation.
    fn reset(&mut self, seed: Option<u64>) -> Result<(Observation, Info)> {
        let mut obs = self.observation_space().zeros();
        let info = self.reset_into(seed, &mut obs)?;
        Ok((obs, info))
    }

    /// `step_into` with a fresh observation.
    fn step(&mut self, action: &Action) -> Result<Step> {
        let mut obs = self.observation_space().zeros();
        let out = self.step_into(action, &mut obs)?;
        Ok(Step {
            obs,
            reward: out.reward,
            terminated: out.terminated,
            truncated: out.truncated,
            info: out.info,
        })
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        (**self).reset_into(seed, obs)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        (**self).step_into(action, obs)
    }
    fn render_text(&self) -> String {
        (**self).render_text()
    }
    fn render_rgb(&self) -> Frame {
        (**self).render_rgb()
    }
    fn model(&self) -> Option<&dyn Model> {
        (**self).model()
    }
    fn grid(&self) -> Option<GridView> {
        (**self).grid()
    }
    fn carried_state(&self) -> serde_json::Value {
        (**self).carried_state()
    }
    fn restore_carried_state(&mut self, state: &serde_json::Value) -> Result<()> {
        (**self).restore_carried_state(state)
    }
    fn connection(&self) -> Option<serde_json::Value> {
        (**self).connection()
    }
}

/// The index (`action - start`) of a `Discrete` action, or the error users
/// should see when it is not in `space`.
pub fn discrete_action(space: &Space, action: &Action) -> Result<usize> {
    if let (Space::Discrete { n, start }, Action::Discrete(a)) = (space, action) {
        let index = a.wrapping_sub(*start);
        if index >= 0 && (index as u64) < *n {
            return Ok(index as usize);
        }
    }
    check_action(space, action)?;
    Err(Error::Space(format!(
        "{space} is not a Discrete action space"
    )))
}

/// Checks `action` against `space`, with the error users should see.
pub fn check_action(space: &Space, action: &Action) -> Result<()> {
    if space.contains_action(action) {
        Ok(())
    } else {
        Err(Error::InvalidAction {
            action: match action {
                Action::Discrete(a) => a.to_string(),
                Action::Continuous(v) => format!("{v:?}"),
            },
            space: space.to_string(),
        })
    }
}
