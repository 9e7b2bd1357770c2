//! Run with: `cargo bench -p rl-layers --bench nets [-- SECONDS_PER_NET]`
//!
//! One DQN update (online forward, target forward on next states, max over
//! actions, Huber on the taken actions, backward, optimiser step) at batch 32
//! on one thread, for the MinAtar and the Nature network, plus single-observation
//! inference latency. Prints the JSON object that `rl-lab bench nets --json`
//! prints. Compare with `benches/peers/torch_nets.py`, which does the same in
//! PyTorch with `torch.set_num_threads(1)`.

use std::time::Duration;

fn main() {
    // `cargo bench` passes `--bench`; the first number, if any, is seconds per network.
    let secs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(5.0);
    let report = rl_layers::bench::nets(Duration::from_secs_f64(secs)).expect("benchmark runs");
    println!(
        "{{\"minatar\": {{\"updates_per_second\": {:.1}, \"infer_b1_us\": {:.1}}}, \"nature\": {{\"updates_per_second\": {:.2}, \"infer_b1_us\": {:.1}}}}}",
        report.minatar.updates_per_second,
        report.minatar.infer_b1_us,
        report.nature.updates_per_second,
        report.nature.infer_b1_us
    );
}
