//! PPO (Schulman et al. 2017), clipped surrogate, with the details that
//! matter (Huang et al. 2022, "The 37 implementation details of PPO"):
//!
//! ```text
//! for each rollout of num_steps × num_envs transitions:
//!     act:     a ~ π_θ(·|s), keeping log π_old(a|s) and V_old(s)
//!     GAE(λ):  A_t over each copy's steps; bootstrap through a time
//!              limit from the true final observation, never through a
//!              termination; R_t = A_t + V_old(s_t)
//!     anneal:  lr ← lr₀ · (1 − update / updates)
//!     for update_epochs epochs, for num_minibatches shuffled minibatches:
//!         Â = (A − mean A) / (std A + 1e-8)            (per minibatch)
//!         ρ = exp(log π_θ(a|s) − log π_old(a|s))
//!         L_clip = mean(max(−Â ρ, −Â clip(ρ, 1 − ε, 1 + ε)))
//!         L_V = ½ mean(max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²))
//!         L = L_clip − c_ent · mean H(π_θ(·|s)) + c_V · L_V
//!         clip the global gradient norm to max_grad_norm; Adam step
//! ```
//!
//! Defaults are CleanRL's `ppo.py` (CartPole); `examples/` gives MinAtar's.

use crate::net::NetworkConfig;
use crate::onpolicy::{
    LossGrads, OnPolicy, OnPolicyState, encode_optimizer, explained_variance, load_optimizer,
    normalize, read_state, write_state,
};
use ndarray::ArrayView2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::{Agent, EnvContext, Error, Policy, Result};
use rl_env::{Action, Observation};
use rl_layers::{Categorical, LrSchedule, Optimizer, OptimizerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Hyperparameters of PPO; every default is CleanRL's `ppo.py`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Steps per env copy in each rollout; default 128. A rollout holds
    /// `num_steps × env.num_envs` transitions, at most 2²⁰.
    #[schemars(range(min = 1, max = 1_048_576))]
    pub num_steps: usize,
    /// Adam's learning rate; default 2.5e-4.
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub learning_rate: f32,
    /// Anneal the learning rate linearly towards 0 over the run's
    /// `budget.steps`: `true`, `false`, or `"auto"` (default), which anneals
    /// under a step budget (CleanRL's `anneal_lr`) and not under an episode
    /// budget, which gives no horizon to anneal over; `true` with an
    /// episode budget is refused.
    pub anneal_lr: AnnealLr,
    /// Adam's ε; default 1e-5 (CleanRL's and Baselines', not PyTorch's 1e-8).
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub adam_eps: f32,
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f32,
    /// GAE's λ; default 0.95.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gae_lambda: f32,
    /// Minibatches per epoch; default 4. Each holds at least one
    /// transition, so a rollout shorter than this makes fewer.
    #[schemars(range(min = 1, max = 1_048_576))]
    pub num_minibatches: usize,
    /// Passes over each rollout; default 4.
    #[schemars(range(min = 1, max = 1000))]
    pub update_epochs: usize,
    /// Normalise the advantages in each minibatch; default true.
    pub norm_adv: bool,
    /// The surrogate's clip ε; default 0.2.
    #[schemars(range(min = 0.0))]
    pub clip_coef: f32,
    /// Clip the value loss around the old values with the same ε; default
    /// true.
    pub clip_vloss: bool,
    /// Entropy bonus coefficient; default 0.01.
    #[schemars(range(min = 0.0))]
    pub ent_coef: f32,
    /// Value loss coefficient; default 0.5.
    #[schemars(range(min = 0.0))]
    pub vf_coef: f32,
    /// Global gradient-norm clip; default 0.5.
    #[schemars(range(min = 0.0))]
    pub max_grad_norm: f32,
    /// The network's layers; by default chosen from the observation's
    /// shape (the crate docs list them).
    pub network: NetworkConfig,
}

/// [`PpoConfig::anneal_lr`]: a yes or no, or `"auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AnnealLr {
    /// Anneal, or not.
    Set(bool),
    /// By the budget's kind.
    Auto(Auto),
}

/// The one word of [`AnnealLr::Auto`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Auto {
    /// `"auto"`.
    Auto,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            num_steps: 128,
            learning_rate: 2.5e-4,
            anneal_lr: AnnealLr::Auto(Auto::Auto),
            adam_eps: 1e-5,
            gamma: 0.99,
            gae_lambda: 0.95,
            num_minibatches: 4,
            update_epochs: 4,
            norm_adv: true,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            network: NetworkConfig::default(),
        }
    }
}

/// The most transitions one rollout may hold: the update's buffers are
/// that many rows of the network's input.
pub const MAX_ROLLOUT: usize = 1 << 20;

impl PpoConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self, num_envs: usize) -> Result<()> {
        check_unit("gamma", self.gamma)?;
        check_unit("gae_lambda", self.gae_lambda)?;
        check_non_negative("clip_coef", self.clip_coef)?;
        check_non_negative("ent_coef", self.ent_coef)?;
        check_non_negative("vf_coef", self.vf_coef)?;
        check_non_negative("max_grad_norm", self.max_grad_norm)?;
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(Error::config(
                "learning_rate",
                format!("{} is not in (0, 1]", self.learning_rate),
            ));
        }
        if !(self.adam_eps.is_finite() && self.adam_eps > 0.0) {
            return Err(Error::config(
                "adam_eps",
                format!("{} is not a positive number", self.adam_eps),
            ));
        }
        check_rollout(self.num_steps, num_envs)?;
        for (name, value, most) in [
            ("num_minibatches", self.num_minibatches, MAX_ROLLOUT),
            ("update_epochs", self.update_epochs, 1000),
        ] {
            if !(1..=most).contains(&value) {
                return Err(Error::config(
                    name,
                    format!("{value} is not between 1 and {most}"),
                ));
            }
        }
        Ok(())
    }
}

/// `value` in [0, 1], or an error naming `name`.
pub(crate) fn check_unit(name: &str, value: f32) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::config(name, format!("{value} is not in [0, 1]")))
    }
}

/// `value` finite and ≥ 0, or an error naming `name`.
pub(crate) fn check_non_negative(name: &str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            name,
            format!("{value} is not a finite number ≥ 0"),
        ))
    }
}

/// `num_steps` per copy of `num_envs` copies makes a rollout of at most
/// [`MAX_ROLLOUT`] transitions; returns its length.
pub(crate) fn check_rollout(num_steps: usize, num_envs: usize) -> Result<usize> {
    if !(1..=MAX_ROLLOUT).contains(&num_steps) {
        return Err(Error::config(
            "num_steps",
            format!("{num_steps} is not between 1 and {MAX_ROLLOUT}"),
        ));
    }
    let rollout = num_steps.saturating_mul(num_envs);
    if rollout > MAX_ROLLOUT {
        return Err(Error::config(
            "num_steps",
            format!(
                "{num_steps} steps × {num_envs} env copies is a rollout of {rollout} transitions, more than the most, {MAX_ROLLOUT}"
            ),
        ));
    }
    Ok(rollout)
}

/// Running sums of an update's metrics.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    policy_loss: f64,
    value_loss: f64,
    entropy: f64,
    approx_kl: f64,
    clip_fraction: f64,
    minibatches: u64,
}

/// The agent.
pub struct Ppo {
    config: PpoConfig,
    /// Whether the learning rate anneals (see [`PpoConfig::anneal_lr`]).
    anneal: bool,
    /// Acting, the rollout and the network.
    on: OnPolicy,
    optimizer: Optimizer,
    /// Shuffles the minibatches.
    shuffle_rng: ChaCha8Rng,
    /// Rollouts learned from.
    updates: u64,
    /// Rollouts in the whole run, for the annealing; `None` without a step budget.
    total_updates: Option<u64>,
    // Update buffers, reused.
    order: Vec<usize>,
    samples: Vec<Sample>,
    minibatch_actions: Vec<usize>,
    grads: LossGrads,
}

/// What `save` writes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PpoState {
    format: String,
    updates: u64,
    on: OnPolicyState,
    shuffle_rng: ChaCha8Rng,
    /// Adam's moments, safetensors, base64.
    optimizer: String,
}

const FORMAT: &str = "rl-lab ppo 1";

impl Ppo {
    /// Builds the agent for an environment; every config error names its field.
    pub fn new(config: PpoConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        let num_envs = ctx.num_envs.max(1);
        config.validate(num_envs)?;
        let anneal = match (config.anneal_lr, ctx.total_steps) {
            (AnnealLr::Set(true), None) => {
                return Err(Error::config(
                    "anneal_lr",
                    "annealing runs over the run's budget.steps, and this run's budget counts episodes",
                ));
            }
            (AnnealLr::Set(anneal), _) => anneal,
            (AnnealLr::Auto(_), steps) => steps.is_some(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let on = OnPolicy::new(&config.network, ctx, config.num_steps, "ppo", &mut rng)?;
        let optimizer = OptimizerConfig::Adam {
            lr: config.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: config.adam_eps,
        }
        .build()
        .map_err(|e| Error::config("learning_rate", e.to_string()))?;
        let rollout_len = on.rollout_len as u64;
        Ok(Ppo {
            total_updates: ctx.total_steps.map(|steps| steps.div_ceil(rollout_len)),
            shuffle_rng: ChaCha8Rng::seed_from_u64(rng.random()),
            config,
            anneal,
            on,
            optimizer,
            updates: 0,
            order: Vec::new(),
            samples: Vec::new(),
            minibatch_actions: Vec::new(),
            grads: LossGrads::default(),
        })
    }

    /// Bytes the agent holds at most, planned without building anything:
    /// the rollout and the network input of a whole rollout (an update's
    /// minibatch is at most that), the network's weights, gradients and
    /// Adam's two moments, and a forward pass's activations and their
    /// gradients for a rollout's rows.
    pub fn memory_bytes(config: &PpoConfig, ctx: &EnvContext<'_>) -> Result<u64> {
        config.validate(ctx.num_envs.max(1))?;
        crate::net::memory_bytes(&config.network, ctx, config.num_steps, 4)
    }

    // -----------------------------------------------------------------------
    // The update
    // -----------------------------------------------------------------------

    /// Learns from the full rollout.
    fn learn(&mut self) -> Result<()> {
        let c = self.config.clone();
        // GAE(λ), bootstrapping where the module docs say.
        self.on.advantages(c.gamma, c.gae_lambda)?;

        // lr ← lr₀ · (1 − update / updates)
        if self.anneal {
            let lr = LrSchedule::Linear {
                final_fraction: 0.0,
            }
            .learning_rate(
                c.learning_rate,
                self.updates,
                self.total_updates.unwrap_or(1),
            );
            self.optimizer
                .set_learning_rate(lr)
                .map_err(|e| Error::config("learning_rate", e.to_string()))?;
        }

        let n = self.on.rollout.len();
        let mut stats = Stats::default();
        self.order.clear();
        self.order.extend(0..n);
        for _epoch in 0..c.update_epochs {
            // Fisher–Yates with the agent's own stream.
            for i in (1..n).rev() {
                let j = self.shuffle_rng.random_range(0..=i);
                self.order.swap(i, j);
            }
            let minibatches = c.num_minibatches.min(n);
            for m in 0..minibatches {
                let (from, to) = (m * n / minibatches, (m + 1) * n / minibatches);
                self.minibatch(from, to, &mut stats)?;
            }
        }
        self.updates += 1;
        self.on.check_finite(self.updates)?;
        let per = stats.minibatches.max(1) as f64;
        let explained = explained_variance(&self.on.rollout);
        self.on.scalars.extend([
            ("train/policy_loss", stats.policy_loss / per),
            ("train/value_loss", stats.value_loss / per),
            ("train/entropy", stats.entropy / per),
            ("train/approx_kl", stats.approx_kl / per),
            ("train/clip_fraction", stats.clip_fraction / per),
            ("train/explained_variance", explained),
            (
                "train/learning_rate",
                f64::from(self.optimizer.learning_rate()),
            ),
        ]);
        Ok(())
    }

    /// One gradient step on the rollout rows `order[from..to]`.
    fn minibatch(&mut self, from: usize, to: usize, stats: &mut Stats) -> Result<()> {
        let rows = to - from;
        let rollout = &self.on.rollout;
        // Â: the minibatch's advantages, normalised.
        self.samples.clear();
        self.minibatch_actions.clear();
        for &i in &self.order[from..to] {
            let step = rollout.steps[i];
            self.samples.push(Sample {
                action: step.action,
                old_log_prob: step.log_prob,
                old_value: step.value,
                advantage: rollout.advantages[i],
                target: rollout.returns[i],
            });
            self.minibatch_actions.push(step.action);
        }
        if self.config.norm_adv {
            normalize(&mut self.samples, |s| &mut s.advantage);
        }
        self.on.forward_rows(&self.order[from..to])?;
        self.grads.resize(rows, self.on.net.actions());
        loss(
            &self.config,
            &self.on.pi,
            self.on.net.values()?,
            &self.samples,
            Grads {
                log_prob: self.grads.d_log_prob.as_slice_mut().expect("contiguous"),
                entropy: self.grads.d_entropy.as_slice_mut().expect("contiguous"),
                values: self.grads.d_values.as_slice_mut().expect("contiguous"),
            },
            stats,
        );
        self.grads.apply(
            &mut self.on,
            &mut self.optimizer,
            &self.minibatch_actions,
            self.config.max_grad_norm,
        )?;
        stats.minibatches += 1;
        Ok(())
    }
}

/// One row of a minibatch, as the loss sees it.
#[derive(Clone, Copy, Debug)]
struct Sample {
    action: usize,
    old_log_prob: f32,
    old_value: f32,
    /// Â, normalised if the config says so.
    advantage: f32,
    /// The value target R.
    target: f32,
}

/// Where [`loss`] writes its gradients, one entry per row.
struct Grads<'a> {
    /// ∂L/∂ log π(a|s).
    log_prob: &'a mut [f32],
    /// ∂L/∂ H(π(·|s)).
    entropy: &'a mut [f32],
    /// ∂L/∂ V(s).
    values: &'a mut [f32],
}

/// The minibatch loss `L = L_clip − c_ent · mean H + c_V · L_V` of the
/// module docs, for the policy `pi` and the values `values` (`[rows, 1]`)
/// of the rows `samples`; writes its gradients into `grads` and adds the
/// parts to `stats`.
fn loss(
    c: &PpoConfig,
    pi: &Categorical,
    values: ArrayView2<'_, f32>,
    samples: &[Sample],
    grads: Grads<'_>,
    stats: &mut Stats,
) -> f32 {
    let scale = 1.0 / samples.len() as f32;
    let (lo, hi) = (1.0 - c.clip_coef, 1.0 + c.clip_coef);
    let mut total = 0.0;
    for (row, sample) in samples.iter().enumerate() {
        let a_hat = sample.advantage;
        let log_ratio = pi.log_prob(row, sample.action) - sample.old_log_prob;
        let ratio = log_ratio.exp();
        // max(−Â ρ, −Â clip(ρ)): the clipped term's gradient is 0 where it
        // is the larger, else the surrogate's −Â ρ.
        let unclipped = -a_hat * ratio;
        let clipped = -a_hat * ratio.clamp(lo, hi);
        let policy = unclipped.max(clipped);
        grads.log_prob[row] = if unclipped >= clipped {
            -a_hat * ratio * scale
        } else {
            0.0
        };
        let entropy = pi.entropy(row);
        grads.entropy[row] = -c.ent_coef * scale;
        // http://joschu.net/blog/kl-approx.html: (ρ − 1) − log ρ
        stats.approx_kl += f64::from(((ratio - 1.0) - log_ratio) * scale);
        if (ratio - 1.0).abs() > c.clip_coef {
            stats.clip_fraction += f64::from(scale);
        }

        // ½ max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²), or the plain
        // ½ (V − R)².
        let v = values[[row, 0]];
        let target = sample.target;
        let plain = (v - target).powi(2);
        let (squared, d_v) = if c.clip_vloss {
            let delta = v - sample.old_value;
            let v_clipped = sample.old_value + delta.clamp(-c.clip_coef, c.clip_coef);
            let clipped = (v_clipped - target).powi(2);
            if plain >= clipped {
                (plain, v - target)
            } else if delta.abs() < c.clip_coef {
                (clipped, v_clipped - target)
            } else {
                (clipped, 0.0)
            }
        } else {
            (plain, v - target)
        };
        grads.values[row] = c.vf_coef * d_v * scale;

        stats.policy_loss += f64::from(policy * scale);
        stats.entropy += f64::from(entropy * scale);
        stats.value_loss += f64::from(0.5 * squared * scale);
        total += (policy - c.ent_coef * entropy + c.vf_coef * 0.5 * squared) * scale;
    }
    total
}

impl Agent for Ppo {
    crate::on_policy_agent!();
}

impl Policy for Ppo {
    /// The most probable action.
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action> {
        self.on.act_greedy(obs)
    }

    fn save(&self) -> Result<Value> {
        let state = PpoState {
            format: FORMAT.into(),
            updates: self.updates,
            on: self.on.save()?,
            shuffle_rng: self.shuffle_rng.clone(),
            optimizer: encode_optimizer(&self.optimizer)?,
        };
        write_state(&state)
    }

    fn load(&mut self, state: &Value) -> Result<()> {
        let state: PpoState = read_state(state, "PPO", FORMAT)?;
        self.on.load(&state.on)?;
        load_optimizer(&mut self.optimizer, &state.optimizer)?;
        self.updates = state.updates;
        self.shuffle_rng = state.shuffle_rng;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// The loss of `samples` at `logits` and `values`, with its gradient
    /// with respect to both (through `Categorical::backward`).
    fn loss_at(
        c: &PpoConfig,
        logits: &Array2<f32>,
        values: &Array2<f32>,
        samples: &[Sample],
    ) -> (f32, Array2<f32>, Vec<f32>) {
        let n = samples.len();
        let mut pi = Categorical::default();
        pi.set_logits(logits.view()).unwrap();
        let (mut d_log_prob, mut d_entropy, mut d_values) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let total = loss(
            c,
            &pi,
            values.view(),
            samples,
            Grads {
                log_prob: &mut d_log_prob,
                entropy: &mut d_entropy,
                values: &mut d_values,
            },
            &mut Stats::default(),
        );
        let mut d_logits = Array2::zeros(logits.dim());
        let actions: Vec<usize> = samples.iter().map(|s| s.action).collect();
        pi.backward(
            &actions,
            Array1::from(d_log_prob).view(),
            Array1::from(d_entropy).view(),
            d_logits.view_mut(),
        )
        .unwrap();
        (total, d_logits, d_values)
    }

    /// Central differences agree with the hand-derived gradient on rows
    /// whose ratio lies inside the clip range, above it and below it, for
    /// both signs of the advantage, and on values inside and outside the
    /// value clip, each side of the max.
    #[test]
    fn the_loss_gradient_matches_finite_differences() {
        let logits =
            Array2::from_shape_fn((6, 3), |(i, j)| ((i * 3 + j) as f32 * 0.37).sin() * 2.0);
        let values = Array2::from_shape_fn((6, 1), |(i, _)| i as f32 * 0.3 - 0.5);
        let mut pi = Categorical::default();
        pi.set_logits(logits.view()).unwrap();
        // log ρ per row: inside, above, below, inside, above, below.
        let log_ratio = [0.05, 0.5, -0.5, -0.1, 0.3, -0.35];
        let advantage = [1.0, -0.5, 0.8, -1.2, 0.3, -0.7];
        // V − V_old: inside and outside ±0.2; targets on either side.
        let value_step = [0.05, 0.5, -0.5, 0.1, -0.3, 0.4];
        let target_offset = [1.0, -1.0, 0.3, -0.2, 2.0, 0.1];
        let samples: Vec<Sample> = (0..6)
            .map(|i| Sample {
                action: i % 3,
                old_log_prob: pi.log_prob(i, i % 3) - log_ratio[i],
                old_value: values[[i, 0]] - value_step[i],
                advantage: advantage[i],
                target: values[[i, 0]] + target_offset[i],
            })
            .collect();
        for clip_vloss in [true, false] {
            let c = PpoConfig {
                clip_vloss,
                ent_coef: 0.05,
                vf_coef: 0.7,
                ..PpoConfig::default()
            };
            let (_, d_logits, d_values) = loss_at(&c, &logits, &values, &samples);
            let h = 1e-2f32;
            for i in 0..6 {
                for j in 0..3 {
                    let (mut up, mut down) = (logits.clone(), logits.clone());
                    up[[i, j]] += h;
                    down[[i, j]] -= h;
                    let numeric = (loss_at(&c, &up, &values, &samples).0
                        - loss_at(&c, &down, &values, &samples).0)
                        / (2.0 * h);
                    assert!(
                        (numeric - d_logits[[i, j]]).abs() < 2e-3,
                        "logit [{i}, {j}]: numeric {numeric}, analytic {}",
                        d_logits[[i, j]]
                    );
                }
                let (mut up, mut down) = (values.clone(), values.clone());
                up[[i, 0]] += h;
                down[[i, 0]] -= h;
                let numeric = (loss_at(&c, &logits, &up, &samples).0
                    - loss_at(&c, &logits, &down, &samples).0)
                    / (2.0 * h);
                assert!(
                    (numeric - d_values[i]).abs() < 2e-3,
                    "value {i} (clip_vloss {clip_vloss}): numeric {numeric}, analytic {}",
                    d_values[i]
                );
            }
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = |c: PpoConfig, num_envs: usize| c.validate(num_envs).unwrap_err().to_string();
        let base = PpoConfig::default;
        assert!(
            bad(
                PpoConfig {
                    gamma: 1.5,
                    ..base()
                },
                1
            )
            .contains("gamma")
        );
        assert!(
            bad(
                PpoConfig {
                    num_steps: 0,
                    ..base()
                },
                1
            )
            .contains("num_steps")
        );
        assert!(
            bad(
                PpoConfig {
                    num_minibatches: 1 << 21,
                    ..base()
                },
                4
            )
            .contains("num_minibatches")
        );
        assert!(
            bad(
                PpoConfig {
                    num_steps: 1 << 20,
                    ..base()
                },
                2
            )
            .contains("num_steps")
        );
        assert!(
            bad(
                PpoConfig {
                    learning_rate: f32::NAN,
                    ..base()
                },
                1
            )
            .contains("learning_rate")
        );
        assert!(
            bad(
                PpoConfig {
                    clip_coef: -0.1,
                    ..base()
                },
                1
            )
            .contains("clip_coef")
        );
    }
}
