//! [`WrapperSpec`]: wrappers as data, for run specs.

use super::{
    ClipReward, EpisodeStatistics, FrameStack, MaxAndSkip, NoopReset, OneHot, StickyActions,
    TimeLimit, ToF32,
};
use crate::{Env, Error, Result};
use serde::{Deserialize, Serialize};

/// One wrapper in a run spec. Wrappers without a parameter are written as
/// a string, the others as a one-key object:
///
/// ```
/// use rl_env::wrappers::WrapperSpec;
/// let specs: Vec<WrapperSpec> = serde_json::from_str(
///     r#"["episode_statistics", "clip_reward", {"frame_stack": 4}, {"frame_skip": 4}]"#,
/// ).unwrap();
/// assert_eq!(specs[2], WrapperSpec::FrameStack(4));
/// assert_eq!(specs[3], WrapperSpec::MaxAndSkip(4));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WrapperSpec {
    /// [`TimeLimit`]: truncate after this many env steps (≥ 1).
    TimeLimit(u64),
    /// [`EpisodeStatistics`]: episode return and length in `info.episode`.
    EpisodeStatistics,
    /// [`ClipReward`]: the reward's sign.
    ClipReward,
    /// [`OneHot`]: a `Discrete` observation as a one-hot `float32` vector.
    OneHot,
    /// [`NoopReset`]: up to this many no-op steps after each reset (0 = off).
    NoopReset(u32),
    /// [`FrameStack`]: stack this many observations (≥ 1).
    FrameStack(usize),
    /// [`MaxAndSkip`]: repeat each action this many times (≥ 1), max-pool
    /// the last two frames. Also accepted as `frame_skip`.
    #[serde(alias = "frame_skip")]
    MaxAndSkip(usize),
    /// [`StickyActions`]: repeat the previous action with this probability.
    StickyActions(f64),
    /// [`ToF32`]: `float32` observations, `uint8` scaled to [0, 1].
    ToF32,
}

impl WrapperSpec {
    /// The spec's key, as written in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            WrapperSpec::TimeLimit(_) => "time_limit",
            WrapperSpec::EpisodeStatistics => "episode_statistics",
            WrapperSpec::ClipReward => "clip_reward",
            WrapperSpec::OneHot => "one_hot",
            WrapperSpec::NoopReset(_) => "noop_reset",
            WrapperSpec::FrameStack(_) => "frame_stack",
            WrapperSpec::MaxAndSkip(_) => "max_and_skip",
            WrapperSpec::StickyActions(_) => "sticky_actions",
            WrapperSpec::ToF32 => "to_f32",
        }
    }

    /// Whether each call to the wrapper makes exactly one call of the same
    /// kind to the env inside, with the same action or seed: what lets it
    /// wrap a copy whose outcome a [`Feed`](crate::Feed) fetched before
    /// the call. Skipping, no-op resets and sticky actions do not.
    pub fn passes_calls_through(&self) -> bool {
        match self {
            WrapperSpec::TimeLimit(_)
            | WrapperSpec::EpisodeStatistics
            | WrapperSpec::ClipReward
            | WrapperSpec::OneHot
            | WrapperSpec::FrameStack(_)
            | WrapperSpec::ToF32 => true,
            WrapperSpec::NoopReset(_)
            | WrapperSpec::MaxAndSkip(_)
            | WrapperSpec::StickyActions(_) => false,
        }
    }

    /// Wraps `env` in this one wrapper.
    pub fn apply(&self, env: Box<dyn Env>) -> Result<Box<dyn Env>> {
        Ok(match *self {
            WrapperSpec::TimeLimit(0) => {
                return Err(Error::config("time_limit", "must be at least 1 step"));
            }
            WrapperSpec::TimeLimit(n) => Box::new(TimeLimit::new(env, n)),
            WrapperSpec::EpisodeStatistics => Box::new(EpisodeStatistics::new(env)),
            WrapperSpec::ClipReward => Box::new(ClipReward::new(env)),
            WrapperSpec::OneHot => Box::new(OneHot::new(env)?),
            WrapperSpec::NoopReset(max) => Box::new(NoopReset::new(env, max)?),
            WrapperSpec::FrameStack(k) => Box::new(FrameStack::new(env, k)?),
            WrapperSpec::MaxAndSkip(k) => Box::new(MaxAndSkip::new(env, k)?),
            WrapperSpec::StickyActions(p) => Box::new(StickyActions::new(env, p)?),
            WrapperSpec::ToF32 => Box::new(ToF32::new(env)?),
        })
    }
}

/// Applies `specs` to `env` **innermost first**: `specs[0]` wraps the env
/// itself and the last entry is the outermost layer, the one the agent
/// talks to. So `["episode_statistics", "clip_reward"]` records returns
/// before clipping (CleanRL's order), and `[{"max_and_skip": 4},
/// {"frame_stack": 4}]` stacks skipped frames (the Nature-DQN pipeline).
///
/// Errors name the entry: a config error on entry 2 reads
/// `wrappers[2].frame_stack: …`; a wrapper that cannot take the env's
/// spaces gives a space error that names the wrapper.
///
/// ```
/// use rl_env::wrappers::{WrapperSpec, apply_wrappers};
/// # use rl_env::{Env, Space, Observation, Info, StepOutcome, Frame, Action};
/// # struct Coin(Space);
/// # impl Env for Coin {
/// #   fn observation_space(&self) -> &Space { &self.0 }
/// #   fn action_space(&self) -> &Space { &self.0 }
/// #   fn reset_into(&mut self, _: Option<u64>, o: &mut Observation) -> rl_env::Result<Info> { *o = Observation::Discrete(0); Ok(Info::default()) }
/// #   fn step_into(&mut self, _: &Action, o: &mut Observation) -> rl_env::Result<StepOutcome> { *o = Observation::Discrete(1); Ok(StepOutcome::new(3.0, false)) }
/// #   fn render_text(&self) -> String { String::new() }
/// #   fn render_rgb(&self) -> Frame { Frame::zeros((1, 1, 3)) }
/// # }
/// let specs: Vec<WrapperSpec> = serde_json::from_str(
///     r#"[{"time_limit": 2}, "episode_statistics", "clip_reward", "one_hot"]"#).unwrap();
/// let mut env = apply_wrappers(Box::new(Coin(Space::discrete(2))), &specs).unwrap();
/// env.reset(Some(0)).unwrap();
/// env.step(&Action::Discrete(0)).unwrap();
/// let last = env.step(&Action::Discrete(0)).unwrap();
/// assert!(last.truncated);
/// assert_eq!(last.reward, 1.0); // clipped …
/// assert_eq!(last.info.episode.unwrap().episode_return, 6.0); // … but logged unclipped
/// ```
pub fn apply_wrappers(env: Box<dyn Env>, specs: &[WrapperSpec]) -> Result<Box<dyn Env>> {
    let mut env = env;
    for (i, spec) in specs.iter().enumerate() {
        env = spec.apply(env).map_err(|e| match e {
            Error::Config { field, message } => Error::Config {
                field: format!("wrappers[{i}].{field}"),
                message,
            },
            Error::Space(m) => Error::Space(format!("wrappers[{i}] ({}): {m}", spec.name())),
            other => other,
        })?;
    }
    Ok(env)
}
