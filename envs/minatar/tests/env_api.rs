//! Registration, configuration errors, determinism, pixel mode and rendering.

use rl_env::{Action, Env, Error, Observation, Registry, Space};
use rl_minatar::Game;
use serde_json::{Value, json};

fn registry() -> Registry {
    let mut r = Registry::new();
    rl_minatar::register(&mut r);
    r
}

fn planes(obs: &Observation) -> &ndarray::ArrayD<u8> {
    match obs {
        Observation::U8(a) => a,
        other => panic!("expected u8 planes, got {other:?}"),
    }
}

/// Plays `steps` steps with actions cycling through the action space,
/// resetting after each episode; returns everything observable.
fn rollout(env: &mut dyn Env, seed: u64, steps: usize) -> Vec<(Vec<u8>, f64, bool)> {
    let n = env.action_space().n().expect("discrete actions") as i64;
    let (mut obs, _) = env.reset(Some(seed)).unwrap();
    let mut out = vec![(planes(&obs).iter().copied().collect(), 0.0, false)];
    for t in 0..steps {
        let a = (t as i64 * 7 + t as i64 / 3) % n;
        let step = env.step_into(&Action::Discrete(a), &mut obs).unwrap();
        out.push((
            planes(&obs).iter().copied().collect(),
            step.reward,
            step.terminated,
        ));
        if step.terminated || step.truncated {
            env.reset_into(None, &mut obs).unwrap();
        }
    }
    out
}

#[test]
fn ids_and_gym_aliases_are_registered() {
    let r = registry();
    let expected = [
        ("Asterix", "asterix", 4, 5),
        ("Breakout", "breakout", 4, 3),
        ("Freeway", "freeway", 7, 3),
        ("Seaquest", "seaquest", 10, 6),
        ("SpaceInvaders", "space_invaders", 6, 4),
    ];
    for (title, name, channels, minimal) in expected {
        let ours = r.make(&format!("minatar/{name}"), &Value::Null).unwrap();
        let full = r
            .make(&format!("MinAtar/{title}-v0"), &Value::Null)
            .unwrap();
        let min = r
            .make(&format!("MinAtar/{title}-v1"), &Value::Null)
            .unwrap();
        let generic = r.make("minatar", &json!({"game": name})).unwrap();
        for env in [&ours, &full, &generic] {
            assert_eq!(env.action_space(), &Space::discrete(6), "{name}");
        }
        assert_eq!(min.action_space(), &Space::discrete(minimal), "{name}");
        let Space::Box { shape, .. } = ours.observation_space() else {
            panic!("{name}: box observations")
        };
        assert_eq!(shape, &[channels, 10, 10], "{name}");
        let minimal_ours = r
            .make(&format!("minatar/{name}"), &json!({"actions": "minimal"}))
            .unwrap();
        assert_eq!(minimal_ours.action_space(), &Space::discrete(minimal));
    }
}

#[test]
fn minimal_actions_map_to_minatar_actions() {
    // v1 action i is minimal_action_set()[i]: the same trajectory as v0
    // given the mapped actions.
    let r = registry();
    for game in Game::ALL {
        let set = game.minimal_actions();
        let mut v0 = rl_minatar::make(game, &json!({})).unwrap();
        let mut v1 = rl_minatar::make(game, &json!({"actions": "minimal"})).unwrap();
        let (mut a, _) = v0.reset(Some(3)).unwrap();
        let (mut b, _) = v1.reset(Some(3)).unwrap();
        for t in 0..500 {
            let i = (t * 5 + t / 7) % set.len();
            let s0 = v0
                .step_into(&Action::Discrete(set[i] as i64), &mut a)
                .unwrap();
            let s1 = v1.step_into(&Action::Discrete(i as i64), &mut b).unwrap();
            assert_eq!(
                (a.clone(), s0.reward, s0.terminated),
                (b.clone(), s1.reward, s1.terminated)
            );
            if s0.terminated {
                v0.reset_into(None, &mut a).unwrap();
                v1.reset_into(None, &mut b).unwrap();
            }
        }
        let _ = &r;
    }
}

#[test]
fn every_registered_minatar_id_is_deterministic() {
    let r = registry();
    let ids: Vec<String> = r.entries().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 5 + 10 + 1);
    for id in &ids {
        let config = if id == "minatar" {
            json!({"game": "seaquest"})
        } else {
            Value::Null
        };
        let mut a = r.make(id, &config).unwrap();
        let mut b = r.make(id, &config).unwrap();
        let first = rollout(a.as_mut(), 11, 600);
        assert_eq!(first, rollout(b.as_mut(), 11, 600), "{id}");
        // Reseeding a used env replays the same episode start.
        let again = rollout(a.as_mut(), 11, 1);
        assert_eq!(again[0], first[0], "{id}");
        assert_ne!(rollout(b.as_mut(), 12, 600), first, "{id}: seeds differ");
    }
}

fn config_error(id: &str, config: Value) -> (String, String) {
    match registry().make(id, &config) {
        Err(Error::Config { field, message }) => (field, message),
        Err(other) => panic!("{id} {config}: expected a config error, got {other}"),
        Ok(_) => panic!("{id} {config}: accepted"),
    }
}

#[test]
fn bad_configs_name_the_field() {
    for p in [-0.1, 1.5] {
        let (field, message) = config_error("minatar/breakout", json!({"sticky_action_prob": p}));
        assert_eq!(field, "sticky_action_prob");
        assert!(message.contains("[0, 1]"), "{message}");
    }
    let (field, _) = config_error("minatar/asterix", json!({"pixels": {"size": 0}}));
    assert_eq!(field, "pixels.size");
    let (field, _) = config_error(
        "minatar/asterix",
        json!({"pixels": {"size": 84, "colour": 1}}),
    );
    assert_eq!(field, "pixels.colour");
    let (field, message) = config_error("minatar", json!({"game": "pong"}));
    assert_eq!(field, "game");
    assert!(message.contains("pong"), "{message}");
    let (field, _) = config_error("minatar", json!({}));
    assert_eq!(field, "game");
    let (field, _) = config_error("minatar/freeway", json!({"game": "seaquest"}));
    assert_eq!(field, "game");
    let (field, _) = config_error("minatar/freeway", json!({"actions": "some"}));
    assert_eq!(field, "actions");
    let (field, _) = config_error("MinAtar/Freeway-v1", json!({"actions": "full"}));
    assert_eq!(field, "actions");
    let (field, message) = config_error("minatar/freeway", json!({"stickyy": 0.1}));
    assert!(message.contains("stickyy"), "{field}: {message}");
    let (field, _) = config_error("minatar/freeway", json!({"max_steps": 0}));
    assert_eq!(field, "max_steps");
    // An unknown namespaced id suggests the closest.
    let err = registry()
        .make("minatar/breakout2", &Value::Null)
        .err()
        .unwrap();
    assert!(matches!(err, Error::UnknownEnv { .. }), "{err}");
    assert!(err.to_string().contains("minatar/breakout"), "{err}");
}

#[test]
fn bad_actions_seeds_and_order_are_errors() {
    let r = registry();
    let mut env = r.make("MinAtar/Breakout-v1", &Value::Null).unwrap();
    let mut obs = env.observation_space().zeros();
    assert!(matches!(
        env.step_into(&Action::Discrete(0), &mut obs),
        Err(Error::ResetNeeded)
    ));
    env.reset_into(Some(0), &mut obs).unwrap();
    for bad in [
        Action::Discrete(3),
        Action::Discrete(-1),
        Action::Continuous(vec![0.0]),
    ] {
        let err = env.step_into(&bad, &mut obs).unwrap_err();
        assert!(matches!(err, Error::InvalidAction { .. }), "{err}");
    }
    let err = env.reset_into(Some(1 << 32), &mut obs).unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "seed"),
        "{err}"
    );
    env.reset_into(Some(u64::from(u32::MAX)), &mut obs).unwrap();
    // Stepping past the end is refused until reset.
    loop {
        if env
            .step_into(&Action::Discrete(0), &mut obs)
            .unwrap()
            .terminated
        {
            break;
        }
    }
    assert!(matches!(
        env.step_into(&Action::Discrete(0), &mut obs),
        Err(Error::ResetNeeded)
    ));
}

#[test]
fn freeway_ends_after_2501_steps_and_max_steps_truncates() {
    let mut env = rl_minatar::make(Game::Freeway, &json!({"sticky_action_prob": 0.0})).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    let mut t = 0;
    loop {
        t += 1;
        let s = env.step_into(&Action::Discrete(0), &mut obs).unwrap();
        assert!(!s.truncated);
        if s.terminated {
            break;
        }
    }
    assert_eq!(t, 2501);
    let mut env = rl_minatar::make(Game::Freeway, &json!({"max_steps": 10})).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    for t in 1..=10 {
        let s = env.step_into(&Action::Discrete(2), &mut obs).unwrap();
        assert_eq!(s.truncated, t == 10);
        assert!(!s.terminated);
    }
}

#[test]
fn observations_are_written_in_place() {
    let mut env = rl_minatar::make(Game::Seaquest, &Value::Null).unwrap();
    let (mut obs, _) = env.reset(Some(5)).unwrap();
    let before = planes(&obs).as_ptr();
    for _ in 0..50 {
        let s = env.step_into(&Action::Discrete(5), &mut obs).unwrap();
        if s.terminated {
            env.reset_into(None, &mut obs).unwrap();
        }
    }
    assert_eq!(
        planes(&obs).as_ptr(),
        before,
        "the caller's buffer is reused"
    );
    // A buffer of the wrong kind is replaced, not refused.
    let mut wrong = Observation::F32(ndarray::ArrayD::zeros(vec![2]));
    env.reset_into(Some(5), &mut wrong).unwrap();
    assert_eq!(planes(&wrong).shape(), &[10, 10, 10]);
    assert!(env.observation_space().contains(&wrong));
}

#[test]
fn sticky_actions_repeat_the_last_action_across_reset() {
    // With probability 1 every step repeats `last_action`, which starts at
    // 0 (no-op) and survives resets: the paddle never moves.
    let mut env = rl_minatar::make(Game::Breakout, &json!({"sticky_action_prob": 1.0})).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    for _ in 0..30 {
        let s = env.step_into(&Action::Discrete(3), &mut obs).unwrap();
        let paddle = planes(&obs)
            .index_axis(ndarray::Axis(0), rl_minatar::breakout::PADDLE)
            .to_owned();
        assert_eq!(paddle[[9, 4]], 1);
        if s.terminated {
            env.reset_into(None, &mut obs).unwrap();
        }
    }
}

/// The first `steps` frames of an episode reset with `seed`, every action
/// `left`, on `env` as it stands.
fn frames_moving_left(env: &mut dyn Env, seed: u64, steps: usize) -> Vec<Vec<u8>> {
    let (mut obs, _) = env.reset(Some(seed)).unwrap();
    let mut frames = Vec::new();
    for _ in 0..steps {
        let out = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
        frames.push(planes(&obs).iter().copied().collect());
        if out.terminated {
            break;
        }
    }
    frames
}

#[test]
fn the_carried_last_action_makes_a_fresh_env_play_the_next_episode_alike() {
    let config = json!({"sticky_action_prob": 0.5});
    let make = || rl_minatar::make(Game::Breakout, &config).unwrap();
    // An episode of `r`: the last action, which survives reset, is `r`.
    let play_right = |env: &mut dyn Env| {
        let (mut obs, _) = env.reset(Some(3)).unwrap();
        while !env
            .step_into(&Action::Discrete(3), &mut obs)
            .unwrap()
            .terminated
        {}
    };
    let mut differed = 0;
    for seed in 0..10 {
        let mut uninterrupted = make();
        play_right(uninterrupted.as_mut());
        let carried = uninterrupted.carried_state();
        assert_eq!(carried, json!({"last_action": 3}));
        let expected = frames_moving_left(uninterrupted.as_mut(), seed, 5);

        let mut restored = make();
        restored.restore_carried_state(&carried).unwrap();
        assert_eq!(frames_moving_left(restored.as_mut(), seed, 5), expected);
        // Without it the first step repeats a no-op instead of `r` whenever
        // the sticky draw falls below 0.5.
        differed += usize::from(frames_moving_left(make().as_mut(), seed, 5) != expected);
    }
    assert!(differed >= 2, "only {differed} of 10 seeds differed");
    let carried = json!({"last_action": 3});

    // Wrappers pass it through; a malformed one names the field.
    let mut wrapped = rl_env::wrappers::apply_wrappers(
        registry().make("minatar/breakout", &config).unwrap(),
        &[
            rl_env::wrappers::WrapperSpec::EpisodeStatistics,
            rl_env::wrappers::WrapperSpec::ClipReward,
        ],
    )
    .unwrap();
    wrapped.restore_carried_state(&carried).unwrap();
    assert_eq!(wrapped.carried_state(), carried);
    let err = wrapped
        .restore_carried_state(&json!({"last_action": 6}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("carried_state.last_action"), "{err}");
}

#[test]
fn pixel_mode_shapes_and_colours() {
    for (grayscale, depth) in [(true, 1), (false, 3)] {
        for game in Game::ALL {
            let config = json!({"pixels": {"size": 84, "grayscale": grayscale}});
            let mut env = rl_minatar::make(game, &config).unwrap();
            let mut plain = rl_minatar::make(game, &Value::Null).unwrap();
            let (mut obs, _) = env.reset(Some(2)).unwrap();
            let (mut grid, _) = plain.reset(Some(2)).unwrap();
            for t in 0..40 {
                let a = Action::Discrete(t % 6);
                let s = env.step_into(&a, &mut obs).unwrap();
                plain.step_into(&a, &mut grid).unwrap();
                let pixels = planes(&obs);
                assert_eq!(pixels.shape(), &[depth, 84, 84]);
                assert!(env.observation_space().contains(&obs));
                // A pixel is lit exactly where its cell has some channel set.
                let cells = planes(&grid);
                for y in 0..84 {
                    for x in 0..84 {
                        let (cy, cx) = (y * 10 / 84, x * 10 / 84);
                        let occupied = (0..cells.shape()[0]).any(|c| cells[[c, cy, cx]] != 0);
                        let lit = (0..depth).any(|d| pixels[[d, y, x]] != 0);
                        assert_eq!(occupied, lit, "{game} ({y}, {x})");
                    }
                }
                if s.terminated {
                    break;
                }
            }
        }
    }
    let env = rl_minatar::make(Game::Breakout, &json!({"pixels": {}})).unwrap();
    let Space::Box { shape, .. } = env.observation_space() else {
        panic!()
    };
    assert_eq!(shape, &[1, 84, 84], "defaults: 84 pixels, grayscale");
}

#[test]
fn renders_text_and_rgb() {
    for game in Game::ALL {
        let mut env = rl_minatar::make(game, &Value::Null).unwrap();
        env.reset(Some(0)).unwrap();
        let text = env.render_text();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 11, "{game}:\n{text}");
        assert!(rows[..10].iter().all(|r| r.chars().count() == 10));
        let frame = env.render_rgb();
        assert_eq!(frame.dim(), (160, 160, 3));
        assert!(frame.iter().any(|&v| v != 0), "{game}: something is drawn");
    }
    let mut env = rl_minatar::make(Game::Breakout, &Value::Null).unwrap();
    env.reset(Some(0)).unwrap();
    let text = env.render_text();
    assert_eq!(text.lines().nth(1).unwrap(), "##########");
    assert_eq!(&text.lines().nth(9).unwrap()[4..5], "=");
}
