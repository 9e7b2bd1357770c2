//! On-policy Monte Carlo control with ε-soft policies (Sutton & Barto §5.4),
//! first-visit or every-visit. The agent plays a whole episode, then walks
//! it backwards accumulating the return G ← γ G + R_{t+1}, and moves
//! Q(S_t, A_t) toward G.
//!
//! A truncated episode's return is cut short; Monte Carlo has no
//! bootstrap to repair that, so use time limits that rarely bind.

use crate::table::check_gamma;
use crate::td::Learner;
use rl_agent::{Agent, EnvContext, EpsilonSchedule, Lanes, Result, StepSize, Transition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of Monte Carlo control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MonteCarloConfig {
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Exploration ε of the ε-soft policy, per episode; default 0.1.
    pub epsilon: EpsilonSchedule,
    /// Average only the first visit of (s, a) in an episode; default true
    /// (Sutton & Barto's pseudocode). False averages every visit.
    pub first_visit: bool,
    /// Step size: `"1/n"` (default) averages returns exactly; a constant
    /// weights recent episodes more.
    pub alpha: StepSize,
    /// Initial Q(s, a); default 0.
    pub initial_q: f64,
}

impl Default for MonteCarloConfig {
    fn default() -> Self {
        MonteCarloConfig {
            gamma: 0.99,
            epsilon: EpsilonSchedule::Constant(0.1),
            first_visit: true,
            alpha: StepSize::SampleAverage,
            initial_q: 0.0,
        }
    }
}

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct MonteCarlo {
    config: MonteCarloConfig,
    learner: Learner,
    /// Per lane, (S_t, A_t, R_{t+1}) of the episode so far. Never saved:
    /// a checkpoint's lanes begin new episodes.
    #[serde(skip)]
    episodes: Lanes<Vec<(usize, usize, f64)>>,
    /// Scratch for first-visit checks: the first time step of each (s, a).
    first_seen: Vec<u32>,
}

const UNSEEN: u32 = u32::MAX;

impl MonteCarlo {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: MonteCarloConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        check_gamma(config.gamma)?;
        config.epsilon.validate("epsilon")?;
        config.alpha.validate("alpha")?;
        let learner = Learner::new(ctx, "monte-carlo", config.initial_q, seed)?;
        let entries = learner.counts.len();
        Ok(MonteCarlo {
            config,
            learner,
            episodes: Lanes::default(),
            first_seen: vec![UNSEEN; entries],
        })
    }
}

impl Agent for MonteCarlo {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, _) = self.learner.indices(t)?;
        let episode = self.episodes.get_mut(t.lane);
        episode.push((s, a, t.reward));
        if !t.done() {
            return Ok(());
        }
        let actions = self.learner.sizes.actions;
        if self.config.first_visit {
            for (step, &(s, a, _)) in episode.iter().enumerate() {
                let seen = &mut self.first_seen[s * actions + a];
                *seen = (*seen).min(step as u32);
            }
        }
        // G ← γ G + R_{t+1}, for t = T−1 down to 0
        let mut g = 0.0;
        for step in (0..episode.len()).rev() {
            let (s, a, reward) = episode[step];
            g = self.config.gamma * g + reward;
            if !self.config.first_visit || self.first_seen[s * actions + a] == step as u32 {
                // Q(S_t, A_t) ← Q(S_t, A_t) + α [G − Q(S_t, A_t)]
                self.learner.update(s, a, g, &self.config.alpha);
            }
        }
        for &(s, a, _) in episode.iter() {
            self.first_seen[s * actions + a] = UNSEEN;
        }
        episode.clear();
        self.learner.finish(t);
        Ok(())
    }

    /// An abandoned episode's steps are dropped, never averaged into the
    /// next episode's returns.
    fn begin_episode(&mut self, lane: usize) {
        self.episodes.get_mut(lane).clear();
        *self.learner.pending.get_mut(lane) = None;
    }

    crate::td_agent_common!(@act);
}

crate::td_policy!(MonteCarlo);
