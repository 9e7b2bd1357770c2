//! The dashboard in a real browser (issue 18): `tests/browser/` drives
//! Debian's Chromium with Playwright against this build's `rl-lab serve`,
//! launching, watching, cancelling and comparing runs through the page.
//! `./scripts/test` installs Chromium and Playwright; without them this
//! test fails, never skips. Screenshots go to `target/dashboard-screenshots`.

use std::process::Command;

#[test]
fn the_dashboard_works_in_chromium() {
    let python = std::env::var("RL_LAB_TEST_PYTHON").expect(
        "RL_LAB_TEST_PYTHON must name the test venv's Python: run the suite with ./scripts/test",
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/browser",
        ])
        .current_dir(root)
        .env("RL_LAB_BINARY", env!("CARGO_BIN_EXE_rl-lab"))
        .env(
            "RL_LAB_SCREENSHOTS",
            format!("{root}/target/dashboard-screenshots"),
        )
        .output()
        .expect("pytest starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser tests failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Every test ran: none skipped or deselected.
    assert!(
        !stdout.contains("skipped") && stdout.contains(" passed"),
        "{stdout}"
    );
}
