//! The `rl-lab` command-line tool.

fn main() -> std::process::ExitCode {
    rl_lab::cli::Lab::default().main()
}
