//! The registry of every environment rl-lab ships.

use rl_env::Registry;

/// Adds environment ids to a registry: an environment crate's `register`.
/// A crate outside rl-lab passes its own to [`crate::Engine::with_envs`]
/// (and `rl_lab::cli::Lab::with_envs`), so runs, the server and the CLI
/// know its ids as they know ours.
pub type EnvPlugin = fn(&mut Registry);

/// Every registered environment id: each environment crate adds its own.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    rl_gridworld::register(&mut registry);
    rl_minatar::register(&mut registry);
    rl_classic::register(&mut registry);
    registry
}
