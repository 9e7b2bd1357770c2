//! The real server fuzzed from its own OpenAPI document (issue 17 §3):
//! schemathesis with every check, the stateful phase on (it follows the
//! document's links from a created run or env instance to the routes that
//! use it), a fixed seed and a bounded number of cases, so that CI runs the
//! same few hundred cases each time. `benches/fuzz.sh` is the long run.
//!
//! Needs `RL_LAB_TEST_PYTHON`: a Python whose environment has schemathesis
//! (tests/requirements.txt; `./scripts/test` installs it). The settings
//! the checks need are in the repository's `schemathesis.toml`, each with
//! its reason.

mod support;

use std::path::Path;
use std::process::Command;

/// The `schemathesis` command of the test Python's environment.
fn schemathesis() -> std::path::PathBuf {
    let python = std::env::var("RL_LAB_TEST_PYTHON").expect(
        "RL_LAB_TEST_PYTHON must name a Python with schemathesis installed: run the suite with ./scripts/test",
    );
    let command = Path::new(&python).with_file_name("schemathesis");
    assert!(
        command.is_file(),
        "{} is missing: install tests/requirements.txt into {python}'s environment (./scripts/test does)",
        command.display()
    );
    command
}

/// The first number on the line of `output` that contains `label`.
fn figure(output: &str, label: &str) -> Option<u64> {
    let line = output.lines().find(|line| line.contains(label))?;
    line.split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())?
        .parse()
        .ok()
}

#[test]
fn schemathesis_with_every_check_and_the_stateful_phase_finds_no_failure() {
    let command = schemathesis();
    let root = env!("CARGO_MANIFEST_DIR");
    // One run at a time, so that the runs the fuzzer launches leave the
    // other core to the server and the fuzzer.
    let data = tempfile::tempdir().unwrap();
    let server = support::Server::start_with(
        data.path(),
        &["--max-concurrent-runs", "1"],
        &[("RL_LAB_TEST_AGENTS", "1")],
        None,
        &[],
    );
    // A run that sleeps through its steps holds the only local worker, so
    // that the runs the fuzzer launches queue instead of training: this
    // fuzzes the HTTP API, and a tabular run at full speed writes metrics
    // as fast as the disk takes them.
    let holder = serde_json::json!({
        "env": {"id": "CartPole-v1"},
        "agent": {"id": "test/panic", "config": {"sleep_ms_per_step": 100}},
        "budget": {"steps": 1_000_000_000u64},
        "eval": {"episodes": 0}
    });
    let response = support::agent()
        .post(&format!("{}/v1/runs", server.base))
        .header("Content-Type", "application/json")
        .send(holder.to_string())
        .expect("the request reaches the server");
    assert_eq!(response.status().as_u16(), 201);
    // Schemathesis writes its example database and reports into its
    // working folder: a temporary one, not the repository.
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(&command)
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(Path::new(root).join("schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args(["--checks", "all", "--exclude-path", "/v1/shutdown/"])
        // The coverage phase enumerates thousands of boundary cases; CI
        // keeps to generated cases, a few hundred in all, and the
        // stateful phase. benches/fuzz.sh runs every phase.
        .args(["--phases", "fuzzing,stateful"])
        .args(["--seed", "17", "--max-examples", "10"])
        .args(["--generation-database", "none"])
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
    // It really ran: cases were generated, and the stateful phase followed
    // links from created resources.
    let cases = figure(&stdout, " generated,").unwrap_or(0);
    assert!(cases >= 200, "only {cases} cases:\n{stdout}");
    let scenarios = figure(&stdout, "Scenarios:").unwrap_or(0);
    let links = figure(&stdout, "API Links:").unwrap_or(0);
    assert!(
        scenarios > 0 && links >= 10,
        "the stateful phase ran {scenarios} scenarios over {links} links:\n{stdout}"
    );
    eprintln!("schemathesis: {cases} cases, {scenarios} stateful scenarios, {links} links covered");
}
