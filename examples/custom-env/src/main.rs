//! `custom-lab`: the whole rl-lab tool, with NChain registered beside
//! rl-lab's own environments. `custom-lab run`, `serve`, `rollout`, `envs`
//! and the rest behave exactly as `rl-lab`'s, and know `custom/nchain`.

fn main() -> std::process::ExitCode {
    rl_lab::cli::Lab::default()
        .with_envs(custom_env::register)
        .main()
}
