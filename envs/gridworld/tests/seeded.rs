//! `reset(seed)` gives Gymnasium's episode under Gymnasium's ids: seeded
//! episodes recorded with Gymnasium 1.4 by
//! `envs/classic/tests/reference/make_traces.py` (fixtures in
//! `tests/reference/`), replayed bit for bit, `info.prob` included.

#[path = "../../classic/tests/common/seeded.rs"]
mod seeded;

use rl_env::Registry;

fn check(name: &str) {
    let mut registry = Registry::new();
    rl_gridworld::register(&mut registry);
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference");
    let steps = seeded::replay(&registry, &seeded::load(folder, name));
    assert!(steps >= 50, "{name}: only {steps} steps recorded");
}

#[test]
fn frozen_lake_episodes_are_gymnasiums() {
    check("FrozenLake-v1");
}

#[test]
fn frozen_lake_8x8_episodes_are_gymnasiums() {
    check("FrozenLake8x8-v1");
}

#[test]
fn cliff_walking_episodes_are_gymnasiums() {
    check("CliffWalking-v1");
}

#[test]
fn slippery_cliff_walking_episodes_are_gymnasiums() {
    check("CliffWalking-v1-slippery");
}
