//! Replays the seeded episodes `tests/reference/make_traces.py` recorded
//! with Gymnasium (`seeded-<id>.json`) and asserts bit-for-bit equality:
//! the reset observations, and per step the observation, reward,
//! terminated and truncated (and `info.prob` where recorded).
//!
//! Shared by rl-classic's and rl-gridworld's `tests/seeded.rs` (the
//! gridworld includes this file by path), so both crates replay the
//! fixture format the one script writes in one way.

use rl_env::{Action, Env, Observation, Registry};
use serde_json::Value;

/// Reads `seeded-<name>.json` from `folder`.
pub fn load(folder: &str, name: &str) -> Value {
    let path = format!("{folder}/seeded-{name}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("the fixture is JSON")
}

/// Whether our observation is the recorded one, to the bit: a state index
/// for `Discrete` spaces, float32 bit patterns for `Box` spaces.
pub fn same_observation(ours: &Observation, recorded: &Value) -> bool {
    match ours {
        Observation::Discrete(s) => recorded.as_i64() == Some(*s),
        Observation::F32(a) => {
            let bits: Vec<u64> = a.iter().map(|v| u64::from(v.to_bits())).collect();
            let expected: Vec<u64> = recorded
                .as_array()
                .expect("float observations are arrays of bit patterns")
                .iter()
                .map(|b| b.as_u64().expect("a bit pattern"))
                .collect();
            bits == expected
        }
        other => panic!("unexpected observation {other:?}"),
    }
}

fn float32s(recorded: &Value) -> Vec<f32> {
    match recorded.as_array() {
        Some(bits) => bits
            .iter()
            .map(|b| f32::from_bits(b.as_u64().expect("a bit pattern") as u32))
            .collect(),
        None => vec![],
    }
}

/// Replays every run of `fixture` on a fresh env from `registry`, made
/// with the fixture's kwargs; returns the number of steps compared.
pub fn replay(registry: &Registry, fixture: &Value) -> usize {
    let id = fixture["id"].as_str().expect("an id");
    let mut steps = 0;
    for run in fixture["runs"].as_array().expect("runs") {
        let mut env = registry
            .make(id, &fixture["kwargs"])
            .expect("the id is registered");
        for (e, episode) in run["episodes"]
            .as_array()
            .expect("episodes")
            .iter()
            .enumerate()
        {
            let where_ = format!(
                "{id} {} seed {} episode {e}",
                fixture["kwargs"], run["seed"]
            );
            let (mut obs, _) = env.reset(episode["reset_seed"].as_u64()).unwrap();
            assert!(
                same_observation(&obs, &episode["reset"]),
                "{where_}: reset gave {obs:?}, Gymnasium {:?}",
                float32s(&episode["reset"])
            );
            for (t, action) in episode["actions"].as_array().unwrap().iter().enumerate() {
                let action = Action::Discrete(action.as_i64().unwrap());
                let out = env.step_into(&action, &mut obs).unwrap();
                let expected = &episode["observations"][t];
                assert!(
                    same_observation(&obs, expected),
                    "{where_} step {t}: {obs:?}, Gymnasium {expected} {:?}",
                    float32s(expected)
                );
                assert_eq!(
                    out.reward.to_bits(),
                    episode["rewards"][t].as_f64().unwrap().to_bits(),
                    "{where_} step {t}: reward"
                );
                assert_eq!(
                    (out.terminated, out.truncated),
                    (
                        episode["terminated"][t].as_bool().unwrap(),
                        episode["truncated"][t].as_bool().unwrap()
                    ),
                    "{where_} step {t}: terminated, truncated"
                );
                if let Some(prob) = episode.get("probs") {
                    assert_eq!(
                        out.info.prob.map(f64::to_bits),
                        prob[t].as_f64().map(f64::to_bits),
                        "{where_} step {t}: info.prob"
                    );
                }
                steps += 1;
            }
        }
    }
    steps
}
