//! What the three dynamic-programming agents share: the model check and
//! the config fields they all have.

use crate::table::Sizes;
use rl_agent::{EnvContext, Error, Result};

/// Sizes of the problem, or a clear refusal when there is no model to plan with.
pub fn planning_sizes(ctx: &EnvContext<'_>, agent: &str) -> Result<Sizes> {
    let Some(model) = ctx.model else {
        return Err(Error::Incompatible(format!(
            "agent '{agent}' plans with the environment's model (dynamic programming), and env '{}' has no model; learn from experience instead, e.g. with q-learning",
            ctx.env_id
        )));
    };
    let sizes = Sizes::of(ctx, agent)?;
    if model.n_states() != sizes.states || model.n_actions() != sizes.actions {
        return Err(Error::Incompatible(format!(
            "env '{}': its model has {} states and {} actions but its spaces have {} and {}",
            ctx.env_id,
            model.n_states(),
            model.n_actions(),
            sizes.states,
            sizes.actions
        )));
    }
    Ok(sizes)
}

/// Checks the stopping threshold and sweep cap.
pub fn check_stopping(theta: f64, max_sweeps: u64) -> Result<()> {
    if !(theta > 0.0 && theta.is_finite()) {
        return Err(Error::config(
            "theta",
            format!("{theta} must be a positive number"),
        ));
    }
    if max_sweeps == 0 {
        return Err(Error::config("max_sweeps", "must be at least 1"));
    }
    Ok(())
}

/// The numbers every sweep loop needs.
#[derive(Clone, Copy, Debug)]
pub struct Sweeping {
    /// Discount γ.
    pub gamma: f64,
    /// Stopping threshold θ.
    pub theta: f64,
    /// Cap on sweeps.
    pub max_sweeps: u64,
}

/// [`rl_agent::Policy`] for policy and value iteration, which both act
/// greedily from `self.greedy` and report `self.v`.
#[macro_export]
#[doc(hidden)]
macro_rules! greedy_policy {
    ($planner:ty) => {
        $crate::tabular_policy!($planner,
            act_greedy: |planner, obs| {
                let s = planner.sizes.state(obs)?;
                Ok(planner.sizes.action(planner.greedy[s].unwrap_or(0)))
            },
            tables: |planner| rl_agent::Tables {
                v: planner.v.clone(),
                q: None,
                policy: planner.greedy.clone(),
            });
    };
}
