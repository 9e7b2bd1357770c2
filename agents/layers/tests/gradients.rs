//! Finite-difference gradient checks for every layer and every loss.
//!
//! For a layer, the scalar `L = Σ y ⊙ R` with a fixed random `R` has
//! `∂L/∂y = R`; central differences `(L(θ + h) − L(θ − h)) / 2h` (summed in
//! f64) are compared with the analytic `dx` and parameter gradients.
//! Tolerance: |numeric − analytic| ≤ 2e-2 · max(1, |analytic|) with h = 1e-2,
//! which f32 rounding of `L` allows; inputs stay away from kinks (ReLU at 0,
//! max-pool ties, Hardtanh at ±1, Huber at ±δ) by more than h.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_layers::*;

const H: f32 = 1e-2;
const TOL: f32 = 2e-2;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn random(shape: &[usize], lo: f32, hi: f32, r: &mut ChaCha8Rng) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| r.random_range(lo..hi))
}

/// Values at least 0.05 apart (no max-pool ties), signs away from 0 by ≥ 0.025.
fn distinct(shape: &[usize], r: &mut ChaCha8Rng) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n)
        .map(|i| (i as f32 - n as f32 / 2.0) * 0.05 + 0.025)
        .collect();
    v.shuffle(r);
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn weighted_sum(y: ArrayViewD<'_, f32>, r: &ArrayD<f32>) -> f64 {
    y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

fn assert_close(what: &str, numeric: f32, analytic: f32) {
    let err = (numeric - analytic).abs();
    assert!(
        err <= TOL * analytic.abs().max(1.0),
        "{what}: numeric {numeric} vs analytic {analytic}"
    );
}

/// Runs `f` at every SIMD level this CPU has: the GEMM and convolution
/// kernels differ by level (tile shapes, B in place or packed).
fn at_every_level(f: impl Fn(Simd)) {
    let top = set_simd_limit(Simd::Avx512);
    let have = simd_level();
    for level in [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512] {
        if level <= have {
            set_simd_limit(level);
            f(level);
        }
    }
    set_simd_limit(top);
}

/// Checks `dx` and every parameter gradient of `layer` at `x`.
fn check_layer<L: Layer>(name: &str, layer: &mut L, x: &ArrayD<f32>, seed: u64) {
    let mut r = rng(seed);
    let y_shape = layer
        .forward(x.view(), Mode::Train)
        .unwrap()
        .shape()
        .to_vec();
    let weights = random(&y_shape, -1.0, 1.0, &mut r);
    let dx = layer.backward(weights.view()).unwrap().to_owned();
    assert_eq!(dx.shape(), x.shape(), "{name}: dx shape");
    let grads: Vec<ArrayD<f32>> = layer.params().iter().map(|p| p.grad.clone()).collect();

    let loss_at = |layer: &mut L, x: &ArrayD<f32>| -> f64 {
        let y = layer.forward(x.view(), Mode::Eval).unwrap();
        weighted_sum(y, &weights)
    };
    let mut xp = x.clone();
    for i in 0..x.len() {
        let orig = xp.as_slice().unwrap()[i];
        xp.as_slice_mut().unwrap()[i] = orig + H;
        let lp = loss_at(layer, &xp);
        xp.as_slice_mut().unwrap()[i] = orig - H;
        let lm = loss_at(layer, &xp);
        xp.as_slice_mut().unwrap()[i] = orig;
        let numeric = ((lp - lm) / (2.0 * f64::from(H))) as f32;
        assert_close(
            &format!("{name} dx[{i}]"),
            numeric,
            dx.as_slice().unwrap()[i],
        );
    }
    for (k, g) in grads.iter().enumerate() {
        for i in 0..g.len() {
            let orig = layer.params()[k].value.as_slice().unwrap()[i];
            layer.params_mut()[k].value.as_slice_mut().unwrap()[i] = orig + H;
            let lp = loss_at(layer, x);
            layer.params_mut()[k].value.as_slice_mut().unwrap()[i] = orig - H;
            let lm = loss_at(layer, x);
            layer.params_mut()[k].value.as_slice_mut().unwrap()[i] = orig;
            let numeric = ((lp - lm) / (2.0 * f64::from(H))) as f32;
            assert_close(
                &format!("{name} param {k}[{i}]"),
                numeric,
                g.as_slice().unwrap()[i],
            );
        }
    }
}

#[test]
fn matmul_and_affine() {
    at_every_level(|_| matmul_and_affine_at_level());
}

fn matmul_and_affine_at_level() {
    let mut r = rng(1);
    for case in 0..3u64 {
        let (n, d, o) = (
            r.random_range(1..5),
            r.random_range(1..7),
            r.random_range(1..6),
        );
        let mut m = MatMul::new(d, o, Init::HeNormal, &mut r).unwrap();
        check_layer("matmul", &mut m, &random(&[n, d], -1.0, 1.0, &mut r), case);
        let (c, h) = (r.random_range(1..4), r.random_range(1..4));
        let mut a = Affine::new(c * h * 2, o, Init::XavierNormal, &mut r).unwrap();
        check_layer(
            "affine",
            &mut a,
            &random(&[n, c, h, 2], -1.0, 1.0, &mut r),
            case,
        );
    }
}

#[test]
fn activations() {
    let mut r = rng(2);
    for case in 0..3u64 {
        let shape = [
            r.random_range(1..4),
            r.random_range(1..5),
            r.random_range(1..4),
        ];
        let x = random(&shape, -3.0, 3.0, &mut r);
        check_layer("sigmoid", &mut Sigmoid::new(), &x, case);
        check_layer("tanh", &mut Tanh::new(), &x, case);
        check_layer("silu", &mut Silu::new(), &x, case);
        check_layer("dsilu", &mut Dsilu::new(), &x, case);
        check_layer("softmax", &mut Softmax::new(), &x, case);
        let away = distinct(&shape, &mut r);
        check_layer("relu", &mut Relu::new(), &away, case);
        check_layer("leaky_relu", &mut LeakyRelu::new(0.1).unwrap(), &away, case);
        // Hardtanh: keep clear of ±1
        let ht = away.mapv(|v| {
            if (v.abs() - 1.0).abs() < 0.05 {
                v * 0.5
            } else {
                v
            }
        });
        check_layer("hardtanh", &mut Hardtanh::new(), &ht, case);
        check_layer("flatten", &mut Flatten::new(), &x, case);
    }
}

#[test]
fn conv2d_with_stride_and_padding() {
    at_every_level(|_| conv2d_with_stride_and_padding_at_level());
}

fn conv2d_with_stride_and_padding_at_level() {
    let mut r = rng(3);
    // (N, C, H, W, F, K, S, P)
    let cases = [
        (2, 3, 5, 5, 4, 3, 1, 0),
        (2, 2, 7, 6, 3, 3, 2, 1),
        (1, 2, 8, 8, 2, 4, 2, 1),
        (2, 1, 9, 7, 2, 3, 3, 2),
        (3, 2, 4, 5, 3, 1, 1, 0),
        (1, 3, 6, 6, 2, 5, 1, 2),
        (2, 2, 8, 8, 2, 4, 4, 0),
        (1, 3, 10, 10, 2, 4, 2, 0),
        // stride 1, no padding, output rows of 8 and 16: the direct (no im2col)
        // path, with partial weight-gradient tiles (5 filters, 27 and 4 taps)
        (2, 3, 10, 10, 5, 3, 1, 0),
        (2, 1, 9, 9, 3, 2, 1, 0),
        (1, 2, 6, 18, 4, 3, 1, 0),
        (2, 2, 5, 10, 6, 3, 1, 0),
        // the phased im2col layout (output rows padded from OW to
        // QW = OW + (K − 1)/S columns, at most 1/8 more): stride 2 with
        // padding, stride 3 with padding 2, and the Nature network's 8×8/4
        (2, 2, 17, 16, 3, 3, 2, 1),
        (1, 2, 13, 34, 2, 5, 3, 2),
        (1, 1, 12, 36, 2, 8, 4, 0),
        // phased, with 2 × 252 columns: ∂L/∂x by the GEMM that adds its tiles
        // straight onto the phase planes (tiles straddling samples)
        (2, 1, 24, 40, 2, 4, 2, 1),
    ];
    for (i, &(n, c, h, w, f, k, s, p)) in cases.iter().enumerate() {
        let mut conv = Conv2d::new(c, f, k, s, p, Init::TorchDefault, &mut r).unwrap();
        let x = random(&[n, c, h, w], -1.0, 1.0, &mut r);
        check_layer(&format!("conv2d case {i}"), &mut conv, &x, i as u64);
    }
}

#[test]
fn max_pool_with_stride_and_padding() {
    let mut r = rng(4);
    // (N, C, H, W, K, S, P): overlapping windows, stride > 1, padding > 0
    let cases = [
        (2, 2, 4, 4, 2, 2, 0),
        (1, 2, 5, 5, 3, 1, 1),
        (2, 1, 7, 6, 3, 2, 1),
        (1, 3, 6, 5, 2, 1, 1),
    ];
    for (i, &(n, c, h, w, k, s, p)) in cases.iter().enumerate() {
        let mut pool = MaxPool2d::new(k, s, p).unwrap();
        let x = distinct(&[n, c, h, w], &mut r);
        check_layer(&format!("max_pool case {i}"), &mut pool, &x, i as u64);
    }
}

#[test]
fn sequential_backward_input() {
    let arch: Architecture = serde_json::from_str(
        r#"[{"conv": {"out": 3, "kernel": 3, "stride": 2, "padding": 1}}, "tanh",
            {"max_pool": {"kernel": 2, "stride": 1}}, "flatten", {"affine": 5}, "sigmoid", {"affine": "out"}]"#,
    )
    .unwrap();
    let mut r = rng(5);
    let mut net = arch
        .build(&[2, 7, 7], &[("out", 3)], Init::XavierUniform, &mut r)
        .unwrap();
    let x = random(&[2, 2, 7, 7], -1.0, 1.0, &mut r);
    let y_shape = net.forward(x.view(), Mode::Train).unwrap().shape().to_vec();
    let weights = random(&y_shape, -1.0, 1.0, &mut r);
    let dx = net.backward_input(weights.view()).unwrap().to_owned();
    let mut xp = x.clone();
    for i in 0..x.len() {
        let orig = xp.as_slice().unwrap()[i];
        xp.as_slice_mut().unwrap()[i] = orig + H;
        let lp = weighted_sum(net.forward(xp.view(), Mode::Eval).unwrap(), &weights);
        xp.as_slice_mut().unwrap()[i] = orig - H;
        let lm = weighted_sum(net.forward(xp.view(), Mode::Eval).unwrap(), &weights);
        xp.as_slice_mut().unwrap()[i] = orig;
        assert_close(
            &format!("sequential dx[{i}]"),
            ((lp - lm) / (2.0 * f64::from(H))) as f32,
            dx.as_slice().unwrap()[i],
        );
    }
    // parameter gradients from backward (no dx) equal those from backward_input
    let with_dx: Vec<ArrayD<f32>> = {
        let mut v = Vec::new();
        net.for_each_named_param(&mut |_, p| v.push(p.grad.clone()));
        v
    };
    net.forward(x.view(), Mode::Train).unwrap();
    net.backward(weights.view()).unwrap();
    let mut k = 0;
    net.for_each_named_param(&mut |_, p| {
        assert_eq!(p.grad, with_dx[k]);
        k += 1;
    });
}

fn check_loss(loss: Loss, y: &ArrayD<f32>, t: &ArrayD<f32>) {
    let (_, g) = loss.compute(y.view(), t.view()).unwrap();
    let mut yp = y.clone();
    for i in 0..y.len() {
        let orig = yp.as_slice().unwrap()[i];
        let h = 1e-3;
        yp.as_slice_mut().unwrap()[i] = orig + h;
        let lp = f64::from(loss.compute(yp.view(), t.view()).unwrap().0);
        yp.as_slice_mut().unwrap()[i] = orig - h;
        let lm = f64::from(loss.compute(yp.view(), t.view()).unwrap().0);
        yp.as_slice_mut().unwrap()[i] = orig;
        let numeric = ((lp - lm) / (2.0 * f64::from(h))) as f32;
        let analytic = g.as_slice().unwrap()[i];
        assert!(
            (numeric - analytic).abs() <= 2e-2 * analytic.abs().max(0.1),
            "{loss:?} grad[{i}]: numeric {numeric} vs analytic {analytic}"
        );
    }
}

#[test]
fn every_loss() {
    let mut r = rng(6);
    for _ in 0..3 {
        let (n, k) = (r.random_range(1..5), r.random_range(2..6));
        let y = random(&[n, k], -2.0, 2.0, &mut r);
        let t = random(&[n, k], -2.0, 2.0, &mut r);
        check_loss(Loss::SquaredError, &y, &t);
        check_loss(Loss::MeanSquaredError, &y, &t);
        // Huber: residuals away from ±δ
        let delta = 0.7;
        let t_h = ndarray::Zip::from(&y).and(&t).map_collect(|&y, &t| {
            if ((y - t).abs() - delta).abs() < 0.05 {
                y - 0.3
            } else {
                t
            }
        });
        check_loss(Loss::Huber { delta }, &y, &t_h);
        let p = random(&[n, k], 0.05, 0.95, &mut r);
        let tb = random(&[n, k], 0.0, 1.0, &mut r);
        check_loss(Loss::BinaryCrossEntropy, &p, &tb);
        // probability rows and soft targets
        let mut probs = random(&[n, k], 0.1, 1.0, &mut r);
        let mut target = random(&[n, k], 0.0, 1.0, &mut r);
        for mut row in probs.rows_mut() {
            let s = row.sum();
            row.mapv_inplace(|v| v / s);
        }
        for mut row in target.rows_mut() {
            let s = row.sum();
            row.mapv_inplace(|v| v / s);
        }
        check_loss(Loss::CrossEntropy, &probs, &target);
        check_loss(Loss::SoftmaxCrossEntropy, &y, &target);
    }
}

#[test]
fn selected_loss_matches_dense_loss() {
    let mut r = rng(7);
    let (n, k) = (6, 4);
    let y = random(&[n, k], -3.0, 3.0, &mut r)
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let idx: Vec<usize> = (0..n).map(|_| r.random_range(0..k)).collect();
    let t = ndarray::Array1::from_shape_fn(n, |_| r.random_range(-3.0..3.0));
    for loss in [
        Loss::Huber { delta: 1.0 },
        Loss::SquaredError,
        Loss::MeanSquaredError,
    ] {
        let mut grad = ndarray::Array2::zeros((n, k));
        let l = loss
            .compute_selected(y.view(), &idx, t.view(), grad.view_mut())
            .unwrap();
        let picked = ndarray::Array2::from_shape_fn((n, 1), |(i, _)| y[(i, idx[i])]).into_dyn();
        let tt = t.clone().into_shape_with_order((n, 1)).unwrap().into_dyn();
        let (dense, g) = loss.compute(picked.view(), tt.view()).unwrap();
        assert!((l - dense).abs() < 1e-6, "{loss:?}");
        for i in 0..n {
            for j in 0..k {
                let want = if j == idx[i] { g[[i, 0]] } else { 0.0 };
                assert_eq!(grad[(i, j)], want);
            }
        }
    }
    let mut grad = ndarray::Array2::zeros((n, k));
    assert!(
        Loss::CrossEntropy
            .compute_selected(y.view(), &idx, t.view(), grad.view_mut())
            .is_err()
    );
}

#[test]
fn losses_are_finite_at_extremes() {
    let logits = ndarray::arr2(&[[1e4f32, -1e4, 0.0], [-1e4, -1e4, 1e4]]).into_dyn();
    let onehot = ndarray::arr2(&[[0.0f32, 1.0, 0.0], [1.0, 0.0, 0.0]]).into_dyn();
    let probs = ndarray::arr2(&[[1.0f32, 0.0, 0.0], [0.0, 0.0, 1.0]]).into_dyn();
    let cases: Vec<(Loss, &ArrayD<f32>, &ArrayD<f32>)> = vec![
        (Loss::SoftmaxCrossEntropy, &logits, &onehot),
        (Loss::CrossEntropy, &probs, &onehot),
        (Loss::BinaryCrossEntropy, &probs, &onehot),
        (Loss::Huber { delta: 1.0 }, &logits, &onehot),
        (Loss::SquaredError, &logits, &onehot),
        (Loss::MeanSquaredError, &logits, &onehot),
    ];
    for (loss, y, t) in cases {
        let (l, g) = loss.compute(y.view(), t.view()).unwrap();
        assert!(l.is_finite(), "{loss:?} loss {l}");
        assert!(g.iter().all(|v| v.is_finite()), "{loss:?} grad {g}");
    }
    let (l, _) = Loss::SoftmaxCrossEntropy
        .compute(logits.view(), onehot.view())
        .unwrap();
    // row 0: lse = 1e4, target logit −1e4 → 2e4; row 1: lse = 1e4, target logit −1e4 → 2e4
    assert!((l - 2e4).abs() < 1.0, "{l}");
    for layer_out in [
        Sigmoid::new()
            .forward(logits.view(), Mode::Eval)
            .unwrap()
            .to_owned(),
        Tanh::new()
            .forward(logits.view(), Mode::Eval)
            .unwrap()
            .to_owned(),
        Softmax::new()
            .forward(logits.view(), Mode::Eval)
            .unwrap()
            .to_owned(),
    ] {
        assert!(layer_out.iter().all(|v| v.is_finite()));
    }
    assert!(
        Loss::Huber { delta: 0.0 }
            .compute(logits.view(), onehot.view())
            .is_err()
    );
}

/// Conv2d's output against the definition, summed directly.
#[test]
fn conv2d_matches_direct_summation() {
    at_every_level(|_| conv2d_matches_direct_summation_at_level());
}

fn conv2d_matches_direct_summation_at_level() {
    let mut r = rng(8);
    // (N, C, H, W, F, K, S, P), including the Nature network's 8/4 and 4/2 shapes
    let cases = [
        (2, 4, 20, 20, 3, 8, 4, 0),
        (2, 3, 9, 11, 2, 4, 2, 0),
        (1, 2, 7, 7, 3, 3, 1, 1),
        (2, 2, 9, 9, 2, 3, 2, 2),
        // the direct path: stride 1, no padding, whole vectors of 8 outputs per row
        (3, 4, 10, 10, 16, 3, 1, 0),
        (2, 1, 9, 17, 7, 2, 1, 0),
        // 3 and 6 output vectors per sample: partial tiles of 4 vectors
        (2, 2, 5, 10, 5, 3, 1, 0),
        (1, 3, 8, 10, 6, 3, 1, 0),
        // the phased im2col layout: the Nature network's 8×8/4 on 84×84 and
        // 4×4/2 on 20×20, stride 2 with padding, stride 4 with padding
        (2, 4, 84, 84, 3, 8, 4, 0),
        (3, 5, 20, 20, 4, 4, 2, 0),
        (2, 3, 17, 16, 4, 3, 2, 1),
        (1, 2, 40, 43, 3, 4, 4, 1),
    ];
    for &(n, c, h, w, f, k, s, p) in &cases {
        let mut conv = Conv2d::new(c, f, k, s, p, Init::TorchDefault, &mut r).unwrap();
        let x = random(&[n, c, h, w], -1.0, 1.0, &mut r);
        let y = conv.forward(x.view(), Mode::Eval).unwrap().to_owned();
        let (wt, b) = (
            conv.params()[0].value.clone(),
            conv.params()[1].value.clone(),
        );
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        assert_eq!(y.shape(), &[n, f, oh, ow]);
        for ((ni, fi, o_h, o_w), &got) in y
            .clone()
            .into_dimensionality::<ndarray::Ix4>()
            .unwrap()
            .indexed_iter()
        {
            let mut want = f64::from(b[[fi]]);
            for ci in 0..c {
                for i in 0..k {
                    for j in 0..k {
                        let (ih, iw) = (
                            (o_h * s + i) as isize - p as isize,
                            (o_w * s + j) as isize - p as isize,
                        );
                        if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                            want += f64::from(wt[[fi, ci, i, j]])
                                * f64::from(x[[ni, ci, ih as usize, iw as usize]]);
                        }
                    }
                }
            }
            assert!(
                (f64::from(got) - want).abs() < 1e-4,
                "case {:?} at {:?}",
                (n, c, h, w, f, k, s, p),
                (ni, fi, o_h, o_w)
            );
        }
    }
}

/// Affine forward and backward at sizes that reach every GEMM path (dot
/// products; packed-A panels with B in place and packed, partial row and
/// column tiles, several depth blocks; the blocked algorithm; the backward
/// over live outputs only), against sums in f64, at every SIMD level.
#[test]
fn affine_matches_direct_sums_on_every_gemm_path() {
    // (N, in, out): the MinAtar and Nature shapes' kin, with ragged edges
    let cases = [
        (32, 1024, 128),
        (13, 300, 37),
        (33, 290, 257),
        (5, 260, 300),
        (300, 40, 250),
    ];
    at_every_level(|level| {
        let mut r = rng(9);
        // every third output dead for the whole batch (zero columns of dy,
        // as behind a ReLU): the live-output backward where D ≥ 256
        for (&(n, d, o), dead) in cases.iter().flat_map(|c| [(c, false), (c, true)]) {
            let mut fc = Affine::new(d, o, Init::XavierUniform, &mut r).unwrap();
            let x = random(&[n, d], -1.0, 1.0, &mut r);
            let mut dy = random(&[n, o], -1.0, 1.0, &mut r);
            if dead {
                for (j, mut column) in dy.axis_iter_mut(ndarray::Axis(1)).enumerate() {
                    if j % 3 == 2 {
                        column.fill(0.0);
                    }
                }
            }
            let y = fc.forward(x.view(), Mode::Train).unwrap().to_owned();
            let dx = fc.backward(dy.view()).unwrap().to_owned();
            let (w, b) = (fc.params()[0].value.clone(), fc.params()[1].value.clone());
            let (dw, db) = (fc.params()[0].grad.clone(), fc.params()[1].grad.clone());
            let close = |what: &str, got: f32, want: f64, terms: usize| {
                let tol = 1e-5 * (terms as f64).sqrt() * want.abs().max(1.0);
                assert!(
                    (f64::from(got) - want).abs() < tol,
                    "{level:?} {:?} dead outputs {dead} {what}: {got} vs {want}",
                    (n, d, o)
                );
            };
            for i in 0..n {
                for j in 0..o {
                    let want = f64::from(b[[j]])
                        + (0..d)
                            .map(|p| f64::from(x[[i, p]]) * f64::from(w[[j, p]]))
                            .sum::<f64>();
                    close("y", y[[i, j]], want, d);
                }
                for p in 0..d {
                    let want = (0..o)
                        .map(|j| f64::from(dy[[i, j]]) * f64::from(w[[j, p]]))
                        .sum::<f64>();
                    close("dx", dx[[i, p]], want, o);
                }
            }
            for j in 0..o {
                for p in 0..d {
                    let want = (0..n)
                        .map(|i| f64::from(dy[[i, j]]) * f64::from(x[[i, p]]))
                        .sum::<f64>();
                    close("dW", dw[[j, p]], want, n);
                }
                let want = (0..n).map(|i| f64::from(dy[[i, j]])).sum::<f64>();
                close("db", db[[j]], want, n);
            }
        }
    });
}

/// The sparse forward of `Affine` and `MatMul` (eval mode, when few enough
/// inputs are non-zero; train mode stays dense) against sums in f64 and
/// against the dense path: shapes with partial tiles (`O` not a multiple of
/// 128, `D` not a multiple of 32), all-zero, ReLU-like (half zeros),
/// 1%-dense and all-dense inputs, at every SIMD level. The sparse path adds
/// the same products in another order, so it agrees with the dense one to
/// f32 rounding (tolerance `1e-5·√D`, relative). Changing the weight through
/// `params_mut` must drop the cached `Wᵀ`, and a train-mode forward must
/// still backpropagate.
#[test]
fn affine_sparse_forward_matches_dense() {
    // (N, in, out); the MinAtar layer's 32 × 1024 × 128 is in the unit test
    // of `src/kernels/sparse.rs`, at every level too
    let cases = [(9, 70, 130), (16, 100, 41), (33, 64, 256), (8, 512, 8)];
    at_every_level(|level| {
        let before = set_sparse_max_density(1.0);
        let mut r = rng(31);
        for &(n, d, o) in &cases {
            let mut fc = Affine::new(d, o, Init::XavierUniform, &mut r).unwrap();
            let mut mm = MatMul::new(d, o, Init::XavierUniform, &mut r).unwrap();
            for pattern in ["zeros", "relu", "sparse", "dense"] {
                let x = ArrayD::from_shape_fn(IxDyn(&[n, d]), |_| {
                    let v: f32 = r.random_range(-1.0..1.0);
                    match pattern {
                        "zeros" => 0.0,
                        "relu" => v.max(0.0),
                        "sparse" if r.random::<f32>() < 0.99 => 0.0,
                        _ => v,
                    }
                });
                for mode in [Mode::Eval, Mode::Train] {
                    for (name, layer) in [
                        ("affine", &mut fc as &mut dyn Layer),
                        ("matmul", &mut mm as &mut dyn Layer),
                    ] {
                        set_sparse_max_density(-1.0);
                        let dense = layer.forward(x.view(), mode).unwrap().to_owned();
                        set_sparse_max_density(1.0);
                        let sparse = layer.forward(x.view(), mode).unwrap().to_owned();
                        let again = layer.forward(x.view(), mode).unwrap().to_owned();
                        assert_eq!(sparse, again, "{name}: the cached Wᵀ reused");
                        let w = layer.params()[0].value.clone();
                        let b = layer.params().get(1).map(|p| p.value.clone());
                        for i in 0..n {
                            for j in 0..o {
                                let (want, tol) = affine_in_f64(&x, &w, b.as_ref(), i, j);
                                for (path, got) in
                                    [("sparse", sparse[[i, j]]), ("dense", dense[[i, j]])]
                                {
                                    assert!(
                                        (f64::from(got) - want).abs() < tol,
                                        "{level:?} {name} {pattern} {mode:?} {path} {:?} at {i},{j}: {got} vs {want}",
                                        (n, d, o)
                                    );
                                }
                            }
                        }
                        if pattern == "zeros" {
                            let bias = b.map_or_else(
                                || ndarray::Array1::zeros(o).into_dyn(),
                                |b| b.into_dyn(),
                            );
                            for row in sparse.rows() {
                                assert_eq!(
                                    row.to_owned().into_dyn(),
                                    bias,
                                    "{name}: y = b for x = 0"
                                );
                            }
                        }
                        // a new weight: the cached Wᵀ must not survive it
                        layer.params_mut()[0].value.mapv_inplace(|v| -2.0 * v);
                        let flipped = layer.forward(x.view(), mode).unwrap().to_owned();
                        let w2 = layer.params()[0].value.clone();
                        let b2 = layer.params().get(1).map(|p| p.value.clone());
                        for i in 0..n {
                            for j in 0..o {
                                let (want, tol) = affine_in_f64(&x, &w2, b2.as_ref(), i, j);
                                assert!(
                                    (f64::from(flipped[[i, j]]) - want).abs() < tol,
                                    "{level:?} {name} {pattern} after a weight change at {i},{j}"
                                );
                            }
                        }
                        // a train-mode forward on the sparse path still backpropagates
                        if mode == Mode::Train {
                            let dy = ArrayD::from_elem(IxDyn(&[n, o]), 0.5f32);
                            let dx = layer.backward(dy.view()).unwrap().to_owned();
                            let w3 = layer.params()[0].value.clone();
                            for p in 0..d.min(7) {
                                let want: f64 = (0..o).map(|j| 0.5 * f64::from(w3[[j, p]])).sum();
                                assert!(
                                    (f64::from(dx[[0, p]]) - want).abs() < 1e-4 * (o as f64).sqrt()
                                );
                            }
                        }
                    }
                }
            }
        }
        set_sparse_max_density(before);
    });
}

/// A clone (a DQN target network) has the same weight but its own `Wᵀ`
/// buffer, aligned differently: the sparse path on the clone must give the
/// original's output bit for bit.
#[test]
fn affine_sparse_forward_survives_clone() {
    let mut r = rng(32);
    let mut fc = Affine::new(256, 64, Init::XavierUniform, &mut r).unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[16, 256]), |_| r.random_range(-1.0f32..1.0).max(0.0));
    fc.forward(x.view(), Mode::Eval).unwrap();
    let want = fc.forward(x.view(), Mode::Eval).unwrap().to_owned();
    for _ in 0..4 {
        let mut copy = fc.clone();
        for _ in 0..3 {
            let got = copy.forward(x.view(), Mode::Eval).unwrap().to_owned();
            assert_eq!(got, want);
        }
    }
}

/// `y[i, j] = b[j] + Σ_p x[i, p] · w[j, p]` summed in f64, and the tolerance
/// an f32 forward is held to: `1e-5 · √d` relative to `max(1, |y|)`.
fn affine_in_f64(
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    b: Option<&ArrayD<f32>>,
    i: usize,
    j: usize,
) -> (f64, f64) {
    let d = x.shape()[1];
    let want = b.map_or(0.0, |b| f64::from(b[[j]]))
        + (0..d)
            .map(|p| f64::from(x[[i, p]]) * f64::from(w[[j, p]]))
            .sum::<f64>();
    (want, 1e-5 * (d as f64).sqrt() * want.abs().max(1.0))
}

/// `L = Σ_n a_n ln p_n(action_n) + b_n H_n` of a categorical policy, whose
/// gradient [`Categorical::backward`] computes.
fn policy_objective(
    logits: &ArrayD<f32>,
    actions: &[usize],
    a: &[f32],
    b: &[f32],
    policy: &mut Categorical,
) -> f64 {
    policy
        .set_logits(logits.view().into_dimensionality().unwrap())
        .unwrap();
    (0..actions.len())
        .map(|n| {
            f64::from(a[n]) * f64::from(policy.log_prob(n, actions[n]))
                + f64::from(b[n]) * f64::from(policy.entropy(n))
        })
        .sum()
}

#[test]
fn categorical_log_prob_and_entropy() {
    let mut r = rng(19);
    for (n, k) in [(1, 1), (3, 2), (4, 6), (2, 18)] {
        let logits = random(&[n, k], -3.0, 3.0, &mut r);
        let actions: Vec<usize> = (0..n).map(|_| r.random_range(0..k)).collect();
        let a: Vec<f32> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
        let mut policy = Categorical::default();
        policy_objective(&logits, &actions, &a, &b, &mut policy);
        let mut analytic = ndarray::Array2::zeros((n, k));
        policy
            .backward(
                &actions,
                ndarray::aview1(&a),
                ndarray::aview1(&b),
                analytic.view_mut(),
            )
            .unwrap();
        let mut shifted = logits.clone();
        for i in 0..logits.len() {
            let orig = logits.as_slice().unwrap()[i];
            shifted.as_slice_mut().unwrap()[i] = orig + H;
            let plus = policy_objective(&shifted, &actions, &a, &b, &mut policy);
            shifted.as_slice_mut().unwrap()[i] = orig - H;
            let minus = policy_objective(&shifted, &actions, &a, &b, &mut policy);
            shifted.as_slice_mut().unwrap()[i] = orig;
            let numeric = ((plus - minus) / (2.0 * f64::from(H))) as f32;
            assert_close(
                &format!("categorical [{n}, {k}] d_logits[{i}]"),
                numeric,
                analytic.as_slice().unwrap()[i],
            );
        }
    }
}

/// The negative mean log-probability of one-hot targets is the notes'
/// softmax-with-loss, value and gradient.
#[test]
fn categorical_is_softmax_cross_entropy_on_one_hot_targets() {
    let mut r = rng(20);
    let (n, k) = (5, 4);
    let logits = random(&[n, k], -4.0, 4.0, &mut r);
    let actions: Vec<usize> = (0..n).map(|_| r.random_range(0..k)).collect();
    let mut one_hot = ArrayD::zeros(IxDyn(&[n, k]));
    for (row, &action) in actions.iter().enumerate() {
        one_hot[[row, action]] = 1.0;
    }
    let (loss, grad) = Loss::SoftmaxCrossEntropy
        .compute(logits.view(), one_hot.view())
        .unwrap();
    let mut policy = Categorical::default();
    policy
        .set_logits(logits.view().into_dimensionality().unwrap())
        .unwrap();
    let mean_nll = -(0..n)
        .map(|row| policy.log_prob(row, actions[row]))
        .sum::<f32>()
        / n as f32;
    assert!((mean_nll - loss).abs() < 1e-6, "{mean_nll} vs {loss}");
    let mut d_logits = ndarray::Array2::zeros((n, k));
    let d_log_prob = ndarray::Array1::from_elem(n, -1.0 / n as f32);
    let no_entropy = ndarray::Array1::zeros(n);
    policy
        .backward(
            &actions,
            d_log_prob.view(),
            no_entropy.view(),
            d_logits.view_mut(),
        )
        .unwrap();
    for (ours, theirs) in d_logits.iter().zip(grad.iter()) {
        assert!((ours - theirs).abs() < 1e-6, "{ours} vs {theirs}");
    }
}

/// Every parameter of a two-headed network, against central differences of
/// `L = Σ policy ⊙ R₁ + Σ value ⊙ R₂`.
#[test]
fn shared_torso_backward() {
    let mut r = rng(21);
    let arch = |json: &str| serde_json::from_str::<Architecture>(json).unwrap();
    let torso = arch(r#"[{"affine": 5}, "tanh", {"affine": 4}, "tanh"]"#)
        .build(&[3], &[], Init::Orthogonal { gain: 1.0 }, &mut r)
        .unwrap();
    let policy = arch(r#"[{"affine": 3}]"#)
        .build(torso.output_shape(), &[], Init::XavierUniform, &mut r)
        .unwrap();
    let value = arch(r#"[{"affine": 2}, "tanh", {"affine": 1}]"#)
        .build(torso.output_shape(), &[], Init::XavierUniform, &mut r)
        .unwrap();
    let mut net = SharedTorso::new(
        torso,
        vec![("policy".into(), policy), ("value".into(), value)],
    )
    .unwrap();
    let x = random(&[4, 3], -1.0, 1.0, &mut r);
    let weights = [
        random(&[4, 3], -1.0, 1.0, &mut r),
        random(&[4, 1], -1.0, 1.0, &mut r),
    ];
    net.forward(x.view(), Mode::Train).unwrap();
    net.backward(&[weights[0].view(), weights[1].view()])
        .unwrap();
    let mut analytic = Vec::new();
    net.visit_params(&mut |p| analytic.push(p.grad.clone()));

    let objective = |net: &mut SharedTorso| -> f64 {
        net.forward(x.view(), Mode::Eval).unwrap();
        weighted_sum(net.output(0).unwrap(), &weights[0])
            + weighted_sum(net.output(1).unwrap(), &weights[1])
    };
    for (k, grad) in analytic.iter().enumerate() {
        for i in 0..grad.len() {
            let nudge = |net: &mut SharedTorso, delta: f32| {
                let mut index = 0;
                net.visit_params_mut(&mut |p| {
                    if index == k {
                        p.value.as_slice_mut().unwrap()[i] += delta;
                    }
                    index += 1;
                });
            };
            nudge(&mut net, H);
            let plus = objective(&mut net);
            nudge(&mut net, -2.0 * H);
            let minus = objective(&mut net);
            nudge(&mut net, H);
            let numeric = ((plus - minus) / (2.0 * f64::from(H))) as f32;
            assert_close(
                &format!("shared torso param {k}[{i}]"),
                numeric,
                grad.as_slice().unwrap()[i],
            );
        }
    }
}
