//! The gridworld's JSON configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the agent may move.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Moves {
    /// 0 up, 1 right, 2 down, 3 left.
    #[default]
    #[serde(rename = "four")]
    Four,
    /// The four moves plus diagonals: 4 up-right, 5 down-right, 6 down-left, 7 up-left.
    #[serde(rename = "king")]
    King,
    /// King moves plus 8, stay in place.
    #[serde(rename = "king+stay")]
    KingStay,
}

/// What the agent observes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ObservationKind {
    /// `Discrete(rows * cols)`: the state index `row * cols + col`.
    #[default]
    Index,
    /// `float32[rows * cols]`, one-hot on the state index.
    OneHot,
    /// `float32[2]`: `(row, col)`.
    Coordinates,
}

/// A jump out of a cell, as in Sutton & Barto's Example 3.5 (A → A′, +10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Jump {
    /// The map character of the destination; several such cells are chosen uniformly.
    pub to: char,
    /// Reward for the jump.
    #[serde(default)]
    pub reward: f64,
}

/// The meaning of a letter of the map beyond the built-in `# . S G H`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CellSpec {
    /// Reward for entering the cell; `step_reward` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// Entering the cell ends the episode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    /// Any action taken in the cell moves the agent to another cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<Jump>,
    /// Entering the cell gives its reward and sends the agent back to a
    /// start cell without ending the episode (the textbook cliff).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_to_start: bool,
}

/// Most rows, and most cells in a row, of a gridworld map: 512, so a map
/// has at most 262,144 states, a thousand times the textbook's largest
/// (Sutton & Barto's 9 × 6 maze, FrozenLake's 8 × 8) while its model `P`
/// (up to nine actions of up to three outcomes each) stays within a few
/// hundred megabytes.
pub const MAX_MAP_SIDE: usize = 512;

/// Checks that `rows` (the map, or FrozenLake's `desc`, named `field`) is
/// within [`MAX_MAP_SIDE`] on both sides, before a cell is parsed.
pub fn check_map_size(field: &str, rows: &[String]) -> rl_env::Result<()> {
    if rows.len() > MAX_MAP_SIDE {
        return Err(rl_env::Error::config(
            field,
            format!("{} rows is more than the most, {MAX_MAP_SIDE}", rows.len()),
        ));
    }
    for (r, row) in rows.iter().enumerate() {
        let len = row.chars().count();
        if len > MAX_MAP_SIDE {
            return Err(rl_env::Error::config(
                format!("{field}[{r}]"),
                format!("{len} cells is more than the most, {MAX_MAP_SIDE}"),
            ));
        }
    }
    Ok(())
}

/// A gridworld, described as data.
///
/// ```json
/// {"map": ["S..", ".#.", "..G"], "step_reward": -1, "slip": 0.1}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Rows of equal length: `#` wall, `.` floor, `S` start (several: uniform),
    /// `G` goal and `H` hole (both terminal), other letters defined in `cells`.
    /// At most 512 rows of 512 cells (see [`MAX_MAP_SIDE`]).
    #[schemars(length(min = 1, max = MAX_MAP_SIDE), inner(length(min = 1, max = MAX_MAP_SIDE)))]
    pub map: Vec<String>,
    /// Move set; default `four`.
    #[serde(default)]
    pub moves: Moves,
    /// Reward of every transition not overridden below; default 0.
    #[serde(default)]
    pub step_reward: f64,
    /// Reward when a move would leave the grid or enter a wall (the agent
    /// stays); default `step_reward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump_reward: Option<f64>,
    /// Reward for entering `G`; default 1 (FrozenLake's).
    #[serde(default = "default_goal_reward")]
    pub goal_reward: f64,
    /// Reward for entering `H`; default 0 (FrozenLake's).
    #[serde(default)]
    pub hole_reward: f64,
    /// Custom cells, keyed by their map letter.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cells: BTreeMap<char, CellSpec>,
    /// One integer per column: the next row is shifted up by the wind of the
    /// column moved from, stopping at walls and the edge; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wind: Option<Vec<i32>>,
    /// Probability p of slipping: the intended move with 1 − p, each
    /// perpendicular move with p/2; default 0. FrozenLake's ice is 2/3.
    #[serde(default)]
    pub slip: f64,
    /// Episodes are truncated after this many steps; default none for a
    /// custom map (each preset documents its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// What the agent observes; default `index`.
    #[serde(default)]
    pub observation: ObservationKind,
}

fn default_goal_reward() -> f64 {
    1.0
}
