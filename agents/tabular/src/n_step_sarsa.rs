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
use rl_agent::{Agent, EnvContext, EpsilonSchedule, Error, Lanes, Result, StepSize, Transition};
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
    /// Each lane's episode so far. Never saved: a checkpoint's lanes begin
    /// new episodes.
    #[serde(skip)]
    queues: Lanes<Queue>,
}

/// One lane's episode so far.
#[derive(Clone, Debug, Default)]
struct Queue {
    /// S_0 … S_t.
    states: Vec<usize>,
    /// A_0 … A_t (and A_{t+1} once chosen).
    actions: Vec<usize>,
    /// R_1 … R_{t+1}, stored at index i − 1.
    rewards: Vec<f64>,
}

impl Queue {
    fn clear(&mut self) {
        self.states.clear();
        self.actions.clear();
        self.rewards.clear();
    }
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
            queues: Lanes::default(),
        })
    }
}

impl NStepSarsaConfig {
    /// Updates Q(S_τ, A_τ) toward the n-step return of `queue`. `end` is T
    /// once the episode has ended; `bootstrap_end` says whether to
    /// bootstrap at T.
    fn update(
        &self,
        learner: &mut Learner,
        queue: &Queue,
        tau: usize,
        end: Option<usize>,
        bootstrap_end: bool,
    ) {
        let gamma = self.gamma;
        let horizon = (tau + self.n).min(end.unwrap_or(usize::MAX));
        // G = Σ_{i=τ+1}^{h} γ^{i−τ−1} R_i
        let mut g = 0.0;
        let mut discount = 1.0;
        for i in tau + 1..=horizon {
            g += discount * queue.rewards[i - 1];
            discount *= gamma;
        }
        // … + γ^{h−τ} Q(S_h, A_h), unless S_h is terminal
        if Some(horizon) != end || bootstrap_end {
            g += discount * learner.q.get(queue.states[horizon], queue.actions[horizon]);
        }
        learner.update(queue.states[tau], queue.actions[tau], g, &self.alpha);
    }
}

impl Agent for NStepSarsa {
    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let (s, a, next) = self.learner.indices(t)?;
        let queue = self.queues.get_mut(t.lane);
        if queue.states.is_empty() {
            queue.states.push(s);
            queue.actions.push(a);
        }
        let step = queue.states.len() - 1; // t
        queue.rewards.push(t.reward);
        queue.states.push(next);
        if !t.terminated {
            // A_{t+1}: taken next, or (on truncation) only bootstrapped from.
            let next_action = self.learner.explore(next, &self.config.epsilon);
            queue.actions.push(next_action);
            *self.learner.pending.get_mut(t.lane) = Some(next_action);
        }
        let n = self.config.n;
        if t.done() {
            let end = step + 1; // T
            // Bootstrap at T only from a state the time limit cut short:
            // a terminal one is worth 0 whatever `truncated` says.
            let bootstrap_end = !t.terminated;
            for tau in (step + 1).saturating_sub(n)..end {
                self.config
                    .update(&mut self.learner, queue, tau, Some(end), bootstrap_end);
            }
            queue.clear();
        } else if step + 1 >= n {
            self.config
                .update(&mut self.learner, queue, step + 1 - n, None, true);
        }
        self.learner.finish(t);
        Ok(())
    }

    /// An abandoned episode's queue is dropped, not continued; its
    /// pending action too.
    fn begin_episode(&mut self, lane: usize) {
        self.queues.get_mut(lane).clear();
        *self.learner.pending.get_mut(lane) = None;
    }

    crate::td_agent_common!(@act);
}

crate::td_policy!(NStepSarsa);
