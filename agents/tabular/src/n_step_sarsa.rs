//! n-step SARSA (Sutton & Barto §7.2): the multi-step method. Each update
//! uses n real rewards before bootstrapping:
//! G = R_{τ+1} + γ R_{τ+2} + … + γ^{n−1} R_{τ+n} + γ^n Q(S_{τ+n}, A_{τ+n}).
//!
//! At a termination the tail is not bootstrapped; at a truncation it is,
//! from an action chosen in the last state but never taken. A step that is
//! both (a time limit that falls on the terminal step, as Gymnasium's
//! `TimeLimit` reports it) is a termination: the terminal state is worth 0.

use crate::table::check_gamma;
use crate::td::Learner;
use rl_agent::{Agent, EnvContext, EpsilonSchedule, Error, Result, StepSize, Transition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of n-step SARSA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NStepSarsaConfig {
    /// Number of rewards before bootstrapping; default 4 (Sutton & Barto's Figure 7.2 range).
    #[schemars(range(min = 1))]
    pub n: usize,
    /// Step size α: a number in (0, 1] or `"1/n"`; default 0.1.
    pub alpha: StepSize,
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Exploration ε per episode; default 0.1.
    pub epsilon: EpsilonSchedule,
    /// Initial Q(s, a); default 0.
    pub initial_q: f64,
}

impl Default for NStepSarsaConfig {
    fn default() -> Self {
        NStepSarsaConfig {
            n: 4,
            alpha: StepSize::Constant(0.1),
            gamma: 0.99,
            epsilon: EpsilonSchedule::Constant(0.1),
            initial_q: 0.0,
        }
    }
}

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct NStepSarsa {
    config: NStepSarsaConfig,
    learner: Learner,
    /// S_0 … S_t of the current episode.
    states: Vec<usize>,
    /// A_0 … A_t (and A_{t+1} once chosen).
    actions: Vec<usize>,
    /// R_1 … R_{t+1}, stored at index i − 1.
    rewards: Vec<f64>,
}

impl NStepSarsa {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: NStepSarsaConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        if config.n == 0 {
            return Err(Error::config("n", "must be at least 1"));
        }
        config.alpha.validate("alpha")?;
        check_gamma(config.gamma)?;
        config.epsilon.validate("epsilon")?;
        let learner = Learner::new(ctx, "n-step-sarsa", config.initial_q, seed)?;
        Ok(NStepSarsa {
            config,
            learner,
            states: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
        })
    }

    /// Updates Q(S_τ, A_τ) toward the n-step return. `end` is T once the
    /// episode has ended; `bootstrap_end` says whether to bootstrap at T.
    fn update(&mut self, tau: usize, end: Option<usize>, bootstrap_end: bool) {
        let gamma = self.config.gamma;
        let horizon = (tau + self.config.n).min(end.unwrap_or(usize::MAX));
        // G = Σ_{i=τ+1}^{h} γ^{i−τ−1} R_i
        let mut g = 0.0;
        let mut discount = 1.0;
        for i in tau + 1..=horizon {
            g += discount * self.rewards[i - 1];
            discount *= gamma;
        }
        // … + γ^{h−τ} Q(S_h, A_h), unless S_h is terminal
        if Some(horizon) != end || bootstrap_end {
            g += discount
                * self
                    .learner
                    .q
                    .get(self.states[horizon], self.actions[horizon]);
        }
        self.learner
            .update(self.states[tau], self.actions[tau], g, &self.config.alpha);
    }
}

impl Agent for NStepSarsa {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, next) = self.learner.indices(t)?;
        if self.states.is_empty() {
            self.states.push(s);
            self.actions.push(a);
        }
        let step = self.states.len() - 1; // t
        self.rewards.push(t.reward);
        self.states.push(next);
        if !t.terminated {
            // A_{t+1}: taken next, or (on truncation) only bootstrapped from.
            let next_action = self.learner.explore(next, &self.config.epsilon);
            self.actions.push(next_action);
            self.learner.pending = Some(next_action);
        }
        let n = self.config.n;
        if t.done() {
            let end = step + 1; // T
            // Bootstrap at T only from a state the time limit cut short:
            // a terminal one is worth 0 whatever `truncated` says.
            let bootstrap_end = !t.terminated;
            for tau in (step + 1).saturating_sub(n)..end {
                self.update(tau, Some(end), bootstrap_end);
            }
            self.states.clear();
            self.actions.clear();
            self.rewards.clear();
        } else if step + 1 >= n {
            self.update(step + 1 - n, None, true);
        }
        self.learner.finish(t);
        Ok(())
    }

    /// An abandoned episode's queue is dropped, not continued; its
    /// pending action too.
    fn begin_episode(&mut self) {
        self.states.clear();
        self.actions.clear();
        self.rewards.clear();
        self.learner.pending = None;
    }

    crate::td_agent_common!(@act);
}

crate::td_policy!(NStepSarsa);
