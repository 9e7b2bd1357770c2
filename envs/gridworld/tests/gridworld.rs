//! The gridworld's semantics, its model, and its refusals.

use proptest::prelude::*;
use rl_env::{Action, Env, Model, Registry};
use rl_gridworld::{GridConfig, Gridworld};
use serde_json::{Value, json};

fn registry() -> Registry {
    let mut r = Registry::new();
    rl_gridworld::register(&mut r);
    r
}

fn world(config: Value) -> Gridworld {
    Gridworld::new(&rl_env::parse_config::<GridConfig>(&config).unwrap()).unwrap()
}

fn config_error(config: Value) -> String {
    let parsed = rl_env::parse_config::<GridConfig>(&config);
    match parsed {
        Err(e) => e.to_string(),
        Ok(c) => Gridworld::new(&c)
            .err()
            .expect("config should be refused")
            .to_string(),
    }
}

fn check_model_sums(model: &dyn Model) {
    for s in 0..model.n_states() {
        for a in 0..model.n_actions() {
            let total: f64 = model.transitions(s, a).iter().map(|o| o.probability).sum();
            assert!((total - 1.0).abs() < 1e-12, "P[{s}][{a}] sums to {total}");
        }
    }
}

#[test]
fn every_preset_and_alias_has_a_proper_model() {
    let r = registry();
    for entry in r.entries() {
        let config = if entry.id == "gridworld" {
            entry.defaults.clone()
        } else {
            Value::Null
        };
        let env = r.make(&entry.id, &config).unwrap();
        check_model_sums(env.model().expect("gridworlds have models"));
    }
}

#[test]
fn wind_pushes_from_the_column_moved_from() {
    let mut env = registry().make("gridworld/windy", &Value::Null).unwrap();
    let (obs, _) = env.reset(Some(0)).unwrap();
    assert_eq!(obs.as_index(), Some(30)); // row 3, col 0
    // Columns 0–2 have no wind: three moves right stay on row 3.
    for _ in 0..3 {
        env.step(&Action::Discrete(1)).unwrap();
    }
    // Moving right from column 3 (wind 1) lands one row up in column 4.
    let s = env.step(&Action::Discrete(1)).unwrap();
    assert_eq!(s.obs.as_index(), Some(2 * 10 + 4));
    assert_eq!(s.reward, -1.0);
}

#[test]
fn bumps_keep_the_agent_in_place_with_the_bump_reward() {
    let mut g = world(json!({"map": ["S.#", "..G"], "step_reward": -1, "bump_reward": -5}));
    g.reset(Some(0)).unwrap();
    let s = g.step(&Action::Discrete(0)).unwrap(); // up, off the grid
    assert_eq!((s.obs.as_index(), s.reward), (Some(0), -5.0));
    g.step(&Action::Discrete(1)).unwrap();
    let s = g.step(&Action::Discrete(1)).unwrap(); // right, into the wall
    assert_eq!((s.obs.as_index(), s.reward), (Some(1), -5.0));
    let s = g.step(&Action::Discrete(2)).unwrap();
    assert_eq!(
        (s.obs.as_index(), s.reward, s.terminated),
        (Some(4), -1.0, false)
    );
    let s = g.step(&Action::Discrete(1)).unwrap();
    assert_eq!(
        (s.obs.as_index(), s.reward, s.terminated),
        (Some(5), 1.0, true)
    );
    assert!(
        g.step(&Action::Discrete(1)).is_err(),
        "stepping after the end needs a reset"
    );
}

#[test]
fn jumps_king_moves_and_stay() {
    let mut g = world(json!({"map": ["SA..", "...a"], "moves": "king+stay",
        "cells": {"A": {"jump": {"to": "a", "reward": 10}}, "a": {"reward": 2}}}));
    g.reset(Some(0)).unwrap();
    let s = g.step(&Action::Discrete(5)).unwrap(); // down-right
    assert_eq!(s.obs.as_index(), Some(5));
    let s = g.step(&Action::Discrete(8)).unwrap(); // stay
    assert_eq!((s.obs.as_index(), s.reward), (Some(5), 0.0));
    let s = g.step(&Action::Discrete(0)).unwrap(); // up onto A
    assert_eq!(s.obs.as_index(), Some(1));
    let s = g.step(&Action::Discrete(6)).unwrap(); // any action in A jumps
    assert_eq!((s.obs.as_index(), s.reward), (Some(7), 10.0));
    assert_eq!(g.action_space().n(), Some(9));
}

#[test]
fn gymnasium_aliases_keep_gymnasium_numbering() {
    let r = registry();
    let mut lake = r
        .make("FrozenLake-v1", &json!({"is_slippery": false}))
        .unwrap();
    lake.reset(Some(0)).unwrap();
    // Gymnasium: 0 left, 1 down, 2 right, 3 up.
    assert_eq!(
        lake.step(&Action::Discrete(2)).unwrap().obs.as_index(),
        Some(1)
    );
    let s = lake.step(&Action::Discrete(1)).unwrap(); // down, into the hole at 5
    assert_eq!(
        (s.obs.as_index(), s.reward, s.terminated),
        (Some(5), 0.0, true)
    );
    let mut cliff = r.make("CliffWalking-v1", &Value::Null).unwrap();
    assert_eq!(cliff.reset(Some(0)).unwrap().0.as_index(), Some(36));
    let s = cliff.step(&Action::Discrete(0)).unwrap(); // up
    assert_eq!((s.obs.as_index(), s.reward), (Some(24), -1.0));
    // Gymnasium's slippery FrozenLake: 1/3 intended, 1/3 each perpendicular.
    let lake = r.make("FrozenLake-v1", &Value::Null).unwrap();
    let p = lake.model().unwrap().transitions(0, 1); // down from the start
    let mut outcomes: Vec<(usize, f64)> = p.iter().map(|o| (o.next_state, o.probability)).collect();
    outcomes.sort_by_key(|o| o.0);
    assert_eq!(outcomes.len(), 3);
    assert!((outcomes[0].1 - 1.0 / 3.0).abs() < 1e-12 && outcomes[0].0 == 0);
    assert_eq!((outcomes[1].0, outcomes[2].0), (1, 4));
}

#[test]
fn presets_time_limits_and_overrides() {
    let r = registry();
    let mut lake = r
        .make("gridworld/frozen-lake-8x8", &json!({"slip": 0.0}))
        .unwrap();
    lake.reset(Some(0)).unwrap();
    let mut last = None;
    for _ in 0..200 {
        last = Some(lake.step(&Action::Discrete(0)).unwrap()); // bump up forever
    }
    let last = last.unwrap();
    assert!(last.truncated && !last.terminated);
    let king = r
        .make("gridworld/windy", &json!({"moves": "king"}))
        .unwrap();
    assert_eq!(king.action_space().n(), Some(8));
}

#[test]
fn bad_configs_name_the_field() {
    let cases = [
        (json!({"map": ["S..", ".."]}), "map[1]"),
        (json!({"map": ["...", "..G"]}), "no start"),
        (json!({"map": ["SX."]}), "unknown cell 'X'"),
        (
            json!({"map": ["SA."], "cells": {"A": {"jump": {"to": "Q"}}}}),
            "cells.A.jump.to",
        ),
        (json!({"map": ["S.G"], "slip": 1.5}), "slip"),
        (json!({"map": ["S.G"], "wind": [1, 2]}), "wind"),
        (json!({"map": ["S.G"], "mvoes": "king"}), "mvoes"),
        (json!({"map": ["S.G"], "moves": "queen"}), "moves"),
        (json!({"map": ["S.G"], "cells": {"S": {}}}), "cells.S"),
    ];
    for (config, needle) in cases {
        let message = config_error(config.clone());
        assert!(message.contains(needle), "{config}: {message}");
    }
    let err = registry()
        .make("FrozenLake-v1", &json!({"map_name": "5x5"}))
        .err()
        .unwrap();
    assert!(err.to_string().contains("map_name"), "{err}");
}

#[test]
fn same_seed_same_trajectory_and_renders() {
    let r = registry();
    let play = |seed| {
        let mut env = r.make("gridworld/frozen-lake-8x8", &Value::Null).unwrap();
        let mut trace = vec![env.reset(Some(seed)).unwrap().0.as_index().unwrap()];
        for t in 0..300 {
            let s = env.step(&Action::Discrete(t % 4)).unwrap();
            trace.push(s.obs.as_index().unwrap());
            if s.terminated || s.truncated {
                env.reset(None).unwrap();
            }
        }
        (trace, env.render_text(), env.render_rgb().dim())
    };
    assert_eq!(play(7), play(7));
    assert_ne!(play(7).0, play(8).0);
    let (_, text, (h, w, c)) = play(7);
    assert_eq!(text.lines().count(), 8);
    assert_eq!((h % 8, w % 8, c), (0, 0, 3));
}

/// Random maps: a border of floor, random walls, holes, goals and one start.
fn arbitrary_map() -> impl Strategy<Value = Vec<String>> {
    (2usize..6, 2usize..7).prop_flat_map(|(rows, cols)| {
        prop::collection::vec(
            prop::sample::select(vec!['.', '.', '.', '#', 'H', 'G', 'C']),
            rows * cols,
        )
        .prop_map(move |mut cells| {
            cells[0] = 'S';
            cells.chunks(cols).map(|row| row.iter().collect()).collect()
        })
    })
}

proptest! {
    // Seeded, so that CI runs the same cases every time.
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn models_sum_to_one_and_maps_round_trip(
        map in arbitrary_map(),
        slip in 0.0f64..=1.0,
        king in any::<bool>(),
        windy in any::<bool>(),
    ) {
        let cols = map[0].len();
        let config = json!({
            "map": map, "slip": slip, "moves": if king { "king+stay" } else { "four" },
            "wind": if windy { Some(vec![1; cols]) } else { None },
            "cells": {"C": {"reward": -100, "reset_to_start": true}}, "step_reward": -1
        });
        let g = world(config);
        check_model_sums(&g);
        prop_assert_eq!(g.map_rows(), map);
    }

    #[test]
    fn steps_sample_the_model(slip in 0.05f64..0.95, action in 0usize..4, seed in 0u64..1000) {
        let mut g = world(json!({"map": ["....", ".S..", "..#.", "H..G"], "slip": slip,
                                 "wind": [0, 1, 0, 0]}));
        let state = 5; // the start, row 1 col 1
        let expected: Vec<(usize, f64)> =
            g.transitions(state, action).iter().map(|o| (o.next_state, o.probability)).collect();
        let mut counts = [0usize; 16];
        let n = 4000;
        g.reset(Some(seed)).unwrap();
        for _ in 0..n {
            g.place(state).unwrap();
            let s = g.step(&Action::Discrete(action as i64)).unwrap();
            counts[s.obs.as_index().unwrap() as usize] += 1;
        }
        for (next, p) in expected {
            let freq = counts[next] as f64 / n as f64;
            // five standard deviations of a binomial proportion
            let tolerance = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9;
            prop_assert!((freq - p).abs() <= tolerance, "to {}: {} vs {}", next, freq, p);
        }
    }
}
