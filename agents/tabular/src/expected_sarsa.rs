//! Expected SARSA (van Seijen et al. 2009; Sutton & Barto §6.6): replaces
//! SARSA's sampled Q(S′, A′) by its expectation under the ε-greedy policy,
//! which removes the variance due to the choice of A′.

use crate::td::{Learner, TdConfig};
use rl_agent::{Agent, EnvContext, Result, Transition};
use serde::{Deserialize, Serialize};

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct ExpectedSarsa {
    config: TdConfig,
    learner: Learner,
}

impl ExpectedSarsa {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: TdConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let learner = Learner::new(ctx, "expected-sarsa", config.initial_q, seed)?;
        Ok(ExpectedSarsa { config, learner })
    }
}

impl Agent for ExpectedSarsa {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, next) = self.learner.indices(t)?;
        let epsilon = self.config.epsilon.value(self.learner.episode);
        // y = r + γ · (1 − terminated) · Σ_a' π(a'|s') Q(s', a')
        let bootstrap = if t.terminated {
            0.0
        } else {
            self.learner.q.expected_epsilon_greedy(next, epsilon)
        };
        let target = t.reward + self.config.gamma * bootstrap;
        self.learner.update(s, a, target, &self.config.alpha);
        self.learner.finish(t);
        Ok(())
    }

    crate::td_agent_common!();
}

crate::td_policy!(ExpectedSarsa);
