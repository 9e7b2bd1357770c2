//! Composable wrappers, named as in Gymnasium. Each owns the environment
//! it wraps, so a stack is a nested type (`EpisodeStatistics<TimeLimit<E>>`)
//! or, when built from a spec by [`apply_wrappers`], nested boxes.
//!
//! | wrapper | spec | what it does |
//! |---|---|---|
//! | [`TimeLimit`] | `{"time_limit": n}` | truncates after `n` steps |
//! | [`EpisodeStatistics`] | `"episode_statistics"` | return and length in `info.episode` |
//! | [`ClipReward`] | `"clip_reward"` | reward → its sign |
//! | [`OneHot`] | `"one_hot"` | `Discrete(n)` → one-hot `float32` |
//! | [`NoopReset`] | `{"noop_reset": max}` | 1..=max no-op steps after each reset |
//! | [`FrameStack`] | `{"frame_stack": k}` | the last `k` observations, stacked on a new first axis |
//! | [`MaxAndSkip`] | `{"max_and_skip": k}` (alias `frame_skip`) | repeat the action `k` times, max of the last two frames |
//! | [`StickyActions`] | `{"sticky_actions": p}` | repeat the previous action with probability `p` |
//! | [`ToF32`] | `"to_f32"` | observations → `float32`, `uint8` scaled to [0, 1] |
//!
//! Order matters, and is the caller's to choose deliberately: put
//! [`EpisodeStatistics`] *inside* [`ClipReward`] so logged returns are real
//! scores, and [`TimeLimit`] inside `EpisodeStatistics` so truncated
//! episodes are counted. A spec lists wrappers innermost first (see
//! [`apply_wrappers`]).
//!
//! No wrapper allocates per step: each keeps the buffers it needs and
//! reuses the caller's observation when its kind and shape fit.

pub(crate) mod buffers;
mod frame_stack;
mod max_and_skip;
mod noop_reset;
mod spec;
mod sticky_actions;
mod to_f32;

pub use frame_stack::{FrameStack, MAX_FRAME_STACK};
pub use max_and_skip::{FrameSkip, MaxAndSkip};
pub use noop_reset::NoopReset;
pub use spec::{WrapperSpec, apply_wrappers};
pub use sticky_actions::StickyActions;
pub use to_f32::ToF32;

use crate::{
    Action, Env, EpisodeStats, Error, Frame, GridView, Info, Model, Observation, Result, Space,
    StepOutcome,
};
use ndarray::ArrayD;

/// Forwards rendering, the grid view, the carried state and the connection
/// to `self.env`.
macro_rules! forward_render {
    () => {
        fn render_text(&self) -> String {
            self.env.render_text()
        }
        fn render_rgb(&self) -> Frame {
            self.env.render_rgb()
        }
        fn grid(&self) -> Option<GridView> {
            self.env.grid()
        }
        fn carried_state(&self) -> serde_json::Value {
            self.env.carried_state()
        }
        fn restore_carried_state(&mut self, state: &serde_json::Value) -> Result<()> {
            self.env.restore_carried_state(state)
        }
        fn connection(&self) -> Option<serde_json::Value> {
            self.env.connection()
        }
    };
}

/// `inner`, `inner_mut` and `into_inner` for a wrapper with an `env` field.
macro_rules! inner_access {
    ($wrapper:ident) => {
        impl<E> $wrapper<E> {
            /// The wrapped environment.
            pub fn inner(&self) -> &E {
                &self.env
            }
            /// The wrapped environment, mutably (e.g. to set a classic-control
            /// state, as Gymnasium's `env.unwrapped.state = …`).
            pub fn inner_mut(&mut self) -> &mut E {
                &mut self.env
            }
            /// Unwraps one layer.
            pub fn into_inner(self) -> E {
                self.env
            }
        }
    };
}
pub(crate) use {forward_render, inner_access};

inner_access!(TimeLimit);
inner_access!(EpisodeStatistics);
inner_access!(ClipReward);
inner_access!(OneHot);

/// Truncates episodes after `max_steps` steps (Gymnasium's `TimeLimit`).
///
/// A step that reaches the limit returns `truncated = true`; if it also
/// reached a terminal state, `terminated` stays true as well.
pub struct TimeLimit<E> {
    env: E,
    max_steps: u64,
    elapsed: u64,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `env` with a limit of `max_steps` steps per episode.
    pub fn new(env: E, max_steps: u64) -> Self {
        TimeLimit {
            env,
            max_steps,
            elapsed: 0,
        }
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        self.elapsed = 0;
        self.env.reset_into(seed, obs)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let mut out = self.env.step_into(action, obs)?;
        self.elapsed += 1;
        if self.elapsed >= self.max_steps {
            out.truncated = true;
        }
        Ok(out)
    }
    fn model(&self) -> Option<&dyn Model> {
        self.env.model()
    }
    forward_render!();
}

/// Records each episode's return and length, and puts them in `info.episode`
/// on the step that ends it (Gymnasium's `RecordEpisodeStatistics`).
pub struct EpisodeStatistics<E> {
    env: E,
    episode_return: f64,
    length: u64,
}

impl<E: Env> EpisodeStatistics<E> {
    /// Wraps `env`.
    pub fn new(env: E) -> Self {
        EpisodeStatistics {
            env,
            episode_return: 0.0,
            length: 0,
        }
    }
}

impl<E: Env> Env for EpisodeStatistics<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        self.episode_return = 0.0;
        self.length = 0;
        self.env.reset_into(seed, obs)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let mut out = self.env.step_into(action, obs)?;
        self.episode_return += out.reward;
        self.length += 1;
        if out.terminated || out.truncated {
            out.info.episode = Some(EpisodeStats {
                episode_return: self.episode_return,
                length: self.length,
            });
        }
        Ok(out)
    }
    fn model(&self) -> Option<&dyn Model> {
        self.env.model()
    }
    forward_render!();
}

/// Replaces each reward by its sign, −1, 0 or +1 (DQN's reward clipping).
///
/// It hides the model: the model's rewards are the unclipped ones.
pub struct ClipReward<E> {
    env: E,
}

impl<E: Env> ClipReward<E> {
    /// Wraps `env`.
    pub fn new(env: E) -> Self {
        ClipReward { env }
    }
}

impl<E: Env> Env for ClipReward<E> {
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
        let mut out = self.env.step_into(action, obs)?;
        out.reward = if out.reward > 0.0 {
            1.0
        } else if out.reward < 0.0 {
            -1.0
        } else {
            0.0
        };
        Ok(out)
    }
    forward_render!();
}

/// Turns a `Discrete(n)` observation into a `float32` one-hot vector of length `n`.
///
/// The model is hidden, since its states are indices, not vectors.
pub struct OneHot<E> {
    env: E,
    space: Space,
    n: usize,
    start: i64,
    index: Observation,
}

impl<E: Env> OneHot<E> {
    /// Wraps `env`, whose observation space must be `Discrete`.
    pub fn new(env: E) -> Result<Self> {
        let Space::Discrete { n, start } = *env.observation_space() else {
            return Err(Error::Space(format!(
                "one_hot needs a Discrete observation space, not {}",
                env.observation_space()
            )));
        };
        Ok(OneHot {
            env,
            space: Space::uniform_box(0.0, 1.0, &[n as usize], crate::DType::F32),
            n: n as usize,
            start,
            index: Observation::Discrete(start),
        })
    }

    fn encode(&self, obs: &mut Observation) {
        let hot = (self.index.as_index().unwrap_or(self.start) - self.start) as usize;
        match obs {
            Observation::F32(a) if a.len() == self.n => {
                a.fill(0.0);
                a[[hot]] = 1.0;
            }
            _ => {
                let mut a = ArrayD::zeros(vec![self.n]);
                a[[hot]] = 1.0;
                *obs = Observation::F32(a);
            }
        }
    }
}

impl<E: Env> Env for OneHot<E> {
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        let info = self.env.reset_into(seed, &mut self.index)?;
        self.encode(obs);
        Ok(info)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let out = self.env.step_into(action, &mut self.index)?;
        self.encode(obs);
        Ok(out)
    }
    forward_render!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corridor of `len` cells: action 1 moves right (+1 reward at the end,
    /// which terminates), action 0 stays (−1).
    struct Corridor {
        obs_space: Space,
        act_space: Space,
        pos: i64,
        len: i64,
    }

    impl Corridor {
        fn new(len: i64) -> Self {
            Corridor {
                obs_space: Space::discrete(len as u64),
                act_space: Space::discrete(2),
                pos: 0,
                len,
            }
        }
    }

    impl Env for Corridor {
        fn observation_space(&self) -> &Space {
            &self.obs_space
        }
        fn action_space(&self) -> &Space {
            &self.act_space
        }
        fn reset_into(&mut self, _seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
            self.pos = 0;
            *obs = Observation::Discrete(0);
            Ok(Info::default())
        }
        fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
            crate::check_action(&self.act_space, action)?;
            let reward = if *action == Action::Discrete(1) {
                self.pos += 1;
                if self.pos == self.len - 1 { 5.0 } else { 0.0 }
            } else {
                -1.0
            };
            *obs = Observation::Discrete(self.pos);
            Ok(StepOutcome::new(reward, self.pos == self.len - 1))
        }
        fn render_text(&self) -> String {
            format!("{}", self.pos)
        }
        fn render_rgb(&self) -> Frame {
            Frame::zeros((1, self.len as usize, 3))
        }
    }

    #[test]
    fn truncation_is_not_termination() {
        let mut env = EpisodeStatistics::new(TimeLimit::new(Corridor::new(10), 4));
        env.reset(Some(0)).unwrap();
        for _ in 0..3 {
            let s = env.step(&Action::Discrete(0)).unwrap();
            assert!(!s.truncated && !s.terminated && s.info.episode.is_none());
        }
        let s = env.step(&Action::Discrete(0)).unwrap();
        assert!(s.truncated && !s.terminated);
        assert_eq!(
            s.info.episode,
            Some(EpisodeStats {
                episode_return: -4.0,
                length: 4
            })
        );
    }

    #[test]
    fn termination_at_limit_sets_both_flags() {
        let mut env = TimeLimit::new(Corridor::new(3), 2);
        env.reset(None).unwrap();
        env.step(&Action::Discrete(1)).unwrap();
        let s = env.step(&Action::Discrete(1)).unwrap();
        assert!(s.terminated && s.truncated);
    }

    #[test]
    fn statistics_see_rewards_before_clipping() {
        let mut env = ClipReward::new(EpisodeStatistics::new(Corridor::new(2)));
        env.reset(None).unwrap();
        let s = env.step(&Action::Discrete(1)).unwrap();
        assert_eq!(s.reward, 1.0);
        assert_eq!(s.info.episode.unwrap().episode_return, 5.0);
    }

    #[test]
    fn one_hot_encodes_and_reuses_its_buffer() {
        let mut env = OneHot::new(Corridor::new(4)).unwrap();
        let (mut obs, _) = env.reset(None).unwrap();
        assert!(env.observation_space().contains(&obs));
        env.step_into(&Action::Discrete(1), &mut obs).unwrap();
        let Observation::F32(a) = &obs else { panic!() };
        assert_eq!(a.as_slice().unwrap(), &[0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn invalid_action_is_an_error() {
        let mut env = Corridor::new(4);
        env.reset(None).unwrap();
        let err = env.step(&Action::Discrete(7)).unwrap_err();
        assert!(err.to_string().contains("7"), "{err}");
    }
}

#[cfg(test)]
mod pipeline_tests;
