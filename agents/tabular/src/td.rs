//! What the one-step temporal-difference agents share: the config, the Q
//! table with its visit counts, ε-greedy behaviour and episode counting.
//! Each algorithm's own file holds only its update rule.

use crate::table::{QTable, Sizes, check_gamma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_agent::{EnvContext, EpsilonSchedule, Error, Lanes, Result, StepSize, Transition, try_vec};
use rl_env::{Action, Observation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of SARSA, Expected SARSA, Q-learning and Double Q-learning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TdConfig {
    /// Step size α: a number in (0, 1] or `"1/n"`; default 0.1.
    pub alpha: StepSize,
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Exploration ε per episode: a number or a linear/exponential schedule;
    /// default 0.1, as in Sutton & Barto's chapter 6 examples.
    pub epsilon: EpsilonSchedule,
    /// Initial Q(s, a); default 0. Optimistic values encourage exploration.
    pub initial_q: f64,
}

impl Default for TdConfig {
    fn default() -> Self {
        TdConfig {
            alpha: StepSize::Constant(0.1),
            gamma: 0.99,
            epsilon: EpsilonSchedule::Constant(0.1),
            initial_q: 0.0,
        }
    }
}

impl TdConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        self.alpha.validate("alpha")?;
        check_gamma(self.gamma)?;
        self.epsilon.validate("epsilon")?;
        if !self.initial_q.is_finite() {
            return Err(Error::config("initial_q", "must be finite"));
        }
        Ok(())
    }
}

/// A Q table with what acting and learning from it need.
#[derive(Clone, Serialize, Deserialize)]
pub struct Learner {
    /// Problem sizes.
    pub sizes: Sizes,
    /// The action values.
    pub q: QTable,
    /// N(s, a): updates of each entry, for α = 1/N.
    pub counts: Vec<u64>,
    /// The agent's own random stream: exploration and tie-breaking.
    pub rng: ChaCha8Rng,
    /// Episodes finished, which drives the ε schedule.
    pub episode: u64,
    /// Per lane, an action already chosen for the next state (on-policy
    /// methods choose A′ when they update, and must then take it). Never
    /// saved: a checkpoint's lanes begin new episodes.
    #[serde(skip)]
    pub pending: Lanes<Option<usize>>,
}

impl Learner {
    /// A fresh table for the environment.
    pub fn new(ctx: &EnvContext<'_>, agent: &str, initial_q: f64, seed: u64) -> Result<Self> {
        let sizes = Sizes::of(ctx, agent)?;
        Ok(Learner {
            sizes,
            q: QTable::new(&sizes, initial_q)?,
            counts: try_vec("the visit counts", sizes.entries(), 0)?,
            rng: ChaCha8Rng::seed_from_u64(seed),
            episode: 0,
            pending: Lanes::default(),
        })
    }

    /// ε-greedy in state `s` with this episode's ε.
    pub fn explore(&mut self, s: usize, epsilon: &EpsilonSchedule) -> usize {
        self.q
            .epsilon_greedy(s, epsilon.value(self.episode), &mut self.rng)
    }

    /// The action to take in `lane`: the pending one if an update already
    /// chose it.
    pub fn act(
        &mut self,
        lane: usize,
        obs: &Observation,
        epsilon: &EpsilonSchedule,
    ) -> Result<Action> {
        let s = self.sizes.state(obs)?;
        let a = match self.pending.get_mut(lane).take() {
            Some(a) => a,
            None => self.explore(s, epsilon),
        };
        Ok(self.sizes.action(a))
    }

    /// The greedy action, first among ties.
    pub fn act_greedy(&self, obs: &Observation) -> Result<Action> {
        Ok(self.sizes.action(self.q.argmax(self.sizes.state(obs)?)))
    }

    /// `(s, a, s′)` of a transition as indices.
    pub fn indices(&self, t: &Transition<'_>) -> Result<(usize, usize, usize)> {
        Ok((
            self.sizes.state(t.obs)?,
            self.sizes.action_index(t.action)?,
            self.sizes.state(t.next_obs)?,
        ))
    }

    /// Q(s, a) ← Q(s, a) + α [target − Q(s, a)], with α from the schedule.
    pub fn update(&mut self, s: usize, a: usize, target: f64, alpha: &StepSize) {
        let i = s * self.sizes.actions + a;
        self.counts[i] += 1;
        let step = alpha.alpha(self.counts[i]);
        let q = self.q.at(s, a);
        *q += step * (target - *q);
    }

    /// Counts the episode when a transition ends it.
    pub fn finish(&mut self, t: &Transition<'_>) {
        if t.done() {
            self.episode += 1;
            *self.pending.get_mut(t.lane) = None;
        }
    }
}

/// Implements the parts of [`rl_agent::Agent`] every Q-table agent shares;
/// the agent provides `observe` (its update rule). `@act` gives only the
/// ε-greedy acting, for agents that keep more of an episode than the
/// pending action and so write their own `begin_episode`.
#[macro_export]
#[doc(hidden)]
macro_rules! td_agent_common {
    () => {
        $crate::td_agent_common!(@act);

        /// An action chosen for a state of an abandoned episode must not
        /// be taken in the next one.
        fn begin_episode(&mut self, lane: usize) {
            *self.learner.pending.get_mut(lane) = None;
        }
    };
    (@act) => {
        fn act(
            &mut self,
            lane: usize,
            obs: &rl_env::Observation,
        ) -> rl_agent::Result<rl_env::Action> {
            self.learner.act(lane, obs, &self.config.epsilon)
        }

        fn epsilon(&self) -> Option<f64> {
            Some(self.config.epsilon.value(self.learner.episode))
        }
    };
}

/// Implements [`rl_agent::Policy`] for a Q-table agent `$agent`: greedy in
/// its table.
#[macro_export]
#[doc(hidden)]
macro_rules! td_policy {
    ($agent:ty) => {
        $crate::tabular_policy!($agent,
            act_greedy: |agent, obs| agent.learner.act_greedy(obs),
            tables: |agent| agent.learner.q.tables(|_| false),
            action_values: |agent, obs| {
                let s = agent.learner.sizes.state(obs)?;
                Ok(Some(agent.learner.q.row(s).to_vec()))
            });
    };
}
