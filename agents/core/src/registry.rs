//! Agent ids mapped to constructors, with their documented hyperparameters.

use crate::{Agent, AnyAgent, EnvContext, Error, Hyperparameter, Planner, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// Builds an agent from its JSON config, for an environment, with a seed.
pub type AgentConstructor =
    Box<dyn Fn(&Value, &EnvContext<'_>, u64) -> Result<AnyAgent> + Send + Sync>;

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

    /// Adds an agent that learns from experience, built from its config
    /// type `C` by `build(config, env, seed)`.
    pub fn learner<C, A>(
        &mut self,
        id: &str,
        summary: &str,
        docs: &[(&'static str, &'static str)],
        build: fn(C, &EnvContext<'_>, u64) -> Result<A>,
    ) where
        C: DeserializeOwned + Serialize + Default + 'static,
        A: Agent + 'static,
    {
        self.insert(
            id,
            summary,
            document::<C>(docs),
            move |config, ctx, seed| {
                Ok(AnyAgent::Learner(Box::new(build(
                    parse_config(config)?,
                    ctx,
                    seed,
                )?)))
            },
        );
    }

    /// Adds an agent that plans from the environment's model.
    pub fn planner<C, P>(
        &mut self,
        id: &str,
        summary: &str,
        docs: &[(&'static str, &'static str)],
        build: fn(C, &EnvContext<'_>, u64) -> Result<P>,
    ) where
        C: DeserializeOwned + Serialize + Default + 'static,
        P: Planner + 'static,
    {
        self.insert(
            id,
            summary,
            document::<C>(docs),
            move |config, ctx, seed| {
                Ok(AnyAgent::Planner(Box::new(build(
                    parse_config(config)?,
                    ctx,
                    seed,
                )?)))
            },
        );
    }

    fn insert(
        &mut self,
        id: &str,
        summary: &str,
        hyperparameters: Vec<Hyperparameter>,
        make: impl Fn(&Value, &EnvContext<'_>, u64) -> Result<AnyAgent> + Send + Sync + 'static,
    ) {
        self.entries.insert(
            id.to_owned(),
            AgentEntry {
                id: id.to_owned(),
                summary: summary.to_owned(),
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
