//! The registry of every agent rl-lab ships.

use rl_agent::AgentRegistry;

/// Every registered agent: each agent crate adds its own.
pub fn registry() -> AgentRegistry {
    let mut registry = AgentRegistry::new();
    rl_tabular::register(&mut registry);
    rl_dqn::register(&mut registry);
    registry
}
