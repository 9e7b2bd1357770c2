//! The run spec: one JSON document that describes a run. `rl-lab run`
//! reads it from a file; the server accepts the same document.
//!
//! ```json
//! {"env": {"id": "gridworld/cliff-walking", "config": {}},
//!  "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
//!  "budget": {"episodes": 500}, "seed": 1, "eval": {"episodes": 10}}
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The environment to train on.
    pub env: EnvSpec,
    /// The algorithm and its hyperparameters.
    pub agent: AgentSpec,
    /// How long to train; default 500 episodes. Planning agents ignore it
    /// and run to convergence.
    #[serde(default)]
    pub budget: Budget,
    /// Seeds every random stream of the run: environment, agent, evaluation. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Greedy evaluation after training.
    #[serde(default)]
    pub eval: EvalSpec,
    /// Checkpointing; default none.
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
}

/// Which environment, configured how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// Registry id, e.g. `gridworld/windy` or `FrozenLake-v1`.
    pub id: String,
    /// The environment's config; `{}` or absent for its defaults.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Value,
    /// Wrappers, innermost first, e.g. `["episode_statistics", "clip_reward"]`
    /// so that logged returns are real scores; default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = wrappers_schema))]
    pub wrappers: Vec<rl_env::wrappers::WrapperSpec>,
    /// Copies of the environment the training loop steps at once, each
    /// with Gymnasium's next-step autoreset; default 1. Budgets count the
    /// steps of all copies together. Evaluation always plays one copy.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 256))]
    pub num_envs: usize,
}

/// The most copies a run may step at once: far past what pays on any
/// machine's cores, low enough that a typo cannot ask for millions.
pub const MAX_NUM_ENVS: usize = 256;

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// The OpenAPI schema of [`EnvSpec::wrappers`]: each wrapper is its name
/// alone (`"clip_reward"`) or an object of its name and parameter
/// (`{"time_limit": 200}`), as `rl_env::wrappers::WrapperSpec` reads them.
#[cfg(feature = "openapi")]
fn wrappers_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, Object, OneOfBuilder, Type};
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(Object::with_type(Type::String))
                .item(Object::with_type(Type::Object)),
        )
        .build()
}

/// Which agent, configured how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Registry id, e.g. `q-learning`.
    pub id: String,
    /// Hyperparameters; absent ones take their documented defaults.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Value,
}

/// The training budget: episodes or environment steps, not both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", try_from = "BudgetFields")]
pub enum Budget {
    /// Train for this many episodes.
    Episodes(u64),
    /// Train for this many environment steps.
    Steps(u64),
}

/// The JSON form of [`Budget`], so that giving both keys gets a clear error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFields {
    episodes: Option<u64>,
    steps: Option<u64>,
}

impl TryFrom<BudgetFields> for Budget {
    type Error = String;

    fn try_from(fields: BudgetFields) -> Result<Self, String> {
        match (fields.episodes, fields.steps) {
            (Some(n), None) => Ok(Budget::Episodes(n)),
            (None, Some(n)) => Ok(Budget::Steps(n)),
            _ => Err("give exactly one of `episodes` and `steps`".into()),
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::Episodes(500)
    }
}

/// Most evaluation episodes: 100,000, a thousand times the usual 100.
pub const MAX_EVAL_EPISODES: u64 = 100_000;

/// Most env steps one evaluation may take, `episodes × max_steps`: a
/// billion, minutes of the fastest env, so that a typo cannot keep a run
/// evaluating for days after training.
pub const MAX_EVAL_STEPS: u64 = 1_000_000_000;

/// Evaluation of the greedy policy after training and, optionally, every
/// `every_steps` env steps during training (on a separate env instance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct EvalSpec {
    /// Number of evaluation episodes; default 10. 0 skips evaluation. At
    /// most 100,000 ([`MAX_EVAL_EPISODES`]).
    #[cfg_attr(feature = "openapi", schema(maximum = 100_000))]
    pub episodes: u64,
    /// Each evaluation episode is cut after this many steps, so that a
    /// policy that loops cannot hang a run; default 1,000. `episodes ×
    /// max_steps` is at most 1,000,000,000 ([`MAX_EVAL_STEPS`]).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000_000))]
    pub max_steps: u64,
    /// Also evaluate every this many training env steps, recording
    /// `eval/mean_return`; default never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_steps: Option<u64>,
    /// Probability of a uniformly random action during evaluation; default
    /// 0 (greedy). The Nature DQN paper evaluates with 0.05.
    pub epsilon: f64,
}

impl Default for EvalSpec {
    fn default() -> Self {
        EvalSpec {
            episodes: 10,
            max_steps: 1_000,
            every_steps: None,
            epsilon: 0.0,
        }
    }
}

/// When to save a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Save every this many episodes (at an episode boundary); default never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_episodes: Option<u64>,
}

impl RunSpec {
    /// Whether the env is one that env processes drive over a server's
    /// WebSocket (`"external"`): such a run needs `rl-lab serve`, a link,
    /// and no evaluation.
    pub fn env_is_external(&self) -> bool {
        self.env.id == rl_external::ENV_ID
    }

    /// Reads a spec from JSON text. Errors name the JSON path of the bad value.
    pub fn from_json(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let spec: RunSpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Error::spec("spec", format!("malformed JSON: {inner}"))
            } else {
                Error::spec(
                    if path == "." { "spec".into() } else { path },
                    inner.to_string(),
                )
            }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads a spec from a JSON value.
    pub fn from_value(value: &Value) -> Result<Self> {
        Self::from_json(&value.to_string())
    }

    fn validate(&self) -> Result<()> {
        match self.budget {
            Budget::Episodes(0) => Err(Error::spec("budget.episodes", "must be at least 1")),
            Budget::Steps(0) => Err(Error::spec("budget.steps", "must be at least 1")),
            _ if self.eval.max_steps == 0 => {
                Err(Error::spec("eval.max_steps", "must be at least 1"))
            }
            _ if self.eval.episodes > MAX_EVAL_EPISODES => Err(Error::spec(
                "eval.episodes",
                format!(
                    "{} is more than the most, {MAX_EVAL_EPISODES}",
                    self.eval.episodes
                ),
            )),
            _ if self.eval.max_steps > MAX_EVAL_STEPS
                || self.eval.episodes.saturating_mul(self.eval.max_steps) > MAX_EVAL_STEPS =>
            {
                Err(Error::spec(
                    "eval.max_steps",
                    format!(
                        "{} episodes of at most {} steps is more than the most, {MAX_EVAL_STEPS} steps",
                        self.eval.episodes, self.eval.max_steps
                    ),
                ))
            }
            _ if self.eval.every_steps == Some(0) => {
                Err(Error::spec("eval.every_steps", "must be at least 1"))
            }
            _ if !(0.0..=1.0).contains(&self.eval.epsilon) => Err(Error::spec(
                "eval.epsilon",
                format!("{} is not a probability in [0, 1]", self.eval.epsilon),
            )),
            _ if self.checkpoint.every_episodes == Some(0) => Err(Error::spec(
                "checkpoint.every_episodes",
                "must be at least 1",
            )),
            _ if !(1..=MAX_NUM_ENVS).contains(&self.env.num_envs) => Err(Error::spec(
                "env.num_envs",
                format!("{} is not between 1 and {MAX_NUM_ENVS}", self.env.num_envs),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses() {
        let spec = RunSpec::from_json(
            r#"{"env": {"id": "gridworld/cliff-walking", "config": {}},
                "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
                "budget": {"episodes": 500}, "seed": 1, "eval": {"episodes": 10}}"#,
        )
        .unwrap();
        assert_eq!(spec.budget, Budget::Episodes(500));
        assert_eq!(spec.eval.max_steps, 1000);
    }

    #[test]
    fn errors_name_the_path() {
        let err = RunSpec::from_json(r#"{"env": {"id": "x", "confg": {}}, "agent": {"id": "q"}}"#)
            .unwrap_err();
        assert!(err.to_string().starts_with("env.confg:"), "{err}");
        let err = RunSpec::from_json(
            r#"{"env": {"id": "x"}, "agent": {"id": "q"}, "budget": {"episodes": 1, "steps": 2}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("budget"), "{err}");
        let err = RunSpec::from_json(r#"{"env": {"id": "x"}, "#).unwrap_err();
        assert!(err.to_string().contains("malformed JSON"), "{err}");
        let err = RunSpec::from_json(r#"{"env": {"id": "x"}, "agent": {"id": "q"}, "seed": -1}"#)
            .unwrap_err();
        assert!(err.to_string().starts_with("seed:"), "{err}");
    }
}
