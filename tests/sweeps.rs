//! Sweeps end to end: `rl-lab sweep` submits one to the real server, which
//! expands it into runs, checks them all before it stores any, runs them,
//! and reports each configuration's mean and spread across seeds.

use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

mod support;
use support::{Server, get_json, post_json, wait_status};

fn base() -> Value {
    json!({"env": {"id": "gridworld/cliff-walking"},
           "agent": {"id": "q-learning", "config": {"epsilon": 0.1}},
           "budget": {"episodes": 150}, "seed": 0})
}

fn rl_lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_sweep_of_three_configurations_by_two_seeds_completes_with_its_aggregates() {
    let server = Server::start_in_temp(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.json");
    let sweep = json!({"name": "alpha-sweep", "base": base(),
                       "grid": {"agent.config.alpha": [0.1, 0.3, 0.5]}, "seeds": [0, 1]});
    std::fs::write(&file, sweep.to_string()).unwrap();
    let out = rl_lab(&["sweep", file.to_str().unwrap(), "--server", &server.base]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        printed.len(),
        7,
        "the sweep's id, then six runs': {printed:?}"
    );
    let (id, runs) = (&printed[0], &printed[1..]);
    for run in runs {
        wait_status(&server, run, &["completed"], Duration::from_secs(60));
    }
    let (status, view) = get_json(&server, &format!("/v1/sweeps/{id}"));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["name"], "alpha-sweep");
    assert_eq!(view["statuses"], json!({"completed": 6}));
    let configurations = view["configurations"].as_array().unwrap();
    assert_eq!(configurations.len(), 3);
    for (index, (configuration, alpha)) in configurations.iter().zip([0.1, 0.3, 0.5]).enumerate() {
        assert_eq!(configuration["index"], index);
        assert_eq!(
            configuration["params"],
            json!({"agent.config.alpha": alpha})
        );
        assert_eq!(configuration["completed"], 2);
        let finals: Vec<f64> = configuration["runs"]
            .as_array()
            .unwrap()
            .iter()
            .zip([0, 1])
            .map(|(run, seed)| {
                assert_eq!(run["seed"], seed);
                let (_, stored) = get_json(
                    &server,
                    &format!("/v1/runs/{}", run["id"].as_str().unwrap()),
                );
                assert_eq!(stored["spec"]["agent"]["config"]["alpha"], json!(alpha));
                let value = stored["summary"]["train_mean_return_last_100"]
                    .as_f64()
                    .unwrap();
                assert_eq!(run["final"].as_f64(), Some(value));
                value
            })
            .collect();
        let mean = (finals[0] + finals[1]) / 2.0;
        let std = ((finals[0] - mean).powi(2) + (finals[1] - mean).powi(2)).sqrt();
        assert!(
            (configuration["final_mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{configuration}"
        );
        assert!(
            (configuration["final_std"].as_f64().unwrap() - std).abs() < 1e-9,
            "{configuration}"
        );
    }
    // A sweep's run is the run its spec makes on its own: alpha 0.3, seed 1.
    let mut alone = base();
    alone["agent"]["config"]["alpha"] = json!(0.3);
    alone["seed"] = json!(1);
    let spec = dir.path().join("alone.json");
    std::fs::write(&spec, alone.to_string()).unwrap();
    let out = rl_lab(&[
        "run",
        spec.to_str().unwrap(),
        "--json",
        "--out",
        dir.path().join("alone").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        configurations[1]["runs"][1]["final"],
        summary["train_mean_return_last_100"]
    );
    let (_, list) = get_json(&server, "/v1/sweeps");
    assert_eq!(list["sweeps"][0]["id"], id.as_str());
    assert_eq!(list["sweeps"][0]["configurations"], 3);
}

#[test]
fn a_sweep_with_a_bad_path_or_value_queues_nothing() {
    let server = Server::start_in_temp(&[]);
    let runs_before = get_json(&server, "/v1/runs").1["runs"]
        .as_array()
        .unwrap()
        .len();
    for (sweep, field) in [
        (
            json!({"name": "typo", "base": base(), "grid": {"agent.config.alpah": [0.1, 0.3]},
                "seeds": [0, 1]}),
            "agent.config.alpah",
        ),
        // The first configuration is fine, the second is not: neither runs.
        (
            json!({"name": "range", "base": base(), "grid": {"agent.config.alpha": [0.5, 7.0]}}),
            "agent.config.alpha",
        ),
        (
            json!({"name": "draws", "base": base(),
                "random": {"agent.config.epsilon": {"log_uniform": [0.3, 0.01]}, "count": 2}}),
            "random.agent.config.epsilon",
        ),
        (
            json!({"name": "no seeds", "base": base(), "seeds": []}),
            "seeds",
        ),
        (
            json!({"name": "shape", "base": base(), "grid": {"agent.config": [[0.1, 0.2]]}}),
            "agent.config",
        ),
    ] {
        let (status, reply) = post_json(&server, "/v1/sweeps", &sweep);
        assert_eq!(status, 422, "{reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    assert_eq!(
        get_json(&server, "/v1/runs").1["runs"]
            .as_array()
            .unwrap()
            .len(),
        runs_before
    );
    assert_eq!(get_json(&server, "/v1/sweeps").1, json!({"sweeps": []}));
    let (status, reply) = get_json(&server, "/v1/sweeps/sweep-99");
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (404, Some("sweep_not_found"))
    );
    // The CLI says the same, with exit code 2.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        json!({"name": "typo", "base": base(),
                                 "grid": {"agent.config.alpah": [0.1]}})
        .to_string(),
    )
    .unwrap();
    let out = rl_lab(&["sweep", file.to_str().unwrap(), "--server", &server.base]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent.config.alpah"));
}
