//! DQN (Mnih et al. 2015) on the rl-layers crate: a Q-network described as
//! data, experience replay that stores each frame once, a target network,
//! Huber loss and ε-greedy exploration, with MinAtar's published setup
//! (Young & Tian 2019, `examples/dqn.py`) as the defaults.
//!
//! | module | contents |
//! |---|---|
//! | [`dqn`] | the config, the update (the Bellman target is written above the code that computes it) and the act step |
//! | [`network`] | the Q-network: the MinAtar and Nature networks, default architectures by observation type, the dueling head |
//! | [`replay`] | the ring buffer: frames stored once, true final observations, n-step targets |
//! | [`encode`] | observations as network input and as compact stored frames (bits for MinAtar) |
//! | [`bench`](mod@bench) | `rl-lab bench nets`: the agent's update timed on the MinAtar and Nature networks |
//!
//! Reward clipping is not the agent's business: it is the `clip_reward`
//! env wrapper, listed after `episode_statistics` so that logged returns
//! are the true game score.
//!
//! ```
//! use rl_agent::{Agent, EnvContext, Transition};
//! use rl_env::{Action, Observation, Space};
//! let obs_space = Space::discrete(3);
//! let act_space = Space::discrete(2);
//! let ctx = EnvContext { observation_space: &obs_space, action_space: &act_space, model: None, env_id: "doc", num_envs: 1, total_steps: None };
//! let config: rl_dqn::DqnConfig = serde_json::from_str(
//!     r#"{"learning_starts": 4, "batch_size": 4, "replay": {"capacity": 64}}"#).unwrap();
//! let mut agent = rl_dqn::Dqn::new(config, &ctx, 0).unwrap();
//! for step in 0..16 {
//!     let obs = Observation::Discrete(step % 3);
//!     let action = agent.act(0, &obs).unwrap();
//!     let next = Observation::Discrete((step + 1) % 3);
//!     agent.observe(&Transition { lane: 0, obs: &obs, action: &action, reward: 1.0, next_obs: &next,
//!                                 terminated: false, truncated: step % 5 == 4 }).unwrap();
//! }
//! assert_eq!(agent.updates(), 12);
//! // A Discrete(3) state is stored as its index: 4 bytes, plus action, reward and flags.
//! assert_eq!(agent.replay().bytes_per_transition(), 4 + 2 + 4 + 1);
//! ```
#![warn(missing_docs)]

pub mod bench;
pub mod dqn;
pub use rl_agent::encode;
pub mod network;
pub mod replay;

pub use dqn::{
    Dqn, DqnConfig, DqnUpdate, GradClip, NetworkSpec, ReplayConfig, StepOutcome, TdLoss,
};

use rl_agent::AgentRegistry;

/// Adds `dqn` to `registry`.
pub fn register(registry: &mut AgentRegistry) {
    registry.learner(
        "dqn",
        "DQN: replay, target network, Huber loss, ε-greedy; MinAtar's defaults (Mnih et al. 2015; Young & Tian 2019)",
        Dqn::new,
    );
    registry.estimate_memory("dqn", Dqn::memory_bytes);
}
