//! Sequential: build-time validation, save/load, target-network updates,
//! gradient clipping, the cache contract and determinism.

use ndarray::{ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_layers::bench::{TrainStep, conv_net};
use rl_layers::*;

/// Conv 16 3×3/1, Affine 128, Affine `outputs` on `[4, 10, 10]` inputs.
fn conv_10x10_with(outputs: usize, seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    conv_net(&[(16, 3, 1)], 128, outputs)
        .build(&[4, 10, 10], &[], Init::HeUniform, &mut rng)
        .unwrap()
}

fn conv_10x10(seed: u64) -> Sequential {
    conv_10x10_with(6, seed)
}

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
}

fn bits(net: &Sequential) -> Vec<(String, Vec<u32>)> {
    net.named_params()
        .into_iter()
        .map(|(n, a)| (n, a.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

#[test]
fn the_issue_example_builds_with_inferred_sizes() {
    let arch: Architecture = serde_json::from_str(
        r#"[{"conv": {"out": 16, "kernel": 3, "stride": 1}}, "relu", "flatten", {"affine": 128}, "relu", {"affine": "actions"}]"#,
    )
    .unwrap();
    let conv = LayerSpec::Conv {
        out: Size::Fixed(16),
        kernel: 3,
        stride: 1,
        padding: 0,
    };
    assert_eq!(
        arch,
        Architecture(vec![
            conv,
            LayerSpec::Relu,
            LayerSpec::Flatten,
            LayerSpec::Affine(Size::Fixed(128)),
            LayerSpec::Relu,
            LayerSpec::Affine(Size::Named("actions".into())),
        ])
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let net = arch
        .build(&[4, 10, 10], &[("actions", 6)], Init::HeUniform, &mut rng)
        .unwrap();
    let names: Vec<String> = net.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"
        ]
    );
    let shapes: Vec<Vec<usize>> = net
        .named_params()
        .into_iter()
        .map(|(_, a)| a.shape().to_vec())
        .collect();
    assert_eq!(
        shapes,
        [
            vec![16, 4, 3, 3],
            vec![16],
            vec![128, 1024],
            vec![128],
            vec![6, 128],
            vec![6]
        ]
    );
    // the serde form round-trips
    let text = serde_json::to_string(&arch).unwrap();
    assert_eq!(serde_json::from_str::<Architecture>(&text).unwrap(), arch);
}

#[test]
fn plans_count_what_builds_allocate() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let arch: Architecture = serde_json::from_str(
        r#"[{"conv": {"out": 16, "kernel": 3}}, "relu", {"max_pool": {"kernel": 2}},
            "flatten", {"affine": 32}, "tanh", {"affine": "actions"}]"#,
    )
    .unwrap();
    let plan = arch.plan(&[4, 10, 10], &[("actions", 6)]).unwrap();
    let net = arch
        .build(&[4, 10, 10], &[("actions", 6)], Init::HeUniform, &mut rng)
        .unwrap();
    assert_eq!(plan.parameters, net.param_count());
    assert_eq!(plan.output_shape, net.output_shape());
    // Outputs 16·8·8, 16·8·8, 16·4·4, 256, 32, 32, 6, and the unfolded
    // input of the convolution, 4·3·3 × 8·8.
    assert_eq!(
        plan.activation_scalars,
        1024 + 1024 + 256 + 256 + 32 + 32 + 6 + 36 * 64
    );
}

#[test]
fn build_errors_name_the_layer_and_field() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let cases = [
        (
            r#"["flatten", {"conv": {"out": 4, "kernel": 3}}]"#,
            vec![4, 10, 10],
            1usize,
            "input",
        ),
        (
            r#"[{"conv": {"out": 4, "kernel": 12}}]"#,
            vec![4, 10, 10],
            0,
            "kernel",
        ),
        (
            r#"[{"conv": {"out": 4, "kernel": 3, "stride": 0}}]"#,
            vec![4, 10, 10],
            0,
            "stride",
        ),
        (r#"["relu", {"affine": "actions"}]"#, vec![8], 1, "out"),
        (r#"[{"affine": 0}]"#, vec![8], 0, "out"),
        (
            r#"[{"max_pool": {"kernel": 2, "padding": 2}}]"#,
            vec![1, 4, 4],
            0,
            "padding",
        ),
        (r#"[{"leaky_relu": -1.0}]"#, vec![3], 0, "a"),
        (r#"[{"mat_mul": 3}]"#, vec![2, 2], 0, "input"),
        // The bounds: a width, a window, the parameter total.
        (r#"[{"affine": 2000000000}]"#, vec![4], 0, "out"),
        (
            r#"[{"conv": {"out": 4, "kernel": 300}}]"#,
            vec![4, 10, 10],
            0,
            "kernel",
        ),
        (
            r#"[{"max_pool": {"kernel": 2, "stride": 257}}]"#,
            vec![1, 4, 4],
            0,
            "stride",
        ),
        (
            r#"[{"affine": 60000}, {"affine": 60000}]"#,
            vec![8],
            1,
            "out",
        ),
    ];
    for (json, input, want_index, want_field) in cases {
        let arch: Architecture = serde_json::from_str(json).unwrap();
        match arch.build(&input, &[], Init::HeUniform, &mut rng) {
            Err(Error::InvalidLayer { index, field, .. }) => {
                assert_eq!((index, field), (want_index, want_field), "{json}")
            }
            other => panic!("{json}: expected InvalidLayer, got {other:?}"),
        }
    }
    // unknown keys and layer kinds are rejected by serde
    assert!(
        serde_json::from_str::<Architecture>(
            r#"[{"conv": {"out": 4, "kernel": 3, "dilation": 2}}]"#
        )
        .is_err()
    );
    assert!(serde_json::from_str::<Architecture>(r#"["gelu"]"#).is_err());
    // wrong input shape at run time is an error, not a panic
    let mut net = conv_10x10(0);
    assert!(
        net.forward(random(&[2, 3, 10, 10], 0).view(), Mode::Eval)
            .is_err()
    );
}

#[test]
fn save_load_round_trip_is_bit_exact() {
    let mut step = TrainStep::conv_10x10(1).unwrap();
    step.run().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    step.net.save_safetensors(&path).unwrap();
    let mut loaded = conv_10x10(99);
    assert_ne!(bits(&loaded), bits(&step.net));
    loaded.load_safetensors(&path).unwrap();
    assert_eq!(bits(&loaded), bits(&step.net));
    let x = random(&[3, 4, 10, 10], 5);
    let a = step.net.forward(x.view(), Mode::Eval).unwrap().to_owned();
    let b = loaded.forward(x.view(), Mode::Eval).unwrap().to_owned();
    assert_eq!(a.mapv(f32::to_bits), b.mapv(f32::to_bits));
    // the file is plain safetensors: F32 tensors with PyTorch's names and layouts
    let (tensors, _) = io::load_tensors(&path).unwrap();
    assert_eq!(tensors.len(), 6);
    // a different architecture refuses the file
    let mut other = conv_10x10_with(3, 0);
    assert!(matches!(
        other.load_safetensors(&path),
        Err(Error::ParamMismatch(_))
    ));
}

#[test]
fn optimizer_state_round_trips_and_training_resumes_identically() {
    for config in [
        OptimizerConfig::RmsProp {
            lr: 2.5e-4,
            alpha: 0.95,
            eps: 0.01,
            centered: true,
        },
        OptimizerConfig::adam(1e-3),
        OptimizerConfig::AdaDelta {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
        },
    ] {
        let mut step = TrainStep::conv_10x10(2).unwrap();
        step.optimizer = config.build().unwrap();
        for _ in 0..3 {
            step.run().unwrap();
        }
        let net_bytes = step.net.to_safetensors().unwrap();
        let opt_bytes = step.optimizer.state_to_safetensors().unwrap();
        let opt_json = serde_json::to_string(&step.optimizer).unwrap();

        let mut resumed = TrainStep::conv_10x10(2).unwrap();
        resumed.net.load_safetensors_bytes(&net_bytes).unwrap();
        resumed.upstream = step.upstream.clone();
        resumed.optimizer = config.build().unwrap();
        resumed
            .optimizer
            .load_state_safetensors(&opt_bytes)
            .unwrap();
        assert_eq!(resumed.optimizer, step.optimizer);
        assert_eq!(
            serde_json::from_str::<Optimizer>(&opt_json).unwrap(),
            step.optimizer
        );

        for _ in 0..2 {
            step.run().unwrap();
            resumed.run().unwrap();
        }
        assert_eq!(bits(&resumed.net), bits(&step.net), "{config:?}");
    }
}

#[test]
fn hard_and_soft_target_updates() {
    let online = conv_10x10(1);
    let mut target = conv_10x10(2);
    let before = target.named_params();
    target.soft_update_from(&online, 0.25).unwrap();
    for ((_, t), ((_, o), (_, b))) in target
        .named_params()
        .iter()
        .zip(online.named_params().iter().zip(&before))
    {
        for ((&t, &o), &b) in t.iter().zip(o.iter()).zip(b.iter()) {
            assert!((t - (0.25 * o + 0.75 * b)).abs() < 1e-6);
        }
    }
    target.copy_from(&online).unwrap();
    assert_eq!(bits(&target), bits(&online));
    assert!(target.soft_update_from(&online, 1.5).is_err());
    let mut small = conv_10x10_with(2, 0);
    assert!(matches!(
        small.copy_from(&online),
        Err(Error::ParamMismatch(_))
    ));
}

#[test]
fn global_norm_clipping() {
    let mut net = conv_10x10(3);
    let x = random(&[4, 4, 10, 10], 1);
    net.forward(x.view(), Mode::Train).unwrap();
    net.backward(ArrayD::from_elem(IxDyn(&[4, 6]), 10.0).view())
        .unwrap();
    let norm = grad_norm(&net);
    assert!(norm > 1.0);
    let before = net.clip_grad_norm(1.0);
    assert_eq!(before, norm);
    assert!((grad_norm(&net) - 1.0).abs() < 1e-4);
    // below the threshold nothing changes
    assert_eq!(net.clip_grad_norm(10.0), grad_norm(&net));
}

#[test]
fn backward_needs_a_train_mode_forward() {
    let mut net = conv_10x10(4);
    let x = random(&[2, 4, 10, 10], 2);
    let dy = ArrayD::zeros(IxDyn(&[2, 6]));
    assert!(matches!(
        net.backward(dy.view()),
        Err(Error::NoForwardCache { .. })
    ));
    net.forward(x.view(), Mode::Train).unwrap();
    net.forward(x.view(), Mode::Eval).unwrap();
    assert!(matches!(
        net.backward(dy.view()),
        Err(Error::NoForwardCache { .. })
    ));
    net.forward(x.view(), Mode::Train).unwrap();
    net.backward(dy.view()).unwrap();
}

#[test]
fn batch_size_may_change_between_calls() {
    let mut net = conv_10x10(5);
    let big = random(&[32, 4, 10, 10], 3);
    let one = big
        .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..1))
        .to_owned();
    let q_big = net.forward(big.view(), Mode::Eval).unwrap().to_owned();
    let q_one = net.forward(one.view(), Mode::Eval).unwrap().to_owned();
    for j in 0..6 {
        assert!((q_big[[0, j]] - q_one[[0, j]]).abs() < 1e-5);
    }
    // a non-contiguous input gives the same answer as its contiguous copy
    let strided = big.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..32).step_by(2));
    let a = net.forward(strided.view(), Mode::Eval).unwrap().to_owned();
    let b = net
        .forward(strided.to_owned().view(), Mode::Eval)
        .unwrap()
        .to_owned();
    assert_eq!(a, b);
}

#[test]
fn same_seed_same_training() {
    let run = || {
        let mut step = TrainStep::conv_10x10(7).unwrap();
        let outputs: Vec<u32> = (0..5).flat_map(|_| eval_after_step(&mut step)).collect();
        (outputs, bits(&step.net))
    };
    assert_eq!(run(), run());
}

#[test]
fn every_initialiser_is_seeded_and_scaled() {
    for init in [
        Init::HeUniform,
        Init::HeNormal,
        Init::XavierUniform,
        Init::XavierNormal,
        Init::TorchDefault,
        Init::Orthogonal { gain: 2.0 },
    ] {
        let a = init
            .sample(&[256, 400], 400, 256, &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap();
        let b = init
            .sample(&[256, 400], 400, 256, &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap();
        assert_eq!(a, b);
        let var = a.mapv(|v| v * v).mean().unwrap();
        let want = match init {
            Init::HeUniform | Init::HeNormal => 2.0 / 400.0,
            Init::XavierUniform | Init::XavierNormal => 2.0 / 656.0,
            Init::TorchDefault => 1.0 / (3.0 * 400.0),
            // 256 orthonormal rows of 400, times the gain: exactly gain² / 400.
            Init::Orthogonal { gain } => gain * gain / 400.0,
        };
        assert!(
            (var / want - 1.0).abs() < 0.05,
            "{init:?}: variance {var}, want {want}"
        );
    }
}

#[test]
fn conv_chunks_over_the_batch_consistently() {
    // 8·5·5 rows × 36·36 positions per sample exceeds one chunk, so every sample is its own chunk
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut conv = Conv2d::new(8, 4, 5, 1, 0, Init::HeUniform, &mut rng).unwrap();
    let x = random(&[3, 8, 40, 40], 4);
    let dy = random(&[3, 4, 36, 36], 5);
    let y = conv.forward(x.view(), Mode::Train).unwrap().to_owned();
    let dx = conv.backward(dy.view()).unwrap().to_owned();
    let dw = conv.params()[0].grad.clone();
    let db = conv.params()[1].grad.clone();
    let mut dw_sum = ArrayD::zeros(dw.raw_dim());
    let mut db_sum = ArrayD::zeros(db.raw_dim());
    for i in 0..3 {
        let xi = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(i..i + 1));
        let yi = conv.forward(xi, Mode::Train).unwrap().to_owned();
        assert_eq!(
            yi,
            y.slice_axis(ndarray::Axis(0), ndarray::Slice::from(i..i + 1))
        );
        let dyi = dy.slice_axis(ndarray::Axis(0), ndarray::Slice::from(i..i + 1));
        let dxi = conv.backward(dyi).unwrap().to_owned();
        assert_eq!(
            dxi,
            dx.slice_axis(ndarray::Axis(0), ndarray::Slice::from(i..i + 1))
        );
        dw_sum += &conv.params()[0].grad;
        db_sum += &conv.params()[1].grad;
    }
    for (a, b) in dw
        .iter()
        .zip(dw_sum.iter())
        .chain(db.iter().zip(db_sum.iter()))
    {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// One training step, then the network's eval-mode outputs on the step's
/// input, as bits.
fn eval_after_step(step: &mut TrainStep) -> Vec<u32> {
    step.run().unwrap();
    let y = step.net.forward(step.input.view(), Mode::Eval).unwrap();
    y.iter().map(|v| v.to_bits()).collect()
}

/// A training step computes the same thing at every SIMD level (the builds
/// differ in tile shapes and summation order, so to rounding only).
#[test]
fn training_steps_agree_across_simd_levels() {
    let top = set_simd_limit(Simd::Avx512);
    let have = simd_level();
    let mut runs = Vec::new();
    for level in [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512] {
        if level > have {
            continue;
        }
        set_simd_limit(level);
        let mut step = TrainStep::conv_10x10(3).unwrap();
        let outputs: Vec<f32> = (0..3)
            .flat_map(|_| eval_after_step(&mut step))
            .map(f32::from_bits)
            .collect();
        runs.push((level, outputs, step.net.named_params()));
    }
    set_simd_limit(top);
    let (_, want_outputs, want_params) = &runs[0];
    for (level, outputs, params) in &runs[1..] {
        for (a, b) in outputs.iter().zip(want_outputs) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{level:?} output {a} vs {b}"
            );
        }
        for ((name, a), (_, b)) in params.iter().zip(want_params) {
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y).abs() <= 1e-5, "{level:?} {name}: {x} vs {y}");
            }
        }
    }
}

/// A Flatten inside a network passes its input on reshaped instead of
/// copying it; the numbers must be those of the copying layer, bit for bit.
#[test]
fn a_flatten_passed_through_gives_the_copying_layers_results() {
    let mut net = conv_10x10(3);
    let mut by_hand = net.clone();
    let x = random(&[5, 4, 10, 10], 4);
    let dy = random(&[5, 6], 5);

    let y = net.forward(x.view(), Mode::Train).unwrap().to_owned();
    let dx = net.backward_input(dy.view()).unwrap().to_owned();

    // The same layers driven one at a time: every Flatten copies.
    let layers = by_hand.layers_mut();
    let mut activation = x.clone();
    for layer in layers.iter_mut() {
        activation = layer
            .forward(activation.view(), Mode::Train)
            .unwrap()
            .to_owned();
    }
    let mut gradient = dy.clone();
    for layer in layers.iter_mut().rev() {
        gradient = layer.backward(gradient.view()).unwrap().to_owned();
    }

    let as_bits = |a: &ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(y.shape(), activation.shape());
    assert_eq!(as_bits(&y), as_bits(&activation));
    assert_eq!(dx.shape(), gradient.shape());
    assert_eq!(as_bits(&dx), as_bits(&gradient));
    let grads = |n: &Sequential| {
        let mut v = Vec::new();
        n.for_each_named_param(&mut |_, p| v.push(as_bits(&p.grad)));
        v
    };
    assert_eq!(grads(&net), grads(&by_hand));
    // The Flatten inside `net` was passed through: its own output was never
    // written, while the hand-driven copy's was.
    let flatten_output = |n: &Sequential| n.layers()[2].output().map(|o| o.to_owned());
    assert!(flatten_output(&net).is_none());
    assert!(flatten_output(&by_hand).is_some());
}
