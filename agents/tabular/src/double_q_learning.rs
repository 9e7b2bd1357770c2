//! Double Q-learning (van Hasselt 2010; Sutton & Barto §6.7): two tables,
//! each updated toward the other's estimate of its own greedy action, which
//! removes Q-learning's maximisation bias.
//!
//! The agent behaves ε-greedily on the average (Q_A + Q_B) / 2, kept in the
//! learner's table so that acting costs what it does for Q-learning.

use crate::table::{QTable, first_argmax};
use crate::td::{Learner, TdConfig};
use rand::RngExt;
use rl_agent::{Agent, EnvContext, Result, Transition};
use serde::{Deserialize, Serialize};

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct DoubleQLearning {
    config: TdConfig,
    /// Holds (Q_A + Q_B) / 2 for acting, plus the random stream and counters.
    learner: Learner,
    q_a: QTable,
    q_b: QTable,
    counts_a: Vec<u64>,
    counts_b: Vec<u64>,
}

impl DoubleQLearning {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: TdConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let learner = Learner::new(ctx, "double-q-learning", config.initial_q, seed)?;
        let table = learner.q.clone();
        let counts = learner.counts.clone();
        Ok(DoubleQLearning {
            config,
            q_a: table.clone(),
            q_b: table,
            counts_a: counts.clone(),
            counts_b: counts,
            learner,
        })
    }
}

impl Agent for DoubleQLearning {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, next) = self.learner.indices(t)?;
        // With probability ½ update Q_A from Q_B, else Q_B from Q_A.
        let update_a = self.learner.rng.random::<bool>();
        let (learn, judge, counts) = if update_a {
            (&mut self.q_a, &self.q_b, &mut self.counts_a)
        } else {
            (&mut self.q_b, &self.q_a, &mut self.counts_b)
        };
        // y = r + γ · (1 − terminated) · Q_judge(s', argmax_a' Q_learn(s', a'))
        let bootstrap = if t.terminated {
            0.0
        } else {
            judge.get(next, first_argmax(learn.row(next)))
        };
        let target = t.reward + self.config.gamma * bootstrap;
        let i = s * self.learner.sizes.actions + a;
        counts[i] += 1;
        let step = self.config.alpha.alpha(counts[i]);
        let q = learn.at(s, a);
        *q += step * (target - *q);
        *self.learner.q.at(s, a) = 0.5 * (self.q_a.get(s, a) + self.q_b.get(s, a));
        self.learner.finish(t);
        Ok(())
    }

    crate::td_agent_common!();
}

crate::td_policy!(DoubleQLearning);
