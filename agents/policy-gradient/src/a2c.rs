//! A2C: synchronous advantage actor-critic (Mnih et al. 2016, the
//! synchronous variant of A3C, as OpenAI Baselines and SB3 run it):
//!
//! ```text
//! for each rollout of num_steps × num_envs transitions:
//!     act:    a ~ π_θ(·|s), keeping V(s)
//!     A_t:    GAE(λ); λ = 1 (the default) is the n-step return of the
//!             paper, R_t = r_t + γ r_{t+1} + … + γⁿ V(s_{t+n}), minus V(s_t);
//!             bootstrap through a time limit from the true final
//!             observation, never through a termination
//!     L = −mean(A · log π_θ(a|s)) − c_ent · mean H(π_θ(·|s))
//!         + c_V · mean((V_θ(s) − R)²)
//!     clip the global gradient norm to max_grad_norm; one optimiser step
//! ```
//!
//! Defaults are SB3's A2C (RMSProp with α 0.99 and ε 1e-5, learning rate
//! 7e-4, 5 steps per copy), with the paper's entropy coefficient 0.01.

use crate::net::NetworkConfig;
use crate::onpolicy::{
    LossGrads, OnPolicy, OnPolicyState, encode_optimizer, explained_variance, load_optimizer,
    normalize, read_state, write_state,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_agent::{Agent, EnvContext, Error, Policy, Result};
use rl_env::{Action, Observation};
use rl_layers::{LrSchedule, Optimizer, OptimizerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Hyperparameters of A2C.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct A2cConfig {
    /// Steps per env copy in each rollout (the n of n-step returns);
    /// default 5 (Mnih et al. 2016's t_max, SB3's n_steps). A rollout
    /// holds `num_steps × env.num_envs` transitions, at most 2²⁰.
    #[schemars(range(min = 1, max = 1_048_576))]
    pub num_steps: usize,
    /// Any of the layer crate's optimisers; default RMSProp with lr 7e-4,
    /// α 0.99 and ε 1e-5 (SB3's A2C).
    pub optimizer: OptimizerConfig,
    /// The learning rate over the run: `{"kind": "constant"}` (default) or
    /// `{"kind": "linear", "final_fraction": f}` over `budget.steps`
    /// (Baselines' `lrschedule='linear'` is f = 0).
    pub lr_schedule: LrSchedule,
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f32,
    /// GAE's λ; default 1, the paper's n-step returns.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gae_lambda: f32,
    /// Normalise the advantages of each rollout; default false.
    pub norm_adv: bool,
    /// Entropy bonus coefficient; default 0.01 (Mnih et al. 2016).
    #[schemars(range(min = 0.0))]
    pub ent_coef: f32,
    /// Value loss coefficient, on the mean squared error; default 0.5.
    #[schemars(range(min = 0.0))]
    pub vf_coef: f32,
    /// Global gradient-norm clip; default 0.5.
    #[schemars(range(min = 0.0))]
    pub max_grad_norm: f32,
    /// The network's layers; by default chosen from the observation's
    /// shape (the crate docs list them).
    pub network: NetworkConfig,
}

impl Default for A2cConfig {
    fn default() -> Self {
        A2cConfig {
            num_steps: 5,
            optimizer: OptimizerConfig::RmsProp {
                lr: 7e-4,
                alpha: 0.99,
                eps: 1e-5,
                centered: false,
            },
            lr_schedule: LrSchedule::Constant,
            gamma: 0.99,
            gae_lambda: 1.0,
            norm_adv: false,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            network: NetworkConfig::default(),
        }
    }
}

impl A2cConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self, num_envs: usize) -> Result<()> {
        crate::ppo::check_unit("gamma", self.gamma)?;
        crate::ppo::check_unit("gae_lambda", self.gae_lambda)?;
        crate::ppo::check_non_negative("ent_coef", self.ent_coef)?;
        crate::ppo::check_non_negative("vf_coef", self.vf_coef)?;
        crate::ppo::check_non_negative("max_grad_norm", self.max_grad_norm)?;
        crate::ppo::check_rollout(self.num_steps, num_envs)?;
        self.lr_schedule
            .validate()
            .map_err(|e| Error::config("lr_schedule", e.to_string()))?;
        self.optimizer
            .build()
            .map(drop)
            .map_err(|e| Error::config("optimizer", e.to_string()))
    }
}

/// The agent.
pub struct A2c {
    config: A2cConfig,
    /// Acting, the rollout and the network.
    on: OnPolicy,
    optimizer: Optimizer,
    /// Rollouts learned from.
    updates: u64,
    /// Rollouts in the whole run, for a schedule; `None` without a step budget.
    total_updates: Option<u64>,
    // Update buffers, reused.
    rows: Vec<usize>,
    actions: Vec<usize>,
    grads: LossGrads,
}

/// What `save` writes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct A2cState {
    format: String,
    updates: u64,
    on: OnPolicyState,
    /// The optimiser's state, safetensors, base64.
    optimizer: String,
}

const FORMAT: &str = "rl-lab a2c 1";

impl A2c {
    /// Builds the agent for an environment; every config error names its field.
    pub fn new(config: A2cConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate(ctx.num_envs.max(1))?;
        if config.lr_schedule != LrSchedule::Constant && ctx.total_steps.is_none() {
            return Err(Error::config(
                "lr_schedule",
                "a schedule runs over the run's budget.steps; give a step budget or keep it constant",
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let on = OnPolicy::new(&config.network, ctx, config.num_steps, "a2c", &mut rng)?;
        let optimizer = config
            .optimizer
            .build()
            .map_err(|e| Error::config("optimizer", e.to_string()))?;
        let rollout_len = on.rollout_len as u64;
        Ok(A2c {
            total_updates: ctx.total_steps.map(|steps| steps.div_ceil(rollout_len)),
            config,
            on,
            optimizer,
            updates: 0,
            rows: Vec::new(),
            actions: Vec::new(),
            grads: LossGrads::default(),
        })
    }

    /// Bytes the agent holds at most (see [`crate::net::memory_bytes`]).
    pub fn memory_bytes(config: &A2cConfig, ctx: &EnvContext<'_>) -> Result<u64> {
        config.validate(ctx.num_envs.max(1))?;
        let buffers = config.optimizer.state_names().len() as u64;
        crate::net::memory_bytes(&config.network, ctx, config.num_steps, buffers)
    }

    /// One gradient step on the whole rollout.
    fn learn(&mut self) -> Result<()> {
        let c = self.config.clone();
        self.on.advantages(c.gamma, c.gae_lambda)?;
        if let Some(updates) = self.total_updates {
            let lr =
                c.lr_schedule
                    .learning_rate(c.optimizer.learning_rate(), self.updates, updates);
            self.optimizer
                .set_learning_rate(lr)
                .map_err(|e| Error::config("optimizer", e.to_string()))?;
        }
        let n = self.on.rollout.len();
        let scale = 1.0 / n as f32;
        self.rows.clear();
        self.rows.extend(0..n);
        self.actions.clear();
        self.actions
            .extend(self.on.rollout.steps.iter().map(|s| s.action));
        let mut advantages = self.on.rollout.advantages.clone();
        if c.norm_adv {
            normalize(&mut advantages, |a| a);
        }
        self.on.forward_rows(&self.rows)?;
        self.grads.resize(n, self.on.net.actions());
        let values = self.on.net.values()?;
        let (mut policy_loss, mut value_loss, mut entropy) = (0.0f64, 0.0f64, 0.0f64);
        for t in 0..n {
            let action = self.actions[t];
            let log_prob = self.on.pi.log_prob(t, action);
            // −A · log π(a|s), A held constant.
            policy_loss -= f64::from(advantages[t] * log_prob * scale);
            self.grads.d_log_prob[t] = -advantages[t] * scale;
            self.grads.d_entropy[t] = -c.ent_coef * scale;
            entropy += f64::from(self.on.pi.entropy(t) * scale);
            // c_V (V − R)²
            let error = values[[t, 0]] - self.on.rollout.returns[t];
            value_loss += f64::from(error * error * scale);
            self.grads.d_values[[t, 0]] = c.vf_coef * 2.0 * error * scale;
        }
        self.grads.apply(
            &mut self.on,
            &mut self.optimizer,
            &self.actions,
            c.max_grad_norm,
        )?;
        self.updates += 1;
        self.on.check_finite(self.updates)?;
        let explained = explained_variance(&self.on.rollout);
        self.on.scalars.extend([
            ("train/policy_loss", policy_loss),
            ("train/value_loss", value_loss),
            ("train/entropy", entropy),
            ("train/explained_variance", explained),
            (
                "train/learning_rate",
                f64::from(self.optimizer.learning_rate()),
            ),
        ]);
        Ok(())
    }
}

impl Agent for A2c {
    crate::on_policy_agent!();
}

impl Policy for A2c {
    /// The most probable action.
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action> {
        self.on.act_greedy(obs)
    }

    fn save(&self) -> Result<Value> {
        let state = A2cState {
            format: FORMAT.into(),
            updates: self.updates,
            on: self.on.save()?,
            optimizer: encode_optimizer(&self.optimizer)?,
        };
        write_state(&state)
    }

    fn load(&mut self, state: &Value) -> Result<()> {
        let state: A2cState = read_state(state, "A2C", FORMAT)?;
        self.on.load(&state.on)?;
        load_optimizer(&mut self.optimizer, &state.optimizer)?;
        self.updates = state.updates;
        Ok(())
    }
}
