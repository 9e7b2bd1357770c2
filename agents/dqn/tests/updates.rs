//! Single updates checked by hand, the target network's schedule, the
//! dueling head's gradient, and config errors that name their field.

use ndarray::ArrayD;
use rand::SeedableRng;
use rl_agent::{Agent, EnvContext, Error, Transition, parse_config};
use rl_dqn::network::QNet;
use rl_dqn::{Dqn, DqnConfig};
use rl_env::{Action, DType, Observation, Space};
use rl_layers::{Architecture, Init, Mode, Parameters};
use serde_json::{Value, json};

fn agent(config: Value, observations: u64, actions: u64) -> Dqn {
    let obs = Space::discrete(observations);
    let act = Space::discrete(actions);
    let ctx = EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space: &obs,
        action_space: &act,
        model: None,
        env_id: "test",
    };
    Dqn::new(parse_config(&config).unwrap(), &ctx, 7).unwrap()
}

fn observe(agent: &mut Dqn, s: i64, a: i64, r: f64, next: i64, terminated: bool) {
    agent
        .observe(&Transition {
            lane: 0,
            obs: &Observation::Discrete(s),
            action: &Action::Discrete(a),
            reward: r,
            next_obs: &Observation::Discrete(next),
            terminated,
            truncated: false,
        })
        .unwrap();
}

/// A linear Q-function on one-hot states, trained by SGD on one transition
/// with γ = 0, so that y = r and, with x one-hot, both W[a, s] and b[a] get
/// the gradient g = ∂ℓ/∂Q: Q(s, a) moves by −2 · lr · g.
fn one_update(loss: Value, td_error: f32) -> (f32, f32, Vec<f32>, Vec<f32>) {
    let mut dqn = agent(
        json!({"network": [{"affine": "actions"}], "optimizer": {"kind": "sgd", "lr": 0.1},
               "batch_size": 1, "learning_starts": 0, "gamma": 0.0, "loss": loss,
               "replay": {"capacity": 8}}),
        3,
        2,
    );
    let before = dqn.q_values(&Observation::Discrete(1)).unwrap();
    // a = Q(s, 0) − y = td_error
    let reward = f64::from(before[0] - td_error);
    observe(&mut dqn, 1, 0, reward, 2, true);
    assert_eq!(dqn.updates(), 1);
    let after = dqn.q_values(&Observation::Discrete(1)).unwrap();
    (after[0] - before[0], td_error, before, after)
}

#[test]
fn huber_gradient_is_the_error_inside_delta_and_its_sign_outside() {
    // |a| ≤ 1: g = a = −0.5, ΔQ = −2 · 0.1 · (−0.5) = 0.1
    let (dq, _, before, after) = one_update(json!({"huber": {"delta": 1.0}}), -0.5);
    assert!((dq - 0.1).abs() < 1e-5, "{dq}");
    assert_eq!(
        before[1], after[1],
        "the other action's value must not move"
    );
    // |a| > 1: g = δ · sign(a) = −1, ΔQ = 0.2
    let (dq, ..) = one_update(json!({"huber": {"delta": 1.0}}), -3.0);
    assert!((dq - 0.2).abs() < 1e-5, "{dq}");
    let (dq, ..) = one_update(json!({"huber": {"delta": 1.0}}), 2.5);
    assert!((dq + 0.2).abs() < 1e-5, "{dq}");
    // MSE: g = 2a, ΔQ = −0.4 a
    let (dq, ..) = one_update(json!("mse"), -3.0);
    assert!((dq - 1.2).abs() < 1e-4, "{dq}");
}

#[test]
fn truncation_bootstraps_and_termination_does_not() {
    // One state, Q(s, ·) = b (a bias-only net via zero-width input is not
    // expressible; use one-hot of one state): y = r + γ max Q(s') on truncation.
    let config = json!({"network": [{"affine": "actions"}], "optimizer": {"kind": "sgd", "lr": 0.1},
                        "batch_size": 1, "learning_starts": 0, "gamma": 0.5,
                        "target_update_period": 1000, "replay": {"capacity": 8}});
    for (terminated, truncated) in [(true, false), (false, true)] {
        let mut dqn = agent(config.clone(), 2, 1);
        let q_next = dqn.q_values(&Observation::Discrete(1)).unwrap()[0];
        let q = dqn.q_values(&Observation::Discrete(0)).unwrap()[0];
        dqn.observe(&Transition {
            lane: 0,
            obs: &Observation::Discrete(0),
            action: &Action::Discrete(0),
            reward: 1.0,
            next_obs: &Observation::Discrete(1),
            terminated,
            truncated,
        })
        .unwrap();
        let moved = dqn.q_values(&Observation::Discrete(0)).unwrap()[0] - q;
        // y = r + γ · (1 − terminated) · Q_target(s'); Huber gradient clipped at 1
        let y = 1.0 + if terminated { 0.0 } else { 0.5 * q_next };
        let g = (q - y).clamp(-1.0, 1.0);
        assert!(
            (moved + 0.2 * g).abs() < 1e-5,
            "terminated {terminated}: {moved} vs {}",
            -0.2 * g
        );
    }
}

fn params(net: &QNet) -> Vec<(String, ArrayD<f32>)> {
    net.named_params()
}

#[test]
fn the_target_network_changes_only_at_the_period() {
    let mut dqn = agent(
        json!({"optimizer": {"kind": "sgd", "lr": 0.05}, "batch_size": 2, "learning_starts": 0,
               "target_update_period": 3, "replay": {"capacity": 16}}),
        4,
        2,
    );
    let mut copied = params(dqn.online());
    assert_eq!(
        params(dqn.target_net()),
        copied,
        "the target starts as a copy"
    );
    for k in 1..=10u64 {
        observe(
            &mut dqn,
            (k % 4) as i64,
            (k % 2) as i64,
            1.0,
            ((k + 1) % 4) as i64,
            k % 5 == 0,
        );
        assert_eq!(dqn.updates(), k);
        assert_ne!(
            params(dqn.online()),
            copied,
            "the online network learns every update"
        );
        if k % 3 == 0 {
            copied = params(dqn.online());
        }
        assert_eq!(params(dqn.target_net()), copied, "after update {k}");
    }
}

#[test]
fn the_soft_update_is_polyak_averaging() {
    let tau = 0.25f32;
    let mut dqn = agent(
        json!({"optimizer": {"kind": "sgd", "lr": 0.05}, "batch_size": 2, "learning_starts": 0,
               "target_update_period": 2, "tau": tau, "replay": {"capacity": 16}}),
        4,
        2,
    );
    for k in 1..=6u64 {
        let target_before = params(dqn.target_net());
        observe(
            &mut dqn,
            (k % 4) as i64,
            (k % 2) as i64,
            1.0,
            ((k + 1) % 4) as i64,
            false,
        );
        let online = params(dqn.online());
        let target = params(dqn.target_net());
        for ((name, t), ((_, before), (_, o))) in
            target.iter().zip(target_before.iter().zip(&online))
        {
            let expected = if k % 2 == 0 {
                // θ⁻ ← τ θ + (1 − τ) θ⁻
                o * tau + before * (1.0 - tau)
            } else {
                before.clone()
            };
            for (x, y) in t.iter().zip(expected.iter()) {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                    "{name} after update {k}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn double_dqn_and_n_step_and_dueling_train() {
    for extra in [
        json!({"double_dqn": true}),
        json!({"n_step": 3}),
        json!({"dueling": true}),
        json!({"dueling": true, "double_dqn": true, "n_step": 2, "grad_clip": {"global_norm": 1.0}}),
    ] {
        let mut config = json!({"optimizer": {"kind": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                                "batch_size": 4, "learning_starts": 4, "replay": {"capacity": 32}});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let mut dqn = agent(config.clone(), 3, 2);
        for k in 0..40i64 {
            observe(
                &mut dqn,
                k % 3,
                k % 2,
                if k % 3 == 2 { 1.0 } else { 0.0 },
                (k + 1) % 3,
                k % 7 == 6,
            );
        }
        assert!(dqn.updates() > 20, "{config}");
        assert!(dqn.online().all_finite(), "{config}");
    }
}

/// Σ c ⊙ Q, whose gradient with respect to Q is c.
fn objective(net: &mut QNet, x: &ArrayD<f32>, c: &ndarray::Array2<f32>) -> f64 {
    let q = net.forward(x.view(), Mode::Eval).unwrap();
    q.iter()
        .zip(c)
        .map(|(&q, &c)| f64::from(q) * f64::from(c))
        .sum()
}

#[test]
fn the_dueling_head_backpropagates_the_right_gradient() {
    let arch: Architecture =
        serde_json::from_str(r#"[{"affine": 5}, "tanh", {"affine": "actions"}]"#).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut net = QNet::build(&arch, &[3], 4, true, Init::XavierUniform, &mut rng).unwrap();
    let x = ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 3]), |d| {
        (d[0] as f32 - 0.5) * 0.7 + d[1] as f32 * 0.3
    });
    let c = ndarray::Array2::from_shape_fn((2, 4), |(i, j)| (i as f32 + 1.0) * (j as f32 - 1.5));
    net.forward(x.view(), Mode::Train).unwrap();
    net.backward(c.view()).unwrap();
    let mut analytic = Vec::new();
    net.visit_params(&mut |p| analytic.push(p.grad.clone()));
    let h = 1e-2f32;
    for (i, grad) in analytic.iter().enumerate() {
        for e in 0..grad.len() {
            let nudge = |delta: f32, net: &mut QNet| {
                let mut k = 0;
                net.visit_params_mut(&mut |p| {
                    if k == i {
                        let v = p.value.as_slice_mut().unwrap();
                        v[e] += delta;
                    }
                    k += 1;
                });
            };
            nudge(h, &mut net);
            let up = objective(&mut net, &x, &c);
            nudge(-2.0 * h, &mut net);
            let down = objective(&mut net, &x, &c);
            nudge(h, &mut net);
            let numeric = (up - down) / (2.0 * f64::from(h));
            let got = f64::from(grad.as_slice().unwrap()[e]);
            assert!(
                (numeric - got).abs() < 1e-2 * numeric.abs().max(1.0),
                "param {i}[{e}]: {got} vs {numeric}"
            );
        }
    }
}

fn config_error(config: Value, observation_space: &Space, actions: &Space) -> String {
    let ctx = EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space,
        action_space: actions,
        model: None,
        env_id: "test",
    };
    let parsed: DqnConfig = match parse_config(&config) {
        Ok(c) => c,
        Err(Error::Config { field, .. }) => return field,
        Err(e) => panic!("{e}"),
    };
    match Dqn::new(parsed, &ctx, 0) {
        Err(Error::Config { field, .. }) => field,
        Err(e) => panic!("{config}: {e}"),
        Ok(_) => panic!("{config} was accepted"),
    }
}

#[test]
fn bad_configs_name_the_field() {
    let planes = Space::uniform_box(0.0, 1.0, &[4, 10, 10], DType::U8);
    let six = Space::discrete(6);
    let cases = [
        (
            json!({"batch_size": 64, "replay": {"capacity": 32}}),
            "batch_size",
        ),
        (json!({"epsilon_start": 1.5}), "epsilon_start"),
        (json!({"epsilon_end": -0.1}), "epsilon_end"),
        (json!({"gamma": 1.01}), "gamma"),
        (json!({"gamma": -0.5}), "gamma"),
        (json!({"network": ["flatten", {"affine": 5}]}), "network"),
        (
            json!({"network": [{"conv": {"out": 4, "kernel": 11}}, "flatten", {"affine": "actions"}]}),
            "network[0].kernel",
        ),
        (json!({"network": "big"}), "network"),
        (json!({"tau": 0.0}), "tau"),
        (
            json!({"loss": {"huber": {"delta": 0.0}}}),
            "loss.huber.delta",
        ),
        (
            json!({"optimizer": {"kind": "adam", "lr": -1.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}),
            "optimizer.lr",
        ),
        (json!({"replay": {"frame_stack": 3}}), "replay.frame_stack"),
        (json!({"target_update_period": 0}), "target_update_period"),
        (json!({"n_step": 0}), "n_step"),
        (json!({"init": {"orthogonal": {"gain": -1.0}}}), "init"),
        (json!({"learning_rate": 0.1}), "learning_rate"),
    ];
    for (config, field) in cases {
        let got = config_error(config.clone(), &planes, &six);
        assert!(
            got.starts_with(field),
            "{config}: got field {got}, expected {field}"
        );
    }
    let err = Dqn::new(
        DqnConfig::default(),
        &EnvContext {
            num_envs: 1,
            total_steps: None,
            observation_space: &planes,
            action_space: &Space::uniform_box(-1.0, 1.0, &[2], DType::F64),
            model: None,
            env_id: "continuous",
        },
        0,
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::Incompatible(_)), "{err}");
}

#[test]
fn default_networks_follow_the_observation() {
    let cases = [
        (
            Space::uniform_box(0.0, 1.0, &[4, 10, 10], DType::U8),
            592 + 131_200 + 774,
        ),
        (
            Space::uniform_box(0.0, 255.0, &[4, 84, 84], DType::U8),
            32 * (4 * 64 + 1) + 64 * (32 * 16 + 1) + 64 * (64 * 9 + 1) + 512 * (3136 + 1) + 6 * 513,
        ),
        (
            Space::uniform_box(-1.0, 1.0, &[4], DType::F64),
            4 * 64 + 64 + 64 * 64 + 64 + 64 * 6 + 6,
        ),
        (
            Space::discrete(12),
            12 * 64 + 64 + 64 * 64 + 64 + 64 * 6 + 6,
        ),
    ];
    for (space, params) in cases {
        let ctx = EnvContext {
            num_envs: 1,
            total_steps: None,
            observation_space: &space,
            action_space: &Space::discrete(6),
            model: None,
            env_id: "test",
        };
        let dqn = Dqn::new(DqnConfig::default(), &ctx, 0).unwrap();
        assert_eq!(dqn.online().param_count(), params, "{space}");
    }
}
