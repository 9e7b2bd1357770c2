//! An environment of your own, as a crate: NChain (Strens, 2000), the
//! chain that gym shipped as `NChain-v0` until it was removed.
//!
//! The agent walks a chain of `n` states. Action 0 moves forward (reward 0,
//! and `large` for staying at the far end); action 1 goes back to the start
//! for the `small` reward. With probability `slip` the other action happens.
//! Going back pays at once, so a myopic or poorly exploring agent settles
//! for it; walking to the end pays five times more per step. That makes it a
//! small test of exploration, and its exact model lets value iteration
//! compute the answer to check learners against.
//!
//! Everything rl-lab needs is here: the [`Env`] implementation, a [`Model`]
//! for the planners, text and RGB rendering, and [`register`], which the
//! `custom-lab` binary hands to `rl_lab::cli::Lab::with_envs`. The
//! walkthrough is `docs/envs.md` at the repository's root.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_env::wrappers::TimeLimit;
use rl_env::{
    Action, Env, Frame, Info, Model, Observation, Outcome, Registry, Result, Space, StepOutcome,
    discrete_action, parse_config,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The id NChain registers under.
pub const ID: &str = "custom/nchain";

/// NChain's config. Every field has gym's `NChain-v0` default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NChainConfig {
    /// Number of states in the chain; at least 2. Default 5.
    pub n: usize,
    /// Probability that the other action is taken; in [0, 1]. Default 0.2.
    pub slip: f64,
    /// Reward for going back to the start. Default 2.
    pub small: f64,
    /// Reward for moving forward at the end of the chain. Default 10.
    pub large: f64,
    /// Steps per episode: the chain never ends by itself. Default 1,000.
    pub max_steps: u64,
}

impl Default for NChainConfig {
    fn default() -> Self {
        NChainConfig {
            n: 5,
            slip: 0.2,
            small: 2.0,
            large: 10.0,
            max_steps: 1000,
        }
    }
}

impl NChainConfig {
    /// Checked once, here, so the environment itself can trust its fields.
    fn validate(&self) -> Result<()> {
        if self.n < 2 {
            return Err(rl_env::Error::config(
                "n",
                format!("{} states: need at least 2", self.n),
            ));
        }
        if !(0.0..=1.0).contains(&self.slip) {
            return Err(rl_env::Error::config(
                "slip",
                format!("{} is not a probability in [0, 1]", self.slip),
            ));
        }
        for (field, value) in [("small", self.small), ("large", self.large)] {
            if !value.is_finite() {
                return Err(rl_env::Error::config(
                    field,
                    format!("{value} is not a finite reward"),
                ));
            }
        }
        if self.max_steps == 0 {
            return Err(rl_env::Error::config("max_steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// Action 0: forward along the chain.
pub const FORWARD: usize = 0;
/// Action 1: back to the start.
pub const BACKWARD: usize = 1;

/// The chain.
pub struct NChain {
    config: NChainConfig,
    observation_space: Space,
    action_space: Space,
    /// `P[s][a]`, computed once: the planners read it, and `step` samples
    /// from the same table, so the model cannot drift from the dynamics.
    model: ChainModel,
    state: usize,
    rng: ChaCha8Rng,
}

impl NChain {
    /// A chain as `config` says; errors name the bad field.
    pub fn new(config: NChainConfig) -> Result<Self> {
        config.validate()?;
        Ok(NChain {
            observation_space: Space::discrete(config.n as u64),
            action_space: Space::discrete(2),
            model: ChainModel::new(&config),
            config,
            state: 0,
            rng: ChaCha8Rng::seed_from_u64(0),
        })
    }
}

impl Env for NChain {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(seed) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(seed);
        }
        self.state = 0;
        *obs = Observation::Discrete(0);
        Ok(Info::default())
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let action = discrete_action(&self.action_space, action)?;
        let outcomes = self.model.transitions(self.state, action);
        // One draw per step, slipping or not, so the random stream (and so
        // the episode a seed gives) does not depend on the actions taken.
        let u: f64 = self.rng.random();
        let mut cumulative = 0.0;
        let mut chosen = outcomes[outcomes.len() - 1];
        for outcome in outcomes {
            cumulative += outcome.probability;
            if u < cumulative {
                chosen = *outcome;
                break;
            }
        }
        self.state = chosen.next_state;
        *obs = Observation::Discrete(self.state as i64);
        let mut step = StepOutcome::new(chosen.reward, false);
        step.info.prob = Some(chosen.probability);
        Ok(step)
    }

    fn render_text(&self) -> String {
        let cells: Vec<String> = (0..self.config.n)
            .map(|s| {
                if s == self.state {
                    format!("[{s}]")
                } else {
                    format!(" {s} ")
                }
            })
            .collect();
        cells.join("-")
    }

    fn render_rgb(&self) -> Frame {
        const CELL: usize = 16;
        let mut frame = Frame::from_elem((CELL, CELL * self.config.n, 3), 255);
        for s in 0..self.config.n {
            let colour: [u8; 3] = if s == self.state {
                [220, 60, 40]
            } else if s == self.config.n - 1 {
                [250, 200, 60]
            } else {
                [200, 200, 200]
            };
            for y in 2..CELL - 2 {
                for x in s * CELL + 2..(s + 1) * CELL - 2 {
                    for (c, value) in colour.iter().enumerate() {
                        frame[[y, x, c]] = *value;
                    }
                }
            }
        }
        frame
    }

    fn model(&self) -> Option<&dyn Model> {
        Some(&self.model)
    }
}

/// NChain's exact dynamics: at most two outcomes per state and action.
pub struct ChainModel {
    n: usize,
    /// Row-major `[state][action]`.
    transitions: Vec<Vec<Outcome>>,
}

impl ChainModel {
    fn new(config: &NChainConfig) -> Self {
        let effect = |state: usize, action: usize| -> (usize, f64) {
            match action {
                BACKWARD => (0, config.small),
                _ if state + 1 < config.n => (state + 1, 0.0),
                _ => (state, config.large),
            }
        };
        let mut transitions = Vec::with_capacity(config.n * 2);
        for state in 0..config.n {
            for action in [FORWARD, BACKWARD] {
                let other = 1 - action;
                let mut outcomes = Vec::with_capacity(2);
                for (taken, probability) in [(action, 1.0 - config.slip), (other, config.slip)] {
                    if probability > 0.0 {
                        let (next_state, reward) = effect(state, taken);
                        outcomes.push(Outcome {
                            probability,
                            next_state,
                            reward,
                            terminated: false,
                        });
                    }
                }
                transitions.push(outcomes);
            }
        }
        ChainModel {
            n: config.n,
            transitions,
        }
    }
}

impl Model for ChainModel {
    fn n_states(&self) -> usize {
        self.n
    }

    fn n_actions(&self) -> usize {
        2
    }

    fn transitions(&self, state: usize, action: usize) -> &[Outcome] {
        &self.transitions[state * 2 + action]
    }

    fn is_absorbing(&self, _state: usize) -> bool {
        false
    }
}

/// Builds NChain from its JSON config, with its time limit, as every
/// registered constructor does.
pub fn nchain(config: &Value) -> Result<Box<dyn Env>> {
    let config: NChainConfig = parse_config(config)?;
    let max_steps = config.max_steps;
    Ok(Box::new(TimeLimit::new(NChain::new(config)?, max_steps)))
}

/// Adds [`ID`] to a registry: what `rl_lab::cli::Lab::with_envs` and
/// `rl_runner::Engine::with_envs` take.
pub fn register(registry: &mut Registry) {
    let defaults = NChainConfig::default();
    registry.register(
        ID,
        "NChain (Strens 2000; gym's NChain-v0): forward for 10 at the chain's end, or back for 2 now; actions slip with probability 0.2",
        json!({"n": defaults.n, "slip": defaults.slip, "small": defaults.small,
               "large": defaults.large, "max_steps": defaults.max_steps}),
        nchain,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_sums_to_one_and_matches_the_rules() {
        let env = NChain::new(NChainConfig::default()).unwrap();
        let model = env.model().unwrap();
        for s in 0..5 {
            for a in 0..2 {
                let total: f64 = model.transitions(s, a).iter().map(|o| o.probability).sum();
                assert!((total - 1.0).abs() < 1e-12, "P[{s}][{a}] sums to {total}");
            }
        }
        assert_eq!(model.transitions(4, FORWARD)[0].reward, 10.0);
        assert_eq!(model.transitions(4, FORWARD)[0].next_state, 4);
        assert_eq!(model.transitions(2, BACKWARD)[0].next_state, 0);
        assert_eq!(model.transitions(2, BACKWARD)[0].reward, 2.0);
    }

    #[test]
    fn a_seed_gives_the_same_walk() {
        let walk = |seed| {
            let mut env = nchain(&Value::Null).unwrap();
            env.reset(Some(seed)).unwrap();
            (0..50)
                .map(|t| env.step(&Action::Discrete(t % 2)).unwrap().obs)
                .collect::<Vec<_>>()
        };
        assert_eq!(walk(3), walk(3));
        assert_ne!(walk(3), walk(4));
    }

    #[test]
    fn bad_config_names_the_field() {
        for (config, field) in [
            (json!({"n": 1}), "n"),
            (json!({"slip": 1.5}), "slip"),
            (json!({"max_steps": 0}), "max_steps"),
            (json!({"lenght": 3}), "lenght"),
        ] {
            let err = nchain(&config).err().unwrap().to_string();
            assert!(err.contains(field), "{config}: {err}");
        }
    }
}
