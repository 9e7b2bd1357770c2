//! The rl-lab agent API: what every algorithm implements, so that one
//! training loop drives all of them.
//!
//! The split follows Dopamine's agent/runner and SB3's off-policy base
//! class: the loop owns the environment; the agent chooses actions
//! ([`Agent::act`]), sees transitions ([`Agent::observe`]) and learns when
//! its algorithm says so. Planning agents (dynamic programming) implement
//! [`Planner`] instead: they solve the environment's model in
//! [`Planner::plan`] and never step. Both are a [`Policy`] once trained.
#![warn(missing_docs)]

pub mod encode;
mod error;
pub mod registry;
pub mod schedule;
pub mod sink;
#[doc(hidden)]
pub mod testing;

pub use error::{Error, Result, try_vec};
pub use registry::{AgentConfig, AgentEntry, AgentRegistry, MemoryEstimator, parse_config};
pub use schedule::{EpsilonSchedule, StepSize};
pub use sink::{Aggregate, EpisodeRecord, EpisodeWindow, Record, Sink};

use rl_env::{Action, Model, Observation, Space};
use serde::Serialize;
use serde_json::Value;

/// One step of experience, as the loop hands it to the agent.
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    /// The sub-environment it happened in (`0..num_envs`): an agent that
    /// links steps of an episode (n-step queues, a replay's frames, an
    /// on-policy action already chosen) keeps them per lane.
    pub lane: usize,
    /// Observation the action was taken in.
    pub obs: &'a Observation,
    /// The action taken.
    pub action: &'a Action,
    /// Reward received.
    pub reward: f64,
    /// Observation after the step (the true final one if the episode ended).
    pub next_obs: &'a Observation,
    /// A terminal state was reached: its value is 0, never bootstrapped.
    pub terminated: bool,
    /// A time limit cut the episode: the next state's value still counts.
    pub truncated: bool,
}

impl Transition<'_> {
    /// The episode ended, for either reason.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// What an agent keeps per lane ([`Transition::lane`]) between steps of an
/// episode: a queue, an episode's rewards, an action already chosen. A
/// lane's entry is made on its first use, so an agent restored from a
/// checkpoint (which never holds a lane's unfinished episode: a resumed
/// run begins new ones) needs no count of lanes.
#[derive(Clone, Debug, Default)]
pub struct Lanes<T>(Vec<T>);

impl<T: Default> Lanes<T> {
    /// Lane `lane`'s state.
    pub fn get_mut(&mut self, lane: usize) -> &mut T {
        if lane >= self.0.len() {
            self.0.resize_with(lane + 1, T::default);
        }
        &mut self.0[lane]
    }
}

/// What a planning agent reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PlanReport {
    /// Sweeps over the state space, in total.
    pub sweeps: u64,
    /// Policy-improvement steps (policy iteration only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub improvements: Option<u64>,
    /// Whether the stopping criterion was met (rather than the sweep cap).
    pub converged: bool,
}

/// A tabular agent's learned tables, for the run folder and the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tables {
    /// V(s) under the learned (greedy) or evaluated policy.
    pub v: Vec<f64>,
    /// Q(s, a), where the algorithm keeps one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<Vec<Vec<f64>>>,
    /// The greedy action in each state (`None` where the state is absorbing).
    pub policy: Vec<Option<usize>>,
}

/// What an agent is told about the environment when it is built.
pub struct EnvContext<'a> {
    /// The environment's observation space.
    pub observation_space: &'a Space,
    /// The environment's action space.
    pub action_space: &'a Space,
    /// The exact model, if the environment has one.
    pub model: Option<&'a dyn Model>,
    /// Id of the environment, for error messages.
    pub env_id: &'a str,
    /// How many copies of the environment the loop steps at once
    /// (`env.num_envs`, at least 1): the lanes of [`Agent::act`] and
    /// [`Transition::lane`].
    pub num_envs: usize,
    /// The run's budget in env steps, when it is one (`budget.steps`):
    /// schedules that anneal over the whole run (PPO's learning rate) end
    /// there. `None` for a budget of episodes.
    pub total_steps: Option<u64>,
}

/// What every trained agent offers, whether it learned from experience or
/// planned from a model: the policy it prefers, its tables, and its state.
/// Evaluation, `rl-lab eval` and checkpoints need only this.
pub trait Policy: Send {
    /// The action the learned policy prefers: used for evaluation.
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action>;

    /// The values the greedy action is chosen by in `obs`, one per action
    /// (Q(s, ·) for a value-based agent), for showing beside a replay;
    /// `None` for an agent that keeps none.
    fn action_values(&mut self, obs: &Observation) -> Result<Option<Vec<f64>>> {
        let _ = obs;
        Ok(None)
    }

    /// The learned tables, for tabular agents.
    fn tables(&self) -> Option<Tables> {
        None
    }

    /// Everything needed to continue training exactly: tables, counters,
    /// random-number state.
    fn save(&self) -> Result<Value>;

    /// Restores what [`Policy::save`] wrote.
    fn load(&mut self, state: &Value) -> Result<()>;
}

/// An algorithm that learns from experience: the loop steps the
/// environments, the agent acts and observes.
///
/// The loop steps `num_envs` copies of the environment ([`EnvContext`]),
/// the agent's *lanes*, each with Gymnasium's next-step autoreset: a lane
/// whose episode ended sits out one step while it resets. Each step the
/// loop asks for the actions of the lanes that step ([`Agent::act_batch`]),
/// then hands over their transitions ([`Agent::observe_batch`]), in lane
/// order. With one lane this is the classic act, step, observe loop.
pub trait Agent: Policy {
    /// The action to take while training, in lane `lane`'s observation
    /// `obs`: explores.
    fn act(&mut self, lane: usize, obs: &Observation) -> Result<Action>;

    /// The actions of the lanes `lanes` (in increasing order), each in its
    /// observation `obs[lane]`, written to `actions[lane]`. Both slices
    /// hold every lane; the others are left alone. The default asks
    /// [`Agent::act`] lane by lane; a network overrides it to score all of
    /// them in one forward pass.
    fn act_batch(
        &mut self,
        lanes: &[usize],
        obs: &[Observation],
        actions: &mut [Action],
    ) -> Result<()> {
        for &lane in lanes {
            actions[lane] = self.act(lane, &obs[lane])?;
        }
        Ok(())
    }

    /// Sees one transition. Temporal-difference agents learn here.
    fn observe(&mut self, transition: &Transition<'_>) -> Result<()>;

    /// Sees one step's transitions, one per lane that stepped, in lane
    /// order. The default hands them to [`Agent::observe`] one by one; an
    /// on-policy agent overrides it to store the step of its rollout.
    fn observe_batch(&mut self, transitions: &[Transition<'_>]) -> Result<()> {
        transitions.iter().try_for_each(|t| self.observe(t))
    }

    /// A training episode is about to start in `lane` (the loop has just
    /// reset that copy). An episode the loop abandoned before it ended (a
    /// budget spent mid-episode, a resume) must not be continued by the
    /// next one; agents that link transitions across steps (replay buffers,
    /// n-step queues) start that lane afresh here. The default does nothing.
    fn begin_episode(&mut self, _lane: usize) {}

    /// The exploration rate now, for logs.
    fn epsilon(&self) -> Option<f64> {
        None
    }

    /// Moves the scalar metrics the agent produced since the last call
    /// (e.g. `("train/loss", 0.03)`) into `out`. The loop calls it after
    /// every [`Agent::observe`] and records each at the current env step,
    /// so agents need no access to the sink. Agents that report nothing
    /// keep the default.
    fn take_scalars(&mut self, _out: &mut Vec<(&'static str, f64)>) {}
}

/// An algorithm that solves the environment's model (dynamic programming)
/// and never steps it.
pub trait Planner: Policy {
    /// Solves the model. Progress (e.g. `plan/delta` per sweep) goes to
    /// `sink`; a sink that fails stops planning with [`Error::Sink`].
    fn plan(&mut self, model: &dyn Model, sink: &mut dyn Sink) -> Result<PlanReport>;
}

/// What the registry builds from a spec: a learner or a planner. The
/// training loop steps the one and lets the other plan.
pub enum AnyAgent {
    /// Learns from transitions.
    Learner(Box<dyn Agent>),
    /// Plans from the model.
    Planner(Box<dyn Planner>),
}

impl AnyAgent {
    /// The trained policy, whichever kind built it.
    pub fn policy(&self) -> &dyn Policy {
        match self {
            AnyAgent::Learner(agent) => agent.as_ref(),
            AnyAgent::Planner(planner) => planner.as_ref(),
        }
    }

    /// The trained policy, mutably (acting may draw random numbers).
    pub fn policy_mut(&mut self) -> &mut dyn Policy {
        match self {
            AnyAgent::Learner(agent) => agent.as_mut(),
            AnyAgent::Planner(planner) => planner.as_mut(),
        }
    }
}

/// One field of an agent's config, as `rl-lab agents` and the catalogue
/// list it. Every part is read off the config's JSON Schema, which is
/// derived from the config struct itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hyperparameter {
    /// Field name in the agent's config.
    pub name: String,
    /// The JSON type(s) it takes, e.g. `number` or `number | object`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its default, as JSON.
    pub default: Value,
    /// The smallest value allowed, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub minimum: Option<Value>,
    /// A bound the value must exceed, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub exclusive_minimum: Option<Value>,
    /// The largest value allowed, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub maximum: Option<Value>,
    /// A bound the value must stay below, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub exclusive_maximum: Option<Value>,
    /// The only values allowed, when it is a choice among fixed values.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Value>>,
    /// What it means, its unit and where its default comes from: the
    /// field's doc comment.
    pub doc: String,
}
