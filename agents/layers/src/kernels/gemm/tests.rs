//! The GEMM paths against naive f64 products, at every SIMD level.

use super::*;
use crate::test_values::simd_levels;
use ndarray::{Array2, ShapeBuilder};

fn naive(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
        (0..a.ncols())
            .map(|p| f64::from(a[(i, p)]) * f64::from(b[(p, j)]))
            .sum()
    })
}

/// B as rows at offsets into one buffer (overlapping, out of order), at
/// every level: the AVX-512 build reads them in place, the others pack
/// them; partial row tiles (M = 7, 33) and a partial last column panel.
#[test]
fn offset_rows_match_naive() {
    let mut next = crate::test_values::lcg_bits(7);
    for level in simd_levels() {
        let before = crate::kernels::simd::set_simd_limit(level);
        for &(m, k, n) in &[(32, 256, 420), (7, 64, 300), (33, 300, 256), (1, 5, 290)] {
            assert!(offset_rows_apply(m, k, n));
            let data: Vec<f32> = (0..n + 3 * k + 50)
                .map(|_| (next() % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let offsets: Vec<usize> = (0..k).map(|_| next() as usize % (3 * k + 50)).collect();
            let a = Array2::from_shape_fn((m, k), |_| (next() % 1000) as f32 / 500.0 - 1.0);
            let b = Array2::from_shape_fn((k, n), |(p, j)| data[offsets[p] + j]);
            let want = naive(a.view(), b.view());
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0)] {
                let c0: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32).collect();
                let mut c = c0.clone();
                let rows = OffsetRows {
                    data: &data,
                    offsets: &offsets,
                    n,
                };
                gemm_offset_rows(alpha, a.view(), rows, beta, &mut c);
                for i in 0..m {
                    for j in 0..n {
                        let w = f64::from(alpha) * want[(i, j)]
                            + f64::from(beta) * f64::from(c0[i * n + j]);
                        let got = f64::from(c[i * n + j]);
                        assert!(
                            (got - w).abs() < 1e-4 * (k as f64).sqrt(),
                            "{level:?} {m}x{k}x{n} at {i},{j}: {got} vs {w}"
                        );
                    }
                }
            }
        }
        crate::kernels::simd::set_simd_limit(before);
    }
}

/// C as rows at offsets (out of order, gaps between them untouched), at
/// every level, overwritten (β = 0) and blended (β = 1), with a
/// transposed A as the sparse Affine backward's `dyᵀ`.
#[test]
fn rows_at_match_naive() {
    let mut next = crate::test_values::lcg_bits(13);
    for level in simd_levels() {
        let before = crate::kernels::simd::set_simd_limit(level);
        for &(m, k, n) in &[(87, 32, 1024), (7, 9, 300), (33, 3, 256), (1, 5, 290)] {
            assert!(offset_rows_apply(m, k, n));
            // row r at slot order[r] of m + 3 slots, each n + 5 wide
            let ld = n + 5;
            let mut order: Vec<usize> = (0..m + 3).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, next() as usize % (i + 1));
            }
            let offsets: Vec<usize> = order[..m].iter().map(|&slot| slot * ld).collect();
            let a_t = Array2::from_shape_fn((k, m), |_| (next() % 1000) as f32 / 500.0 - 1.0);
            let b = Array2::from_shape_fn((k, n), |_| (next() % 1000) as f32 / 500.0 - 1.0);
            let want = naive(a_t.t(), b.view());
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0)] {
                let data0: Vec<f32> = (0..(m + 3) * ld).map(|i| (i % 7) as f32).collect();
                let mut data = data0.clone();
                gemm_rows_at(alpha, a_t.t(), b.view(), beta, &mut data, &offsets);
                let mut expect: Vec<f64> = data0.iter().map(|&v| f64::from(v)).collect();
                for (r, &off) in offsets.iter().enumerate() {
                    for j in 0..n {
                        expect[off + j] = f64::from(alpha) * want[(r, j)]
                            + f64::from(beta) * f64::from(data0[off + j]);
                    }
                }
                for (i, (&got, &w)) in data.iter().zip(&expect).enumerate() {
                    assert!(
                        (f64::from(got) - w).abs() < 1e-4 * (k as f64).sqrt(),
                        "{level:?} {m}x{k}x{n} at {i}: {got} vs {w}"
                    );
                }
            }
        }
        crate::kernels::simd::set_simd_limit(before);
    }
}

/// C added into one buffer at overlapping row offsets, segment by
/// segment (tiles inside one segment and straddling two), at every level.
#[test]
fn scatter_rows_match_naive() {
    let mut next = crate::test_values::lcg_bits(11);
    for level in simd_levels() {
        let before = crate::kernels::simd::set_simd_limit(level);
        // (m, k, segments, seg)
        for &(m, k, segs, seg) in &[(512, 64, 6, 90), (33, 17, 3, 100), (9, 300, 1, 300)] {
            let n = segs * seg;
            assert!(scatter_apply(m, k, n));
            let stride = seg + 40;
            let len = segs * stride + 60;
            let offsets: Vec<usize> = (0..m).map(|_| next() as usize % 60).collect();
            let a = Array2::from_shape_fn((m, k), |_| (next() % 1000) as f32 / 500.0 - 1.0);
            let b = Array2::from_shape_fn((k, n), |_| (next() % 1000) as f32 / 500.0 - 1.0);
            let prod = naive(a.view(), b.view());
            let data0: Vec<f32> = (0..len).map(|i| (i % 5) as f32).collect();
            let mut want: Vec<f64> = data0.iter().map(|&v| f64::from(v)).collect();
            for r in 0..m {
                for j in 0..n {
                    want[(j / seg) * stride + offsets[r] + j % seg] += 0.5 * prod[(r, j)];
                }
            }
            let mut data = data0.clone();
            let c = ScatterRows {
                data: &mut data,
                offsets: &offsets,
                seg,
                stride,
            };
            // a transposed A, as Conv2d's W₂ᵀ
            let a_t = a.t().to_owned();
            gemm_scatter_add(0.5, a_t.t(), b.view(), c);
            for (i, (&got, &w)) in data.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(got) - w).abs() < 1e-3,
                    "{level:?} {m}x{k}x{n} at {i}: {got} vs {w}"
                );
            }
        }
        crate::kernels::simd::set_simd_limit(before);
    }
}

#[test]
fn matches_naive_on_odd_shapes_and_strides() {
    let mut next = crate::test_values::lcg_centred(1);
    // (m, k, n): small ones; the panel path (n ≥ 256) with partial row and
    // column tiles and several depth blocks, B in place and packed, the
    // AVX2 build's 4-row tail panels (M mod 6 = 2 or 4); the blocked path
    // (m·k > 64 Ki)
    let shapes = [
        (1, 1, 1),
        (1, 100, 7),
        (2, 33, 40),
        (7, 5, 3),
        (13, 300, 17),
        (100, 33, 1030),
        (6, 16, 16),
        (2, 600, 5),
        (13, 300, 300),
        (37, 13, 260),
        (32, 128, 256),
        (33, 257, 290),
        (130, 32, 1024),
        (20, 300, 260),
        (4, 300, 300),
        (300, 250, 40),
    ];
    for level in simd_levels() {
        let before = crate::kernels::simd::set_simd_limit(level);
        for &(m, k, n) in &shapes {
            let a = Array2::from_shape_fn((m, k), |_| next());
            let b_t = Array2::from_shape_fn((n, k).f(), |_| next());
            let b = b_t.t();
            let b_nt = Array2::from_shape_fn((k, n).f(), |(p, j)| b[(p, j)]);
            let c0 = Array2::from_shape_fn((m, n), |_| next());
            let want = naive(a.view(), b.view());
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (2.0, -0.5)] {
                // row-major B (panel or blocked), column-major B (dot
                // products), transposed A, column-major C
                let mut c = c0.clone();
                gemm(alpha, a.view(), b.view(), beta, &mut c.view_mut());
                let mut c_nt = c0.clone();
                gemm(alpha, a.view(), b_nt.view(), beta, &mut c_nt.view_mut());
                let a_cm = Array2::from_shape_fn((m, k).f(), |(i, p)| a[(i, p)]);
                let mut c_ta = c0.clone();
                gemm(alpha, a_cm.view(), b.view(), beta, &mut c_ta.view_mut());
                let mut c_t = Array2::zeros((m, n).f());
                c_t.assign(&c0);
                gemm(alpha, a.t().t(), b, beta, &mut c_t.view_mut());
                for ((i, j), &v) in c.indexed_iter() {
                    let w =
                        f64::from(alpha) * want[(i, j)] + f64::from(beta) * f64::from(c0[(i, j)]);
                    let tol = 1e-4 * (k as f64).sqrt();
                    for (what, got) in [
                        ("row-major", v),
                        ("dot", c_nt[(i, j)]),
                        ("transposed A", c_ta[(i, j)]),
                        ("column-major C", c_t[(i, j)]),
                    ] {
                        assert!(
                            (f64::from(got) - w).abs() < tol,
                            "{level:?} {what} {m}x{k}x{n} at {i},{j}: {got} vs {w}"
                        );
                    }
                }
            }
        }
        crate::kernels::simd::set_simd_limit(before);
    }
}
