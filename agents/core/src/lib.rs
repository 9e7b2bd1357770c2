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
#[derive(Debug)]
pub struct Transition<'a> {
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
}

/// What every trained agent offers, whether it learned from experience or
/// planned from a model: the policy it prefers, its tables, and its state.
/// Evaluation, `rl-lab eval` and checkpoints need only this.
pub trait Policy: Send {
    /// The action the learned policy prefers: used for evaluation.
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action>;

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
/// environment, the agent acts and observes.
pub trait Agent: Policy {
    /// The action to take while training: explores.
    fn act(&mut self, obs: &Observation) -> Result<Action>;

    /// Sees one transition. Temporal-difference agents learn here.
    fn observe(&mut self, transition: &Transition<'_>) -> Result<()>;

    /// A training episode is about to start (the loop has just reset the
    /// environment). An episode the loop abandoned before it ended (a budget
    /// spent mid-episode, a resume) must not be continued by the next one;
    /// agents that link transitions across steps (replay buffers, n-step
    /// queues) start afresh here. The default does nothing.
    fn begin_episode(&mut self) {}

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
