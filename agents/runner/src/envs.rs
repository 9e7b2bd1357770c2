//! The registry of every environment rl-lab ships.

use rl_env::Registry;

/// Every registered environment id: each environment crate adds its own.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    rl_gridworld::register(&mut registry);
    rl_minatar::register(&mut registry);
    rl_classic::register(&mut registry);
    rl_external::register(&mut registry);
    registry
}
