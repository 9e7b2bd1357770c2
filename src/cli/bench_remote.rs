//! `rl-lab bench remote --url URL`: the adapter's speed as the lab sees it,
//! for `benches/peers/adapter.py`, which runs Gymnasium's in-process
//! `SyncVectorEnv` beside it.
//!
//! Three figures, all over one keep-alive connection per client:
//! - a single-instance step through [`rl_remote::RemoteEnv`], the client
//!   every `remote` run uses (decoding and space checks included);
//! - the server's floor: `POST /v1/echo` of a body as large as a step reply,
//!   so the echo moves at least the bytes a step moves;
//! - a vector instance of `--num-envs` copies, one call per step of all of
//!   them, opened `batched` (observations as one array of raw float32
//!   bytes), its reply parsed and its observations decoded.
//!
//! Steps and echoes alternate in blocks, so that load from elsewhere on the
//! machine falls on both alike.

use super::{CliError, CliResult, print_json};
use rl_env::{Action, Env};
use rl_remote::http::{Client, Method};
use rl_remote::{RemoteConfig, RemoteEnv};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Arguments of `rl-lab bench remote`.
#[derive(clap::Args)]
pub struct RemoteBenchArgs {
    /// The adapter's base URL, e.g. http://127.0.0.1:5000 (`python -m rl_lab_env serve`).
    #[arg(long)]
    url: String,
    /// The env id the adapter serves, with two or more discrete actions.
    #[arg(long, default_value = "CartPole-v1")]
    env_id: String,
    /// Copies in the vector instance.
    #[arg(long, default_value_t = 64)]
    num_envs: usize,
    /// `--seconds` per workload (the steps and echoes, which alternate,
    /// get it each; the vector instance once) and `--json`.
    #[command(flatten)]
    common: super::bench::BenchArgs,
}

/// What `--json` prints.
#[derive(Serialize)]
struct RemoteReport {
    single: Single,
    vector: Vector,
}

#[derive(Serialize)]
struct Single {
    /// Mean µs per `RemoteEnv::step_into`, resets included.
    step_us: f64,
    /// Mean µs per echo of a step-reply-sized body.
    echo_us: f64,
    /// Bytes of the echoed body.
    echo_bytes: usize,
    steps: u64,
    echoes: u64,
}

#[derive(Serialize)]
struct Vector {
    num_envs: usize,
    /// Copies × calls per second.
    env_steps_per_second: f64,
    calls: u64,
}

/// Calls per block of the step/echo alternation.
const BLOCK: u64 = 50;

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError {
        code: 1,
        message: e.to_string(),
    }
}

/// Measures and prints.
pub fn bench_remote(args: RemoteBenchArgs) -> CliResult {
    if args.num_envs == 0 || args.num_envs > 4096 {
        return Err(CliError::input(format!(
            "--num-envs: {} is not in 1..=4096",
            args.num_envs
        )));
    }
    let budget = args.common.budget()?;
    let config = RemoteConfig {
        url: args.url.clone(),
        env_id: args.env_id.clone(),
        kwargs: Default::default(),
        dialect: Default::default(),
        timeout_seconds: 30.0,
    };
    let mut env = RemoteEnv::connect(config).map_err(|e| CliError::input(format!("--url: {e}")))?;
    let n_actions = env.action_space().n().ok_or_else(|| {
        CliError::input(format!(
            "--env-id: {} has the action space {}, not a Discrete one",
            args.env_id,
            env.action_space()
        ))
    })? as i64;
    let client = Client::new(&args.url, Duration::from_secs(30));
    let echo_body = step_reply(&client, &args.env_id)?;
    let echo_bytes = echo_body.to_string().len();

    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(0), &mut obs).map_err(failed)?;
    let (mut steps, mut echoes) = (0u64, 0u64);
    let (mut step_time, mut echo_time) = (Duration::ZERO, Duration::ZERO);
    while step_time + echo_time < 2 * budget {
        let began = Instant::now();
        for _ in 0..BLOCK {
            let action = Action::Discrete((steps as i64 / 3) % n_actions);
            let outcome = env.step_into(&action, &mut obs).map_err(failed)?;
            if outcome.terminated || outcome.truncated {
                env.reset_into(None, &mut obs).map_err(failed)?;
            }
            steps += 1;
        }
        step_time += began.elapsed();
        let began = Instant::now();
        for _ in 0..BLOCK {
            let echoed = client
                .json(Method::Post, "/v1/echo", Some(&echo_body))
                .map_err(failed)?;
            std::hint::black_box(echoed);
            echoes += 1;
        }
        echo_time += began.elapsed();
    }
    drop(env);

    let vector = vector_rate(&client, &args, n_actions, budget)?;
    let report = RemoteReport {
        single: Single {
            step_us: step_time.as_secs_f64() * 1e6 / steps as f64,
            echo_us: echo_time.as_secs_f64() * 1e6 / echoes as f64,
            echo_bytes,
            steps,
            echoes,
        },
        vector,
    };
    if args.common.json {
        print_json(&report)
    } else {
        say!(
            "one step: {:.1} µs through RemoteEnv, {:.1} µs for an echo of {} bytes ({:.2}×)\n{} copies: {:.0} env steps/s",
            report.single.step_us,
            report.single.echo_us,
            report.single.echo_bytes,
            report.single.step_us / report.single.echo_us,
            report.vector.num_envs,
            report.vector.env_steps_per_second
        );
        Ok(())
    }
}

/// A real step reply of the served env, to echo: the floor then carries
/// what a step carries.
fn step_reply(client: &Client, env_id: &str) -> Result<Value, CliError> {
    let created = client
        .json(Method::Post, "/v1/envs/", Some(&json!({"env_id": env_id})))
        .map_err(failed)?;
    let id = created["instance_id"]
        .as_str()
        .ok_or_else(|| failed(format!("no instance_id in {created}")))?
        .to_string();
    client
        .json(
            Method::Post,
            &format!("/v1/envs/{id}/reset/"),
            Some(&json!({"seed": 0})),
        )
        .map_err(failed)?;
    let reply = client
        .json(
            Method::Post,
            &format!("/v1/envs/{id}/step/"),
            Some(&json!({"action": 0})),
        )
        .map_err(failed)?;
    client
        .json(Method::Post, &format!("/v1/envs/{id}/close/"), None)
        .map_err(failed)?;
    Ok(reply)
}

/// A batched float32 array, `{"dtype": "float32", "shape", "base64"}`,
/// into `values`, reusing both buffers.
fn decode_f32(wire: &Value, bytes: &mut Vec<u8>, values: &mut Vec<f32>) -> Result<(), CliError> {
    use base64::Engine as _;
    let text = match (wire["dtype"].as_str(), wire["base64"].as_str()) {
        (Some("float32"), Some(text)) => text,
        _ => {
            let text = wire.to_string();
            return Err(failed(format!(
                "expected batched float32 observations (an adapter of protocol 1.1 or later), got {}",
                text.chars().take(80).collect::<String>()
            )));
        }
    };
    bytes.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(text, bytes)
        .map_err(failed)?;
    values.clear();
    values.extend(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    Ok(())
}

/// Env steps per second of a vector instance, stepped with pre-drawn
/// actions; each reply is parsed, as a learner would have to.
fn vector_rate(
    client: &Client,
    args: &RemoteBenchArgs,
    n_actions: i64,
    budget: Duration,
) -> Result<Vector, CliError> {
    let created = client
        .json(
            Method::Post,
            "/v1/vector-envs",
            Some(
                &json!({"env_id": args.env_id, "num_envs": args.num_envs, "seed": 0,
                         "batched": true}),
            ),
        )
        .map_err(failed)?;
    let id = created["instance_id"]
        .as_str()
        .ok_or_else(|| failed(format!("no instance_id in {created}")))?
        .to_string();
    let measured = step_vector(client, args, &id, n_actions, budget);
    // Closed whether or not the measurement failed: the adapter caps its
    // instances.
    let closed = client.json(Method::Post, &format!("/v1/vector-envs/{id}/close"), None);
    let (calls, elapsed) = measured?;
    closed.map_err(failed)?;
    Ok(Vector {
        num_envs: args.num_envs,
        env_steps_per_second: (calls as usize * args.num_envs) as f64 / elapsed,
        calls,
    })
}

/// Steps vector instance `id` for `budget`: the calls made and the seconds
/// they took.
fn step_vector(
    client: &Client,
    args: &RemoteBenchArgs,
    id: &str,
    n_actions: i64,
    budget: Duration,
) -> Result<(u64, f64), CliError> {
    let step_path = format!("/v1/vector-envs/{id}/step");
    client
        .json(Method::Post, &format!("/v1/vector-envs/{id}/reset"), None)
        .map_err(failed)?;
    let batches: Vec<Value> = (0..16i64)
        .map(|b| {
            json!({"actions": (0..args.num_envs as i64)
                .map(|i| (b * 7 + i * 3 + i / 5) % n_actions)
                .collect::<Vec<_>>()})
        })
        .collect();
    let mut calls = 0u64;
    let mut bytes = Vec::new();
    let mut observations: Vec<f32> = Vec::new();
    let began = Instant::now();
    while began.elapsed() < budget {
        let reply = client
            .json(
                Method::Post,
                &step_path,
                Some(&batches[calls as usize % batches.len()]),
            )
            .map_err(failed)?;
        decode_f32(&reply["observations"], &mut bytes, &mut observations)?;
        if !observations.len().is_multiple_of(args.num_envs) || observations.is_empty() {
            return Err(failed(format!(
                "a vector step gave {} values for {} copies",
                observations.len(),
                args.num_envs
            )));
        }
        calls += 1;
    }
    Ok((calls, began.elapsed().as_secs_f64()))
}
