//! What can be run: every environment with its spaces and config defaults,
//! every agent with its hyperparameters and a JSON Schema of its config.
//! `rl-lab envs`/`agents` print it; the server serves it to launch forms.

use crate::Engine;
use rl_agent::Hyperparameter;
use serde::Serialize;
use serde_json::Value;

/// One environment id.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvListing {
    /// The id.
    pub id: String,
    /// One line on it.
    pub summary: String,
    /// Its observation space under the default config.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub observation_space: Option<rl_env::Space>,
    /// Its action space under the default config.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub action_space: Option<rl_env::Space>,
    /// Whether dynamic programming can plan on it.
    pub has_model: bool,
    /// For grid environments: rows, columns, each cell's state, which
    /// cells end the episode, and each action's arrow (`↑ → ↓ ←`), so a
    /// person can play it with the arrow keys.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub grid: Option<rl_env::GridView>,
    /// The config with every default filled in.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub defaults: Value,
    /// A JSON Schema (draft 2020-12) of the env's `config` object, derived
    /// from its config struct, with every size's bound; `null` for an env
    /// whose crate gives none.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config_schema: Value,
}

/// One agent id.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentListing {
    /// The id.
    pub id: String,
    /// One line on the algorithm.
    pub summary: String,
    /// Whether it plans from the environment's model (dynamic programming)
    /// instead of learning from experience.
    pub plans: bool,
    /// Each field of the config with its type, default, bounds, choices and
    /// doc, read off `config_schema`.
    pub hyperparameters: Vec<Hyperparameter>,
    /// A JSON Schema (draft 2020-12) of the agent's `config` object, derived
    /// from the config struct: types, defaults, bounds, enums, descriptions.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config_schema: Value,
}

/// Every environment, sorted by id.
pub fn envs(engine: &Engine) -> Vec<EnvListing> {
    engine
        .envs
        .entries()
        .map(|entry| {
            let env = (entry.make)(&Value::Null)
                .or_else(|_| (entry.make)(&entry.defaults))
                .ok();
            EnvListing {
                id: entry.id.clone(),
                summary: entry.summary.clone(),
                observation_space: env.as_ref().map(|e| e.observation_space().clone()),
                action_space: env.as_ref().map(|e| e.action_space().clone()),
                has_model: env.as_ref().is_some_and(|e| e.model().is_some()),
                grid: env.as_ref().and_then(|e| e.grid()),
                defaults: entry.defaults.clone(),
                config_schema: entry.config_schema.clone(),
            }
        })
        .collect()
}

/// Every agent, sorted by id.
pub fn agents(engine: &Engine) -> Vec<AgentListing> {
    engine
        .agents
        .entries()
        .map(|entry| AgentListing {
            id: entry.id.clone(),
            summary: entry.summary.clone(),
            plans: entry.plans,
            hyperparameters: entry.hyperparameters.clone(),
            config_schema: entry.config_schema.clone(),
        })
        .collect()
}
