//! Q-learning (Watkins 1989; Sutton & Barto §6.5): off-policy TD control.
//! Behave ε-greedily, learn the greedy policy's values.

use crate::td::{Learner, TdConfig};
use rl_agent::{Agent, EnvContext, Result, Transition};
use serde::{Deserialize, Serialize};

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct QLearning {
    config: TdConfig,
    learner: Learner,
}

impl QLearning {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: TdConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let learner = Learner::new(ctx, "q-learning", config.initial_q, seed)?;
        Ok(QLearning { config, learner })
    }
}

impl Agent for QLearning {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, next) = self.learner.indices(t)?;
        // y = r + γ · (1 − terminated) · max_a' Q(s', a')
        let bootstrap = if t.terminated {
            0.0
        } else {
            self.learner.q.max(next)
        };
        let target = t.reward + self.config.gamma * bootstrap;
        self.learner.update(s, a, target, &self.config.alpha);
        self.learner.finish(t);
        Ok(())
    }

    crate::td_agent_common!();
}

crate::td_policy!(QLearning);
