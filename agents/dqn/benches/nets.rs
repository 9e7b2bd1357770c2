//! Run with: `cargo bench -p rl-dqn --bench nets [-- SECONDS_PER_NET]`
//!
//! The work of `rl-lab bench nets --json` ([`rl_dqn::bench::nets`]), printed
//! as the same JSON object: the agent's update per second at batch 32 and
//! the one-observation latency, MinAtar and Nature networks, one thread.
//! Compare with `benches/peers/torch_nets.py`, which does the same in
//! PyTorch with `torch.set_num_threads(1)`.

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; the first number, if any, is seconds per network.
    let secs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(5.0);
    let report = rl_dqn::bench::nets(Duration::from_secs_f64(secs))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
