//! `rl-lab bench nets`: the agent's gradient step ([`DqnUpdate::step`]) on
//! the MinAtar and the Nature network at batch 32, on one thread, plus the
//! latency of a one-observation forward.
//!
//! The work is that of `benches/peers/torch_nets.py`, which times the same
//! update in PyTorch: a fixed random batch (10% of its transitions
//! terminal), 6 actions, γ 0.99, Huber δ 1, He-uniform weights; the target
//! network is a copy of the online one and is never updated.

use crate::dqn::{DqnConfig, DqnUpdate, StepOutcome, TdLoss};
use crate::network::{QNet, minatar_architecture, nature_architecture};
use crate::replay::Batch;
use ndarray::{Axis, Slice};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::{Error, Result};
use rl_layers::bench::calls_per_second;
use rl_layers::{Architecture, Init, Mode, Optimizer, OptimizerConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Number of actions of both benchmark networks.
pub const BENCH_ACTIONS: usize = 6;
/// Batch size of the benchmark.
pub const BENCH_BATCH: usize = 32;

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

/// Everything one benchmarked network needs.
#[derive(Clone, Debug)]
pub struct UpdateBench {
    /// The online network `θ`.
    pub online: QNet,
    /// The target network `θ⁻`, a copy of the online one.
    pub target_net: QNet,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// A fixed random batch.
    pub batch: Batch,
    /// The update and its buffers.
    pub update: DqnUpdate,
}

impl UpdateBench {
    /// The MinAtar network on `[4, 10, 10]` with MinAtar's optimiser, the
    /// agent's default: centered RMSProp, lr 2.5e-4, α 0.95, ε 0.01.
    pub fn minatar(seed: u64) -> Result<Self> {
        let optimizer = DqnConfig::default().optimizer;
        Self::new(&minatar_architecture(), &[4, 10, 10], optimizer, seed)
    }

    /// The Nature network on `[4, 84, 84]` with Adam (lr 1e-4, ε 1.5e-4 as
    /// in Dopamine's Rainbow).
    pub fn nature(seed: u64) -> Result<Self> {
        let optimizer = OptimizerConfig::Adam {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1.5e-4,
        };
        Self::new(&nature_architecture(), &[4, 84, 84], optimizer, seed)
    }

    fn new(
        arch: &Architecture,
        input: &[usize],
        optimizer: OptimizerConfig,
        seed: u64,
    ) -> Result<Self> {
        let config = DqnConfig {
            batch_size: BENCH_BATCH,
            gamma: 0.99,
            optimizer,
            loss: TdLoss::Huber { delta: 1.0 },
            init: Init::HeUniform,
            ..DqnConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let online = QNet::build(arch, input, BENCH_ACTIONS, false, config.init, &mut rng)?;
        Ok(UpdateBench {
            target_net: online.clone(),
            online,
            optimizer: config
                .optimizer
                .build()
                .map_err(|e| Error::config("optimizer", e.to_string()))?,
            batch: random_batch(input, config.gamma as f32, seed + 1)?,
            update: DqnUpdate::new(&config, BENCH_ACTIONS),
        })
    }

    /// Runs one update; returns its loss.
    pub fn step(&mut self) -> Result<f32> {
        let outcome = self.update.step(
            &mut self.online,
            &mut self.target_net,
            &mut self.optimizer,
            &self.batch,
        )?;
        match outcome {
            StepOutcome::Stepped { loss, .. } => Ok(loss),
            StepOutcome::NotFinite { what, value } => Err(Error::Diverged {
                step: 0,
                message: format!("{what} is {value} in the benchmark"),
            }),
        }
    }
}

/// `BENCH_BATCH` transitions with observations uniform in `[0, 1)`, random
/// actions, rewards uniform in `[−1, 1)` and 10% terminal.
fn random_batch(input: &[usize], gamma: f32, seed: u64) -> Result<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut batch = Batch::new(BENCH_BATCH, input)?;
    for v in batch.obs.iter_mut().chain(batch.next_obs.iter_mut()) {
        *v = rng.random::<f32>();
    }
    for a in &mut batch.actions {
        *a = rng.random_range(0..BENCH_ACTIONS);
    }
    // one-step returns: R = r
    for r in &mut batch.returns {
        *r = rng.random_range(-1.0..1.0);
    }
    for d in &mut batch.discounts {
        let terminated = rng.random::<f32>() < 0.1;
        // discount = γ · (1 − terminated)
        *d = if terminated { 0.0 } else { gamma };
    }
    Ok(batch)
}

/// Updates per second in 80% of `budget`, then the one-observation latency
/// in the rest.
fn measure(bench: &mut UpdateBench, budget: Duration) -> Result<NetFigures> {
    let updates_per_second = calls_per_second(budget.mul_f64(0.8), 3, || bench.step().map(drop))?;
    let one = bench
        .batch
        .obs
        .slice_axis(Axis(0), Slice::from(0..1))
        .to_owned();
    let online = &mut bench.online;
    let forwards_per_second = calls_per_second(budget.mul_f64(0.2), 10, || -> Result<()> {
        std::hint::black_box(online.forward(one.view(), Mode::Eval)?);
        Ok(())
    })?;
    Ok(NetFigures {
        updates_per_second,
        infer_b1_us: 1e6 / forwards_per_second,
    })
}

/// Measures both networks on the calling thread, spending about `per_net` on each.
pub fn nets(per_net: Duration) -> Result<NetsReport> {
    let minatar = measure(&mut UpdateBench::minatar(0)?, per_net)?;
    let nature = measure(&mut UpdateBench::nature(0)?, per_net)?;
    Ok(NetsReport { minatar, nature })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_updates() {
        let run = || {
            let mut bench = UpdateBench::minatar(7).unwrap();
            let losses: Vec<u32> = (0..5).map(|_| bench.step().unwrap().to_bits()).collect();
            (losses, bench.online.named_params())
        };
        let (losses, params) = run();
        assert!(losses.iter().all(|l| f32::from_bits(*l).is_finite()));
        assert_eq!((losses, params), run());
    }

    /// `benches/peers/compare.py` reads this shape beside `torch_nets.py`'s.
    #[test]
    fn the_report_keeps_its_json_shape() {
        let figures = NetFigures {
            updates_per_second: 1.5,
            infer_b1_us: 20.0,
        };
        let report = NetsReport {
            minatar: figures,
            nature: figures,
        };
        let figures = serde_json::json!({"updates_per_second": 1.5, "infer_b1_us": 20.0});
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            serde_json::json!({"minatar": figures, "nature": figures})
        );
    }

    #[test]
    fn a_tenth_of_the_batch_is_terminal() {
        let batch = random_batch(&[4, 10, 10], 0.99, 1).unwrap();
        let terminal = batch.discounts.iter().filter(|&&d| d == 0.0).count();
        assert!((1..=8).contains(&terminal), "{terminal} of 32");
        assert!(batch.discounts.iter().all(|&d| d == 0.0 || d == 0.99));
    }
}
