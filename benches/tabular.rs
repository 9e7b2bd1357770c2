//! Tabular speed: Q-learning on CliffWalking, value iteration on FrozenLake
//! 8x8, raw gridworld steps. Run with `cargo bench --bench tabular`; the side
//! by side comparison with the Python peer is `benches/peers/compare.sh`.

fn main() {
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(2.0);
    let report = rl_lab::runner::bench::tabular(std::time::Duration::from_secs_f64(seconds))
        .expect("the benchmark workloads are valid");
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("the report serialises")
    );
}
