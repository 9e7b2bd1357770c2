//! A configurable gridworld with the textbook MDPs and their exact models.
//!
//! A map is an array of strings (`#` wall, `.` floor, `S` start, `G` goal,
//! `H` hole, other letters defined in `cells`); options add king moves,
//! wind, slip, jumps and cliffs. Every configuration has an exact
//! [`rl_env::Model`], so dynamic programming and sampling agree.
//!
//! ```
//! use rl_env::{Env, Action};
//! let registry = {
//!     let mut r = rl_env::Registry::new();
//!     rl_gridworld::register(&mut r);
//!     r
//! };
//! let mut env = registry.make("gridworld/cliff-walking", &serde_json::Value::Null).unwrap();
//! let (obs, _) = env.reset(Some(0)).unwrap();
//! assert_eq!(obs.as_index(), Some(36));
//! let step = env.step(&Action::Discrete(1)).unwrap(); // right, into the cliff
//! assert_eq!((step.obs.as_index(), step.reward, step.terminated), (Some(36), -100.0, false));
//! ```
#![warn(missing_docs)]

pub mod config;
mod grid;
pub mod presets;

pub use config::{CellSpec, GridConfig, Jump, Moves, ObservationKind};
pub use grid::Gridworld;
pub use presets::{build, register};
