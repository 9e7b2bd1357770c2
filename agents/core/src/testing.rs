//! What the agents' tests share: the ways an episode can end, so that each
//! agent is checked against the same four (Gymnasium's `TimeLimit` sets both
//! flags when the terminal step is also the last allowed one).

use rand::{Rng, RngExt};

/// How an episode ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A terminal state: its value is 0.
    Terminated,
    /// A time limit: the next state's value still counts.
    Truncated,
    /// Both flags at once: still a termination.
    Both,
    /// No final step at all, as a budget spent mid-episode leaves it.
    Abandoned,
}

impl Ending {
    /// One of the four, uniformly.
    pub fn random(rng: &mut impl Rng) -> Self {
        match rng.random_range(0..4) {
            0 => Ending::Terminated,
            1 => Ending::Truncated,
            2 => Ending::Both,
            _ => Ending::Abandoned,
        }
    }

    /// `(terminated, truncated)` of a step: only the last step of an
    /// episode that ends carries a flag.
    pub fn flags(self, last_step: bool) -> (bool, bool) {
        match self {
            _ if !last_step => (false, false),
            Ending::Terminated => (true, false),
            Ending::Truncated => (false, true),
            Ending::Both => (true, true),
            Ending::Abandoned => (false, false),
        }
    }

    /// Whether the episode reached a terminal state.
    pub fn terminates(self) -> bool {
        matches!(self, Ending::Terminated | Ending::Both)
    }
}
