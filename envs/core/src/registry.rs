//! Environment ids mapped to constructors that take a JSON config.
//!
//! Each environment crate registers its ids (`gridworld/windy`,
//! `MinAtar/Breakout-v1`, …); whoever wires the binary builds one
//! [`Registry`] from all of them. A constructor returns the environment
//! with its documented default wrappers (its time limit) already applied.

use crate::{Env, Error, Feed, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// Builds an environment from its JSON config.
pub type Constructor = Box<dyn Fn(&Value) -> Result<Box<dyn Env>> + Send + Sync>;

/// Builds `n` copies that one call serves ([`Feed`]), or `None` when this
/// config cannot be served so and the copies must be made one by one.
pub type FedConstructor = Box<dyn Fn(&Value, usize) -> Result<Option<FedCopies>> + Send + Sync>;

/// Copies of an environment and the feed that serves their calls, for
/// [`VectorEnv::new`](crate::VectorEnv::new) and
/// [`VectorEnv::fed_by`](crate::VectorEnv::fed_by).
pub struct FedCopies {
    /// Copy `i`.
    pub copies: Vec<Box<dyn Env>>,
    /// Fetches every copy's outcome in one call.
    pub feed: Box<dyn Feed>,
}

/// One registered id.
pub struct EnvEntry {
    /// The id, e.g. `gridworld/cliff-walking` or `FrozenLake-v1`.
    pub id: String,
    /// One line for `rl-lab envs`.
    pub summary: String,
    /// The config with every default filled in, for listings.
    pub defaults: Value,
    /// A JSON Schema of the config, with every size's bound, when the
    /// environment's crate gives one ([`Registry::describe`]); `null` otherwise.
    pub config_schema: Value,
    /// Builds the environment.
    pub make: Constructor,
    /// Builds several copies served by one call, for ids that can
    /// ([`Registry::register_fed`]).
    pub make_fed: Option<FedConstructor>,
}

/// All known environment ids.
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, EnvEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an id. A later registration of the same id replaces the earlier.
    pub fn register(
        &mut self,
        id: impl Into<String>,
        summary: impl Into<String>,
        defaults: Value,
        make: impl Fn(&Value) -> Result<Box<dyn Env>> + Send + Sync + 'static,
    ) {
        let id = id.into();
        self.entries.insert(
            id.clone(),
            EnvEntry {
                id,
                summary: summary.into(),
                defaults,
                config_schema: Value::Null,
                make: Box::new(make),
                make_fed: None,
            },
        );
    }

    /// Lets id `id` make several copies served by one call (a remote
    /// server's vector instance). Does nothing for an unknown id.
    pub fn register_fed(
        &mut self,
        id: &str,
        make_fed: impl Fn(&Value, usize) -> Result<Option<FedCopies>> + Send + Sync + 'static,
    ) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.make_fed = Some(Box::new(make_fed));
        }
    }

    /// Gives id `id` the JSON Schema of its config (a crate derives it
    /// from its config struct), so that catalogues and fuzzers see the
    /// fields and their bounds. Does nothing for an unknown id.
    pub fn describe(&mut self, id: &str, config_schema: Value) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.config_schema = config_schema;
        }
    }

    /// Looks up an id, with a suggestion in the error when it is unknown.
    pub fn get(&self, id: &str) -> Result<&EnvEntry> {
        self.entries.get(id).ok_or_else(|| Error::UnknownEnv {
            id: id.to_string(),
            suggestion: self.closest(id),
        })
    }

    /// Builds the environment `id` from `config` (`null` means all defaults).
    pub fn make(&self, id: &str, config: &Value) -> Result<Box<dyn Env>> {
        (self.get(id)?.make)(config)
    }

    /// `n` copies of `id` served by one call, when the id and its config
    /// allow it; `None` when the copies must be made one by one.
    pub fn make_fed(&self, id: &str, config: &Value, n: usize) -> Result<Option<FedCopies>> {
        match &self.get(id)?.make_fed {
            Some(make_fed) => make_fed(config, n),
            None => Ok(None),
        }
    }

    /// Every entry, sorted by id.
    pub fn entries(&self) -> impl Iterator<Item = &EnvEntry> {
        self.entries.values()
    }

    fn closest(&self, id: &str) -> Option<String> {
        let lower = id.to_lowercase();
        self.entries
            .keys()
            .map(|k| (edit_distance(&k.to_lowercase(), &lower), k))
            .filter(|(d, k)| *d <= 3.max(k.len() / 4))
            .min()
            .map(|(_, k)| k.clone())
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Reads a config struct from JSON; `null` reads as `{}` so every default
/// applies. Errors name the JSON path of the bad field.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T> {
    let empty = Value::Object(Default::default());
    let config = if config.is_null() { &empty } else { config };
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        Error::Config {
            field: if path == "." { "config".into() } else { path },
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        to: char,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        #[serde(default)]
        slip: f64,
        #[serde(default)]
        jump: Option<Inner>,
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = parse_config::<Config>(&serde_json::json!({"jump": {"to": 3}})).unwrap_err();
        assert!(err.to_string().starts_with("jump.to:"), "{err}");
        let err = parse_config::<Config>(&serde_json::json!({"slpi": 0.1})).unwrap_err();
        assert!(err.to_string().contains("slpi"), "{err}");
        assert!(parse_config::<Config>(&Value::Null).is_ok());
    }

    #[test]
    fn unknown_id_suggests_the_closest() {
        let mut r = Registry::new();
        r.register("gridworld/windy", "", Value::Null, |_| {
            Err(Error::config("x", "y"))
        });
        let err = r.make("gridworld/windyy", &Value::Null).err().unwrap();
        assert!(err.to_string().contains("gridworld/windy"), "{err}");
    }
}
