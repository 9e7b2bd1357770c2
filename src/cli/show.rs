//! `rl-lab show SPEC.json [--png FILE]`

use super::{CliError, CliResult, read_spec};
use std::path::PathBuf;

/// Arguments of `rl-lab show`.
#[derive(clap::Args)]
pub struct ShowArgs {
    /// A run spec (JSON); only its env and seed are used.
    spec: PathBuf,
    /// Also write the first frame as a PNG.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// Prints the spec's environment, reset with the spec's seed, as text.
pub fn show(args: ShowArgs, lab: &super::Lab) -> CliResult {
    let spec = read_spec(&args.spec)?;
    let mut env = lab.engine().make_env(&spec)?;
    env.reset(Some(spec.seed))
        .map_err(|e| CliError::input(format!("env: {e}")))?;
    say!("{}", env.render_text().trim_end_matches('\n'));
    if let Some(path) = args.png {
        rl_env::save_png(&env.render_rgb(), &path).map_err(|e| CliError {
            code: 1,
            message: e.to_string(),
        })?;
    }
    Ok(())
}
