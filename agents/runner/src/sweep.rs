//! Sweeps: one request that stands for many runs, a base spec varied over a
//! grid of values, random draws and seeds (`POST /v1/sweeps`,
//! `rl-lab sweep`).
//!
//! ```json
//! {"name": "alpha-sweep", "base": {"...": "a run spec"},
//!  "grid": {"agent.config.alpha": [0.1, 0.3, 0.5]},
//!  "random": {"agent.config.epsilon": {"log_uniform": [0.01, 0.3]}, "count": 4},
//!  "seeds": [0, 1, 2, 3, 4]}
//! ```
//!
//! A *configuration* is one point of the grid's product, combined with one
//! of `random.count` draws (the grid alone when `random` is absent); every
//! configuration runs once per seed. The draws come from `random_seed`, so
//! expanding the same sweep gives the same runs.

use crate::{Engine, Error, Result, RunSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The most runs one sweep may expand to.
pub const MAX_SWEEP_RUNS: usize = 1000;

/// A sweep as submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// A label for listings; 1 to 200 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// The run spec every run starts from.
    #[cfg_attr(feature = "openapi", schema(value_type = RunSpec))]
    pub base: Value,
    /// Dotted spec paths, each with the values it takes; the runs cover
    /// every combination. Default none.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub grid: BTreeMap<String, Vec<Value>>,
    /// Dotted spec paths with a distribution each (`{"uniform": [low,
    /// high]}`, `{"log_uniform": [low, high]}` or `{"choice": [values]}`),
    /// and `count`, the number of draws. Default none.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub random: Option<Map<String, Value>>,
    /// Each configuration runs once with each of these seeds (the spec's
    /// `seed`); default the base spec's seed alone.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub seeds: Option<Vec<u64>>,
    /// Seeds the random draws; default 0.
    #[serde(default)]
    pub random_seed: u64,
}

/// A distribution of `random`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Distribution {
    /// Uniform in `[low, high]`.
    Uniform([f64; 2]),
    /// `exp` of a uniform draw in `[ln low, ln high]`; both above 0.
    LogUniform([f64; 2]),
    /// One of the values, each as likely.
    Choice(Vec<Value>),
}

/// One configuration of an expanded sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    /// Its place in the sweep, from 0.
    pub index: usize,
    /// The value of each path that the sweep varies.
    pub params: BTreeMap<String, Value>,
    /// The run specs, one per seed, in the order of `seeds`.
    pub runs: Vec<RunSpec>,
}

fn sweep_error(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::spec(field, message)
}

impl SweepSpec {
    /// Reads a sweep; errors name the field.
    pub fn from_value(value: &Value) -> Result<SweepSpec> {
        serde_json::from_value(value.clone()).map_err(|e| {
            let message = e.to_string();
            let field = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("sweep")
                .to_string();
            sweep_error(field, message)
        })
    }

    /// Every configuration with its runs, each spec checked as a run spec
    /// is; the first error names the sweep's field (`grid.<path>`,
    /// `random.<path>`, `seeds`, …) or, for a spec a configuration makes
    /// invalid, the configuration and the spec's own field.
    pub fn expand(&self) -> Result<Vec<Configuration>> {
        if self.name.is_empty() || self.name.chars().count() > 200 {
            return Err(sweep_error("name", "must be 1 to 200 characters"));
        }
        if !self.base.is_object() {
            return Err(sweep_error("base", "must be a run spec (a JSON object)"));
        }
        let seeds = match &self.seeds {
            Some(seeds) if seeds.is_empty() => {
                return Err(sweep_error("seeds", "must list at least one seed"));
            }
            Some(seeds) => seeds.clone(),
            None => match self.base.get("seed") {
                None => vec![0],
                Some(seed) => vec![seed.as_u64().ok_or_else(|| {
                    sweep_error(
                        "base.seed",
                        format!("must be a whole number ≥ 0, not {seed}"),
                    )
                })?],
            },
        };
        let mut points: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
        for (path, values) in &self.grid {
            check_path(&format!("grid.{path}"), path)?;
            if values.is_empty() {
                return Err(sweep_error(
                    format!("grid.{path}"),
                    "must list at least one value",
                ));
            }
            points = points
                .into_iter()
                .flat_map(|point| {
                    values.iter().map(move |value| {
                        let mut point = point.clone();
                        point.insert(path.clone(), value.clone());
                        point
                    })
                })
                .collect();
            if points.len() > MAX_SWEEP_RUNS {
                break;
            }
        }
        if let Some(random) = &self.random {
            points = self.with_draws(random, points)?;
        }
        let total = points.len().saturating_mul(seeds.len());
        if total > MAX_SWEEP_RUNS {
            return Err(sweep_error(
                "grid",
                format!(
                    "the sweep expands to {total} runs or more ({} configurations × {} seeds); at most {MAX_SWEEP_RUNS}",
                    points.len(),
                    seeds.len()
                ),
            ));
        }
        points
            .into_iter()
            .enumerate()
            .map(|(index, params)| {
                let runs = seeds
                    .iter()
                    .map(|&seed| self.run_spec(index, &params, seed))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Configuration {
                    index,
                    params,
                    runs,
                })
            })
            .collect()
    }

    /// The grid's points, each combined with each of `count` draws.
    fn with_draws(
        &self,
        random: &Map<String, Value>,
        points: Vec<BTreeMap<String, Value>>,
    ) -> Result<Vec<BTreeMap<String, Value>>> {
        let count = match random.get("count") {
            Some(count) => count
                .as_u64()
                .filter(|&n| (1..=MAX_SWEEP_RUNS as u64).contains(&n))
                .ok_or_else(|| {
                    sweep_error(
                        "random.count",
                        format!("must be a whole number from 1 to {MAX_SWEEP_RUNS}, not {count}"),
                    )
                })? as usize,
            None => return Err(sweep_error("random.count", "is required: how many draws")),
        };
        let mut distributions = Vec::new();
        for (path, value) in random.iter().filter(|(key, _)| *key != "count") {
            let field = format!("random.{path}");
            check_path(&field, path)?;
            let distribution: Distribution =
                serde_json::from_value(value.clone()).map_err(|e| {
                    sweep_error(
                        &field,
                        format!("expected {{\"uniform\": [low, high]}}, {{\"log_uniform\": [low, high]}} or {{\"choice\": [values]}}: {e}"),
                    )
                })?;
            match &distribution {
                Distribution::Uniform([low, high])
                    if !(low.is_finite() && high.is_finite() && low <= high) =>
                {
                    return Err(sweep_error(
                        &field,
                        "uniform bounds must be finite, low ≤ high",
                    ));
                }
                Distribution::LogUniform([low, high])
                    if !(*low > 0.0 && high.is_finite() && low <= high) =>
                {
                    return Err(sweep_error(
                        &field,
                        "log_uniform bounds must be finite, 0 < low ≤ high",
                    ));
                }
                Distribution::Choice(values) if values.is_empty() => {
                    return Err(sweep_error(&field, "choice must list at least one value"));
                }
                _ => {}
            }
            distributions.push((path.clone(), distribution));
        }
        if distributions.is_empty() {
            return Err(sweep_error("random", "names no path to draw"));
        }
        if points.len().saturating_mul(count) > MAX_SWEEP_RUNS {
            return Err(sweep_error(
                "random.count",
                format!(
                    "{} grid points × {count} draws is more than {MAX_SWEEP_RUNS} configurations",
                    points.len()
                ),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.random_seed);
        let draws: Vec<Vec<(String, Value)>> = (0..count)
            .map(|_| {
                distributions
                    .iter()
                    .map(|(path, distribution)| (path.clone(), draw(distribution, &mut rng)))
                    .collect()
            })
            .collect();
        Ok(points
            .into_iter()
            .flat_map(|point| {
                draws.iter().map(move |draw| {
                    let mut point = point.clone();
                    point.extend(draw.iter().cloned());
                    point
                })
            })
            .collect())
    }

    /// The base spec with `params` set and `seed`, checked.
    fn run_spec(
        &self,
        index: usize,
        params: &BTreeMap<String, Value>,
        seed: u64,
    ) -> Result<RunSpec> {
        let mut spec = self.base.clone();
        for (path, value) in params {
            set_path(&mut spec, path, value.clone()).map_err(|message| {
                sweep_error(path.clone(), format!("configuration {index}: {message}"))
            })?;
        }
        spec["seed"] = Value::from(seed);
        RunSpec::from_value(&spec).map_err(|e| in_configuration(e, index, params, seed))
    }
}

/// Checks every run of `configurations` as a submitted run is checked
/// (its env and agent built by `engine`), so that a sweep with one bad run
/// queues none. A run the memory cap allows but the allocator refuses
/// passes, as a single submitted run does.
pub fn check_runs(engine: &Engine, configurations: &[Configuration]) -> Result<()> {
    for configuration in configurations {
        for spec in &configuration.runs {
            match engine.prepare(spec.clone()) {
                Err(e) if !e.is_out_of_memory() => {
                    return Err(in_configuration(
                        e,
                        configuration.index,
                        &configuration.params,
                        spec.seed,
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A spec error, saying which configuration and seed it is of.
fn in_configuration(e: Error, index: usize, params: &BTreeMap<String, Value>, seed: u64) -> Error {
    match e {
        Error::Spec { field, message } => {
            let varied = params
                .iter()
                .map(|(path, value)| format!("{path} = {value}"))
                .collect::<Vec<_>>()
                .join(", ");
            Error::Spec {
                field,
                message: format!("{message} (configuration {index}: {varied}; seed {seed})"),
            }
        }
        other => other,
    }
}

/// A path is dotted object keys, none empty; `seed` is the sweep's own.
fn check_path(field: &str, path: &str) -> Result<()> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(sweep_error(
            field,
            "a path is dotted keys, e.g. agent.config.alpha",
        ));
    }
    if path == "seed" {
        return Err(sweep_error(field, "seeds are swept by \"seeds\""));
    }
    Ok(())
}

/// Sets `path` in `spec`, making the objects on the way that are missing.
fn set_path(spec: &mut Value, path: &str, value: Value) -> std::result::Result<(), String> {
    let mut keys = path.split('.').peekable();
    let mut at = spec;
    let mut walked = Vec::new();
    while let Some(key) = keys.next() {
        walked.push(key);
        let object = match at {
            Value::Object(object) => object,
            Value::Null => {
                *at = Value::Object(Map::new());
                at.as_object_mut().expect("just made")
            }
            other => {
                return Err(format!(
                    "{} is {other}, not an object",
                    walked[..walked.len() - 1].join(".")
                ));
            }
        };
        if keys.peek().is_none() {
            object.insert(key.to_string(), value);
            return Ok(());
        }
        at = object.entry(key.to_string()).or_insert(Value::Null);
    }
    Ok(())
}

fn draw(distribution: &Distribution, rng: &mut ChaCha8Rng) -> Value {
    match distribution {
        Distribution::Uniform([low, high]) => Value::from(low + (high - low) * rng.random::<f64>()),
        Distribution::LogUniform([low, high]) => {
            let (low, high) = (low.ln(), high.ln());
            Value::from((low + (high - low) * rng.random::<f64>()).exp())
        }
        Distribution::Choice(values) => values[rng.random_range(0..values.len())].clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"env": {"id": "gridworld/cliff-walking"},
               "agent": {"id": "q-learning", "config": {"alpha": 0.5}},
               "budget": {"episodes": 10}, "seed": 9})
    }

    #[test]
    fn a_grid_times_draws_times_seeds() {
        let sweep = SweepSpec::from_value(&json!({
            "name": "alpha", "base": base(),
            "grid": {"agent.config.alpha": [0.1, 0.3, 0.5]},
            "random": {"agent.config.epsilon": {"log_uniform": [0.01, 0.3]}, "count": 4},
            "seeds": [0, 1, 2, 3, 4]}))
        .unwrap();
        let configurations = sweep.expand().unwrap();
        assert_eq!(configurations.len(), 12);
        assert!(configurations.iter().all(|c| c.runs.len() == 5));
        let epsilons: Vec<f64> = configurations
            .iter()
            .map(|c| c.params["agent.config.epsilon"].as_f64().unwrap())
            .collect();
        assert!(
            epsilons.iter().all(|e| (0.01..=0.3).contains(e)),
            "{epsilons:?}"
        );
        // Each grid point meets the same four draws.
        assert_eq!(epsilons[..4], epsilons[4..8]);
        let first = &configurations[5];
        assert_eq!(first.params["agent.config.alpha"], json!(0.3));
        assert_eq!(first.runs[2].seed, 2);
        assert_eq!(
            sweep.expand().unwrap(),
            configurations,
            "the same draws every time"
        );
    }

    #[test]
    fn the_example_sweep_expands_to_checked_runs() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sweeps/cliff-alpha.json"
        );
        let sweep: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let configurations = SweepSpec::from_value(&sweep).unwrap().expand().unwrap();
        assert_eq!(configurations.len(), 6);
        assert_eq!(
            configurations.iter().map(|c| c.runs.len()).sum::<usize>(),
            18
        );
        check_runs(&Engine::default(), &configurations).unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let engine = Engine::default();
        let error = |sweep: Value| match SweepSpec::from_value(&sweep)
            .and_then(|s| s.expand())
            .and_then(|c| check_runs(&engine, &c))
        {
            Err(Error::Spec { field, message }) => format!("{field}: {message}"),
            other => panic!("{other:?}"),
        };
        let with = |key: &str, value: Value| {
            let mut sweep = json!({"name": "s", "base": base()});
            sweep[key] = value;
            sweep
        };
        assert!(
            error(with("grid", json!({"agent.config.alpah": [0.1]})))
                .starts_with("agent.config.alpah: ")
        );
        assert!(
            error(with("grid", json!({"agent.config.alpha": []})))
                .starts_with("grid.agent.config.alpha: ")
        );
        assert!(
            error(with("grid", json!({"agent..alpha": [1]}))).starts_with("grid.agent..alpha: ")
        );
        assert!(
            error(with("grid", json!({"agent.id.x": [1]})))
                .starts_with("agent.id.x: configuration 0: agent.id is")
        );
        assert!(
            error(with(
                "random",
                json!({"agent.config.epsilon": {"log_uniform": [0, 1]}, "count": 2})
            ))
            .starts_with("random.agent.config.epsilon: ")
        );
        assert!(
            error(with(
                "random",
                json!({"agent.config.epsilon": {"uniform": [0, 1]}})
            ))
            .starts_with("random.count: ")
        );
        assert!(error(with("seeds", json!([]))).starts_with("seeds: "));
        let mut negative = with("grid", json!({}));
        negative["base"]["seed"] = json!(-1);
        assert!(error(negative).starts_with("base.seed: "));
        assert!(error(with("grid", json!({"seed": [1, 2]}))).starts_with("grid.seed: "));
        assert!(
            error(with(
                "grid",
                json!({"agent.config.alpha": (0..1001).collect::<Vec<_>>()})
            ))
            .starts_with("grid: ")
        );
        assert!(error(with("colour", json!(1))).starts_with("colour: "));
    }
}
