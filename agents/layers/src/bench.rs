//! The DQN-update benchmark that `rl-lab bench nets --json` runs, and the
//! allocation-free update it times.
//!
//! One update, as in Mnih et al. 2015 with a Huber loss:
//! 1. online forward on the batch `s` (train mode);
//! 2. target forward on the next states `s'` (eval mode, nothing cached);
//! 3. `y = r + γ (1 − terminated) max_a' Q_target(s', a')`;
//! 4. Huber loss on `Q(s, a)` for the actions taken, its gradient scattered into `[N, A]`;
//! 5. backward;
//! 6. optimiser step.

use crate::error::{Result, shape_err};
use crate::init::Init;
use crate::layers::Mode;
use crate::loss::Loss;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::sequential::{Architecture, LayerSpec, Sequential, Size};
use ndarray::{Array1, Array2, ArrayD, Ix2, IxDyn};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The MinAtar DQN network (Young & Tian 2019): Conv 16 3×3/1, ReLU, Affine → 128, ReLU, Affine → `"actions"`.
pub fn minatar_architecture() -> Architecture {
    Architecture(vec![
        LayerSpec::Conv {
            out: Size::Fixed(16),
            kernel: 3,
            stride: 1,
            padding: 0,
        },
        LayerSpec::Relu,
        LayerSpec::Flatten,
        LayerSpec::Affine(Size::Fixed(128)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Named("actions".into())),
    ])
}

/// The Nature DQN network (Mnih et al. 2015): Conv 32 8×8/4, Conv 64 4×4/2,
/// Conv 64 3×3/1, Affine → 512, Affine → `"actions"`, ReLUs between.
pub fn nature_architecture() -> Architecture {
    let conv = |out, kernel, stride| LayerSpec::Conv {
        out: Size::Fixed(out),
        kernel,
        stride,
        padding: 0,
    };
    Architecture(vec![
        conv(32, 8, 4),
        LayerSpec::Relu,
        conv(64, 4, 2),
        LayerSpec::Relu,
        conv(64, 3, 1),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        LayerSpec::Affine(Size::Fixed(512)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Named("actions".into())),
    ])
}

/// A sampled batch of transitions.
#[derive(Clone, Debug)]
pub struct DqnBatch {
    /// States `s`, `[N, …input]`.
    pub obs: ArrayD<f32>,
    /// Actions taken, `[N]`.
    pub actions: Vec<usize>,
    /// Rewards, `[N]`.
    pub rewards: Array1<f32>,
    /// Next states `s'`, `[N, …input]`.
    pub next_obs: ArrayD<f32>,
    /// 1 where `s'` is terminal (no bootstrap), else 0. Truncation is not termination.
    pub terminated: Array1<f32>,
}

impl DqnBatch {
    /// A batch of uniform random observations in `[0, 1)`, for benchmarks.
    pub fn random(n: usize, input: &[usize], actions: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape: Vec<usize> = std::iter::once(n).chain(input.iter().copied()).collect();
        let obs = ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.random::<f32>());
        let next_obs = ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.random::<f32>());
        Self {
            obs,
            actions: (0..n).map(|_| rng.random_range(0..actions)).collect(),
            rewards: Array1::from_shape_fn(n, |_| rng.random_range(-1.0..1.0)),
            next_obs,
            terminated: Array1::from_shape_fn(
                n,
                |_| if rng.random::<f32>() < 0.1 { 1.0 } else { 0.0 },
            ),
        }
    }
}

/// Preallocated scratch for [`dqn_update`].
#[derive(Clone, Debug)]
pub struct DqnScratch {
    targets: Array1<f32>,
    dq: Array2<f32>,
}

impl DqnScratch {
    /// Scratch for batches of `n` and `actions` outputs.
    pub fn new(n: usize, actions: usize) -> Self {
        Self {
            targets: Array1::zeros(n),
            dq: Array2::zeros((n, actions)),
        }
    }
}

/// One DQN update; returns the Huber loss. After the first call it makes no
/// heap allocation (the allocation test counts them).
///
/// # Shapes
/// `batch.obs`, `batch.next_obs`: `[N, …input]`; `actions`, `rewards`, `terminated`: `[N]`;
/// networks output `[N, A]`; `scratch` made for `(N, A)`.
pub fn dqn_update(
    online: &mut Sequential,
    target: &mut Sequential,
    opt: &mut Optimizer,
    batch: &DqnBatch,
    scratch: &mut DqnScratch,
    gamma: f32,
    delta: f32,
) -> Result<f32> {
    let n = batch.actions.len();
    if scratch.targets.len() != n || scratch.dq.nrows() != n {
        return Err(shape_err(
            "dqn_update",
            format!("scratch for a batch of {n}"),
            &[scratch.targets.len()],
        ));
    }
    {
        let q_next = target.forward(batch.next_obs.view(), Mode::Eval)?;
        let q_next = q_next
            .into_dimensionality::<Ix2>()
            .map_err(|_| shape_err("dqn_update", "[N, A]", &[]))?;
        for (i, row) in q_next.rows().into_iter().enumerate() {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // y = r + γ · (1 − terminated) · max_a' Q_target(s', a')
            scratch.targets[i] = batch.rewards[i] + gamma * (1.0 - batch.terminated[i]) * max;
        }
    }
    let loss = {
        let q = online.forward(batch.obs.view(), Mode::Train)?;
        let q = q
            .into_dimensionality::<Ix2>()
            .map_err(|_| shape_err("dqn_update", "[N, A]", &[]))?;
        // L = mean_n Huber_δ(Q(s_n, a_n) − y_n); ∂L/∂Q is zero off the taken actions
        Loss::Huber { delta }.compute_selected(
            q,
            &batch.actions,
            scratch.targets.view(),
            scratch.dq.view_mut(),
        )?
    };
    online.backward(scratch.dq.view().into_dyn())?;
    opt.step(online)?;
    Ok(loss)
}

/// Figures for one network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetFigures {
    /// Complete DQN updates (batch 32) per second, one thread.
    pub updates_per_second: f64,
    /// Latency of one eval-mode forward on a single observation, in microseconds.
    pub infer_b1_us: f64,
}

/// The report of `rl-lab bench nets --json`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetsReport {
    /// The MinAtar network (4×10×10 input, centered RMSProp).
    pub minatar: NetFigures,
    /// The Nature network (4×84×84 input, Adam).
    pub nature: NetFigures,
}

/// Number of actions in both benchmark networks.
pub const BENCH_ACTIONS: usize = 6;
/// Batch size of the benchmark.
pub const BENCH_BATCH: usize = 32;

/// Everything one benchmarked network needs.
#[derive(Clone, Debug)]
pub struct DqnSetup {
    /// The online network.
    pub online: Sequential,
    /// The target network (a clone of the online one).
    pub target: Sequential,
    /// The optimiser.
    pub opt: Optimizer,
    /// A fixed random batch.
    pub batch: DqnBatch,
    /// Scratch for [`dqn_update`].
    pub scratch: DqnScratch,
}

impl DqnSetup {
    /// The MinAtar setup: RMSProp centered, lr 2.5e-4, α 0.95, ε 0.01 (MinAtar's `dqn.py`).
    pub fn minatar(seed: u64) -> Result<Self> {
        let opt = OptimizerConfig::RmsProp {
            lr: 2.5e-4,
            alpha: 0.95,
            eps: 0.01,
            centered: true,
        };
        Self::new(&minatar_architecture(), &[4, 10, 10], opt, seed)
    }

    /// The Nature setup with Adam (lr 1e-4, ε 1.5e-4 as in Dopamine's Rainbow).
    pub fn nature(seed: u64) -> Result<Self> {
        let opt = OptimizerConfig::Adam {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1.5e-4,
        };
        Self::new(&nature_architecture(), &[4, 84, 84], opt, seed)
    }

    fn new(arch: &Architecture, input: &[usize], opt: OptimizerConfig, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let online = arch.build(
            input,
            &[("actions", BENCH_ACTIONS)],
            Init::HeUniform,
            &mut rng,
        )?;
        Ok(Self {
            target: online.clone(),
            online,
            opt: opt.build()?,
            batch: DqnBatch::random(BENCH_BATCH, input, BENCH_ACTIONS, seed + 1),
            scratch: DqnScratch::new(BENCH_BATCH, BENCH_ACTIONS),
        })
    }

    /// Runs one update (γ = 0.99, δ = 1).
    pub fn update(&mut self) -> Result<f32> {
        dqn_update(
            &mut self.online,
            &mut self.target,
            &mut self.opt,
            &self.batch,
            &mut self.scratch,
            0.99,
            1.0,
        )
    }
}

fn measure(setup: &mut DqnSetup, budget: Duration) -> Result<NetFigures> {
    // warm-up: buffers, optimiser state, caches
    for _ in 0..3 {
        setup.update()?;
    }
    let update_budget = budget.mul_f64(0.8);
    let start = Instant::now();
    let mut updates = 0u64;
    while updates < 3 || start.elapsed() < update_budget {
        setup.update()?;
        updates += 1;
    }
    let updates_per_second = updates as f64 / start.elapsed().as_secs_f64();

    let one = setup
        .batch
        .obs
        .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..1))
        .to_owned();
    for _ in 0..3 {
        setup.online.forward(one.view(), Mode::Eval)?;
    }
    let infer_budget = budget.mul_f64(0.2);
    let start = Instant::now();
    let mut calls = 0u64;
    while calls < 10 || start.elapsed() < infer_budget {
        let q = setup.online.forward(one.view(), Mode::Eval)?;
        std::hint::black_box(q);
        calls += 1;
    }
    let infer_b1_us = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
    Ok(NetFigures {
        updates_per_second,
        infer_b1_us,
    })
}

/// Measures both networks on the calling thread, spending about `per_net` on each.
pub fn nets(per_net: Duration) -> Result<NetsReport> {
    let minatar = measure(&mut DqnSetup::minatar(0)?, per_net)?;
    let nature = measure(&mut DqnSetup::nature(0)?, per_net)?;
    Ok(NetsReport { minatar, nature })
}
