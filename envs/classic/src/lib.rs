//! classic environments.

/// Adds this crate's ids to the registry.
pub fn register(_registry: &mut rl_env::Registry) {}
