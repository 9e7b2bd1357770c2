//! SARSA (Rummery & Niranjan 1994; Sutton & Barto §6.4): on-policy TD
//! control. The update uses the action A′ the agent will actually take next,
//! so it learns the value of its ε-greedy behaviour, cliff edges included.

use crate::td::{Learner, TdConfig};
use rl_agent::{Agent, EnvContext, Result, Transition};
use serde::{Deserialize, Serialize};

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct Sarsa {
    config: TdConfig,
    learner: Learner,
}

impl Sarsa {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: TdConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let learner = Learner::new(ctx, "sarsa", config.initial_q, seed)?;
        Ok(Sarsa { config, learner })
    }
}

impl Agent for Sarsa {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, next) = self.learner.indices(t)?;
        // A′ ~ ε-greedy(S′); taken next unless the episode ended. On
        // truncation it is only used to bootstrap.
        let next_action = self.learner.explore(next, &self.config.epsilon);
        // y = r + γ · (1 − terminated) · Q(s', a')
        let bootstrap = if t.terminated {
            0.0
        } else {
            self.learner.q.get(next, next_action)
        };
        let target = t.reward + self.config.gamma * bootstrap;
        self.learner.update(s, a, target, &self.config.alpha);
        *self.learner.pending.get_mut(t.lane) = Some(next_action);
        self.learner.finish(t);
        Ok(())
    }

    crate::td_agent_common!();
}

crate::td_policy!(Sarsa);
