//! `rl-lab run SPEC.json [--out DIR] [--json]`

use super::{CliError, CliResult, print_json, read_spec};
use indicatif::{ProgressBar, ProgressStyle};
use rl_runner::{Budget, CancelFlag, RunFolder, Summary};
use std::path::PathBuf;

/// Arguments of `rl-lab run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The run spec (JSON): env, agent, budget, seed, eval.
    spec: PathBuf,
    /// Run folder to write; default runs/<agent>_<env>_s<seed>_<unix-ms>. Must not exist or be empty.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print exactly one JSON object, the summary, on stdout.
    #[arg(long)]
    json: bool,
    /// Most memory the run may need, e.g. 4G or 512M (K, M, G, T are
    /// powers of 1,024); a larger estimate (replay, networks, optimiser
    /// state, tables, env models) exits 2 before training. Default: three
    /// quarters of the machine's memory (MemTotal, or the cgroup limit
    /// when smaller).
    #[arg(long, value_name = "BYTES", value_parser = rl_runner::memory::parse_bytes)]
    max_run_memory: Option<u64>,
}

/// Trains as the spec says, writing the run folder.
pub fn run(args: RunArgs, lab: &super::Lab) -> CliResult {
    let spec = read_spec(&args.spec)?;
    if spec.env_is_external() {
        return Err(CliError::input(format!(
            "{}: env.id: {}",
            args.spec.display(),
            rl_external::NEEDS_SERVER
        )));
    }
    let mut engine = lab.engine();
    if let Some(cap) = args.max_run_memory {
        engine.max_run_memory = Some(cap);
    }
    let mut prepared = engine.prepare(spec)?;
    let out = args.out.unwrap_or_else(|| default_folder(&prepared.spec));
    let folder = RunFolder::create(&out)?;

    let total = match prepared.spec.budget {
        Budget::Episodes(n) | Budget::Steps(n) => n,
    };
    let by_steps = matches!(prepared.spec.budget, Budget::Steps(_));
    let bar = if matches!(prepared.agent, rl_agent::AnyAgent::Planner(_)) {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {prefix} · {msg} [{elapsed_precise}, ETA {eta}]",
        )
        .expect("the template is valid"),
    );
    bar.set_prefix(if by_steps { "steps" } else { "episodes" });
    let summary = prepared.execute_in(&folder, &CancelFlag::new(), |p| {
        bar.set_position(if by_steps {
            p.counters.steps
        } else {
            p.counters.episodes
        });
        bar.set_message(format!(
            "ep {} · step {} · mean return (100) {}{} · {:.0} steps/s",
            p.counters.episodes,
            p.counters.steps,
            p.recent_mean_return
                .map_or("–".into(), |r| format!("{r:.2}")),
            p.epsilon.map_or(String::new(), |e| format!(" · ε {e:.3}")),
            p.steps_per_second
        ));
    });
    bar.finish_and_clear();
    let summary = summary?;
    if args.json {
        print_json(&summary)
    } else {
        print_human(&summary);
        Ok(())
    }
}

fn default_folder(spec: &rl_runner::RunSpec) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    PathBuf::from("runs").join(format!(
        "{}_{}_s{}_{millis}",
        clean(&spec.agent.id),
        clean(&spec.env.id),
        spec.seed
    ))
}

fn print_human(summary: &Summary) {
    say!("{} {} on {}", summary.status, summary.agent, summary.env);
    match summary.sweeps {
        Some(sweeps) => say!(
            "  planned: {sweeps} sweeps{}",
            if summary.converged == Some(false) {
                " (did not converge)"
            } else {
                ""
            }
        ),
        None => say!(
            "  trained: {} episodes, {} steps in {:.2}s",
            summary.episodes,
            summary.steps,
            summary.train_seconds
        ),
    }
    if let (Some(r), Some(l)) = (summary.eval.mean_return, summary.eval.mean_length) {
        say!(
            "  greedy evaluation: mean return {r:.3}, mean length {l:.1} over {} episodes",
            summary.eval.episodes
        );
    }
    if let Some(policy) = &summary.policy_grid {
        say!("  policy:");
        for row in policy {
            say!("    {row}");
        }
    }
    if let Some(values) = &summary.value_grid {
        say!("  values:");
        for row in values {
            let cells: Vec<String> = row
                .iter()
                .map(|v| v.map_or("     #".into(), |v| format!("{v:6.1}")))
                .collect();
            say!("    {}", cells.join(" "));
        }
    }
    if let Some(dir) = &summary.run_dir {
        say!("  run folder: {dir}");
    }
}
