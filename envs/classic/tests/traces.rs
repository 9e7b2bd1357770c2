//! Our classic-control dynamics against Gymnasium 1.x's, from the traces
//! that `tests/reference/make_traces.py` recorded with Gymnasium itself
//! (1,000 steps per id, plus one-step probes from edge and random states).
//!
//! Three checks per id:
//! - one step at a time: from each recorded state and action, our next
//!   state equals Gymnasium's to 1e-9, with the same reward and flag;
//! - whole episodes: from each recorded start state, our env (with its
//!   registered time limit) replays the actions and stays within 1e-9 of
//!   Gymnasium's states, ending the same way on the same step;
//! - the probes, one step each.

use rl_classic::{
    Acrobot, AcrobotConfig, CartPole, CartPoleConfig, MountainCar, MountainCarConfig, SetState,
};
use rl_env::{Action, Env, Observation, wrappers::TimeLimit};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

trait Classic: Env + SetState {}
impl<T: Env + SetState> Classic for T {}

fn build(id: &str) -> (Box<dyn Classic>, u64) {
    match id {
        "CartPole-v1" | "CartPole-v0" => (
            Box::new(CartPole::new(
                serde_json::from_value::<CartPoleConfig>(serde_json::json!({})).unwrap(),
            )),
            if id == "CartPole-v1" { 500 } else { 200 },
        ),
        "MountainCar-v0" => (
            Box::new(
                MountainCar::new(
                    &serde_json::from_value::<MountainCarConfig>(serde_json::json!({})).unwrap(),
                )
                .unwrap(),
            ),
            200,
        ),
        "Acrobot-v1" => (
            Box::new(Acrobot::new(
                &serde_json::from_value::<AcrobotConfig>(serde_json::json!({})).unwrap(),
            )),
            500,
        ),
        other => panic!("no such id {other}"),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn load(id: &str) -> Value {
    let path = format!("{}/tests/reference/{id}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("the fixture is JSON")
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// One step of `env` from `state`; returns the next state, reward, flag.
fn one_step(env: &mut dyn Classic, state: &[f64], action: i64) -> (Vec<f64>, f64, bool) {
    env.set_state(state).unwrap();
    let mut obs = env.observation_space().zeros();
    let out = env.step_into(&Action::Discrete(action), &mut obs).unwrap();
    (env.state().to_vec(), out.reward, out.terminated)
}

fn check(id: &str) {
    let fixture = load(id);
    assert_eq!(fixture["steps"], 1000);
    let (mut bare, limit) = build(id);
    let mut total_steps = 0;
    let mut worst_one_step = 0.0f64;
    let mut worst_chained = 0.0f64;

    for (e, episode) in fixture["episodes"].as_array().unwrap().iter().enumerate() {
        let start = floats(&episode["start"]);
        let actions: Vec<i64> = episode["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_i64().unwrap())
            .collect();
        let states: Vec<Vec<f64>> = episode["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let rewards = floats(&episode["rewards"]);
        let end = episode["end"].as_str().unwrap();
        total_steps += actions.len();

        // One step at a time, from Gymnasium's own states.
        let mut previous = start.clone();
        for (t, &a) in actions.iter().enumerate() {
            let (next, reward, terminated) = one_step(bare.as_mut(), &previous, a);
            let d = max_diff(&next, &states[t]);
            worst_one_step = worst_one_step.max(d);
            assert!(
                d <= TOLERANCE,
                "{id} episode {e} step {t}: off by {d}: {next:?} vs {:?}",
                states[t]
            );
            assert_eq!(reward, rewards[t], "{id} episode {e} step {t}: reward");
            let last = t + 1 == actions.len();
            let expect_terminated = last && (end == "terminated" || end == "both");
            assert_eq!(
                terminated, expect_terminated,
                "{id} episode {e} step {t}: terminated"
            );
            previous = states[t].clone();
        }

        // Whole episodes, free-running, with the registered time limit.
        let (inner, _) = build(id);
        let mut env = TimeLimit::new(inner, limit);
        let mut obs = env.reset(Some(e as u64)).unwrap().0;
        env.inner_mut().set_state(&start).unwrap();
        for (t, &a) in actions.iter().enumerate() {
            let out = env.step_into(&Action::Discrete(a), &mut obs).unwrap();
            let d = max_diff(env.inner().state(), &states[t]);
            worst_chained = worst_chained.max(d);
            assert!(
                d <= TOLERANCE,
                "{id} episode {e} step {t} (free-running): off by {d}"
            );
            assert_eq!(out.reward, rewards[t]);
            let last = t + 1 == actions.len();
            let (term, trunc) = match end {
                _ if !last => (false, false),
                "terminated" => (true, false),
                "truncated" => (false, true),
                "both" => (true, true),
                "cut" => (false, false),
                other => panic!("unknown end {other}"),
            };
            assert_eq!(
                (out.terminated, out.truncated),
                (term, trunc),
                "{id} episode {e} step {t}"
            );
            let Observation::F32(o) = &obs else {
                panic!("{id}: float32 observations")
            };
            if let Some(expected) = episode.get("observations") {
                // Acrobot: features of the state, rounded to float32.
                let expected = floats(&expected[t]);
                let ours: Vec<f64> = o.iter().map(|&v| f64::from(v)).collect();
                let d = max_diff(&ours, &expected);
                assert!(
                    d <= 1e-6,
                    "{id} episode {e} step {t}: observation off by {d}"
                );
            } else {
                // CartPole, MountainCar: the observation is the state, rounded.
                let state: Vec<f32> = env.inner().state().iter().map(|&v| v as f32).collect();
                assert_eq!(o.as_slice().unwrap(), state.as_slice());
            }
        }
    }
    assert_eq!(total_steps, 1000, "{id}: the trace covers 1,000 steps");

    let probes = fixture["probes"].as_array().unwrap();
    assert!(probes.len() >= 200);
    for (i, probe) in probes.iter().enumerate() {
        let (next, reward, terminated) = one_step(
            bare.as_mut(),
            &floats(&probe["state"]),
            probe["action"].as_i64().unwrap(),
        );
        let d = max_diff(&next, &floats(&probe["next"]));
        worst_one_step = worst_one_step.max(d);
        assert!(
            d <= TOLERANCE,
            "{id} probe {i} {probe}: off by {d}: {next:?}"
        );
        assert_eq!(reward, probe["reward"].as_f64().unwrap(), "{id} probe {i}");
        assert_eq!(
            terminated,
            probe["terminated"].as_bool().unwrap(),
            "{id} probe {i}"
        );
    }
    eprintln!("{id}: worst one-step {worst_one_step:e}, worst free-running {worst_chained:e}");
}

#[test]
fn cartpole_v1_matches_gymnasium() {
    check("CartPole-v1");
}

#[test]
fn cartpole_v0_matches_gymnasium() {
    check("CartPole-v0");
}

#[test]
fn mountain_car_matches_gymnasium() {
    check("MountainCar-v0");
}

#[test]
fn acrobot_matches_gymnasium() {
    check("Acrobot-v1");
}
