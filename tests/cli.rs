//! End-to-end: the real `rl-lab` binary on the example specs, and on every
//! kind of bad input (exit code 2, one line naming the field, nothing written).

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn rl_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn run_json(spec: &str, out: &Path) -> Value {
    let output = rl_lab(&["run", spec, "--out", out.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{spec}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "--json prints exactly one line");
    serde_json::from_str(&stdout).expect("stdout is one JSON object")
}

#[test]
fn examples_run_and_write_their_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cliff");
    let summary = run_json("examples/01-q-learning-cliff.json", &out);
    for field in [
        "status",
        "env",
        "agent",
        "episodes",
        "steps",
        "eval",
        "value_grid",
        "policy_grid",
    ] {
        assert!(
            summary.get(field).is_some(),
            "summary lacks {field}: {summary}"
        );
    }
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["episodes"], 500);
    assert_eq!(summary["eval"]["mean_return"], -13.0);
    assert_eq!(summary["eval"]["episodes"], 10);
    assert_eq!(summary["value_grid"].as_array().unwrap().len(), 4);
    assert_eq!(
        summary["policy_grid"][3].as_str().unwrap().chars().last(),
        Some('·')
    );
    for file in ["spec.json", "metrics.jsonl", "summary.json", "tables.json"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 500);
    let first: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    for field in [
        "episode",
        "step",
        "return",
        "length",
        "epsilon",
        "wall_seconds",
    ] {
        assert!(
            first.get(field).is_some(),
            "metrics line lacks {field}: {first}"
        );
    }
    let tables: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tables.json")).unwrap()).unwrap();
    assert_eq!(tables["q"].as_array().unwrap().len(), 48);

    // A second run into the same folder is refused: nothing stored is lost.
    let again = rl_lab(&[
        "run",
        "examples/01-q-learning-cliff.json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn every_example_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            // DQN's specs train for hours; tests/dqn.rs runs them shortened.
            .filter(|p| {
                !std::fs::read_to_string(p)
                    .unwrap()
                    .contains(r#""id": "dqn""#)
            })
            .collect();
    names.sort();
    assert!(names.len() >= 9);
    for path in names {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let mut spec: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The MinAtar policy-gradient specs train 5M steps for many
        // minutes; here they run as written but for 3,000 steps (two PPO
        // rollouts of 8 × 128), so that a spec that no longer parses or
        // builds still fails.
        let long = spec["budget"]["steps"]
            .as_u64()
            .is_some_and(|s| s > 1_000_000);
        let path = if long {
            spec["budget"] = json!({"steps": 3_000});
            spec["eval"] = json!({"episodes": 1, "max_steps": 100});
            let short = dir.path().join(format!("{name}.json"));
            std::fs::write(&short, spec.to_string()).unwrap();
            short
        } else {
            path
        };
        let summary = run_json(path.to_str().unwrap(), &dir.path().join(&name));
        assert_eq!(summary["status"], "completed", "{name}");
        if long {
            assert_eq!(
                summary["steps"].as_u64().map(|s| s >= 3_000),
                Some(true),
                "{name}"
            );
        }
        match name.as_str() {
            "03-sarsa-windy" => assert_eq!(summary["eval"]["mean_length"], 15.0),
            "04-value-iteration-frozen-lake" => assert!(summary["sweeps"].as_u64().unwrap() > 0),
            "05-policy-evaluation-example-4-1" => {
                assert_eq!(summary["value_grid"][0][1].as_f64().unwrap().round(), -14.0)
            }
            _ => {}
        }
    }
}

#[test]
fn bad_inputs_exit_2_with_one_line_naming_the_field() {
    let cases = [
        ("unknown-env", "env.id"),
        ("unknown-agent", "agent.id"),
        ("unknown-field", "agent.config.alpah"),
        ("ragged-map", "env.config.map[1]"),
        ("no-start", "env.config.map"),
        ("jump-to-missing", "env.config.cells.A.jump.to"),
        ("slip-out-of-range", "env.config.slip"),
        ("epsilon-out-of-range", "agent.config.epsilon"),
        ("dp-without-model", "has no model"),
        ("malformed", "malformed JSON"),
        ("bad-wrapper", "env.wrappers[0].frame_stack"),
        ("dqn-batch-larger-than-buffer", "agent.config.batch_size"),
        ("dqn-epsilon-out-of-range", "agent.config.epsilon_end"),
        ("dqn-gamma-out-of-range", "agent.config.gamma"),
        ("dqn-network-output", "agent.config.network"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, needle) in cases {
        let out = dir.path().join(name);
        let spec = format!("examples/bad/{name}.json");
        let output = rl_lab(&["run", &spec, "--out", out.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(!out.exists(), "{name}: a run folder was written");
    }
    let missing = rl_lab(&["run", "examples/no-such-file.json"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn listings_and_show() {
    let envs = rl_lab(&["envs", "--json"]);
    assert!(envs.status.success());
    let envs: Value = serde_json::from_slice(&envs.stdout).unwrap();
    let ids: Vec<&str> = envs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for id in [
        "gridworld",
        "gridworld/cliff-walking",
        "gridworld/windy",
        "FrozenLake-v1",
        "CliffWalking-v1",
    ] {
        assert!(ids.contains(&id), "{id} not listed");
    }
    let cliff = envs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "CliffWalking-v1")
        .unwrap();
    assert_eq!(cliff["observation_space"]["n"], 48);

    let agents = rl_lab(&["agents", "--json"]);
    let agents: Value = serde_json::from_slice(&agents.stdout).unwrap();
    assert!(agents.as_array().unwrap().len() >= 10);
    for agent in agents.as_array().unwrap() {
        for h in agent["hyperparameters"].as_array().unwrap() {
            assert!(
                !h["default"].is_null(),
                "{} {} has no default",
                agent["id"],
                h["name"]
            );
        }
    }

    let show = rl_lab(&["show", "examples/01-q-learning-cliff.json"]);
    assert!(show.status.success());
    let text = String::from_utf8(show.stdout).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>()[3], "@CCCCCCCCCCG");
}

/// `rl-lab agents | head -1`: a reader that goes away early ends the
/// output quietly, with success, rather than a panic on the next line.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [&["agents"][..], &["envs"], &["agents", "--json"]] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_run_past_the_memory_cap_exits_2_with_the_estimate_and_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = rl_lab(&[
        "run",
        "examples/cartpole-dqn.json",
        "--max-run-memory",
        "1M",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("agent.config"), "{stderr}");
    assert!(
        stderr.contains("(1048576 bytes, --max-run-memory)"),
        "{stderr}"
    );
    assert!(!out.exists(), "a run folder was written");
}
