//! The textbook gridworlds, by the names people know them, and
//! Gymnasium's ids for the ones Gymnasium also has.
//!
//! A preset is a config; a user's config fields override it key by key, so
//! `{"id": "gridworld/windy", "config": {"moves": "king"}}` is Sutton &
//! Barto's Exercise 6.9.

use crate::config::{GridConfig, MAX_MAP_SIDE, check_map_size};
use crate::grid::Gridworld;
use rl_env::{Env, Error, Registry, Result, parse_config, wrappers::TimeLimit};
use serde::Deserialize;
use serde_json::{Value, json};

const FROZEN_LAKE_4X4: [&str; 4] = ["SFFF", "FHFH", "FFFH", "HFFG"];
const FROZEN_LAKE_8X8: [&str; 8] = [
    "SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG",
];

/// One named preset.
pub struct Preset {
    /// Registry id.
    pub id: &'static str,
    /// One line for listings, including where the time limit comes from.
    pub summary: &'static str,
    /// The config it stands for.
    pub config: fn() -> Value,
}

/// FrozenLake's letters (`F` frozen) in rl-lab's (`.` floor).
fn frozen(rows: &[&str]) -> Vec<String> {
    rows.iter().map(|r| r.replace('F', ".")).collect()
}

/// Every preset. Time limits are Gymnasium's where it registers one.
pub const PRESETS: &[Preset] = &[
    Preset {
        id: "gridworld/frozen-lake-4x4",
        summary: "Gymnasium's FrozenLake 4x4: slippery ice (slip 2/3), +1 at G, holes end the episode; 100-step limit (FrozenLake-v1)",
        config: || json!({"map": frozen(&FROZEN_LAKE_4X4), "slip": 2.0 / 3.0, "max_steps": 100}),
    },
    Preset {
        id: "gridworld/frozen-lake-8x8",
        summary: "Gymnasium's FrozenLake 8x8: slippery ice (slip 2/3), +1 at G; 200-step limit (FrozenLake8x8-v1)",
        config: || json!({"map": frozen(&FROZEN_LAKE_8X8), "slip": 2.0 / 3.0, "max_steps": 200}),
    },
    Preset {
        id: "gridworld/cliff-walking",
        summary: "Sutton & Barto Example 6.6, 4x12: -1 per step, the cliff gives -100 and sends you back to S; no time limit (as Gymnasium's CliffWalking-v1)",
        config: || {
            json!({
                "map": ["............", "............", "............", "SCCCCCCCCCCG"],
                "step_reward": -1, "goal_reward": -1,
                "cells": {"C": {"reward": -100, "reset_to_start": true}}
            })
        },
    },
    Preset {
        id: "gridworld/windy",
        summary: "Sutton & Barto Example 6.5, 7x10: wind 0 0 0 1 1 1 2 2 1 0, -1 per step; 10,000-step limit (no Gymnasium equivalent; never binds for ε-greedy learners)",
        config: || {
            json!({
                "map": ["..........", "..........", "..........", "S......G..", "..........", "..........", ".........."],
                "wind": [0, 0, 0, 1, 1, 1, 2, 2, 1, 0],
                "step_reward": -1, "goal_reward": -1, "max_steps": 10000
            })
        },
    },
    Preset {
        id: "gridworld/example-3-5",
        summary: "Sutton & Barto Example 3.5, 5x5 continuing task: A jumps to A' (+10), B to B' (+5), -1 off the grid; starts anywhere; 100-step limit (ours)",
        config: || {
            json!({
                "map": ["SASBS", "SSSSS", "SSSbS", "SSSSS", "SaSSS"],
                "bump_reward": -1,
                "cells": {"A": {"jump": {"to": "a", "reward": 10}}, "B": {"jump": {"to": "b", "reward": 5}},
                          "a": {}, "b": {}},
                "max_steps": 100
            })
        },
    },
    Preset {
        id: "gridworld/example-4-1",
        summary: "Sutton & Barto Example 4.1, 4x4: terminal corners T, -1 per step, starts anywhere else; 100-step limit (ours)",
        config: || {
            json!({
                "map": ["TSSS", "SSSS", "SSSS", "SSST"],
                "step_reward": -1,
                "cells": {"T": {"terminal": true}},
                "max_steps": 100
            })
        },
    },
];

/// Overlays the user's fields on a preset's, key by key.
fn merge(mut base: Value, overrides: &Value) -> Result<Value> {
    match overrides {
        Value::Null => Ok(base),
        Value::Object(fields) => {
            let target = base.as_object_mut().expect("presets are JSON objects");
            for (k, v) in fields {
                target.insert(k.clone(), v.clone());
            }
            Ok(base)
        }
        other => Err(Error::config(
            "config",
            format!("must be a JSON object, not {other}"),
        )),
    }
}

/// Builds a gridworld from its config, with its time limit if it has one.
pub fn build(config: &GridConfig) -> Result<Box<dyn Env>> {
    wrap(config, Gridworld::new(config)?)
}

fn wrap(config: &GridConfig, world: Gridworld) -> Result<Box<dyn Env>> {
    Ok(match config.max_steps {
        Some(limit) => Box::new(TimeLimit::new(world, limit)),
        None => Box::new(world),
    })
}

/// Gymnasium's `FrozenLake-v1` keyword arguments.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FrozenLakeKwargs {
    /// `4x4` or `8x8`; ignored when `desc` is given.
    #[serde(default)]
    map_name: Option<String>,
    /// Custom map in FrozenLake's letters `S F H G`; at most 512 rows of
    /// 512 cells, as any gridworld map.
    #[serde(default)]
    #[schemars(length(max = MAX_MAP_SIDE), inner(length(max = MAX_MAP_SIDE)))]
    desc: Option<Vec<String>>,
    /// Default true.
    #[serde(default = "yes")]
    is_slippery: bool,
    /// Probability of the intended move on ice; default 1/3.
    #[serde(default = "third")]
    success_rate: f64,
    /// Rewards for entering G, H and F; default `[1, 0, 0]`.
    #[serde(default = "schedule")]
    reward_schedule: [f64; 3],
    /// Time limit; default Gymnasium's registration.
    #[serde(default)]
    max_steps: Option<u64>,
}

fn yes() -> bool {
    true
}
fn third() -> f64 {
    1.0 / 3.0
}
fn schedule() -> [f64; 3] {
    [1.0, 0.0, 0.0]
}

/// Gymnasium's `CliffWalking-v1` keyword arguments.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CliffWalkingKwargs {
    /// Moves go perpendicular with probability 2/3, as Gymnasium's; default false.
    #[serde(default)]
    is_slippery: bool,
    /// Time limit; default none, as Gymnasium registers none.
    #[serde(default)]
    max_steps: Option<u64>,
}

/// Gymnasium numbers FrozenLake's actions 0 left, 1 down, 2 right, 3 up.
const FROZEN_LAKE_ACTIONS: [usize; 4] = [3, 2, 1, 0];

fn frozen_lake(kwargs: &Value, default_map: &str, default_limit: u64) -> Result<Box<dyn Env>> {
    let k: FrozenLakeKwargs = parse_config(kwargs)?;
    if let Some(desc) = &k.desc {
        check_map_size("desc", desc)?;
    }
    let map = match (&k.desc, k.map_name.as_deref().unwrap_or(default_map)) {
        (Some(desc), _) => desc.iter().map(|r| r.replace('F', ".")).collect(),
        (None, "4x4") => frozen(&FROZEN_LAKE_4X4),
        (None, "8x8") => frozen(&FROZEN_LAKE_8X8),
        (None, other) => {
            return Err(Error::config(
                "map_name",
                format!("'{other}' is not a FrozenLake map: use \"4x4\" or \"8x8\""),
            ));
        }
    };
    if !(0.0..=1.0).contains(&k.success_rate) {
        return Err(Error::config(
            "success_rate",
            format!("{} is not a probability in [0, 1]", k.success_rate),
        ));
    }
    let config = GridConfig {
        map,
        slip: if k.is_slippery {
            1.0 - k.success_rate
        } else {
            0.0
        },
        goal_reward: k.reward_schedule[0],
        hole_reward: k.reward_schedule[1],
        step_reward: k.reward_schedule[2],
        max_steps: Some(k.max_steps.unwrap_or(default_limit)),
        ..parse_config(&json!({"map": []}))?
    };
    // Gymnasium's probabilities, computed as Gymnasium computes them.
    let fail_rate = (1.0 - k.success_rate) / 2.0;
    let world = Gridworld::with_dynamics(
        &config,
        FROZEN_LAKE_ACTIONS.to_vec(),
        [fail_rate, k.success_rate, fail_rate],
    )?;
    wrap(&config, world)
}

/// Adds `gridworld`, the presets and Gymnasium's aliases to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "gridworld",
        "A gridworld from your own map: walls, starts, goals, holes, custom cells, wind, slip",
        serde_json::to_value(parse_config::<GridConfig>(&json!({"map": ["S.G"]})).ok())
            .unwrap_or(Value::Null),
        |config| {
            if config.get("map").is_none() {
                return Err(Error::config("map", "missing: a gridworld needs a map"));
            }
            build(&parse_config(config)?)
        },
    );
    for preset in PRESETS {
        let defaults = (preset.config)();
        registry.register(preset.id, preset.summary, defaults.clone(), move |config| {
            build(&parse_config(&merge(defaults.clone(), config)?)?)
        });
    }
    registry.register(
        "FrozenLake-v1",
        "Gymnasium's FrozenLake-v1 (actions 0 left, 1 down, 2 right, 3 up); kwargs map_name, desc, is_slippery, success_rate, reward_schedule; 100-step limit",
        json!({"map_name": "4x4", "is_slippery": true, "success_rate": 1.0 / 3.0, "reward_schedule": [1, 0, 0], "max_steps": 100}),
        |config| frozen_lake(config, "4x4", 100),
    );
    registry.register(
        "FrozenLake8x8-v1",
        "Gymnasium's FrozenLake8x8-v1: as FrozenLake-v1 on the 8x8 map; 200-step limit",
        json!({"map_name": "8x8", "is_slippery": true, "success_rate": 1.0 / 3.0, "reward_schedule": [1, 0, 0], "max_steps": 200}),
        |config| frozen_lake(config, "8x8", 200),
    );
    // gym's old ids, still used by gym-http-api clients: the same
    // environments under the ids gym registered before Gymnasium's v1.
    registry.register(
        "FrozenLake-v0",
        "gym's FrozenLake-v0, the id old clients use: FrozenLake-v1's semantics; 100-step limit",
        json!({"map_name": "4x4", "is_slippery": true, "success_rate": 1.0 / 3.0, "reward_schedule": [1, 0, 0], "max_steps": 100}),
        |config| frozen_lake(config, "4x4", 100),
    );
    registry.register(
        "FrozenLake8x8-v0",
        "gym's FrozenLake8x8-v0, the id old clients use: FrozenLake8x8-v1's semantics; 200-step limit",
        json!({"map_name": "8x8", "is_slippery": true, "success_rate": 1.0 / 3.0, "reward_schedule": [1, 0, 0], "max_steps": 200}),
        |config| frozen_lake(config, "8x8", 200),
    );
    for id in ["CliffWalking-v1", "CliffWalking-v0"] {
        register_cliff_walking(registry, id);
        registry.describe(id, schemars::schema_for!(CliffWalkingKwargs).to_value());
    }
    let grid = schemars::schema_for!(GridConfig).to_value();
    for id in std::iter::once("gridworld").chain(PRESETS.iter().map(|preset| preset.id)) {
        registry.describe(id, grid.clone());
    }
    let frozen_lake = schemars::schema_for!(FrozenLakeKwargs).to_value();
    for id in [
        "FrozenLake-v1",
        "FrozenLake8x8-v1",
        "FrozenLake-v0",
        "FrozenLake8x8-v0",
    ] {
        registry.describe(id, frozen_lake.clone());
    }
}

fn register_cliff_walking(registry: &mut Registry, id: &str) {
    registry.register(
        id,
        if id == "CliffWalking-v1" {
            "Gymnasium's CliffWalking-v1 (actions 0 up, 1 right, 2 down, 3 left); kwarg is_slippery; no time limit"
        } else {
            "gym's CliffWalking-v0, the id old clients use: CliffWalking-v1's semantics; no time limit"
        },
        json!({"is_slippery": false}),
        |config| {
            let k: CliffWalkingKwargs = parse_config(config)?;
            let cliff = (PRESETS[2].config)();
            let mut extra = json!({"slip": if k.is_slippery { 2.0 / 3.0 } else { 0.0 }});
            if let Some(limit) = k.max_steps {
                extra["max_steps"] = json!(limit);
            }
            let config: GridConfig = parse_config(&merge(cliff, &extra)?)?;
            // Gymnasium gives each of the three branches `1 / len(deltas)`.
            let third = 1.0 / 3.0;
            let world = Gridworld::with_dynamics(&config, vec![0, 1, 2, 3], [third; 3])?;
            wrap(&config, world)
        },
    );
}
