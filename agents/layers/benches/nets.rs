//! Run with: `cargo bench -p rl-layers --bench nets [-- SECONDS_PER_NET]`
//!
//! One training step at batch 32 on one thread (train-mode forward,
//! backward from a fixed upstream gradient of alternating sign, optimiser
//! step; no loss) for
//! two conv nets, plus single-input inference latency, as one JSON object:
//! `{"conv_10x10": {"steps_per_second", "infer_b1_us"}, "conv_84x84": {…}}`.
//! The nets are those of `rl_layers::bench::TrainStep`: Conv 16 3×3/1,
//! Affine 128, Affine 6 on 4×10×10 inputs with centered RMSProp, and Conv 32
//! 8×8/4, Conv 64 4×4/2, Conv 64 3×3/1, Affine 512, Affine 6 on 4×84×84
//! inputs with Adam.

use ndarray::{Axis, Slice};
use rl_layers::Mode;
use rl_layers::bench::{TrainStep, calls_per_second};
use std::time::Duration;

/// Training steps per second in 80% of `budget`, then microseconds per
/// one-input eval-mode forward in the rest.
fn measure(step: &mut TrainStep, budget: Duration) -> rl_layers::Result<(f64, f64)> {
    let steps_per_second = calls_per_second(budget.mul_f64(0.8), 3, || step.run())?;
    let one = step.input.slice_axis(Axis(0), Slice::from(0..1)).to_owned();
    let net = &mut step.net;
    let forwards_per_second =
        calls_per_second(budget.mul_f64(0.2), 10, || -> rl_layers::Result<()> {
            std::hint::black_box(net.forward(one.view(), Mode::Eval)?);
            Ok(())
        })?;
    Ok((steps_per_second, 1e6 / forwards_per_second))
}

fn main() -> rl_layers::Result<()> {
    // `cargo bench` passes `--bench`; the first number, if any, is seconds per network.
    let secs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(5.0);
    let budget = Duration::from_secs_f64(secs);
    let (small_rate, small_latency) = measure(&mut TrainStep::conv_10x10(0)?, budget)?;
    let (large_rate, large_latency) = measure(&mut TrainStep::conv_84x84(0)?, budget)?;
    println!(
        "{{\"conv_10x10\": {{\"steps_per_second\": {small_rate:.1}, \"infer_b1_us\": {small_latency:.1}}}, \"conv_84x84\": {{\"steps_per_second\": {large_rate:.2}, \"infer_b1_us\": {large_latency:.1}}}}}"
    );
    Ok(())
}
