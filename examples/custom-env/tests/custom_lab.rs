//! The example crate does what docs/envs.md promises: its binary trains
//! NChain with every agent, runs it on the server, and serves it over HTTP.

use rl_env::{Action, Env, Observation};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn custom_lab(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custom-lab"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run custom-lab")
}

fn run_spec(spec: &Value, dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = custom_lab(
        &[
            "run",
            path.to_str().unwrap(),
            "--out",
            dir.join(name).to_str().unwrap(),
            "--json",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every agent of the registry trains on the crate's env through the
/// binary's `run`; DQN needs vectors, so it gets the `one_hot` wrapper (the
/// policy-gradient agents encode a `Discrete` state one-hot themselves).
#[test]
fn every_agent_trains_on_the_custom_env() {
    let dir = tempfile::tempdir().unwrap();
    let listing = custom_lab(&["agents", "--json"], dir.path());
    assert!(listing.status.success());
    let agents: Value = serde_json::from_slice(&listing.stdout).unwrap();
    let ids: Vec<String> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 10, "{ids:?}");
    for id in &ids {
        let mut env = json!({"id": "custom/nchain", "config": {"max_steps": 50}});
        let mut config = json!({});
        if id == "dqn" {
            env["wrappers"] = json!(["one_hot"]);
            config = json!({"learning_starts": 100, "replay": {"capacity": 1000},
                            "batch_size": 8});
        }
        let spec = json!({"env": env, "agent": {"id": id, "config": config},
                          "budget": {"episodes": 20}, "seed": 2,
                          "eval": {"episodes": 2, "max_steps": 50}});
        let summary = run_spec(&spec, dir.path(), id);
        assert_eq!(summary["status"], "completed", "{id}: {summary}");
        assert_eq!(summary["env"], "custom/nchain");
    }
}

/// Q-learning finds the policy value iteration computes from the model:
/// walk forward everywhere, which pays far more than going back.
#[test]
fn q_learning_finds_the_planned_policy() {
    let dir = tempfile::tempdir().unwrap();
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let planned = run_spec(
        &serde_json::from_str(
            &std::fs::read_to_string(specs.join("value-iteration.json")).unwrap(),
        )
        .unwrap(),
        dir.path(),
        "vi",
    );
    assert_eq!(planned["converged"], true);
    let learned = run_spec(
        &serde_json::from_str(&std::fs::read_to_string(specs.join("q-learning.json")).unwrap())
            .unwrap(),
        dir.path(),
        "ql",
    );
    let policy = |name: &str| -> Value {
        let tables: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(name).join("tables.json")).unwrap(),
        )
        .unwrap();
        tables["policy"].clone()
    };
    assert_eq!(policy("vi"), json!([0, 0, 0, 0, 0]));
    assert_eq!(policy("ql"), policy("vi"));
    // Forward everywhere earns well over the 2-per-step of going back.
    assert!(
        learned["eval"]["mean_return"].as_f64().unwrap() > 400.0,
        "{learned}"
    );
}

struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custom-lab"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .env_remove("RL_LAB_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start custom-lab serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Served { child, base }
}

fn post(url: &str, body: Value) -> Value {
    ureq::post(url)
        .send_json(body)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// The binary serves the env over gym-http-api's routes, and an episode
/// there is the same as in process with the same seed and actions.
#[test]
fn the_binary_serves_the_env_over_http() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path());
    let created = post(
        &format!("{}/v1/envs/", server.base),
        json!({"env_id": "custom/nchain", "seed": 11}),
    );
    let id = created["instance_id"].as_str().unwrap();
    let reset = post(
        &format!("{}/v1/envs/{id}/reset/", server.base),
        json!({"seed": 11}),
    );
    assert_eq!(reset["observation"], 0);

    let mut local = custom_env::nchain(&Value::Null).unwrap();
    let (first, _) = local.reset(Some(11)).unwrap();
    assert_eq!(first, Observation::Discrete(0));
    for t in 0..100 {
        let action = (t / 7) % 2;
        let remote = post(
            &format!("{}/v1/envs/{id}/step/", server.base),
            json!({"action": action}),
        );
        let step = local.step(&Action::Discrete(action)).unwrap();
        assert_eq!(
            remote["observation"],
            json!(step.obs.as_index().unwrap()),
            "step {t}"
        );
        assert_eq!(remote["reward"].as_f64().unwrap(), step.reward, "step {t}");
    }
}

/// A run on the crate's env goes through the server's runs API as well.
#[test]
fn the_server_runs_the_custom_env() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path());
    let spec = json!({"env": {"id": "custom/nchain", "config": {"max_steps": 50}},
                      "agent": {"id": "sarsa"}, "budget": {"episodes": 30}, "seed": 4,
                      "eval": {"episodes": 2, "max_steps": 50}});
    let created = post(&format!("{}/v1/runs", server.base), spec);
    let id = created["id"].as_str().unwrap().to_string();
    let began = Instant::now();
    loop {
        let run: Value = ureq::get(&format!("{}/v1/runs/{id}", server.base))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        match run["status"].as_str().unwrap() {
            "completed" => {
                assert_eq!(run["summary"]["episodes"], 30, "{run}");
                break;
            }
            "queued" | "running" => {}
            other => panic!("run ended {other}: {run}"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "run never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
