//! Client commands: `rl-lab submit`, `rl-lab runs`, `rl-lab watch`, talking
//! to a running `rl-lab serve` over its REST API.

use super::{CliError, CliResult, print_json, read_spec};
use indicatif::{ProgressBar, ProgressStyle};
use rl_runner::RunStatus;
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;

/// Where the server is: `--server`, else `RL_LAB_SERVER`, else the default.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Server URL [env: RL_LAB_SERVER; default http://127.0.0.1:8080]. RL_LAB_TOKEN is sent as a bearer token.
    #[arg(long)]
    server: Option<String>,
}

/// Arguments of `rl-lab submit`.
#[derive(clap::Args)]
pub struct SubmitArgs {
    /// Run spec (JSON), as for `rl-lab run`.
    spec: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `rl-lab sweep`.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// Sweep (JSON): {"name", "base": run spec, "grid": {path: [values]}, "random": {path: distribution, "count": N}, "seeds": [...]}, as POST /v1/sweeps takes it.
    sweep: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `rl-lab runs`.
#[derive(clap::Args)]
pub struct RunsArgs {
    /// Only runs in this status: queued, running, completed, failed,
    /// cancelled or interrupted.
    #[arg(long)]
    status: Option<RunStatus>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `rl-lab watch`.
#[derive(clap::Args)]
pub struct WatchArgs {
    /// The run id, as `submit` printed it.
    run_id: String,
    #[command(flatten)]
    server: ServerArgs,
}

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(args: &ServerArgs) -> Client {
        let base = args
            .server
            .clone()
            .or_else(|| std::env::var("RL_LAB_SERVER").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: std::env::var("RL_LAB_TOKEN").ok().filter(|t| !t.is_empty()),
            agent,
        }
    }

    fn failed(&self, e: ureq::Error) -> CliError {
        CliError {
            code: 1,
            message: format!("cannot reach the server at {}: {e}", self.base),
        }
    }

    /// Sends a request; an error reply becomes a `CliError` with its message
    /// (exit code 2 for a 4xx, which is the caller's input).
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let mut response = match (method, body) {
            ("POST", Some(body)) => {
                let mut request = self.agent.post(&url);
                if let Some(token) = &self.token {
                    request = request.header("Authorization", &format!("Bearer {token}"));
                }
                request.send_json(body)
            }
            _ => {
                let mut request = self.agent.get(&url);
                if let Some(token) = &self.token {
                    request = request.header("Authorization", &format!("Bearer {token}"));
                }
                request.call()
            }
        }
        .map_err(|e| self.failed(e))?;
        let status = response.status().as_u16();
        let value: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if status >= 400 {
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let field = value["error"]["field"]
                .as_str()
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            return Err(CliError {
                code: if status < 500 { 2 } else { 1 },
                message: format!("{field}{message} (HTTP {status})"),
            });
        }
        Ok(value)
    }
}

/// Launches a run and prints its id.
pub fn submit(args: SubmitArgs) -> CliResult {
    // Checked locally first, so a bad spec fails the same way as `rl-lab run`.
    let spec = read_spec(&args.spec)?;
    let body = serde_json::to_value(&spec).map_err(|e| CliError::input(e.to_string()))?;
    let client = Client::new(&args.server);
    let reply = client.send("POST", "/v1/runs", Some(&body))?;
    say!("{}", reply["id"].as_str().unwrap_or_default());
    Ok(())
}

/// Submits a sweep; prints its id, then each run's id. The server checks
/// every run before it stores any.
pub fn sweep(args: SweepArgs) -> CliResult {
    let text = std::fs::read_to_string(&args.sweep).map_err(|e| CliError {
        code: 2,
        message: format!("cannot read {}: {e}", args.sweep.display()),
    })?;
    let body: Value = serde_json::from_str(&text).map_err(|e| CliError {
        code: 2,
        message: format!("{}: not JSON: {e}", args.sweep.display()),
    })?;
    let client = Client::new(&args.server);
    let reply = client.send("POST", "/v1/sweeps", Some(&body))?;
    say!("{}", reply["id"].as_str().unwrap_or_default());
    for run in reply["runs"].as_array().into_iter().flatten() {
        say!("{}", run.as_str().unwrap_or_default());
    }
    Ok(())
}

/// Lists runs, newest first.
pub fn runs(args: RunsArgs) -> CliResult {
    let client = Client::new(&args.server);
    let mut path = "/v1/runs?limit=500".to_string();
    if let Some(status) = &args.status {
        path.push_str(&format!("&status={status}"));
    }
    let reply = client.send("GET", &path, None)?;
    if args.json {
        return print_json(&reply["runs"]);
    }
    say!(
        "{:<10} {:<12} {:<28} {:<18} {:>10} {:>9}",
        "id",
        "status",
        "env",
        "agent",
        "steps",
        "episodes"
    );
    for run in reply["runs"].as_array().into_iter().flatten() {
        say!(
            "{:<10} {:<12} {:<28} {:<18} {:>10} {:>9}",
            run["id"].as_str().unwrap_or("?"),
            run["status"].as_str().unwrap_or("?"),
            run["env"].as_str().unwrap_or("?"),
            run["agent"].as_str().unwrap_or("?"),
            // A `Value` ignores width and alignment; its text does not.
            run["steps"].to_string(),
            run["episodes"].to_string()
        );
    }
    Ok(())
}

/// Follows a run's events until it ends. Exit code: 0 completed, 1 failed,
/// 3 cancelled or interrupted, 2 an unknown run.
pub fn watch(args: WatchArgs) -> CliResult {
    let client = Client::new(&args.server);
    let run = client.send("GET", &format!("/v1/runs/{}", args.run_id), None)?;
    let (total, unit) = match &run["progress"]["budget"] {
        Value::Object(budget) => budget
            .iter()
            .next()
            .map(|(unit, n)| (n.as_u64().unwrap_or(0), unit.clone()))
            .unwrap_or((0, "steps".into())),
        _ => (0, "steps".into()),
    };
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {unit} · {{msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let url = format!("{}/v1/runs/{}/events", client.base, args.run_id);
    let mut request = client.agent.get(&url);
    if let Some(token) = &client.token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let response = request.call().map_err(|e| client.failed(e))?;
    let reader = std::io::BufReader::new(response.into_body().into_reader());
    let (mut kind, mut data) = (String::new(), String::new());
    let mut recent_return: Option<f64> = None;
    let status_of = |value: &Value| value.as_str().and_then(|s| s.parse::<RunStatus>().ok());
    let mut final_status = status_of(&run["status"]);
    for line in reader.lines() {
        let line = line.map_err(|e| CliError {
            code: 1,
            message: format!("the event stream broke: {e}"),
        })?;
        if let Some(rest) = line.strip_prefix("event:") {
            kind = rest.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let event: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            data.clear();
            match kind.as_str() {
                "metric" => {
                    let step = event["step"].as_u64().unwrap_or(0);
                    // A merged window of episodes (docs/server.md, "Recording
                    // policy") gives its mean return.
                    if event["kind"] == "episode" || event["kind"] == "episodes" {
                        recent_return = event["return"]
                            .as_f64()
                            .or_else(|| event["return"]["mean"].as_f64());
                        let position = if unit == "episodes" {
                            event["episode"].as_u64().unwrap_or(0)
                        } else {
                            step
                        };
                        bar.set_position(position);
                    }
                    let mut message = format!("step {step}");
                    if let Some(r) = recent_return {
                        message.push_str(&format!(" · return {r:.2}"));
                    }
                    if let (Some(name), Some(value)) =
                        (event["name"].as_str(), event["value"].as_f64())
                    {
                        message.push_str(&format!(" · {name} {value:.4}"));
                    }
                    bar.set_message(message);
                }
                "log" => bar.println(format!(
                    "[{}] {}",
                    event["level"].as_str().unwrap_or(""),
                    event["message"].as_str().unwrap_or("")
                )),
                "status" => {
                    final_status = status_of(&event["status"]);
                    bar.println(format!(
                        "status: {}",
                        event["status"].as_str().unwrap_or("?")
                    ));
                    if final_status.is_some_and(RunStatus::is_final) {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    bar.finish_and_clear();
    match final_status {
        Some(RunStatus::Completed) => Ok(()),
        Some(RunStatus::Failed) => Err(CliError {
            code: 1,
            message: format!("run {} failed", args.run_id),
        }),
        other => Err(CliError {
            code: 3,
            message: format!(
                "run {} ended {}",
                args.run_id,
                other.map_or("", RunStatus::as_str)
            ),
        }),
    }
}
