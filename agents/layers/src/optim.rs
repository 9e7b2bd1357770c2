//! Optimisers, separate from the layers: they receive `(parameter, gradient)`
//! pairs and keep their own state per parameter.
//!
//! Every update follows its published definition, in PyTorch's arithmetic
//! order (so the parity tests can hold to tight tolerances). With `g` the
//! gradient, `θ` the parameter and `t` the step count from 1:
//!
//! | variant | update |
//! |---|---|
//! | SGD | `θ ← θ − η g` |
//! | Momentum | `v ← μ v + g`; `θ ← θ − η v` (equals the notes' `v ← μ v − η g`, `θ ← θ + v` for constant `η`) |
//! | Nesterov | `v ← μ v + g`; `θ ← θ − η (g + μ v)` (Sutskever et al. 2013, as PyTorch's `nesterov=True`) |
//! | AdaGrad | `h ← h + g²`; `θ ← θ − η g / (√h + ε)` (Duchi et al. 2011) |
//! | RMSProp | `s ← α s + (1 − α) g²`; centered: `ḡ ← α ḡ + (1 − α) g`, `d = √(s − ḡ²) + ε`, else `d = √s + ε`; `θ ← θ − η g / d` (Tieleman & Hinton 2012; Graves 2013 for centered) |
//! | AdaDelta | `s ← ρ s + (1 − ρ) g²`; `Δ = √(u + ε) / √(s + ε) · g`; `u ← ρ u + (1 − ρ) Δ²`; `θ ← θ − η Δ` (Zeiler 2012) |
//! | Adam | `m ← β₁ m + (1 − β₁) g`; `v ← β₂ v + (1 − β₂) g²`; `θ ← θ − η m̂ / (√v̂ + ε)`, `m̂ = m / (1 − β₁ᵗ)`, `v̂ = v / (1 − β₂ᵗ)` (Kingma & Ba 2015) |
//!
//! The notes' AdaDelta multiplies the gradient into the squared-update
//! accumulator (`u ← ρ u + (1 − ρ) g Δ²`); the definition is `(1 − ρ) Δ²`, as here.

use crate::error::{Error, Result};
use crate::layers::{Layer, Param};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

/// Anything whose parameters an optimiser can visit: every [`Layer`] and [`crate::Sequential`].
pub trait Parameters {
    /// Visits every parameter, in a fixed order.
    fn visit_params(&self, f: &mut dyn FnMut(&Param));
    /// Visits every parameter mutably, in the same order.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param));
}

impl<L: Layer + ?Sized> Parameters for L {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.params().iter().for_each(f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.params_mut().iter_mut().for_each(f);
    }
}

/// An optimiser and its hyperparameters. Options that a variant does not
/// support cannot be written down.
///
/// Serialized with a `kind` tag, e.g.
/// `{"kind": "rms_prop", "lr": 0.00025, "alpha": 0.95, "eps": 0.01, "centered": true}`.
///
/// ```
/// use rl_layers::OptimizerConfig;
/// let cfg = OptimizerConfig::RmsProp { lr: 2.5e-4, alpha: 0.95, eps: 0.01, centered: true };
/// let opt = cfg.build().unwrap();
/// assert_eq!(opt.steps(), 0);
/// assert!(OptimizerConfig::Adam { lr: -1.0, beta1: 0.9, beta2: 0.999, eps: 1e-8 }.build().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Plain stochastic gradient descent.
    Sgd {
        /// Learning rate η.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
    },
    /// Heavy-ball momentum.
    Momentum {
        /// Learning rate η.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
        /// Momentum μ ∈ [0, 1).
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        momentum: f32,
    },
    /// Nesterov accelerated gradient.
    Nesterov {
        /// Learning rate η.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
        /// Momentum μ ∈ [0, 1).
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        momentum: f32,
    },
    /// AdaGrad.
    AdaGrad {
        /// Learning rate η.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
        /// ε added to `√h` (PyTorch's default is 1e-10).
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        eps: f32,
    },
    /// RMSProp with PyTorch's `alpha`, `eps` (added outside the square root) and `centered`.
    RmsProp {
        /// Learning rate η.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
        /// Smoothing constant α ∈ [0, 1) (PyTorch's default is 0.99).
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        alpha: f32,
        /// ε added to the denominator (PyTorch's default is 1e-8).
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        eps: f32,
        /// Normalise by the variance estimate `s − ḡ²` instead of `s`.
        centered: bool,
    },
    /// AdaDelta.
    AdaDelta {
        /// Learning rate η, which scales Δ (PyTorch's default is 1.0).
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
        /// Decay ρ ∈ [0, 1) (PyTorch's default is 0.9).
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        rho: f32,
        /// ε inside both square roots (PyTorch's default is 1e-6).
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        eps: f32,
    },
    /// Adam with bias correction.
    Adam {
        /// Learning rate η.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        lr: f32,
        /// β₁ ∈ [0, 1) (default 0.9).
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        beta1: f32,
        /// β₂ ∈ [0, 1) (default 0.999).
        #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
        beta2: f32,
        /// ε added to `√v̂` (default 1e-8).
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        eps: f32,
    },
}

impl OptimizerConfig {
    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8) and learning rate `lr`.
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// The learning rate η.
    pub fn learning_rate(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { lr }
            | OptimizerConfig::Momentum { lr, .. }
            | OptimizerConfig::Nesterov { lr, .. }
            | OptimizerConfig::AdaGrad { lr, .. }
            | OptimizerConfig::RmsProp { lr, .. }
            | OptimizerConfig::AdaDelta { lr, .. }
            | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }

    /// The names of the per-parameter state buffers, as PyTorch calls them.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd { .. } => &[],
            OptimizerConfig::Momentum { .. } | OptimizerConfig::Nesterov { .. } => {
                &["momentum_buffer"]
            }
            OptimizerConfig::AdaGrad { .. } => &["sum"],
            OptimizerConfig::RmsProp {
                centered: false, ..
            } => &["square_avg"],
            OptimizerConfig::RmsProp { centered: true, .. } => &["square_avg", "grad_avg"],
            OptimizerConfig::AdaDelta { .. } => &["square_avg", "acc_delta"],
            OptimizerConfig::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Checks the hyperparameters and makes an optimiser with empty state.
    pub fn build(&self) -> Result<Optimizer> {
        let bad = |field: &'static str, reason: String| Error::InvalidConfig {
            what: "optimizer",
            field,
            reason,
        };
        let positive = |field: &'static str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(bad(field, format!("must be finite and > 0, got {v}")))
            }
        };
        let unit = |field: &'static str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(bad(field, format!("must be in [0, 1), got {v}")))
            }
        };
        match *self {
            OptimizerConfig::Sgd { lr } => positive("lr", lr)?,
            OptimizerConfig::Momentum { lr, momentum }
            | OptimizerConfig::Nesterov { lr, momentum } => {
                positive("lr", lr)?;
                unit("momentum", momentum)?;
            }
            OptimizerConfig::AdaGrad { lr, eps } => {
                positive("lr", lr)?;
                positive("eps", eps)?;
            }
            OptimizerConfig::RmsProp { lr, alpha, eps, .. } => {
                positive("lr", lr)?;
                unit("alpha", alpha)?;
                positive("eps", eps)?;
            }
            OptimizerConfig::AdaDelta { lr, rho, eps } => {
                positive("lr", lr)?;
                unit("rho", rho)?;
                positive("eps", eps)?;
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                positive("lr", lr)?;
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("eps", eps)?;
            }
        }
        Ok(Optimizer {
            config: *self,
            state: OptimizerState::default(),
        })
    }
}

/// How the learning rate changes over training, from the optimiser's `lr`.
///
/// Serialized with a `kind` tag: `{"kind": "constant"}` or
/// `{"kind": "linear", "final_fraction": 0.0}`.
///
/// ```
/// use rl_layers::LrSchedule;
/// let anneal = LrSchedule::Linear { final_fraction: 0.0 };
/// assert_eq!(anneal.learning_rate(2.5e-4, 0, 4), 2.5e-4);
/// assert_eq!(anneal.learning_rate(2.5e-4, 3, 4), 2.5e-4 / 4.0);
/// assert_eq!(LrSchedule::Constant.learning_rate(2.5e-4, 3, 4), 2.5e-4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The optimiser's `lr` throughout.
    #[default]
    Constant,
    /// Linear annealing: update `t` of `T` (counted from 0) uses
    /// `lr · (1 − (1 − final_fraction) · t / T)`. With `final_fraction` 0
    /// this is the annealing of PPO's and A2C's reference code (OpenAI
    /// Baselines, CleanRL's `anneal_lr`): `lr` at the first update, `lr / T`
    /// at the last, never 0.
    Linear {
        /// The fraction of `lr` the schedule would reach after `T` updates,
        /// in [0, 1] (default 0).
        #[serde(default)]
        #[schemars(range(min = 0.0, max = 1.0))]
        final_fraction: f32,
    },
}

impl LrSchedule {
    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            LrSchedule::Linear { final_fraction } if !(0.0..=1.0).contains(&final_fraction) => {
                Err(Error::InvalidConfig {
                    what: "learning-rate schedule",
                    field: "final_fraction",
                    reason: format!("must be in [0, 1], got {final_fraction}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// The learning rate of update `update` (from 0) of `updates`, starting
    /// from `initial`. Updates past the end keep the last one's rate.
    pub fn learning_rate(&self, initial: f32, update: u64, updates: u64) -> f32 {
        match *self {
            LrSchedule::Constant => initial,
            LrSchedule::Linear { final_fraction } => {
                let total = updates.max(1);
                let done = update.min(total - 1) as f64 / total as f64;
                let fraction = 1.0 - (1.0 - f64::from(final_fraction)) * done;
                (f64::from(initial) * fraction) as f32
            }
        }
    }
}

/// The optimiser's state: the step count and, per parameter (in visiting
/// order), the buffers named by [`OptimizerConfig::state_names`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Number of completed steps `t`.
    pub steps: u64,
    /// `slots[i][j]` is buffer `j` of parameter `i`.
    pub slots: Vec<Vec<ArrayD<f32>>>,
}

/// An optimiser with its state. Serializable (serde), and savable as
/// safetensors with [`Optimizer::state_tensors`].
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Affine, Init, Layer, Mode, OptimizerConfig};
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut fc = Affine::new(2, 1, Init::HeUniform, &mut rng).unwrap();
/// let mut opt = OptimizerConfig::Sgd { lr: 0.1 }.build().unwrap();
/// let x = ndarray::arr2(&[[1.0f32, 2.0]]).into_dyn();
/// fc.forward(x.view(), Mode::Train).unwrap();
/// fc.backward(ndarray::arr2(&[[1.0f32]]).into_dyn().view()).unwrap();
/// opt.step(&mut fc).unwrap();
/// assert_eq!(opt.steps(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    config: OptimizerConfig,
    state: OptimizerState,
}

impl Optimizer {
    /// The hyperparameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Number of completed steps.
    pub fn steps(&self) -> u64 {
        self.state.steps
    }

    /// The learning rate the next step uses.
    pub fn learning_rate(&self) -> f32 {
        self.config.learning_rate()
    }

    /// Sets the learning rate of the steps to come, for an [`LrSchedule`].
    /// It must be finite and > 0, as at [`OptimizerConfig::build`].
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::InvalidConfig {
                what: "optimizer",
                field: "lr",
                reason: format!("must be finite and > 0, got {lr}"),
            });
        }
        match &mut self.config {
            OptimizerConfig::Sgd { lr: current }
            | OptimizerConfig::Momentum { lr: current, .. }
            | OptimizerConfig::Nesterov { lr: current, .. }
            | OptimizerConfig::AdaGrad { lr: current, .. }
            | OptimizerConfig::RmsProp { lr: current, .. }
            | OptimizerConfig::AdaDelta { lr: current, .. }
            | OptimizerConfig::Adam { lr: current, .. } => *current = lr,
        }
        Ok(())
    }

    /// The state, for checkpointing.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Replaces the state (from a checkpoint). Its shapes are checked at the next step.
    pub fn set_state(&mut self, state: OptimizerState) -> Result<()> {
        let k = self.config.state_names().len();
        if let Some(i) = state.slots.iter().position(|s| s.len() != k) {
            return Err(Error::OptimizerState(format!(
                "parameter {i} has {} buffers, expected {k}",
                state.slots[i].len()
            )));
        }
        self.state = state;
        Ok(())
    }

    /// The state as named tensors `"{param index}.{buffer name}"`, e.g. `"0.exp_avg"`.
    pub fn state_tensors(&self) -> Vec<(String, ArrayD<f32>)> {
        let names = self.config.state_names();
        let mut out = Vec::new();
        for (i, slot) in self.state.slots.iter().enumerate() {
            for (name, buf) in names.iter().zip(slot) {
                out.push((format!("{i}.{name}"), buf.clone()));
            }
        }
        out
    }

    /// Rebuilds the state from [`Optimizer::state_tensors`] output and a step count.
    pub fn set_state_tensors(
        &mut self,
        steps: u64,
        tensors: Vec<(String, ArrayD<f32>)>,
    ) -> Result<()> {
        let names = self.config.state_names();
        let mut map: std::collections::HashMap<String, ArrayD<f32>> = tensors.into_iter().collect();
        let mut slots = Vec::new();
        if !names.is_empty() {
            for i in 0.. {
                if !map.contains_key(&format!("{i}.{}", names[0])) {
                    break;
                }
                let mut slot = Vec::new();
                for name in names {
                    let key = format!("{i}.{name}");
                    let t = map
                        .remove(&key)
                        .ok_or_else(|| Error::OptimizerState(format!("missing tensor {key}")))?;
                    slot.push(t.as_standard_layout().into_owned());
                }
                slots.push(slot);
            }
        }
        if let Some(k) = map.keys().next() {
            return Err(Error::OptimizerState(format!("unexpected tensor {k}")));
        }
        self.state = OptimizerState { steps, slots };
        Ok(())
    }

    /// Applies one update to every parameter of `net` from its stored gradients.
    ///
    /// The first step allocates the state buffers; later steps allocate nothing.
    pub fn step<P: Parameters + ?Sized>(&mut self, net: &mut P) -> Result<()> {
        self.state.steps += 1;
        let t = self.state.steps;
        let config = self.config;
        let k = config.state_names().len();
        let slots = &mut self.state.slots;
        let mut index = 0usize;
        let mut failure = None;
        net.visit_params_mut(&mut |p: &mut Param| {
            if failure.is_some() {
                return;
            }
            if slots.len() == index {
                // The state is as large as the network (Adam's two moments
                // twice it): a refusal fails this step, not the process.
                let state = (0..k)
                    .map(|_| crate::error::try_zeros("optimiser state", p.value.shape()))
                    .collect::<Result<Vec<_>>>();
                match state {
                    Ok(state) => slots.push(state),
                    Err(e) => {
                        failure = Some(e);
                        return;
                    }
                }
            }
            let slot = &mut slots[index];
            if slot.iter().any(|b| b.shape() != p.value.shape()) {
                failure = Some(Error::OptimizerState(format!(
                    "parameter {index} has shape {:?}, its state {:?}",
                    p.value.shape(),
                    slot.first().map(|b| b.shape().to_vec())
                )));
                return;
            }
            crate::kernels::simd::dispatch(Update {
                config: &config,
                t,
                p,
                slot,
            });
            index += 1;
        });
        match failure {
            Some(e) => Err(e),
            None if index != slots.len() => Err(Error::OptimizerState(format!(
                "state has {} parameters, the network {index}",
                slots.len()
            ))),
            None => Ok(()),
        }
    }
}

#[inline(always)]
fn slices(p: &mut Param) -> (&mut [f32], &[f32]) {
    (
        p.value
            .as_slice_mut()
            .expect("parameters are kept in standard layout"),
        p.grad
            .as_slice()
            .expect("gradients are kept in standard layout"),
    )
}

#[inline(always)]
fn buf(b: &mut ArrayD<f32>) -> &mut [f32] {
    b.as_slice_mut().expect("state is kept in standard layout")
}

struct Update<'a> {
    config: &'a OptimizerConfig,
    t: u64,
    p: &'a mut Param,
    slot: &'a mut [ArrayD<f32>],
}

impl crate::kernels::simd::Kernel for Update<'_> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        update(self.config, self.t, self.p, self.slot);
    }
}

#[inline(always)]
fn update(config: &OptimizerConfig, t: u64, p: &mut Param, slot: &mut [ArrayD<f32>]) {
    let (theta, grad) = slices(p);
    let n = theta.len();
    let grad = &grad[..n];
    // Indexed loops over slices re-sliced to one length vectorise; long zips do not.
    match *config {
        OptimizerConfig::Sgd { lr } => {
            for i in 0..n {
                // θ ← θ − η g
                theta[i] -= lr * grad[i];
            }
        }
        OptimizerConfig::Momentum { lr, momentum } => {
            let v = &mut buf(&mut slot[0])[..n];
            for i in 0..n {
                // v ← μ v + g;  θ ← θ − η v
                v[i] = momentum * v[i] + grad[i];
                theta[i] -= lr * v[i];
            }
        }
        OptimizerConfig::Nesterov { lr, momentum } => {
            let v = &mut buf(&mut slot[0])[..n];
            for i in 0..n {
                // v ← μ v + g;  θ ← θ − η (g + μ v)
                v[i] = momentum * v[i] + grad[i];
                theta[i] -= lr * (grad[i] + momentum * v[i]);
            }
        }
        OptimizerConfig::AdaGrad { lr, eps } => {
            let h = &mut buf(&mut slot[0])[..n];
            for i in 0..n {
                // h ← h + g²;  θ ← θ − η g / (√h + ε)
                let g = grad[i];
                h[i] += g * g;
                theta[i] -= lr * (g / (h[i].sqrt() + eps));
            }
        }
        OptimizerConfig::RmsProp {
            lr,
            alpha,
            eps,
            centered,
        } => {
            let (a, b) = slot.split_at_mut(1);
            let s = &mut buf(&mut a[0])[..n];
            if centered {
                let gbar = &mut buf(&mut b[0])[..n];
                for i in 0..n {
                    // s ← α s + (1 − α) g²;  ḡ ← α ḡ + (1 − α) g;  θ ← θ − η g / (√(s − ḡ²) + ε)
                    let g = grad[i];
                    s[i] = alpha * s[i] + (1.0 - alpha) * g * g;
                    gbar[i] += (1.0 - alpha) * (g - gbar[i]);
                    let d = (s[i] - gbar[i] * gbar[i]).sqrt() + eps;
                    theta[i] -= lr * (g / d);
                }
            } else {
                for i in 0..n {
                    // s ← α s + (1 − α) g²;  θ ← θ − η g / (√s + ε)
                    let g = grad[i];
                    s[i] = alpha * s[i] + (1.0 - alpha) * g * g;
                    theta[i] -= lr * (g / (s[i].sqrt() + eps));
                }
            }
        }
        OptimizerConfig::AdaDelta { lr, rho, eps } => {
            let (a, b) = slot.split_at_mut(1);
            let (s, u) = (&mut buf(&mut a[0])[..n], &mut buf(&mut b[0])[..n]);
            for i in 0..n {
                // s ← ρ s + (1 − ρ) g²;  Δ = √(u + ε)/√(s + ε) · g;  u ← ρ u + (1 − ρ) Δ²;  θ ← θ − η Δ
                let g = grad[i];
                s[i] = rho * s[i] + (1.0 - rho) * g * g;
                let delta = (u[i] + eps).sqrt() / (s[i] + eps).sqrt() * g;
                u[i] = rho * u[i] + (1.0 - rho) * delta * delta;
                theta[i] -= lr * delta;
            }
        }
        OptimizerConfig::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => {
            // bias corrections in f64, as PyTorch computes them on Python floats
            let t = i32::try_from(t).unwrap_or(i32::MAX);
            let bc1 = 1.0 - f64::from(beta1).powi(t);
            let bc2 = 1.0 - f64::from(beta2).powi(t);
            let step = (f64::from(lr) / bc1) as f32;
            let bc2_sqrt = bc2.sqrt() as f32;
            let (a, b) = slot.split_at_mut(1);
            let (m, v) = (&mut buf(&mut a[0])[..n], &mut buf(&mut b[0])[..n]);
            for i in 0..n {
                // m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²
                let g = grad[i];
                m[i] += (1.0 - beta1) * (g - m[i]);
                v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                // θ ← θ − η/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
                theta[i] -= step * (m[i] / (v[i].sqrt() / bc2_sqrt + eps));
            }
        }
    }
}

/// The global L2 norm of all gradients, `√(Σ_θ ‖∂L/∂θ‖²)`.
pub fn grad_norm<P: Parameters + ?Sized>(net: &P) -> f32 {
    let mut sum = 0.0f64;
    net.visit_params(&mut |p| {
        sum += p
            .grad
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>();
    });
    sum.sqrt() as f32
}

/// Clips gradients by global norm: if `‖g‖ > max_norm`, every gradient is
/// scaled by `max_norm / (‖g‖ + 1e-6)` (PyTorch's `clip_grad_norm_`).
/// Returns the norm before clipping.
///
/// ```
/// use rl_layers::{MatMul, Param, clip_grad_norm, grad_norm, Layer};
/// let mut layer = MatMul::from_weight(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 2]))).unwrap();
/// layer.params_mut()[0].grad = ndarray::arr2(&[[3.0f32, 4.0]]).into_dyn();
/// assert_eq!(clip_grad_norm(&mut layer, 1.0), 5.0);
/// assert!((grad_norm(&layer) - 1.0).abs() < 1e-5);
/// ```
pub fn clip_grad_norm<P: Parameters + ?Sized>(net: &mut P, max_norm: f32) -> f32 {
    let norm = grad_norm(net);
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        net.visit_params_mut(&mut |p| p.grad.mapv_inplace(|g| g * scale));
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CleanRL's `anneal_lr`: at iteration `i` of `N` (from 1),
    /// `lr · (1 − (i − 1)/N)`.
    #[test]
    fn linear_schedule_is_cleanrl_annealing() {
        let schedule = LrSchedule::Linear {
            final_fraction: 0.0,
        };
        let (lr, iterations) = (2.5e-4f32, 9765u64);
        for iteration in [1u64, 2, 100, 4883, 9764, 9765] {
            let cleanrl = (1.0 - (iteration as f64 - 1.0) / iterations as f64) * f64::from(lr);
            let ours = schedule.learning_rate(lr, iteration - 1, iterations);
            assert!(
                (f64::from(ours) - cleanrl).abs() <= 1e-7 * cleanrl,
                "iteration {iteration}: {ours} vs {cleanrl}"
            );
        }
        // Past the end it keeps the last rate; with a floor it ends there.
        assert_eq!(
            schedule.learning_rate(lr, iterations + 5, iterations),
            schedule.learning_rate(lr, iterations - 1, iterations)
        );
        let floored = LrSchedule::Linear {
            final_fraction: 0.5,
        };
        assert_eq!(floored.learning_rate(1.0, 0, 10), 1.0);
        assert!((floored.learning_rate(1.0, 5, 10) - 0.75).abs() < 1e-7);
    }

    #[test]
    fn schedules_parse_and_validate() {
        let schedule: LrSchedule = serde_json::from_str(r#"{"kind": "linear"}"#).unwrap();
        assert_eq!(
            schedule,
            LrSchedule::Linear {
                final_fraction: 0.0
            }
        );
        let unknown = serde_json::from_str::<LrSchedule>(r#"{"kind": "linear", "end": 0.1}"#);
        assert!(unknown.unwrap_err().to_string().contains("end"));
        let bad = LrSchedule::Linear {
            final_fraction: 1.5,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("final_fraction")
        );
    }

    #[test]
    fn learning_rate_is_set_and_checked() {
        let mut optimizer = OptimizerConfig::adam(1e-3).build().unwrap();
        optimizer.set_learning_rate(5e-4).unwrap();
        assert_eq!(optimizer.learning_rate(), 5e-4);
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let error = optimizer.set_learning_rate(bad).unwrap_err().to_string();
            assert!(error.contains("lr"), "{error}");
        }
        assert_eq!(optimizer.learning_rate(), 5e-4);
    }
}
