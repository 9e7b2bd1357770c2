//! What can be run: every environment with its spaces and config defaults,
//! every agent with its hyperparameters and a JSON Schema of its config.
//! `rl-lab envs`/`agents` print it; the server serves it to launch forms.

use crate::Engine;
use serde::Serialize;
use serde_json::{Map, Value, json};

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
    /// The config with every default filled in.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub defaults: Value,
}

/// One agent id.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentListing {
    /// The id.
    pub id: String,
    /// One line on the algorithm.
    pub summary: String,
    /// Each hyperparameter with its type, default and doc.
    pub hyperparameters: Vec<HyperparameterListing>,
    /// A JSON Schema (draft 2020-12) of the agent's `config` object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config_schema: Value,
}

/// One hyperparameter.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HyperparameterListing {
    /// Field name in the config.
    pub name: String,
    /// The JSON type of its default (`number`, `integer`, `string`,
    /// `boolean`, `array`, `object`, or `any` when the default is null or
    /// the field takes several forms).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its default.
    pub default: Value,
    /// What it does.
    pub doc: String,
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "any",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
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
                defaults: entry.defaults.clone(),
            }
        })
        .collect()
}

/// Every agent, sorted by id.
pub fn agents(engine: &Engine) -> Vec<AgentListing> {
    engine
        .agents
        .entries()
        .map(|entry| {
            let hyperparameters: Vec<HyperparameterListing> = entry
                .hyperparameters
                .iter()
                .map(|h| HyperparameterListing {
                    name: h.name.into(),
                    // An integer default of a float field (e.g. γ = 1) must
                    // not forbid 0.9, and some fields take a number or a
                    // string ("1/n"): integers widen to numbers.
                    kind: match json_type(&h.default) {
                        "integer" => "number",
                        other => other,
                    },
                    default: h.default.clone(),
                    doc: h.doc.into(),
                })
                .collect();
            let properties: Map<String, Value> = hyperparameters
                .iter()
                .map(|h| {
                    let mut property = json!({"description": h.doc, "default": h.default});
                    // Fields whose default is a number may also be written
                    // as a schedule object or a string in some agents, so
                    // only plain scalar types are pinned.
                    if matches!(h.kind, "boolean") {
                        property["type"] = json!(h.kind);
                    }
                    (h.name.clone(), property)
                })
                .collect();
            AgentListing {
                id: entry.id.clone(),
                summary: entry.summary.clone(),
                config_schema: json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "title": format!("{} config", entry.id),
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": false,
                }),
                hyperparameters,
            }
        })
        .collect()
}
