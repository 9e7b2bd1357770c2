//! Learning smoke tests: an MLP solves XOR, a small CNN separates bars from
//! crosses on images the test draws itself. Seeded, so deterministic.

use ndarray::{Array2, ArrayD, Axis, IxDyn};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_layers::*;

fn accuracy(logits: ndarray::ArrayViewD<'_, f32>, labels: &[usize]) -> f32 {
    let logits = logits.into_dimensionality::<ndarray::Ix2>().unwrap();
    let right = logits
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            best == **label
        })
        .count();
    right as f32 / labels.len() as f32
}

fn one_hot(labels: &[usize], k: usize) -> ArrayD<f32> {
    Array2::from_shape_fn(
        (labels.len(), k),
        |(i, j)| if labels[i] == j { 1.0 } else { 0.0 },
    )
    .into_dyn()
}

#[test]
fn mlp_learns_xor() {
    let arch: Architecture =
        serde_json::from_str(r#"[{"affine": 8}, "tanh", {"affine": 2}]"#).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut net = arch
        .build(&[2], &[], Init::XavierUniform, &mut rng)
        .unwrap();
    let mut opt = OptimizerConfig::adam(0.05).build().unwrap();
    let x = ndarray::arr2(&[[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).into_dyn();
    let labels = [0, 1, 1, 0];
    let t = one_hot(&labels, 2);
    let mut grad = ArrayD::zeros(t.raw_dim());
    for _ in 0..500 {
        let y = net.forward(x.view(), Mode::Train).unwrap();
        Loss::SoftmaxCrossEntropy
            .compute_into(y, t.view(), grad.view_mut())
            .unwrap();
        net.backward(grad.view()).unwrap();
        opt.step(&mut net).unwrap();
    }
    let y = net.forward(x.view(), Mode::Eval).unwrap();
    assert_eq!(accuracy(y, &labels), 1.0);
}

/// 1×10×10 images: class 0 a horizontal or vertical bar (a full line), class 1
/// a cross (both lines through one point), with Gaussian-ish noise.
fn bars_and_crosses(n: usize, rng: &mut ChaCha8Rng) -> (ArrayD<f32>, Vec<usize>) {
    let mut x = ArrayD::zeros(IxDyn(&[n, 1, 10, 10]));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = rng.random_range(0..2usize);
        let (r, c) = (rng.random_range(1..9usize), rng.random_range(1..9usize));
        let mut img = x.index_axis_mut(Axis(0), i);
        let horizontal = rng.random::<bool>();
        for k in 0..10 {
            if label == 1 || horizontal {
                img[[0, r, k]] = 1.0;
            }
            if label == 1 || !horizontal {
                img[[0, k, c]] = 1.0;
            }
        }
        img.mapv_inplace(|v| v + rng.random_range(-0.3..0.3));
        labels.push(label);
    }
    (x, labels)
}

#[test]
fn cnn_separates_bars_from_crosses() {
    let arch: Architecture = serde_json::from_str(
        r#"[{"conv": {"out": 6, "kernel": 3, "padding": 1}}, "relu", {"max_pool": {"kernel": 2}},
            {"conv": {"out": 8, "kernel": 3, "stride": 2}}, "relu", "flatten", {"affine": 16}, "relu", {"affine": 2}]"#,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut net = arch
        .build(&[1, 10, 10], &[], Init::HeUniform, &mut rng)
        .unwrap();
    let mut opt = OptimizerConfig::adam(0.01).build().unwrap();
    let (train_x, train_y) = bars_and_crosses(512, &mut rng);
    let (test_x, test_y) = bars_and_crosses(500, &mut rng);
    let batch = 32;
    let mut grad = ArrayD::zeros(IxDyn(&[batch, 2]));
    for _epoch in 0..6 {
        for start in (0..train_y.len()).step_by(batch) {
            let xb = train_x.slice_axis(Axis(0), ndarray::Slice::from(start..start + batch));
            let tb = one_hot(&train_y[start..start + batch], 2);
            let y = net.forward(xb, Mode::Train).unwrap();
            Loss::SoftmaxCrossEntropy
                .compute_into(y, tb.view(), grad.view_mut())
                .unwrap();
            net.backward(grad.view()).unwrap();
            opt.step(&mut net).unwrap();
        }
    }
    let acc = accuracy(net.forward(test_x.view(), Mode::Eval).unwrap(), &test_y);
    assert!(acc >= 0.98, "test accuracy {acc}");
}
