//! Tests of the Atari-style wrappers and of wrapper specs.

use super::*;
use crate::testing::Ramp;
use crate::{Action, DType, Env, Observation};

fn u8s(obs: &Observation) -> Vec<u8> {
    let Observation::U8(a) = obs else {
        panic!("expected uint8, got {obs:?}")
    };
    a.iter().copied().collect()
}

fn f32s(obs: &Observation) -> Vec<f32> {
    let Observation::F32(a) = obs else {
        panic!("expected float32, got {obs:?}")
    };
    a.iter().copied().collect()
}

const GO: Action = Action::Discrete(1);
const STAY: Action = Action::Discrete(0);

#[test]
fn frame_stack_pads_with_the_reset_frame_and_shifts() {
    let mut env = FrameStack::new(Ramp::new(100), 3).unwrap();
    assert_eq!(env.observation_space().shape(), &[3, 2]);
    let (mut obs, _) = env.reset(Some(2)).unwrap();
    assert!(env.observation_space().contains(&obs));
    // Reset frame [0, 200] + offset 2 in every slot.
    assert_eq!(u8s(&obs), [2, 202, 2, 202, 2, 202]);
    env.step_into(&GO, &mut obs).unwrap();
    assert_eq!(u8s(&obs), [2, 202, 2, 202, 12, 192]);
    let buffer = match &obs {
        Observation::U8(a) => a.as_ptr(),
        _ => unreachable!(),
    };
    env.step_into(&GO, &mut obs).unwrap();
    env.step_into(&GO, &mut obs).unwrap();
    assert_eq!(u8s(&obs), [12, 192, 22, 182, 32, 172]);
    let Observation::U8(a) = &obs else {
        unreachable!()
    };
    assert_eq!(a.as_ptr(), buffer, "the caller's buffer is reused");
    env.reset_into(None, &mut obs).unwrap();
    assert_eq!(u8s(&obs), [2, 202, 2, 202, 2, 202]);
}

#[test]
fn frame_stack_refuses_discrete_and_zero() {
    let mut corridor = Ramp::new(3);
    corridor.obs_space = crate::Space::discrete(3);
    assert!(FrameStack::new(corridor, 2).is_err());
    assert!(FrameStack::new(Ramp::new(3), 0).is_err());
}

#[test]
fn max_and_skip_sums_rewards_and_pools_the_last_two_frames() {
    let mut env = MaxAndSkip::new(Ramp::new(100), 4).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    let out = env.step_into(&GO, &mut obs).unwrap();
    // Frames [10,190] [20,180] [30,170] [40,160]: max of the last two.
    assert_eq!(u8s(&obs), [40, 170]);
    assert_eq!(out.reward, 1.0 + 2.0 + 3.0 + 4.0);
    assert_eq!(env.inner().actions_seen, [1, 1, 1, 1]);
    env.step_into(&GO, &mut obs).unwrap();
    assert_eq!(u8s(&obs), [80, 130]);
}

#[test]
fn max_and_skip_stops_at_the_end_of_an_episode() {
    let mut env = MaxAndSkip::new(Ramp::new(2), 4).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    let out = env.step_into(&GO, &mut obs).unwrap();
    assert!(out.terminated);
    assert_eq!(out.reward, 3.0);
    assert_eq!(u8s(&obs), [20, 190]);
    assert_eq!(env.inner().actions_seen.len(), 2);

    // One step only: the frame itself, never pooled with an older one.
    let mut env = MaxAndSkip::new(Ramp::new(1), 4).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    env.step_into(&GO, &mut obs).unwrap();
    assert_eq!(u8s(&obs), [10, 190]);
}

#[test]
fn max_and_skip_stops_at_truncation() {
    let mut env = MaxAndSkip::new(TimeLimit::new(Ramp::new(100), 3), 4).unwrap();
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    let out = env.step_into(&GO, &mut obs).unwrap();
    assert!(out.truncated && !out.terminated);
    assert_eq!(out.reward, 6.0);
    assert_eq!(u8s(&obs), [30, 180]);
}

#[test]
fn noop_reset_takes_between_one_and_max_noops() {
    let mut counts = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let mut env = NoopReset::new(Ramp::new(100), 5).unwrap();
        env.reset(Some(seed)).unwrap();
        let seen = env.inner().actions_seen.clone();
        assert!((1..=5).contains(&seen.len()), "{seen:?}");
        assert!(seen.iter().all(|&a| a == 0), "no-ops are action 0");
        counts.insert(seen.len());
        // Same seed, same count.
        let mut again = NoopReset::new(Ramp::new(100), 5).unwrap();
        again.reset(Some(seed)).unwrap();
        assert_eq!(again.inner().actions_seen.len(), seen.len());
    }
    assert_eq!(counts.len(), 5, "every count in 1..=5 occurs: {counts:?}");
}

#[test]
fn noop_reset_resets_again_when_a_noop_ends_the_episode() {
    // Length 0: every step terminates.
    let mut env = NoopReset::new(Ramp::new(0), 5).unwrap();
    env.reset(Some(1)).unwrap();
    let noops = env.inner().actions_seen.len() as u32;
    assert_eq!(env.inner().resets, 1 + noops);
    let mut off = NoopReset::new(Ramp::new(0), 0).unwrap();
    off.reset(Some(1)).unwrap();
    assert!(off.inner().actions_seen.is_empty());
}

#[test]
fn sticky_actions_repeat_the_executed_action() {
    let mut env = StickyActions::new(Ramp::new(100), 1.0).unwrap();
    env.reset(Some(0)).unwrap();
    for a in [1, 0, 0, 1, 0] {
        env.step(&Action::Discrete(a)).unwrap();
    }
    assert_eq!(env.inner().actions_seen, [1, 1, 1, 1, 1]);
    env.reset(None).unwrap();
    env.step(&STAY).unwrap();
    assert_eq!(
        env.inner().actions_seen[5],
        0,
        "the first step after a reset is the agent's"
    );

    let mut half = StickyActions::new(Ramp::new(255), 0.25).unwrap();
    half.reset(Some(3)).unwrap();
    // Always ask for the other action than the one executed last: a
    // repeat is then exactly a sticky step.
    half.step(&STAY).unwrap();
    for _ in 0..4000 {
        let last = *half.inner().actions_seen.last().unwrap();
        half.step(&Action::Discrete(1 - last)).unwrap();
    }
    let seen = &half.inner().actions_seen;
    let repeats = seen.windows(2).filter(|w| w[0] == w[1]).count() as f64 / 4000.0;
    assert!((0.22..0.28).contains(&repeats), "{repeats}");
    assert!(StickyActions::new(Ramp::new(1), 1.5).is_err());
    assert!(StickyActions::new(Ramp::new(1), f64::NAN).is_err());
    let mut strict = StickyActions::new(Ramp::new(3), 0.0).unwrap();
    strict.reset(None).unwrap();
    assert!(strict.step(&Action::Discrete(5)).is_err());
}

#[test]
fn to_f32_scales_bytes_by_the_space_bounds() {
    let mut env = ToF32::new(Ramp::new(100)).unwrap();
    assert_eq!(
        *env.observation_space(),
        crate::Space::uniform_box(0.0, 1.0, &[2], DType::F32)
    );
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    assert_eq!(f32s(&obs), [0.0, 200.0 / 255.0]);
    env.step_into(&GO, &mut obs).unwrap();
    assert_eq!(f32s(&obs), [10.0 / 255.0, 190.0 / 255.0]);

    // 0/1 planes, as MinAtar's, stay 0/1.
    let mut planes = Ramp::new(100);
    planes.obs_space = crate::Space::uniform_box(0.0, 1.0, &[2], DType::U8);
    let mut env = ToF32::new(planes).unwrap();
    let (obs, _) = env.reset(Some(1)).unwrap();
    assert_eq!(f32s(&obs), [1.0, 201.0]);
}

#[test]
fn specs_parse_in_both_forms_and_apply_innermost_first() {
    let specs: Vec<WrapperSpec> = serde_json::from_str(
        r#"[{"frame_stack": 4}, "clip_reward", {"time_limit": 1000}, "episode_statistics",
            "one_hot", {"noop_reset": 30}, {"max_and_skip": 4}, "to_f32", {"frame_skip": 2},
            {"sticky_actions": 0.25}]"#,
    )
    .unwrap();
    assert_eq!(specs.len(), 10);
    assert_eq!(specs[8], WrapperSpec::MaxAndSkip(2));
    assert_eq!(specs[1], WrapperSpec::ClipReward);
    let back: Vec<WrapperSpec> =
        serde_json::from_value(serde_json::to_value(&specs).unwrap()).unwrap();
    assert_eq!(back, specs);
    assert!(serde_json::from_str::<Vec<WrapperSpec>>(r#"["frame_stak"]"#).is_err());
    assert!(serde_json::from_str::<Vec<WrapperSpec>>(r#"[{"frame_stack": -1}]"#).is_err());

    // Statistics inside clipping: real returns are logged.
    let inner_first: Vec<WrapperSpec> =
        serde_json::from_str(r#"["episode_statistics", "clip_reward"]"#).unwrap();
    let mut env = apply_wrappers(Box::new(Ramp::new(3)), &inner_first).unwrap();
    env.reset(None).unwrap();
    let rewards: Vec<f64> = (0..3).map(|_| env.step(&GO).unwrap().reward).collect();
    assert_eq!(rewards, [1.0, 1.0, 1.0]);
    let mut env = apply_wrappers(Box::new(Ramp::new(3)), &inner_first).unwrap();
    env.reset(None).unwrap();
    env.step(&GO).unwrap();
    env.step(&GO).unwrap();
    let last = env.step(&GO).unwrap();
    assert_eq!(last.info.episode.unwrap().episode_return, 6.0);
    // The other order logs clipped returns.
    let clipped_first: Vec<WrapperSpec> =
        serde_json::from_str(r#"["clip_reward", "episode_statistics"]"#).unwrap();
    let mut env = apply_wrappers(Box::new(Ramp::new(3)), &clipped_first).unwrap();
    env.reset(None).unwrap();
    env.step(&GO).unwrap();
    env.step(&GO).unwrap();
    assert_eq!(
        env.step(&GO).unwrap().info.episode.unwrap().episode_return,
        3.0
    );
}

#[test]
fn spec_time_limit_truncates_without_terminating() {
    let specs = [WrapperSpec::TimeLimit(3), WrapperSpec::EpisodeStatistics];
    let mut env = apply_wrappers(Box::new(Ramp::new(100)), &specs).unwrap();
    env.reset(None).unwrap();
    env.step(&GO).unwrap();
    env.step(&GO).unwrap();
    let s = env.step(&GO).unwrap();
    assert!(s.truncated && !s.terminated);
    assert_eq!(s.info.episode.unwrap().length, 3);
}

#[test]
fn spec_errors_name_the_entry() {
    let bad = [WrapperSpec::ClipReward, WrapperSpec::FrameStack(0)];
    let err = apply_wrappers(Box::new(Ramp::new(3)), &bad)
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("wrappers[1].frame_stack:"), "{err}");
    let err = apply_wrappers(Box::new(Ramp::new(3)), &[WrapperSpec::StickyActions(-0.1)])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("wrappers[0].sticky_actions") && err.contains("-0.1"),
        "{err}"
    );
    let err = apply_wrappers(Box::new(Ramp::new(3)), &[WrapperSpec::TimeLimit(0)])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wrappers[0].time_limit"), "{err}");
    // A Ramp's observation is not Discrete, so one_hot cannot apply.
    let err = apply_wrappers(Box::new(Ramp::new(3)), &[WrapperSpec::OneHot])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wrappers[0] (one_hot)"), "{err}");
}

#[test]
fn the_nature_dqn_stack_composes() {
    let specs: Vec<WrapperSpec> = serde_json::from_str(
        r#"[{"noop_reset": 3}, {"max_and_skip": 2}, "episode_statistics", "clip_reward", {"frame_stack": 4}, "to_f32"]"#,
    )
    .unwrap();
    let mut env = apply_wrappers(Box::new(Ramp::new(40)), &specs).unwrap();
    assert_eq!(env.observation_space().shape(), &[4, 2]);
    let (mut obs, _) = env.reset(Some(0)).unwrap();
    let mut steps = 0;
    loop {
        let out = env.step_into(&GO, &mut obs).unwrap();
        assert!(env.observation_space().contains(&obs));
        steps += 1;
        if out.terminated {
            let stats = out.info.episode.unwrap();
            assert_eq!(stats.length, steps);
            assert!(stats.episode_return > out.reward);
            break;
        }
    }
    assert_eq!(steps, 20);
}
