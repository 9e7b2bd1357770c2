//! Agent ids mapped to constructors, with their configs described.
//!
//! A config struct is the one source of what its agent accepts: its serde
//! attributes say how it reads, its `///` field docs and `#[schemars]`
//! bounds say what each field means and allows. The registry derives a
//! JSON Schema from it (draft 2020-12) and, from that schema, the
//! hyperparameter list `rl-lab agents` prints and the catalogue serves, so
//! the two cannot disagree.

use crate::{Agent, AnyAgent, EnvContext, Error, Hyperparameter, Planner, Result};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// Builds an agent from its JSON config, for an environment, with a seed.
pub type AgentConstructor =
    Box<dyn Fn(&Value, &EnvContext<'_>, u64) -> Result<AnyAgent> + Send + Sync>;

/// How many bytes an agent built from this JSON config for this
/// environment will hold at most (replay, networks, optimiser state,
/// tables), computed without building it, so that a run too large for the
/// machine is refused before anything is allocated. Errors are the config
/// errors building would give.
pub type MemoryEstimator = Box<dyn Fn(&Value, &EnvContext<'_>) -> Result<u64> + Send + Sync>;

/// What a registered config type needs: read from JSON, written back for
/// its defaults, and described by a schema.
pub trait AgentConfig: DeserializeOwned + Serialize + Default + JsonSchema + 'static {}
impl<C: DeserializeOwned + Serialize + Default + JsonSchema + 'static> AgentConfig for C {}

/// One registered agent.
pub struct AgentEntry {
    /// The id, e.g. `q-learning`.
    pub id: String,
    /// One line on the algorithm.
    pub summary: String,
    /// Whether it plans from a model rather than learning from experience.
    pub plans: bool,
    /// A JSON Schema (draft 2020-12) of the agent's `config` object.
    pub config_schema: Value,
    /// Every top-level field of the config, read off `config_schema`.
    pub hyperparameters: Vec<Hyperparameter>,
    /// Builds the agent.
    pub make: AgentConstructor,
    /// Its memory before it is built; 0 until the agent's crate gives one
    /// with [`AgentRegistry::estimate_memory`].
    pub memory: MemoryEstimator,
}

/// A registration method: `$name` adds an agent whose built type is a
/// `$kind`, wrapped as `AnyAgent::$variant`.
macro_rules! registration {
    ($name:ident, $kind:ident, $variant:ident, $plans:expr, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<C: AgentConfig, T: $kind + 'static>(
            &mut self,
            id: &str,
            summary: &str,
            build: fn(C, &EnvContext<'_>, u64) -> Result<T>,
        ) {
            self.insert::<C>(id, summary, $plans, move |config, ctx, seed| {
                Ok(AnyAgent::$variant(Box::new(build(config, ctx, seed)?)))
            });
        }
    };
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

    registration!(
        learner,
        Agent,
        Learner,
        false,
        "Adds an agent that learns from experience, built from its config type `C` by `build(config, env, seed)`."
    );
    registration!(
        planner,
        Planner,
        Planner,
        true,
        "Adds an agent that plans from the environment's model, built like a learner."
    );

    fn insert<C: AgentConfig>(
        &mut self,
        id: &str,
        summary: &str,
        plans: bool,
        build: impl Fn(C, &EnvContext<'_>, u64) -> Result<AnyAgent> + Send + Sync + 'static,
    ) {
        let (config_schema, hyperparameters) = describe::<C>(id);
        self.entries.insert(
            id.to_owned(),
            AgentEntry {
                id: id.to_owned(),
                summary: summary.to_owned(),
                plans,
                config_schema,
                hyperparameters,
                make: Box::new(move |config, ctx, seed| build(parse_config(config)?, ctx, seed)),
                memory: Box::new(|_, _| Ok(0)),
            },
        );
    }

    /// Gives agent `id` (registered with config type `C`) its memory
    /// estimate: `estimate(config, env)` in bytes. Does nothing for an
    /// unknown id.
    pub fn estimate_memory<C: AgentConfig>(
        &mut self,
        id: &str,
        estimate: fn(&C, &EnvContext<'_>) -> Result<u64>,
    ) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.memory = Box::new(move |config, ctx| estimate(&parse_config(config)?, ctx));
        }
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

/// The schema of `C` as agent `id`'s config, and its fields as
/// hyperparameters.
fn describe<C: AgentConfig>(id: &str) -> (Value, Vec<Hyperparameter>) {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<C>();
    let mut schema = schema.to_value();
    unwrap_descriptions(&mut schema);
    // Defaults through text, so that `f32` defaults read as written (0.95,
    // not 0.949999988079071, which `to_value`'s widening to f64 gives), and
    // so that the fields come in the order the struct declares them.
    let text = serde_json::to_string(&C::default()).unwrap_or_default();
    let defaults: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let declared = field_order(&text);
    schema["title"] = Value::String(format!("{id} config"));
    let definitions = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut hyperparameters = Vec::new();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, property) in properties.iter_mut() {
            if let Some(default) = defaults.get(name) {
                property["default"] = default.clone();
            }
            hyperparameters.push(hyperparameter(name, property, &definitions));
        }
    }
    hyperparameters.sort_by_key(|h| {
        declared
            .iter()
            .position(|name| *name == h.name)
            .unwrap_or(usize::MAX)
    });
    (schema, hyperparameters)
}

/// The keys of a JSON object, in the order the text gives them (serde
/// writes a struct's fields in declaration order; `serde_json::Map` sorts).
fn field_order(text: &str) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut map: M,
        ) -> std::result::Result<Vec<String>, M::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut reader, Keys).unwrap_or_default()
}

/// Doc comments arrive with the source's line breaks; a description reads
/// as one paragraph per blank-line-separated block.
fn unwrap_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| {
                                paragraph.split_whitespace().collect::<Vec<_>>().join(" ")
                            })
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_descriptions(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// One field's row, from its property schema (following a `$ref` into
/// `definitions` for the type and the choices).
fn hyperparameter(name: &str, property: &Value, definitions: &Value) -> Hyperparameter {
    let target = resolve(property, definitions);
    let number = |key: &str| property.get(key).or_else(|| target.get(key)).cloned();
    Hyperparameter {
        name: name.to_owned(),
        kind: kind(target, definitions),
        default: property.get("default").cloned().unwrap_or(Value::Null),
        minimum: number("minimum"),
        exclusive_minimum: number("exclusiveMinimum"),
        maximum: number("maximum"),
        exclusive_maximum: number("exclusiveMaximum"),
        choices: choices(target),
        doc: property
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The schema a `{"$ref": "#/$defs/Name"}` points at, or the schema itself.
fn resolve<'a>(schema: &'a Value, definitions: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/$defs/"))
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema)
}

/// The JSON type(s) a schema accepts, e.g. `number` or `number | object`.
fn kind(schema: &Value, definitions: &Value) -> String {
    let mut kinds: Vec<String> = Vec::new();
    let mut add = |kind: String| {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    };
    match schema.get("type") {
        Some(Value::String(kind)) => add(kind.clone()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .filter(|kind| *kind != "null")
            .for_each(|kind| add(kind.to_owned())),
        _ => {}
    }
    if let Some(constant) = schema.get("const") {
        add(json_type(constant).to_owned());
    }
    for key in ["anyOf", "oneOf"] {
        for alternative in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let alternative = resolve(alternative, definitions);
            add(kind(alternative, definitions));
        }
    }
    if kinds.is_empty() {
        "any".into()
    } else {
        kinds.join(" | ")
    }
}

/// The fixed values a schema allows, when it allows only fixed values.
fn choices(schema: &Value) -> Option<Vec<Value>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(values.clone());
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let mut values = Vec::new();
            for alternative in alternatives {
                match (alternative.get("const"), alternative.get("enum")) {
                    (Some(value), _) => values.push(value.clone()),
                    (None, Some(Value::Array(list))) => values.extend(list.iter().cloned()),
                    _ => return None,
                }
            }
            return Some(values);
        }
    }
    None
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
