//! rl-lab: fast environments, textbook-exact agents, one binary.
//!
//! This facade re-exports the workspace's crates so that a user can depend
//! on `rl-lab` alone, and the command-line tool ([`cli::Lab`]), so that a
//! crate with its own environments can ship the whole tool with them.

pub mod cli;

pub use rl_agent as agent;
pub use rl_classic as classic;
pub use rl_dqn as dqn;
pub use rl_env as env;
pub use rl_gridworld as gridworld;
pub use rl_layers as layers;
pub use rl_minatar as minatar;
pub use rl_runner as runner;
pub use rl_tabular as tabular;
