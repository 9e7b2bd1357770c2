//! The registry of every environment rl-lab ships.

use rl_env::Registry;
pub use rl_remote::{HostPattern, UrlPolicy};

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
    registry
}
