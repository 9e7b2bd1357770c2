//! REINFORCE (Williams 1992), with an optional learned baseline (Sutton &
//! Barto 2018, §13.3–13.4):
//!
//! ```text
//! play until episodes_per_update episodes have ended (over every env copy):
//!     a ~ π_θ(·|s) at every step
//! for each step t of those episodes:
//!     G_t = r_t + γ r_{t+1} + … to the episode's end; after a time limit,
//!           + γᵏ V(s_end) of the true final observation when a baseline
//!           is learned (the cut future still counts), nothing without one
//!     δ_t = G_t − V(s_t) with a baseline, G_t without one
//! L = −mean(δ · log π_θ(a|s)) − c_ent · mean H(π_θ(·|s))
//!     + c_V · mean((V_θ(s) − G)²)            (with a baseline only)
//! clip the global gradient norm to max_grad_norm; one optimiser step
//! ```
//!
//! As in Williams' paper and most implementations, the `γᵗ` factor of Sutton
//! & Barto's pseudocode is left out: every step of an episode weighs the
//! same. Steps of episodes still running wait for the next update.
//!
//! The network is the crate's actor-critic one; on one-hot (tabular) and
//! vector observations its default heads are two separate 64-64 tanh
//! networks, so the baseline shares nothing with the policy.

use crate::net::NetworkConfig;
use crate::onpolicy::{
    LossGrads, OnPolicy, OnPolicyState, encode_optimizer, explained_variance, load_optimizer,
    normalize, read_state, write_state,
};
use crate::rollout::Rollout;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_agent::{Agent, EnvContext, Error, Policy, Result, Transition};
use rl_env::{Action, Observation};
use rl_layers::{Optimizer, OptimizerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Hyperparameters of REINFORCE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReinforceConfig {
    /// Whole episodes per update, counted over every env copy; default 1
    /// (Williams 1992, Sutton & Barto's pseudocode).
    #[schemars(range(min = 1, max = 1_000_000))]
    pub episodes_per_update: usize,
    /// Learn a state-value baseline and subtract it from the returns
    /// (Sutton & Barto §13.4); default true.
    pub baseline: bool,
    /// Any of the layer crate's optimisers; default Adam with lr 1e-3.
    pub optimizer: OptimizerConfig,
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f32,
    /// Normalise δ over each update's steps; default false.
    pub norm_adv: bool,
    /// Entropy bonus coefficient; default 0 (none in the paper).
    #[schemars(range(min = 0.0))]
    pub ent_coef: f32,
    /// Baseline loss coefficient, on the mean squared error; default 0.5.
    #[schemars(range(min = 0.0))]
    pub vf_coef: f32,
    /// Global gradient-norm clip; default 0.5.
    #[schemars(range(min = 0.0))]
    pub max_grad_norm: f32,
    /// Most steps an update may wait for, over every copy; default 65,536.
    /// Monte Carlo needs whole episodes, so an env whose episodes outrun
    /// this fails the run with an error saying so (give it a time limit).
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_batch_steps: usize,
    /// The network's layers; by default chosen from the observation's
    /// shape (the crate docs list them).
    pub network: NetworkConfig,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        ReinforceConfig {
            episodes_per_update: 1,
            baseline: true,
            optimizer: OptimizerConfig::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            gamma: 0.99,
            norm_adv: false,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            max_batch_steps: 65_536,
            network: NetworkConfig::default(),
        }
    }
}

impl ReinforceConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        crate::ppo::check_unit("gamma", self.gamma)?;
        crate::ppo::check_non_negative("ent_coef", self.ent_coef)?;
        crate::ppo::check_non_negative("vf_coef", self.vf_coef)?;
        crate::ppo::check_non_negative("max_grad_norm", self.max_grad_norm)?;
        if !(1..=1_000_000).contains(&self.episodes_per_update) {
            return Err(Error::config(
                "episodes_per_update",
                format!("{} is not between 1 and 1000000", self.episodes_per_update),
            ));
        }
        crate::ppo::check_rollout(self.max_batch_steps, 1)
            .map_err(|_| {
                Error::config(
                    "max_batch_steps",
                    format!(
                        "{} is not between 1 and {}",
                        self.max_batch_steps,
                        crate::ppo::MAX_ROLLOUT
                    ),
                )
            })
            .map(drop)?;
        self.optimizer
            .build()
            .map(drop)
            .map_err(|e| Error::config("optimizer", e.to_string()))
    }
}

/// The agent.
pub struct Reinforce {
    config: ReinforceConfig,
    /// Acting, the stored steps and the network.
    on: OnPolicy,
    optimizer: Optimizer,
    /// Episodes ended since the last update.
    episodes: usize,
    /// Updates made.
    updates: u64,
    /// Steps of running episodes, set aside during an update.
    unfinished: Rollout,
    // Update buffers, reused.
    rows: Vec<usize>,
    actions: Vec<usize>,
    grads: LossGrads,
}

/// What `save` writes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReinforceState {
    format: String,
    updates: u64,
    episodes: usize,
    on: OnPolicyState,
    /// The optimiser's state, safetensors, base64.
    optimizer: String,
}

const FORMAT: &str = "rl-lab reinforce 1";

impl Reinforce {
    /// Builds the agent for an environment; every config error names its field.
    pub fn new(config: ReinforceConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let on = OnPolicy::new(&config.network, ctx, 1, "reinforce", &mut rng)?;
        let optimizer = config
            .optimizer
            .build()
            .map_err(|e| Error::config("optimizer", e.to_string()))?;
        let unfinished = Rollout::new(on.net.input_len(), 0);
        Ok(Reinforce {
            config,
            on,
            optimizer,
            episodes: 0,
            updates: 0,
            unfinished,
            rows: Vec::new(),
            actions: Vec::new(),
            grads: LossGrads::default(),
        })
    }

    /// Bytes the agent holds at most: an update of `max_batch_steps` rows
    /// (see [`crate::net::memory_bytes`]).
    pub fn memory_bytes(config: &ReinforceConfig, ctx: &EnvContext<'_>) -> Result<u64> {
        config.validate()?;
        let buffers = config.optimizer.state_names().len() as u64;
        let one_copy = EnvContext {
            num_envs: 1,
            ..*ctx
        };
        crate::net::memory_bytes(&config.network, &one_copy, config.max_batch_steps, buffers)
    }

    /// One gradient step on every whole episode stored.
    fn learn(&mut self) -> Result<()> {
        let c = self.config.clone();
        let lanes = self.on.num_envs;
        self.on
            .rollout
            .split_off_unfinished(lanes, &mut self.unfinished);
        // λ = 1: δ_t = G_t − V(s_t), G_t bootstrapped only from the true
        // final observation of a time limit's cut.
        if c.baseline {
            self.on.advantages(c.gamma, 1.0)?;
        } else {
            for step in &mut self.on.rollout.steps {
                step.value = 0.0;
            }
            let none = vec![0.0; self.on.rollout.bootstrap_of.len()];
            self.on.rollout.advantages(c.gamma, 1.0, &none, lanes);
        }
        let n = self.on.rollout.len();
        let scale = 1.0 / n as f32;
        self.rows.clear();
        self.rows.extend(0..n);
        self.actions.clear();
        self.actions
            .extend(self.on.rollout.steps.iter().map(|s| s.action));
        let mut deltas = self.on.rollout.advantages.clone();
        if c.norm_adv {
            normalize(&mut deltas, |d| d);
        }
        self.on.forward_rows(&self.rows)?;
        self.grads.resize(n, self.on.net.actions());
        let values = self.on.net.values()?;
        let (mut policy_loss, mut value_loss, mut entropy) = (0.0f64, 0.0f64, 0.0f64);
        for t in 0..n {
            let log_prob = self.on.pi.log_prob(t, self.actions[t]);
            // −δ · log π(a|s), δ held constant.
            policy_loss -= f64::from(deltas[t] * log_prob * scale);
            self.grads.d_log_prob[t] = -deltas[t] * scale;
            self.grads.d_entropy[t] = -c.ent_coef * scale;
            entropy += f64::from(self.on.pi.entropy(t) * scale);
            self.grads.d_values[[t, 0]] = if c.baseline {
                // c_V (V − G)²
                let error = values[[t, 0]] - self.on.rollout.returns[t];
                value_loss += f64::from(error * error * scale);
                c.vf_coef * 2.0 * error * scale
            } else {
                0.0
            };
        }
        self.grads.apply(
            &mut self.on,
            &mut self.optimizer,
            &self.actions,
            c.max_grad_norm,
        )?;
        self.updates += 1;
        self.on.check_finite(self.updates)?;
        self.on.scalars.extend([
            ("train/policy_loss", policy_loss),
            ("train/entropy", entropy),
            ("train/update_steps", n as f64),
        ]);
        if c.baseline {
            let explained = explained_variance(&self.on.rollout);
            self.on.scalars.extend([
                ("train/value_loss", value_loss),
                ("train/explained_variance", explained),
            ]);
        }
        self.on.rollout.clear();
        self.on.rollout.append(&mut self.unfinished);
        self.episodes = 0;
        Ok(())
    }
}

impl Agent for Reinforce {
    crate::on_policy_agent!(acting);

    /// Stores the step of every lane; learns once enough episodes ended.
    fn observe_batch(&mut self, transitions: &[Transition<'_>]) -> Result<()> {
        self.on.push(transitions)?;
        self.episodes += transitions.iter().filter(|t| t.done()).count();
        if self.episodes >= self.config.episodes_per_update {
            return self.learn();
        }
        if self.on.rollout.len() >= self.config.max_batch_steps {
            return Err(Error::Incompatible(format!(
                "reinforce: {} steps stored and {} of {} episodes ended; \
                 Monte Carlo returns need whole episodes: raise max_batch_steps or give the env a time limit",
                self.on.rollout.len(),
                self.episodes,
                self.config.episodes_per_update
            )));
        }
        Ok(())
    }
}

impl Policy for Reinforce {
    /// The most probable action.
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action> {
        self.on.act_greedy(obs)
    }

    fn save(&self) -> Result<Value> {
        let state = ReinforceState {
            format: FORMAT.into(),
            updates: self.updates,
            episodes: self.episodes,
            on: self.on.save()?,
            optimizer: encode_optimizer(&self.optimizer)?,
        };
        write_state(&state)
    }

    fn load(&mut self, state: &Value) -> Result<()> {
        let state: ReinforceState = read_state(state, "REINFORCE", FORMAT)?;
        self.on.load(&state.on)?;
        load_optimizer(&mut self.optimizer, &state.optimizer)?;
        self.updates = state.updates;
        self.episodes = state.episodes;
        Ok(())
    }
}
