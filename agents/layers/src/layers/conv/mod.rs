//! 2-D convolution: im2col, then a matrix product.
//!
//! As the notes describe it: im2col unrolls every window of the input into a
//! column, so that the convolution is one matrix product `Y = W₂ · col` and
//! its derivatives two more, `∂L/∂W₂ = dY · colᵀ` and `∂L/∂col = W₂ᵀ · dY`,
//! which col2im folds back onto the image. This file holds the layer: its
//! parameters, its checks, the output-size formula, and one dispatch to the
//! strategy that computes it fast (`crate::kernels::conv`). `reference.rs`
//! is the same convolution written plainly, the oracle that `tests.rs`
//! compares every strategy against.

use super::linear::copy_into;
use super::{Layer, Mode, Param};
use crate::buf::{Buf, take_storage};
use crate::error::{Error, Result, shape_err};
use crate::init::Init;
use crate::kernels::conv::sparse::Geometry;
use crate::kernels::conv::{Conv, Phased, Saved, Scratch, Strategy, chunked, direct, sparse};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2};
use rand::Rng;

pub use crate::kernels::conv::sparse::{CONV_SPARSE_MAX_DENSITY, set_conv_sparse_max_density};

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

/// The geometry of a sliding window over an `H × W` image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// `O = (H + 2P − K) / S + 1`, or `None` when the window does not fit.
    pub(crate) fn out_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.stride == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some((
            (hp - self.kh) / self.stride + 1,
            (wp - self.kw) / self.stride + 1,
        ))
    }

    /// For kernel column `kj`, the output columns `ow` whose input column
    /// `iw = ow·S + kj − P` lies inside `[0, W)`.
    pub(crate) fn valid_range(&self, k: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let k = k as isize;
        // ow·S + k − P ≥ 0  ⇔  ow ≥ ⌈(P − k) / S⌉
        let lo = if p > k { (p - k + s - 1) / s } else { 0 };
        // ow·S + k − P ≤ size − 1  ⇔  ow ≤ ⌊(size − 1 + P − k) / S⌋
        let top = size as isize - 1 + p - k;
        let hi = if top < 0 { 0 } else { top / s + 1 };
        let lo = (lo as usize).min(out);
        let hi = (hi as usize).clamp(lo, out);
        (lo, hi)
    }
}

/// 2-D convolution (cross-correlation, as in PyTorch) with stride and zero padding.
///
/// With `W` of shape `[F, C, KH, KW]` viewed as the matrix `W₂ = [F, C·KH·KW]`
/// and `col = im2col(x)` of shape `[C·KH·KW, N·OH·OW]`:
///
/// - forward: `y[n, f, oh, ow] = b[f] + Σ_{c,i,j} W[f, c, i, j] · x[n, c, oh·S + i − P, ow·S + j − P]`,
///   computed as `Y = W₂ · col`;
/// - derivatives: `∂L/∂W₂ = dY · colᵀ`, `∂L/∂b[f] = Σ_{n,oh,ow} dy[n, f, oh, ow]`,
///   `∂L/∂x = col2im(W₂ᵀ · dY)`, where col2im adds up overlapping windows.
///
/// `OH = (H + 2P − KH) / S + 1`, likewise `OW`. How the products are
/// computed depends on the shapes: with stride 1, no padding and output
/// rows a multiple of 8 wide, without im2col (each kernel tap reads its
/// inputs in place), touching only the non-zero inputs when there are few;
/// for strided windows, on the input split into its `S × S` phases, so that
/// im2col copies contiguous runs; otherwise by im2col chunk by chunk. The
/// results agree with the plain im2col formulation to rounding. All
/// buffers are reused between calls.
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Conv2d, Init, Layer, Mode};
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut conv = Conv2d::new(4, 16, 3, 1, 0, Init::HeUniform, &mut rng).unwrap();
/// let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[32, 4, 10, 10]));
/// assert_eq!(conv.forward(x.view(), Mode::Eval).unwrap().shape(), &[32, 16, 8, 8]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[weight, bias]`.
    params: [Param; 2],
    win: Window,
    /// The latest train-mode input, contiguous; or, when `cached_phases` is
    /// set, its phase planes (what backward's im2col reads).
    x: Option<Buf>,
    /// The layout of `x` when it holds phase planes instead of the input.
    cached_phases: Option<Phased>,
    spare: Option<Buf>,
    /// Input dims `[N, C, H, W]` of the latest forward.
    dims: [usize; 4],
    /// A contiguous copy of a strided eval-mode input or `dy`.
    contig: Buf,
    out: Option<Buf>,
    dx: Buf,
    /// The strategies' buffers.
    scratch: Scratch,
}

impl Conv2d {
    /// A convolution with `out` filters of `kernel × kernel` over `channels`
    /// input channels, weights from `init` and biases from [`Init::sample_bias`].
    pub fn new<R: Rng + ?Sized>(
        channels: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        for (field, v) in [
            ("in", channels),
            ("out", out),
            ("kernel", kernel),
            ("stride", stride),
        ] {
            if v == 0 {
                return Err(Error::InvalidConfig {
                    what: "conv2d",
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        let fan_in = channels * kernel * kernel;
        let w = init.sample(
            &[out, channels, kernel, kernel],
            fan_in,
            out * kernel * kernel,
            rng,
        )?;
        let b = init.sample_bias(out, fan_in, rng)?;
        Self::from_params(w, b, stride, padding)
    }

    /// Wraps a given `[F, C, KH, KW]` weight and `[F]` bias.
    pub fn from_params(
        weight: ArrayD<f32>,
        bias: ArrayD<f32>,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if weight.ndim() != 4 || bias.shape() != [weight.shape()[0]] {
            return Err(shape_err(
                "conv2d",
                "weight [F, C, KH, KW] and bias [F]",
                &[weight.shape(), bias.shape()].concat(),
            ));
        }
        if stride == 0 {
            return Err(Error::InvalidConfig {
                what: "conv2d",
                field: "stride",
                reason: "must be at least 1".into(),
            });
        }
        let win = Window {
            kh: weight.shape()[2],
            kw: weight.shape()[3],
            stride,
            padding,
        };
        Ok(Self {
            params: [Param::new(weight)?, Param::new(bias)?],
            win,
            x: None,
            cached_phases: None,
            spare: None,
            dims: [0; 4],
            contig: Buf::default(),
            out: None,
            dx: Buf::default(),
            scratch: Scratch::default(),
        })
    }

    /// The output shape `[F, OH, OW]` of one `[C, H, W]` sample, or `None` if the kernel does not fit.
    pub fn output_shape(&self, c: usize, h: usize, w: usize) -> Option<[usize; 3]> {
        if c != self.params[0].value.shape()[1] {
            return None;
        }
        let (oh, ow) = self.win.out_size(h, w)?;
        Some([self.params[0].value.shape()[0], oh, ow])
    }

    fn backward_impl(&mut self, dy: ArrayViewD<'_, f32>, need_dx: bool) -> Result<()> {
        let x = self
            .x
            .as_ref()
            .ok_or(Error::NoForwardCache { layer: "conv2d" })?;
        let [n, c, h, w] = self.dims;
        let (oh, ow) = self.win.out_size(h, w).expect("validated in forward");
        let f = self.params[0].value.shape()[0];
        let (l, k) = (oh * ow, c * self.win.kh * self.win.kw);
        if dy.shape() != [n, f, oh, ow] {
            return Err(shape_err(
                "conv2d",
                format!("dy of shape [{n}, {f}, {oh}, {ow}]"),
                dy.shape(),
            ));
        }
        let dys = contiguous(&dy, &mut self.contig);
        let [weight, bias] = &mut self.params;
        let w2: ArrayView2<'_, f32> = weight
            .value
            .view()
            .into_shape_with_order((f, k))
            .expect("standard-layout weight");
        let mut dw: ArrayViewMut2<'_, f32> = weight
            .grad
            .view_mut()
            .into_shape_with_order((f, k))
            .expect("standard-layout grad");
        let db = bias.grad.as_slice_mut().expect("standard-layout grad");
        db.fill(0.0);
        let strategy = Strategy::choose(self.win, self.dims);
        // what the train-mode forward kept: the input, or its phase planes
        let saved = match strategy {
            Strategy::Phased(lay) if self.cached_phases == Some(lay) => Saved::Phases(x.as_slice()),
            _ => Saved::Input(x.as_slice()),
        };
        if need_dx {
            self.dx.reshape(&self.dims);
        }
        let dx = need_dx.then(|| self.dx.as_mut_slice());
        let conv = Conv {
            win: self.win,
            dims: self.dims,
            w2,
        };
        let scratch = &mut self.scratch;
        // ∂L/∂W₂ = dY · colᵀ, ∂L/∂b = Σ dY, ∂L/∂x = col2im(W₂ᵀ · dY)
        match strategy {
            Strategy::Direct => {
                // ∂L/∂W₂ from x and dy in place, no col
                let dw = dw.as_slice_mut().expect("standard-layout grad");
                if sparse::applies(self.win, f, l, x.as_slice()) {
                    sparse::weight_grad(
                        Geometry::new(conv),
                        x.as_slice(),
                        dys,
                        &mut scratch.wpack,
                        &mut scratch.per_output,
                        dw,
                    );
                } else {
                    direct::weight_grad(
                        conv,
                        x.as_slice(),
                        dys,
                        &mut scratch.offsets,
                        &mut scratch.wpack,
                        dw,
                    );
                }
                direct::bias_grad(dys, l, db);
                if let Some(dx) = dx {
                    chunked::backward(conv, None, saved, dys, None, Some(dx), scratch);
                }
            }
            Strategy::Phased(lay) => {
                let grads = Some((dw, db));
                chunked::backward(conv, Some(&lay), saved, dys, grads, dx, scratch);
            }
            Strategy::Im2col => {
                chunked::backward(conv, None, saved, dys, Some((dw, db)), dx, scratch);
            }
        }
        Ok(())
    }
}

/// `x` as one slice in logical order: itself when contiguous, else copied into `contig`.
fn contiguous<'a>(x: &'a ArrayViewD<'_, f32>, contig: &'a mut Buf) -> &'a [f32] {
    match x.as_slice() {
        Some(s) => s,
        None => {
            contig.reshape(x.shape());
            copy_into(contig, x);
            contig.as_slice()
        }
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }

    /// # Shapes
    /// `x: [N, C, H, W]` → `y: [N, F, OH, OW]`, `OH = (H + 2P − KH)/S + 1`, `OW = (W + 2P − KW)/S + 1`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        let c_w = self.params[0].value.shape()[1];
        let fits = x.ndim() == 4
            && x.shape()[1] == c_w
            && self.win.out_size(x.shape()[2], x.shape()[3]).is_some();
        if !fits {
            return Err(shape_err(
                "conv2d",
                format!("[N, {c_w}, H, W] with H, W ≥ kernel − 2·padding"),
                x.shape(),
            ));
        }
        let dims = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
        self.dims = dims;
        let [n, c, h, w] = dims;
        let (oh, ow) = self.win.out_size(h, w).expect("checked above");
        let (f, l, k) = (
            self.params[0].value.shape()[0],
            oh * ow,
            c * self.win.kh * self.win.kw,
        );
        let strategy = Strategy::choose(self.win, dims);
        // the backward cache: the input, or, under the phased layout, its
        // phase planes, which the forward computes anyway (filled chunk by
        // chunk, then stored as `self.x`)
        self.cached_phases = None;
        let mut phase_cache: Option<Buf> = None;
        let xs: &[f32] = match (mode, strategy) {
            (Mode::Train, Strategy::Phased(lay)) => {
                let mut buf = take_storage(&mut self.x, &mut self.spare);
                buf.reshape(&[lay.phases_len(n)]);
                // the garbage columns of the last sample read the tail: keep it finite
                buf.as_mut_slice()[n * lay.sample_len()..].fill(0.0);
                phase_cache = Some(buf);
                self.cached_phases = Some(lay);
                contiguous(&x, &mut self.contig)
            }
            (Mode::Train, _) => {
                let mut buf = take_storage(&mut self.x, &mut self.spare);
                buf.reshape(x.shape());
                copy_into(&mut buf, &x);
                self.x.insert(buf).as_slice()
            }
            (Mode::Eval, _) => {
                if let Some(b) = self.x.take() {
                    self.spare = Some(b);
                }
                contiguous(&x, &mut self.contig)
            }
        };
        let [weight, bias] = &self.params;
        let w2: ArrayView2<'_, f32> = weight
            .value
            .view()
            .into_shape_with_order((f, k))
            .expect("standard-layout weight");
        let bias = bias.value.as_slice().expect("standard-layout bias");
        let out = self.out.get_or_insert_with(Buf::default);
        out.reshape(&[n, f, oh, ow]);
        let y = out.as_mut_slice();
        let conv = Conv {
            win: self.win,
            dims,
            w2,
        };
        let scratch = &mut self.scratch;
        // y = W₂ · im2col(x) + b
        match strategy {
            // mostly zeros (0/1 image planes): each non-zero input adds its
            // share of W to the outputs it reaches
            Strategy::Direct if sparse::applies(self.win, f, l, xs) => sparse::forward(
                Geometry::new(conv),
                xs,
                w2.as_slice().expect("standard-layout weight"),
                bias,
                &mut scratch.wpack,
                &mut scratch.per_output,
                y,
            ),
            // every tap's inputs read in place: no im2col, no reordering
            Strategy::Direct => direct::forward(conv, xs, bias, &mut scratch.wpack, y),
            // im2col (on the phase planes), then the matrix product, chunk by chunk
            Strategy::Phased(lay) => {
                let cache = phase_cache.as_mut().map(Buf::as_mut_slice);
                chunked::forward(conv, Some(&lay), xs, bias, cache, scratch, y);
            }
            Strategy::Im2col => chunked::forward(conv, None, xs, bias, None, scratch, y),
        }
        if phase_cache.is_some() {
            self.x = phase_cache;
        }
        Ok(out.view())
    }

    /// # Shapes
    /// `dy: [N, F, OH, OW]` → `dx: [N, C, H, W]`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        self.backward_impl(dy, true)?;
        Ok(self.dx.view())
    }

    fn backward_params(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        self.backward_impl(dy, false)
    }

    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.out.as_ref().map(Buf::view)
    }

    fn param_names(&self) -> &'static [&'static str] {
        &["weight", "bias"]
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}
