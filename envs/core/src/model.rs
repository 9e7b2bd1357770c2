//! Known dynamics, as Gymnasium's `env.unwrapped.P`, and grid layouts.

use serde::Serialize;

/// One possible result of taking an action: `P[s][a]` holds a list of these.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// Probability of this outcome; the outcomes of one `(s, a)` sum to 1.
    pub probability: f64,
    /// State reached.
    pub next_state: usize,
    /// Reward received.
    pub reward: f64,
    /// Whether the episode ends, so no value is bootstrapped past it.
    pub terminated: bool,
}

/// An environment's exact dynamics over states `0..n_states` and actions
/// `0..n_actions` (action `a` is the action space's `start + a`).
///
/// Terminal states are absorbing: each action leads back to the same state
/// with reward 0 and `terminated`, as in Gymnasium's FrozenLake `P`, so a
/// Bellman backup gives them value 0 with no special case.
pub trait Model: Send + Sync {
    /// Number of states.
    fn n_states(&self) -> usize;
    /// Number of actions.
    fn n_actions(&self) -> usize;
    /// `P[state][action]`: the outcomes and their probabilities.
    fn transitions(&self, state: usize, action: usize) -> &[Outcome];
    /// Whether `state` is terminal or unreachable (a wall), i.e. never acted in.
    fn is_absorbing(&self, state: usize) -> bool;
}

/// The layout of a grid-shaped environment: which state each cell is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridView {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row-major, one per cell: the state index, or `None` for a wall.
    pub cells: Vec<Option<usize>>,
    /// Row-major, one per cell: whether the cell ends the episode.
    pub terminal: Vec<bool>,
    /// One arrow per action index, for drawing policies (`↑ → ↓ ←`, …).
    pub action_arrows: Vec<char>,
}
