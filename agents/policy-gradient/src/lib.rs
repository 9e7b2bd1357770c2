//! Policy-gradient agents on the rl-layers crate.
//!
//! | module | what |
//! |---|---|
//! | [`ac_lambda`] | MinAtar's online actor-critic with eligibility traces, AC(λ) (Young & Tian 2019) |
//! | [`a2c`] | synchronous advantage actor-critic (Mnih et al. 2016), SB3's defaults |
//! | [`reinforce`] | REINFORCE (Williams 1992) with an optional learned baseline |
//! | [`ppo`] | PPO with the clipped surrogate (Schulman et al. 2017), CleanRL's defaults |
//! | [`rollout`] | an on-policy rollout over the loop's env copies, and GAE(λ) |
//! | [`net`] | the actor-critic network: a shared torso, a policy head and a value head |
//! | [`onpolicy`] | what the on-policy agents share: acting on every env copy at once, storing the rollout, saving |
//!
//! Every agent but AC(λ) collects experience from `env.num_envs` copies at
//! once through the loop's batched [`rl_agent::Agent::act_batch`] and
//! [`rl_agent::Agent::observe_batch`]; AC(λ) learns online, one copy's step
//! at a time.
#![warn(missing_docs)]

pub mod a2c;
pub mod ac_lambda;
pub mod net;
pub mod onpolicy;
pub mod ppo;
pub mod reinforce;
pub mod rollout;

pub use a2c::{A2c, A2cConfig};
pub use ac_lambda::{AcLambda, AcLambdaConfig};
pub use ppo::{Ppo, PpoConfig};
pub use reinforce::{Reinforce, ReinforceConfig};

use rl_agent::AgentRegistry;

/// Adds the policy-gradient agents to `registry`.
pub fn register(registry: &mut AgentRegistry) {
    registry.learner(
        "ppo",
        "PPO: clipped surrogate, GAE, minibatch epochs, Adam; CleanRL's defaults (Schulman et al. 2017)",
        Ppo::new,
    );
    registry.estimate_memory("ppo", Ppo::memory_bytes);
    registry.learner(
        "a2c",
        "A2C: synchronous advantage actor-critic, n-step returns or GAE, RMSProp; SB3's defaults (Mnih et al. 2016)",
        A2c::new,
    );
    registry.estimate_memory("a2c", A2c::memory_bytes);
    registry.learner(
        "reinforce",
        "REINFORCE: Monte Carlo policy gradient over whole episodes, optional learned baseline (Williams 1992; Sutton & Barto §13.3-13.4)",
        Reinforce::new,
    );
    registry.estimate_memory("reinforce", Reinforce::memory_bytes);
    registry.learner(
        "ac-lambda",
        "AC(λ): MinAtar's online actor-critic with eligibility traces, one RMSProp-sized trace update per step; the paper's defaults (Young & Tian 2019)",
        AcLambda::new,
    );
    registry.estimate_memory("ac-lambda", AcLambda::memory_bytes);
}
