//! Every convolution strategy against the plain reference (`reference.rs`),
//! at every SIMD level this CPU has.
//!
//! Bit for bit (compared with `==`, so that a zero term a path skips may
//! flip only the sign of a zero), because the summation order is the
//! reference's:
//!
//! - `y`, for every strategy: each output is `Σ_k W₂[f, k] · col[k, j]`
//!   summed over `k` in order from zero, then `+ b[f]`. The GEMM's
//!   micro-kernels add one rank-1 update per `k` (the cases keep
//!   `K = C·KH·KW ≤ 256`, so that every GEMM path takes the depth in one
//!   block); the direct path adds one tap at a time in `k` order; the sparse
//!   path adds one non-zero input at a time, which for a given output comes
//!   in `(c, ky, kx)` order too. Fused multiply-adds are used exactly where
//!   the reference uses them (every build but the baseline).
//! - `∂L/∂x`, except under the fused col2im: `W₂ᵀ · dY` summed over `f` in
//!   order, then each pixel's windows added in `(ky, kx)` order, as the
//!   reference's col2im does (the plain col2im loops over taps outermost,
//!   the phased one adds tap by tap onto the phase planes).
//! - `∂L/∂W` of the sparse path: each `(tap, filter)` sum runs over samples
//!   and output positions in order, skipping zero inputs.
//!
//! Within `1e-5` of the sum of the terms' magnitudes (the same reference
//! run on `|x|`, `|W|`, `|b|`, `|dy|`), because the order differs:
//!
//! - `∂L/∂W` of the dense paths: the dot-product GEMM and the direct weight
//!   gradient keep 8 or 16 lane-wise partial sums and fold them at the end,
//!   and chunks add up one after another;
//! - `∂L/∂b`: 8 lane-wise partial sums (`lane_sum`, ndarray's `sum`);
//! - `∂L/∂x` under the fused col2im: the GEMM adds each tile onto the phase
//!   planes as it is computed, so a pixel's windows arrive in the order of
//!   the GEMM's column panels, not of the taps.

use super::reference::{self, Grads};
use super::*;
use crate::kernels::simd::{Simd, set_simd_limit, simd_level};
use crate::test_values::simd_levels;
use ndarray::IxDyn;

/// Which strategy a case must take.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// The direct path, dense.
    Direct,
    /// The sparse path (input 0/1 or ±1 at the given density).
    Sparse(f32),
    /// The phased layout; `true` when backward fuses col2im into the GEMM.
    Phased { fused: bool },
    /// The plain im2col layout.
    Im2col,
}

/// `(N, C, H, W)`, filters, kernel, stride, padding, the path, and what the case covers.
type Case = ([usize; 4], usize, usize, usize, usize, Path, &'static str);

#[rustfmt::skip]
const CASES: [Case; 20] = [
    ([3, 4, 10, 10], 16, 3, 1, 0, Path::Direct, "MinAtar's 3×3 on 10×10"),
    ([2, 3, 10, 10], 5, 3, 1, 0, Path::Direct, "5 filters: partial tiles"),
    ([1, 2, 6, 18], 7, 3, 1, 0, Path::Direct, "batch 1, two vectors a row"),
    ([32, 4, 10, 10], 16, 3, 1, 0, Path::Sparse(0.08), "MinAtar's batch, 8% ones"),
    ([1, 4, 10, 10], 16, 3, 1, 0, Path::Sparse(0.08), "batch 1"),
    ([2, 5, 10, 10], 20, 3, 1, 0, Path::Sparse(-0.15), "20 filters (24 lanes), ±1"),
    ([3, 6, 9, 17], 5, 2, 1, 0, Path::Sparse(0.1), "2×2 kernel, 5 filters"),
    // one sample at a time, its taps read in place; backward fuses col2im
    ([2, 4, 84, 84], 3, 8, 4, 0, Path::Phased { fused: true }, "Nature 8×8/4"),
    ([2, 3, 20, 20], 5, 4, 2, 0, Path::Phased { fused: false }, "4×4/2, one 180-column chunk"),
    ([3, 3, 20, 20], 5, 4, 2, 0, Path::Phased { fused: true }, "4×4/2, tiles across samples"),
    ([2, 2, 17, 16], 3, 3, 2, 1, Path::Phased { fused: false }, "stride 2, padding 1"),
    ([1, 2, 40, 43], 3, 4, 4, 1, Path::Phased { fused: false }, "stride 4, padding 1, batch 1"),
    ([2, 2, 20, 20], 6, 3, 1, 1, Path::Phased { fused: true }, "stride 1 with padding, in place"),
    ([1, 3, 30, 34], 4, 5, 3, 2, Path::Phased { fused: false }, "5×5/3, padding 2"),
    ([2, 2, 7, 7], 3, 3, 1, 1, Path::Im2col, "3×3/1 with padding, one chunk"),
    ([1, 3, 9, 9], 4, 3, 1, 0, Path::Im2col, "batch 1: straight into NCHW"),
    ([2, 2, 9, 9], 2, 3, 2, 2, Path::Im2col, "stride 2, padding 2"),
    ([2, 2, 12, 12], 3, 3, 2, 0, Path::Im2col, "stride 2, rows split in two"),
    ([2, 1, 24, 24], 3, 8, 4, 0, Path::Im2col, "8×8/4 on 24×24, rows split in four"),
    ([8, 1, 120, 19], 3, 5, 1, 0, Path::Im2col, "chunks of 2 forward, 6 + 2 backward"),
];

/// `len` values: uniform in `[-1, 1)`; or, with `density`, that fraction
/// non-zero, `1.0` (density > 0) or uniform in ±1 (density < 0).
fn values(len: usize, seed: u32, density: Option<f32>) -> Vec<f32> {
    let mut next = crate::test_values::lcg_centred(seed);
    (0..len)
        .map(|_| match density {
            None => 2.0 * next(),
            Some(d) => {
                let keep = next() + 0.5 < d.abs();
                let v = if d > 0.0 { 1.0 } else { 2.0 * next() };
                if keep { v } else { 0.0 }
            }
        })
        .collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g == w, "{what}[{i}]: {g} against the reference's {w}");
    }
}

fn close(what: &str, got: &[f32], want: &[f32], magnitude: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(magnitude).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * m,
            "{what}[{i}]: {g} against the reference's {w} (terms of magnitude {m})"
        );
    }
}

/// The layer's output for `x`, copied out.
fn output(layer: &mut Conv2d, x: ArrayViewD<'_, f32>, mode: Mode) -> Vec<f32> {
    let y = layer.forward(x, mode).expect("forward");
    y.iter().copied().collect()
}

/// A parameter's gradient, copied out.
fn grad(layer: &Conv2d, i: usize) -> Vec<f32> {
    layer.params()[i].grad.iter().copied().collect()
}

#[test]
fn every_strategy_matches_the_reference() {
    for level in simd_levels() {
        let before = set_simd_limit(level);
        // the reference fuses its multiply-adds where the kernels do
        let fused = simd_level() >= Simd::Avx2Fma;
        for (i, &(dims, f, k, s, p, path, what)) in CASES.iter().enumerate() {
            let what = format!("{level:?} case {i} ({what})");
            let [n, c, h, w] = dims;
            let seed = i as u32 * 4;
            let weight = values(f * c * k * k, seed, None);
            let bias = values(f, seed + 1, None);
            let density = match path {
                Path::Sparse(d) => Some(d),
                _ => None,
            };
            let x = values(n * c * h * w, seed + 2, density);
            let mut layer = Conv2d::from_params(
                ArrayD::from_shape_vec(IxDyn(&[f, c, k, k]), weight.clone()).expect("F·C·K·K"),
                ArrayD::from_shape_vec(IxDyn(&[f]), bias.clone()).expect("F"),
                s,
                p,
            )
            .expect("valid conv");
            let win = layer.win;
            let strategy = Strategy::choose(win, dims);
            let (oh, ow) = win.out_size(h, w).expect("fits");
            match path {
                Path::Direct | Path::Sparse(_) => assert_eq!(strategy, Strategy::Direct, "{what}"),
                Path::Phased { .. } => assert!(matches!(strategy, Strategy::Phased(_)), "{what}"),
                Path::Im2col => assert_eq!(strategy, Strategy::Im2col, "{what}"),
            }
            // the sparse path whenever it applies, else never
            let threshold = if density.is_some() { 1.0 } else { -1.0 };
            let density_before = set_conv_sparse_max_density(threshold);
            assert_eq!(
                sparse::applies(win, f, oh * ow, &x),
                density.is_some(),
                "{what}: sparse path taken"
            );
            let dy = values(n * f * oh * ow, seed + 3, None);
            let want_y = reference::forward(&x, dims, &weight, &bias, win, fused);
            let want = reference::backward(&x, dims, &weight, win, &dy, fused);
            let size = reference::backward(&abs(&x), dims, &abs(&weight), win, &abs(&dy), false);

            let x = ArrayD::from_shape_vec(IxDyn(&dims), x).expect("NCHW");
            let eval = output(&mut layer, x.view(), Mode::Eval);
            same(&format!("{what}: eval y"), &eval, &want_y);
            // the same input through a strided view
            let xt = x.clone().reversed_axes();
            let xt = xt.as_standard_layout().reversed_axes();
            let strided = output(&mut layer, xt.view(), Mode::Eval);
            same(&format!("{what}: y of a strided input"), &strided, &want_y);
            let y = output(&mut layer, x.view(), Mode::Train);
            same(&format!("{what}: y"), &y, &want_y);

            let dy = ArrayD::from_shape_vec(IxDyn(&[n, f, oh, ow]), dy).expect("NCHW");
            let dx = layer.backward(dy.view()).expect("backward");
            let got = Grads {
                dx: dx.iter().copied().collect(),
                dw: grad(&layer, 0),
                db: grad(&layer, 1),
            };
            if matches!(path, Path::Phased { fused: true }) {
                close(&format!("{what}: dx"), &got.dx, &want.dx, &size.dx);
            } else {
                same(&format!("{what}: dx"), &got.dx, &want.dx);
            }
            if matches!(path, Path::Sparse(_)) {
                same(&format!("{what}: dW"), &got.dw, &want.dw);
            } else {
                close(&format!("{what}: dW"), &got.dw, &want.dw, &size.dw);
            }
            close(&format!("{what}: db"), &got.db, &want.db, &size.db);
            // without dx: the same parameter gradients
            layer.backward_params(dy.view()).expect("backward");
            same(
                &format!("{what}: dW, params only"),
                &grad(&layer, 0),
                &got.dw,
            );
            same(
                &format!("{what}: db, params only"),
                &grad(&layer, 1),
                &got.db,
            );
            set_conv_sparse_max_density(density_before);
        }
        set_simd_limit(before);
    }
}

/// col2im is the adjoint of im2col: `⟨im2col(x), D⟩ = ⟨x, col2im(D)⟩`. (The
/// reference's forward is tied to the definition through the fast paths:
/// they equal it bit for bit above, and `tests/gradients.rs` checks them
/// against the sum written out in f64 and against numerical gradients.)
#[test]
fn reference_col2im_is_the_adjoint_of_im2col() {
    for (i, &(dims, _, k, s, p, _, _)) in CASES.iter().enumerate() {
        let win = Window {
            kh: k,
            kw: k,
            stride: s,
            padding: p,
        };
        let x = values(dims.iter().product(), i as u32 + 100, None);
        let col = reference::im2col(&x, dims, win);
        let d = values(col.len(), i as u32 + 200, None);
        let back = reference::col2im(&d, dims, win);
        let lhs: f64 = col
            .iter()
            .zip(&d)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let rhs: f64 = x
            .iter()
            .zip(&back)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
            "case {i}: {lhs} against {rhs}"
        );
    }
}
