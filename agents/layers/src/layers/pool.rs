//! Max pooling.

use super::conv::Window;
use super::linear::copy_into;
use super::{Layer, Mode};
use crate::buf::{Buf, take_storage};
use crate::error::{Error, Result, shape_err};
use ndarray::ArrayViewD;

/// 2-D max pooling with stride and padding (padded cells never win).
///
/// - forward: `y[n, c, oh, ow] = max_{i,j} x[n, c, oh·S + i − P, ow·S + j − P]`;
/// - derivative: `∂L/∂x` routes each `dy[n, c, oh, ow]` to the position of its
///   window's maximum (the first one in row-major order on ties, as PyTorch)
///   and adds up where windows overlap.
///
/// ```
/// use rl_layers::{Layer, MaxPool2d, Mode};
/// let mut pool = MaxPool2d::new(2, 2, 0).unwrap();
/// let x = ndarray::Array::from_shape_vec((1, 1, 2, 2), vec![1.0f32, 4.0, 3.0, 2.0]).unwrap().into_dyn();
/// assert_eq!(pool.forward(x.view(), Mode::Eval).unwrap().as_slice().unwrap(), &[4.0]);
/// ```
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    win: Window,
    /// For every output element, the flat index of its maximum in `x`.
    argmax: Option<Vec<usize>>,
    spare: Option<Vec<usize>>,
    dims: [usize; 4],
    x_contig: Buf,
    out: Option<Buf>,
    dx: Buf,
}

impl MaxPool2d {
    /// A `kernel × kernel` pooling window; `padding ≤ kernel / 2` (as PyTorch requires).
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        for (field, v) in [("kernel", kernel), ("stride", stride)] {
            if v == 0 {
                return Err(Error::InvalidConfig {
                    what: "max_pool2d",
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if 2 * padding > kernel {
            return Err(Error::InvalidConfig {
                what: "max_pool2d",
                field: "padding",
                reason: format!("must be at most kernel / 2 = {}, got {padding}", kernel / 2),
            });
        }
        Ok(Self {
            win: Window {
                kh: kernel,
                kw: kernel,
                stride,
                padding,
            },
            argmax: None,
            spare: None,
            dims: [0; 4],
            x_contig: Buf::default(),
            out: None,
            dx: Buf::default(),
        })
    }

    /// The output shape `[C, OH, OW]` of one `[C, H, W]` sample, or `None` if the window does not fit.
    pub fn output_shape(&self, c: usize, h: usize, w: usize) -> Option<[usize; 3]> {
        let (oh, ow) = self.win.out_size(h, w)?;
        Some([c, oh, ow])
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "max_pool2d"
    }

    /// # Shapes
    /// `x: [N, C, H, W]` → `y: [N, C, OH, OW]`, `OH = (H + 2P − K)/S + 1`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        if x.ndim() != 4 || self.win.out_size(x.shape()[2], x.shape()[3]).is_none() {
            return Err(shape_err(
                "max_pool2d",
                "[N, C, H, W] with H, W ≥ kernel − 2·padding",
                x.shape(),
            ));
        }
        let dims = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
        self.dims = dims;
        let [n, c, h, w] = dims;
        let (oh, ow) = self.win.out_size(h, w).expect("checked above");
        let xs: &[f32] = match x.as_slice() {
            Some(s) => s,
            None => {
                self.x_contig.reshape(x.shape());
                copy_into(&mut self.x_contig, &x);
                self.x_contig.as_slice()
            }
        };
        let mut arg = take_storage(&mut self.argmax, &mut self.spare);
        arg.resize(n * c * oh * ow, 0);
        let out = self.out.get_or_insert_with(Buf::default);
        out.reshape(&[n, c, oh, ow]);
        let ys = out.as_mut_slice();
        let (s, p) = (self.win.stride as isize, self.win.padding as isize);
        let (k, hi, wi) = (self.win.kh as isize, h as isize, w as isize);
        for plane in 0..n * c {
            let base = plane * h * w;
            for o_h in 0..oh {
                let (r0, r1) = (
                    (o_h as isize * s - p).max(0),
                    (o_h as isize * s - p + k).min(hi),
                );
                for o_w in 0..ow {
                    let (c0, c1) = (
                        (o_w as isize * s - p).max(0),
                        (o_w as isize * s - p + k).min(wi),
                    );
                    let mut best = f32::NEG_INFINITY;
                    let mut at = base + (r0 * wi + c0) as usize;
                    for r in r0..r1 {
                        for cc in c0..c1 {
                            let i = base + (r * wi + cc) as usize;
                            let v = xs[i];
                            if v > best || v.is_nan() {
                                best = v;
                                at = i;
                            }
                        }
                    }
                    let o = (plane * oh + o_h) * ow + o_w;
                    ys[o] = best;
                    arg[o] = at;
                }
            }
        }
        match mode {
            Mode::Train => self.argmax = Some(arg),
            // take_storage emptied the cache, so an eval forward leaves none
            Mode::Eval => self.spare = Some(arg),
        }
        Ok(out.view())
    }

    /// # Shapes
    /// `dy: [N, C, OH, OW]` → `dx: [N, C, H, W]`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        let arg = self.argmax.as_ref().ok_or(Error::NoForwardCache {
            layer: "max_pool2d",
        })?;
        let [n, c, h, w] = self.dims;
        let (oh, ow) = self.win.out_size(h, w).expect("validated in forward");
        if dy.shape() != [n, c, oh, ow] {
            return Err(shape_err(
                "max_pool2d",
                format!("dy of shape [{n}, {c}, {oh}, {ow}]"),
                dy.shape(),
            ));
        }
        self.dx.reshape(&self.dims);
        self.dx.fill(0.0);
        let dx = self.dx.as_mut_slice();
        // ∂L/∂x[argmax] += dy
        for (&i, &g) in arg.iter().zip(dy.iter()) {
            dx[i] += g;
        }
        Ok(self.dx.view())
    }

    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.out.as_ref().map(Buf::view)
    }
}
