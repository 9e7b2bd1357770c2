//! The registry of every agent rl-lab ships.

use rl_agent::AgentRegistry;

/// Every registered agent: each agent crate adds its own.
pub fn registry() -> AgentRegistry {
    let mut registry = AgentRegistry::new();
    rl_tabular::register(&mut registry);
    rl_dqn::register(&mut registry);
    rl_pg::register(&mut registry);
    registry
}

/// The server's agents: [`registry`], plus the test-only agents when this
/// build has the `test-agents` feature and `RL_LAB_TEST_AGENTS` is set (a
/// test that needs one sets it for its server alone).
pub fn server_registry() -> AgentRegistry {
    #[allow(unused_mut)] // added to only with the `test-agents` feature
    let mut registry = registry();
    #[cfg(feature = "test-agents")]
    if std::env::var_os(crate::test_agents::ENABLE_VAR).is_some() {
        crate::test_agents::register(&mut registry);
    }
    registry
}
