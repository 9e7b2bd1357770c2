//! The registry of every environment rl-lab ships.

use rl_env::Registry;
pub use rl_remote::{HostPattern, UrlPolicy};

/// Adds environment ids to a registry: an environment crate's `register`.
/// A crate outside rl-lab passes its own to [`crate::Engine::with_envs`]
/// (and `rl_lab::cli::Lab::with_envs`), so runs, the server and the CLI
/// know its ids as they know ours.
pub type EnvPlugin = fn(&mut Registry);

/// Every registered environment id: each environment crate adds its own.
/// `remote` may reach any URL, as the command line's runs may.
pub fn registry() -> Registry {
    registry_allowing(UrlPolicy::Any)
}

/// Every registered environment id, with `remote` envs made only from
/// URLs that `remote` allows (a server's `--allow-remote-env`).
pub fn registry_allowing(remote: UrlPolicy) -> Registry {
    let mut registry = Registry::new();
    rl_gridworld::register(&mut registry);
    rl_minatar::register(&mut registry);
    rl_classic::register(&mut registry);
    rl_remote::register(&mut registry, remote);
    rl_external::register(&mut registry);
    registry
}

/// Why `id` can be a run's environment but not an instance of the
/// environment routes, or `None` when it can be both. A remote env steps
/// over HTTP and an external one waits for a process: either would block
/// the async runtime that serves the routes.
pub fn only_for_runs(id: &str) -> Option<&'static str> {
    match id {
        rl_remote::ENV_ID => {
            Some("'remote' envs are for runs; step the server that serves it directly")
        }
        rl_external::ENV_ID => Some(rl_external::NEEDS_SERVER),
        _ => None,
    }
}
