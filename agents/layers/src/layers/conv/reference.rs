//! The plain convolution of the notes' CNN chapter, written for clarity and
//! not for speed: the oracle that every fast strategy of
//! `crate::kernels::conv` is tested against (`tests.rs`).
//!
//! im2col copies, for every sample `n`, channel `c` and kernel offset
//! `(ky, kx)`, the pixel that offset sees from every output position
//! `(oy, ox)` into one row of a matrix. The convolution is then one matrix
//! product with the weight, its derivatives two more, and col2im adds each
//! column of `∂L/∂col` back onto the pixels it came from.
//!
//! Every sum runs over its index in order, starting from zero. With `fused`,
//! each step is one fused multiply-add, as in the kernels' AVX2 and AVX-512
//! builds; without, a rounded product then a rounded sum, as in the
//! baseline build.

use crate::layers::Window;

/// The input pixel `(iy, ix)` that output `(oy, ox)` sees through kernel
/// offset `(ky, kx)`: `(oy·S + ky − P, ox·S + kx − P)`, or `None` in the
/// padding.
fn pixel(
    win: Window,
    (h, w): (usize, usize),
    (oy, ox): (usize, usize),
    (ky, kx): (usize, usize),
) -> Option<(usize, usize)> {
    let iy = (oy * win.stride + ky).checked_sub(win.padding)?;
    let ix = (ox * win.stride + kx).checked_sub(win.padding)?;
    (iy < h && ix < w).then_some((iy, ix))
}

/// Calls `f(row, column, pixel)` for every entry of the im2col matrix that
/// lies inside the image: row `(c·KH + ky)·KW + kx`, column
/// `(n·OH + oy)·OW + ox`, and the flat NCHW index of the pixel it holds.
fn each_entry(dims: [usize; 4], win: Window, mut f: impl FnMut(usize, usize, usize)) {
    let [n, c, h, w] = dims;
    let (oh, ow) = win.out_size(h, w).expect("the window fits");
    for ni in 0..n {
        for ci in 0..c {
            for ky in 0..win.kh {
                for kx in 0..win.kw {
                    let row = (ci * win.kh + ky) * win.kw + kx;
                    for oy in 0..oh {
                        for ox in 0..ow {
                            if let Some((iy, ix)) = pixel(win, (h, w), (oy, ox), (ky, kx)) {
                                let column = (ni * oh + oy) * ow + ox;
                                f(row, column, ((ni * c + ci) * h + iy) * w + ix);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `col[(c·KH + ky)·KW + kx][(n·OH + oy)·OW + ox] = x[n, c, oy·S + ky − P, ox·S + kx − P]`,
/// zero in the padding. The matrix is `[C·KH·KW, N·OH·OW]`: the transpose
/// of the notes' layout (one row per output position there), so that the
/// forward is `W₂ · col`.
pub(crate) fn im2col(x: &[f32], dims: [usize; 4], win: Window) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let (oh, ow) = win.out_size(h, w).expect("the window fits");
    let columns = n * oh * ow;
    let mut col = vec![0.0; c * win.kh * win.kw * columns];
    each_entry(dims, win, |row, column, at| {
        col[row * columns + column] = x[at]
    });
    col
}

/// The adjoint of [`im2col`]: `dx[n, c, iy, ix] += col[(c, ky, kx)][(n, oy, ox)]`
/// for every window position that covers the pixel, in the loops' order.
pub(crate) fn col2im(col: &[f32], dims: [usize; 4], win: Window) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let (oh, ow) = win.out_size(h, w).expect("the window fits");
    let columns = n * oh * ow;
    let mut dx = vec![0.0; n * c * h * w];
    each_entry(dims, win, |row, column, at| {
        dx[at] += col[row * columns + column]
    });
    dx
}

/// `A · B` for row-major `A: [m, k]` and `B: [k, n]`, each entry summed over
/// `p = 0, 1, …, k − 1` in order.
pub(crate) fn matmul(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    fused: bool,
) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..k {
                let (x, y) = (a[i * k + p], b[p * n + j]);
                sum = if fused {
                    x.mul_add(y, sum)
                } else {
                    sum + x * y
                };
            }
            c[i * n + j] = sum;
        }
    }
    c
}

/// `[r, c]` into `[c, r]`.
pub(crate) fn transpose(a: &[f32], (r, c): (usize, usize)) -> Vec<f32> {
    let mut t = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = a[i * c + j];
        }
    }
    t
}

/// `y = W₂ · im2col(x) + b` in NCHW, for `x: [N, C, H, W]`, `w: [F, C, KH, KW]` and `b: [F]`.
pub(crate) fn forward(
    x: &[f32],
    dims: [usize; 4],
    w: &[f32],
    b: &[f32],
    win: Window,
    fused: bool,
) -> Vec<f32> {
    let [n, c, h, wd] = dims;
    let (oh, ow) = win.out_size(h, wd).expect("the window fits");
    let (f, k, l) = (b.len(), c * win.kh * win.kw, oh * ow);
    let col = im2col(x, dims, win);
    // Y = W₂ · col, [F, N·L]
    let y_mat = matmul(w, &col, (f, k, n * l), fused);
    // y[n, f, :] = Y[f, n·L ..][..L] + b[f]
    let mut y = vec![0.0; n * f * l];
    for ni in 0..n {
        for fi in 0..f {
            for li in 0..l {
                y[(ni * f + fi) * l + li] = y_mat[fi * n * l + ni * l + li] + b[fi];
            }
        }
    }
    y
}

/// The gradients of one convolution.
pub(crate) struct Grads {
    /// `∂L/∂x`, NCHW.
    pub dx: Vec<f32>,
    /// `∂L/∂W`, `[F, C, KH, KW]`.
    pub dw: Vec<f32>,
    /// `∂L/∂b`, `[F]`.
    pub db: Vec<f32>,
}

/// The gradients of [`forward`] for `dy: [N, F, OH, OW]`.
pub(crate) fn backward(
    x: &[f32],
    dims: [usize; 4],
    w: &[f32],
    win: Window,
    dy: &[f32],
    fused: bool,
) -> Grads {
    let [n, c, h, wd] = dims;
    let (oh, ow) = win.out_size(h, wd).expect("the window fits");
    let (k, l) = (c * win.kh * win.kw, oh * ow);
    let f = w.len() / k;
    let nl = n * l;
    let col = im2col(x, dims, win);
    // dY[f, n·L + l] = dy[n, f, l]
    let mut dy_mat = vec![0.0; f * nl];
    for ni in 0..n {
        for fi in 0..f {
            for li in 0..l {
                dy_mat[fi * nl + ni * l + li] = dy[(ni * f + fi) * l + li];
            }
        }
    }
    // ∂L/∂W₂ = dY · colᵀ
    let dw = matmul(&dy_mat, &transpose(&col, (k, nl)), (f, nl, k), fused);
    // ∂L/∂b[f] = Σ_j dY[f, j]
    let db = dy_mat
        .chunks_exact(nl)
        .map(|row| row.iter().fold(0.0, |sum, &v| sum + v))
        .collect();
    // ∂L/∂col = W₂ᵀ · dY, then col2im adds overlapping windows
    let dcol = matmul(&transpose(w, (f, k)), &dy_mat, (k, f, nl), fused);
    let dx = col2im(&dcol, dims, win);
    Grads { dx, dw, db }
}
