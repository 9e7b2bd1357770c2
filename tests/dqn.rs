//! End-to-end DQN on the real binary: every DQN example spec runs (with its
//! budget cut to a few hundred steps), `rl-lab eval` plays the saved policy
//! and writes a GIF, and `rl-lab bench dqn --json` prints its figure.

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

fn json_out(output: &Output, what: &str) -> Value {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{what}: one JSON line");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn every_dqn_example_runs_shortened_and_eval_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .contains(r#""id": "dqn""#)
            })
            .collect();
    names.sort();
    assert_eq!(names.len(), 6, "five MinAtar games and CartPole");
    for path in names {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let mut spec: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The example as written, but 200 steps, learning after 100.
        spec["budget"] = json!({"steps": 200});
        spec["agent"]["config"]["learning_starts"] = json!(100);
        spec["agent"]["config"]["log_every"] = json!(50);
        spec["eval"] = json!({"episodes": 1, "max_steps": 50, "every_steps": 150});
        let short = dir.path().join(format!("{name}.json"));
        std::fs::write(&short, spec.to_string()).unwrap();
        let out = dir.path().join(&name);
        let summary = json_out(
            &rl_lab(&[
                "run",
                short.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--json",
            ]),
            &name,
        );
        assert_eq!(summary["status"], "completed", "{name}");
        assert_eq!(summary["steps"], 200, "{name}");
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        for metric in [
            "train/loss",
            "train/q_mean",
            "train/epsilon",
            "time/steps_per_second",
            "eval/mean_return",
        ] {
            assert!(metrics.contains(metric), "{name}: no {metric}");
        }

        if name == "minatar-breakout-dqn" {
            let gif = dir.path().join("breakout.gif");
            let eval = json_out(
                &rl_lab(&[
                    "eval",
                    out.to_str().unwrap(),
                    "--episodes",
                    "2",
                    "--gif",
                    gif.to_str().unwrap(),
                    "--json",
                ]),
                "eval",
            );
            assert_eq!(eval["episodes"], 2);
            assert_eq!(eval["returns"].as_array().unwrap().len(), 2);
            assert_eq!(eval["trained_steps"], 200);
            let bytes = std::fs::read(&gif).unwrap();
            assert_eq!(&bytes[..6], b"GIF89a");
            // The saved policy plays the same episodes as the run's own final evaluation.
            let again = json_out(
                &rl_lab(&["eval", out.to_str().unwrap(), "--episodes", "1", "--json"]),
                "eval",
            );
            assert_eq!(again["returns"], summary["eval"]["returns"]);
        }
    }
}

#[test]
fn eval_refuses_a_folder_without_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    let output = rl_lab(&["eval", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let output = rl_lab(&["eval", "examples"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn bench_dqn_prints_steps_per_second() {
    let report = json_out(
        &rl_lab(&["bench", "dqn", "--json", "--seconds", "0.3"]),
        "bench dqn",
    );
    let rate = report["minatar/breakout"]["train_steps_per_second"]
        .as_f64()
        .unwrap();
    assert!(rate > 0.0, "{report}");
    let help = String::from_utf8(rl_lab(&["--help"]).stdout).unwrap();
    assert!(help.contains("eval"), "{help}");
}
