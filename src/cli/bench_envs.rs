//! `rl-lab bench envs --json`: environment steps per second, single-threaded
//! and vectorised on all cores, with uniformly random actions and
//! auto-reset, for the five MinAtar games and CartPole-v1. The Python peers
//! (`benches/peers/run_env_peers.sh`) do the same work with the `minatar`
//! package and Gymnasium.
//!
//! Every env is built through the registry with its default config, so the
//! figures include what a user gets: the `dyn Env` call, the default
//! wrappers (CartPole's time limit; MinAtar's sticky actions) and writing
//! the observation into the caller's buffer. The random actions are drawn
//! up front, as the peers draw theirs, and each figure is the median of
//! five slices of the time budget, as the peers' are.

use super::{CliError, print_json};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_env::{Action, Env, VectorEnv};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The ids measured, in the order printed (those registered).
const IDS: [&str; 6] = [
    "minatar/breakout",
    "minatar/asterix",
    "minatar/freeway",
    "minatar/seaquest",
    "minatar/space_invaders",
    "CartPole-v1",
];

/// Copies per thread in the vectorised measurement: enough that a batch
/// outweighs the cost of handing it to the threads (about a microsecond),
/// few enough that each thread's copies stay in its core's cache (a
/// MinAtar copy touches a few hundred bytes of its state per step). 256
/// measured fastest of 64 to 1,024 on this project's machine.
const COPIES_PER_THREAD: usize = 256;

/// `rl-lab bench envs --json`'s object: steps per second by id.
#[derive(Serialize)]
pub struct EnvReport {
    /// One env on one thread.
    pub single_thread: BTreeMap<String, f64>,
    /// A [`VectorEnv`] of `threads × 256` copies on `threads` threads.
    pub vectorized: BTreeMap<String, f64>,
    /// Threads used for `vectorized` (all available cores).
    pub threads: usize,
    /// The training loop's case: a few copies (`env.num_envs`), with the
    /// agent's work between two steps ([`AGENT_GAP`]). Per id, per copy
    /// count, env steps per second of env time, inline and on every core.
    /// `rl_runner` steps a run's copies on threads only where these show
    /// that threads pay.
    pub training_batches: BTreeMap<String, Vec<TrainingBatch>>,
    /// Ids that are not registered in this build, so not measured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// One copy count of [`EnvReport::training_batches`].
#[derive(Serialize)]
pub struct TrainingBatch {
    /// Copies stepped at once.
    pub num_envs: usize,
    /// Env steps per second of env time, all copies on the caller's thread.
    pub inline: f64,
    /// The same, the copies spread over every core.
    pub threaded: f64,
}

/// Copy counts of [`EnvReport::training_batches`]: what on-policy specs use.
const TRAINING_NUM_ENVS: [usize; 3] = [4, 8, 16];

/// The agent's work between two vector steps in a training loop, stood in
/// for by a busy wait: choosing 8 actions with MinAtar's network and
/// learning from the transitions takes about this long. Long enough that a
/// worker thread stops spinning and sleeps between steps, as it would in
/// training, so its wake-up is counted.
const AGENT_GAP: Duration = Duration::from_micros(100);

/// Env steps per second of env time with [`AGENT_GAP`] between calls.
fn with_agent_gap(envs: &mut VectorEnv, budget: Duration) -> rl_env::Result<f64> {
    let n = envs.num_envs();
    let pool = random_actions(envs.single_action_space(), n + 4096);
    envs.reset(Some(0))?;
    let mut at = 0;
    let (mut env_time, mut steps) = (Duration::ZERO, 0u64);
    let began = Instant::now();
    while began.elapsed() < budget {
        let start = Instant::now();
        envs.step(&pool[at..at + n])?;
        env_time += start.elapsed();
        steps += n as u64;
        at = (at + 97) % 4096;
        let gap = Instant::now();
        while gap.elapsed() < AGENT_GAP {
            std::hint::spin_loop();
        }
    }
    Ok(steps as f64 / env_time.as_secs_f64())
}

fn failure(id: &str, e: rl_env::Error) -> CliError {
    CliError {
        code: 1,
        message: format!("{id}: {e}"),
    }
}

/// Uniformly random actions, drawn up front as the Python peers draw
/// theirs, so that the figures time the environments rather than the
/// action sampler.
fn random_actions(space: &rl_env::Space, count: usize) -> Vec<Action> {
    let n = space.n().unwrap_or(1) as i64;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..count)
        .map(|_| Action::Discrete(rng.random_range(0..n)))
        .collect()
}

/// Slices each figure's budget is cut into; the figure is the median of
/// their rates, so that a burst of load from other processes during one
/// slice moves it little. The Python peers report theirs the same way.
const SLICES: usize = 5;

/// The median over [`SLICES`] slices of `budget` of the rate of `run`,
/// which is called repeatedly with the slice's number and returns the
/// steps it took.
fn median_rate(
    budget: Duration,
    mut run: impl FnMut(usize) -> rl_env::Result<u64>,
) -> rl_env::Result<f64> {
    let slice = budget / SLICES as u32;
    let mut rates = Vec::new();
    for k in 0..SLICES {
        let start = Instant::now();
        let mut steps = 0u64;
        loop {
            steps += run(k)?;
            let elapsed = start.elapsed();
            if elapsed >= slice {
                rates.push(steps as f64 / elapsed.as_secs_f64());
                break;
            }
        }
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// Steps per second of one env with random actions and auto-reset.
///
/// Each slice steps a copy of its own, made by `make` and seeded alike,
/// writing into an observation buffer of its own, the copies and buffers
/// made in turn with a few hundred bytes between them. Where the env's
/// state and the buffer lie relative to each other in memory (modulo
/// 4 KiB) decides whether the CPU mistakes some of the env's loads for
/// reloads of the frame it just wrote ("4K aliasing"), which moves one
/// placement's rate by up to a sixth either way, by luck of what was
/// allocated before; the median over five placements is the rate a user
/// should expect.
fn single(
    make: impl Fn() -> rl_env::Result<Box<dyn Env>>,
    budget: Duration,
) -> rl_env::Result<f64> {
    let mut envs = Vec::new();
    let mut buffers = Vec::new();
    let mut spacers = Vec::new();
    for _ in 0..SLICES {
        let mut env = make()?;
        let mut obs = env.observation_space().zeros();
        env.reset_into(Some(0), &mut obs)?;
        envs.push(env);
        buffers.push(obs);
        spacers.push(vec![0u8; 4096 / SLICES]);
    }
    let actions = random_actions(envs[0].action_space(), 4096);
    median_rate(budget, |k| {
        let (env, obs) = (&mut envs[k], &mut buffers[k]);
        for action in &actions {
            let out = env.step_into(action, obs)?;
            if out.terminated || out.truncated {
                env.reset_into(None, obs)?;
            }
        }
        Ok(actions.len() as u64)
    })
}

/// Steps per second of a vector of copies (Gymnasium's NEXT_STEP
/// auto-reset), counting every copy's call as a step.
fn vectorized(envs: &mut VectorEnv, budget: Duration) -> rl_env::Result<f64> {
    let n = envs.num_envs();
    // Batches of random actions drawn up front, as for one env.
    let pool = random_actions(envs.single_action_space(), n + 4096);
    envs.reset(Some(0))?;
    let mut at = 0;
    median_rate(budget, |_| {
        envs.step(&pool[at..at + n])?;
        at = (at + 97) % 4096;
        Ok(n as u64)
    })
}

/// Measures every registered id for about `budget` per figure.
pub fn report(budget: Duration) -> Result<EnvReport, CliError> {
    let registry = rl_runner::envs::registry();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = EnvReport {
        single_thread: BTreeMap::new(),
        vectorized: BTreeMap::new(),
        threads,
        training_batches: BTreeMap::new(),
        missing: Vec::new(),
    };
    for id in IDS {
        if registry.get(id).is_err() {
            report.missing.push(id.to_string());
            continue;
        }
        let rate =
            single(|| registry.make(id, &Value::Null), budget).map_err(|e| failure(id, e))?;
        report.single_thread.insert(id.to_string(), rate);

        let mut envs = VectorEnv::new(threads * COPIES_PER_THREAD, |_| {
            registry.make(id, &Value::Null)
        })
        .and_then(|v| v.with_threads(threads))
        .map_err(|e| failure(id, e))?;
        let rate = vectorized(&mut envs, budget).map_err(|e| failure(id, e))?;
        report.vectorized.insert(id.to_string(), rate);

        let mut batches = Vec::new();
        for num_envs in TRAINING_NUM_ENVS {
            let rate = |threads: usize| {
                VectorEnv::new(num_envs, |_| registry.make(id, &Value::Null))
                    .and_then(|v| v.with_threads(threads))
                    .and_then(|mut envs| with_agent_gap(&mut envs, budget))
                    .map_err(|e| failure(id, e))
            };
            batches.push(TrainingBatch {
                num_envs,
                inline: rate(1)?,
                threaded: rate(threads)?,
            });
        }
        report.training_batches.insert(id.to_string(), batches);
    }
    Ok(report)
}

/// Prints the report, as one JSON object with `json`.
pub fn bench_envs(budget: Duration, json: bool) -> super::CliResult {
    let report = report(budget)?;
    if json {
        return print_json(&report);
    }
    say!(
        "{:<24} {:>16} {:>16}",
        "env",
        "1 thread",
        format!("{} threads", report.threads)
    );
    for (id, rate) in &report.single_thread {
        say!(
            "{id:<24} {rate:>16.0} {:>16.0}",
            report.vectorized.get(id).copied().unwrap_or(f64::NAN)
        );
    }
    for id in &report.missing {
        say!("{id:<24} not registered");
    }
    say!(
        "\ntraining batches ({} µs of agent work between steps), env steps per second of env time:",
        AGENT_GAP.as_micros()
    );
    for (id, batches) in &report.training_batches {
        for b in batches {
            say!(
                "{id:<24} {:>3} copies {:>12.0} inline {:>12.0} on {} threads",
                b.num_envs,
                b.inline,
                b.threaded,
                report.threads
            );
        }
    }
    Ok(())
}
