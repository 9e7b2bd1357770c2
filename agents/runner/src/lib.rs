//! The rl-lab run engine: the run spec, the registries of environments
//! and agents, and the one training loop that the CLI and the server share.
#![warn(missing_docs)]

pub mod agents;
pub mod bench;
pub mod catalog;
pub mod envs;
mod error;
pub mod folder;
pub mod memory;
pub mod recording;
pub mod run;
pub mod saved;
pub mod seeds;
pub mod spec;
mod status;
pub mod sweep;
#[cfg(feature = "test-agents")]
pub mod test_agents;
pub mod train;

pub use envs::EnvPlugin;
pub use error::{Error, Result};
pub use folder::RunFolder;
pub use memory::MemoryEstimate;
pub use run::{Engine, PreparedRun, Summary};
pub use spec::{Budget, RunSpec};
pub use status::{RunStatus, UnknownStatus};
pub use train::{CancelFlag, CarriedState, Counters, Progress};
