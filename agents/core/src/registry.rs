//! Agent ids mapped to constructors, with their documented hyperparameters.

use crate::{Agent, EnvContext, Error, Hyperparameter, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// Builds an agent from its JSON config, for an environment, with a seed.
pub type AgentConstructor =
    Box<dyn Fn(&Value, &EnvContext<'_>, u64) -> Result<Box<dyn Agent>> + Send + Sync>;

/// One registered agent.
pub struct AgentEntry {
    /// The id, e.g. `q-learning`.
    pub id: String,
    /// One line on the algorithm.
    pub summary: String,
    /// Every hyperparameter, its default and what it does.
    pub hyperparameters: Vec<Hyperparameter>,
    /// Builds the agent.
    pub make: AgentConstructor,
}

/// All known agents.
#[derive(Default)]
pub struct AgentRegistry {
    entries: BTreeMap<String, AgentEntry>,
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent.
    pub fn register(
        &mut self,
        id: impl Into<String>,
        summary: impl Into<String>,
        hyperparameters: Vec<Hyperparameter>,
        make: impl Fn(&Value, &EnvContext<'_>, u64) -> Result<Box<dyn Agent>> + Send + Sync + 'static,
    ) {
        let id = id.into();
        self.entries.insert(
            id.clone(),
            AgentEntry {
                id,
                summary: summary.into(),
                hyperparameters,
                make: Box::new(make),
            },
        );
    }

    /// Looks up an agent by id.
    pub fn get(&self, id: &str) -> Result<&AgentEntry> {
        self.entries.get(id).ok_or_else(|| {
            let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            Error::config(
                "agent.id",
                format!("unknown agent '{id}'; known agents: {}", known.join(", ")),
            )
        })
    }

    /// Every entry, sorted by id.
    pub fn entries(&self) -> impl Iterator<Item = &AgentEntry> {
        self.entries.values()
    }
}

/// Reads an agent config from JSON (`null` reads as `{}`); errors name the
/// JSON path of the bad field.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T> {
    rl_env::parse_config(config).map_err(|e| match e {
        rl_env::Error::Config { field, message } => Error::Config { field, message },
        other => Error::Env(other),
    })
}

/// Lists a config struct's fields with their defaults, taking the docs
/// from `docs` (field name, one line). Fields without a doc are a bug that
/// the agents' tests catch.
pub fn document<T: serde::Serialize + Default>(
    docs: &[(&'static str, &'static str)],
) -> Vec<Hyperparameter> {
    // Through text, so that `f32` defaults read as written (0.95, not
    // 0.949999988079071, which `to_value`'s widening to f64 would give).
    let defaults = serde_json::to_string(&T::default())
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    docs.iter()
        .map(|&(name, doc)| Hyperparameter {
            name,
            default: defaults.get(name).cloned().unwrap_or(Value::Null),
            doc,
        })
        .collect()
}
