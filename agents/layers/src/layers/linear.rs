//! Fully connected layers: `MatMul` (`y = x Wᵀ`) and `Affine` (`y = x Wᵀ + b`).
//!
//! Weights are stored `[out, in]`, PyTorch's `nn.Linear` layout, so that a
//! saved network loads into PyTorch unchanged.

use super::{Layer, Mode, Param};
use crate::buf::{Buf, invalidate, take_storage};
use crate::error::{Error, Result, shape_err};
use crate::init::Init;
use crate::kernels::gemm::gemm;
use crate::kernels::sparse::{LiveBackward, SparseForward};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Ix2};
use rand::Rng;

/// The shared machinery of MatMul and Affine.
#[derive(Clone, Debug)]
struct Linear {
    kind: &'static str,
    /// Whether N-d input is flattened to `[N, D]` (Affine) or must be 2-D (MatMul).
    flatten: bool,
    /// `[weight]` or `[weight, bias]`.
    params: Vec<Param>,
    /// The input as `[N, D]`, from the latest train-mode forward.
    x: Option<Buf>,
    spare: Option<Buf>,
    /// The input's original shape, restored on `dx`.
    x_shape: Vec<usize>,
    out: Option<Buf>,
    dx: Buf,
    /// The sparse eval-mode forward and its cached `Wᵀ`, dropped whenever
    /// the parameters are borrowed mutably.
    sparse: SparseForward,
    /// The backward that skips outputs whose gradient is zero for every sample.
    live: LiveBackward,
}

impl Linear {
    fn in_features(&self) -> usize {
        self.params[0].value.shape()[1]
    }

    fn out_features(&self) -> usize {
        self.params[0].value.shape()[0]
    }

    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        let d = self.in_features();
        let ok = if self.flatten {
            x.ndim() >= 2
        } else {
            x.ndim() == 2
        };
        let n = x.shape().first().copied().unwrap_or(0);
        if !ok || x.len() != n * d {
            let want = if self.flatten {
                format!("[N, …] with {d} features per sample")
            } else {
                format!("[N, {d}]")
            };
            return Err(shape_err(self.kind, want, x.shape()));
        }
        self.x_shape.clear();
        self.x_shape.extend_from_slice(x.shape());
        let x2: ArrayView2<'_, f32>;
        let held: &Buf;
        match mode {
            Mode::Train => {
                let mut buf = take_storage(&mut self.x, &mut self.spare);
                buf.reshape(&[n, d]);
                copy_into(&mut buf, &x);
                held = self.x.insert(buf);
                x2 = held.view().into_dimensionality::<Ix2>().expect("2-D");
            }
            Mode::Eval if x.is_standard_layout() => {
                invalidate(&mut self.x, &mut self.spare);
                x2 = x
                    .into_shape_with_order((n, d))
                    .expect("contiguous input reshapes");
            }
            Mode::Eval => {
                invalidate(&mut self.x, &mut self.spare);
                let buf = self.spare.get_or_insert_with(Buf::default);
                buf.reshape(&[n, d]);
                copy_into(buf, &x);
                held = buf;
                x2 = held.view().into_dimensionality::<Ix2>().expect("2-D");
            }
        }
        // eval mode (no backward follows, and the weight seldom changes
        // between such calls) with enough zero inputs (after a ReLU, say):
        // the sparse path on a cached Wᵀ
        let taken = match x2.as_slice() {
            Some(xs) if mode == Mode::Eval => {
                let out = self.out.get_or_insert_with(Buf::default);
                out.reshape(&[n, self.params[0].value.shape()[0]]);
                self.sparse.try_forward(
                    xs,
                    (n, d),
                    self.params[0]
                        .value
                        .as_slice()
                        .expect("standard-layout weight"),
                    self.params
                        .get(1)
                        .map(|b| b.value.as_slice().expect("standard-layout bias")),
                    out.as_mut_slice(),
                )
            }
            _ => false,
        };
        if taken {
            return Ok(self.out.as_ref().expect("written above").view());
        }
        Ok(affine_forward(
            &mut self.out,
            &self.params[0],
            self.params.get(1),
            x2,
        ))
    }

    fn backward(
        &mut self,
        dy: ArrayViewD<'_, f32>,
        need_dx: bool,
    ) -> Result<Option<ArrayViewD<'_, f32>>> {
        let x = self
            .x
            .as_ref()
            .ok_or(Error::NoForwardCache { layer: self.kind })?;
        let x2 = x.view().into_dimensionality::<Ix2>().expect("cache is 2-D");
        let (n, o) = (x2.nrows(), self.out_features());
        if dy.shape() != [n, o] {
            return Err(shape_err(
                self.kind,
                format!("dy of shape [{n}, {o}]"),
                dy.shape(),
            ));
        }
        let dy2 = dy.into_dimensionality::<Ix2>().expect("checked 2-D");
        let d = self.in_features();
        if let Some(b) = self.params.get_mut(1) {
            // ∂L/∂b = Σ_n dy[n, :]
            let bg = b.grad.as_slice_mut().expect("standard-layout grad");
            bg.fill(0.0);
            for row in dy2.rows() {
                bg.iter_mut().zip(row).for_each(|(g, &v)| *g += v);
            }
        }
        if need_dx {
            self.dx.reshape(&[n, d]);
        }
        let weight = &mut self.params[0];
        let w = weight.value.as_slice().expect("standard-layout weight");
        let dw = weight.grad.as_slice_mut().expect("standard-layout grad");
        let xs = x.as_slice();
        let mut dx = need_dx.then(|| self.dx.as_mut_slice());
        if !self.live.backward(dy2, xs, w, dw, dx.as_deref_mut()) {
            // ∂L/∂W = dyᵀ x
            let mut dw = ArrayViewMut2::from_shape((o, d), dw).expect("[out, in]");
            gemm(1.0, dy2.t(), x2, 0.0, &mut dw);
            if let Some(dx) = dx {
                // ∂L/∂x = dy W
                let mut dx = ArrayViewMut2::from_shape((n, d), dx).expect("[n, in]");
                let w = ArrayView2::from_shape((o, d), w).expect("[out, in]");
                gemm(1.0, dy2, w, 0.0, &mut dx);
            }
        }
        if !need_dx {
            return Ok(None);
        }
        // reshaped to the input's shape
        self.dx.reshape(&self.x_shape);
        Ok(Some(self.dx.view()))
    }

    fn param_names(&self) -> &'static [&'static str] {
        if self.params.len() == 2 {
            &["weight", "bias"]
        } else {
            &["weight"]
        }
    }
}

fn affine_forward<'a>(
    out: &'a mut Option<Buf>,
    weight: &Param,
    bias: Option<&Param>,
    x2: ArrayView2<'_, f32>,
) -> ArrayViewD<'a, f32> {
    let (n, o) = (x2.nrows(), weight.value.shape()[0]);
    let out = out.get_or_insert_with(Buf::default);
    out.reshape(&[n, o]);
    let mut y = out.view_mut().into_dimensionality::<Ix2>().expect("2-D");
    let w = weight
        .value
        .view()
        .into_dimensionality::<Ix2>()
        .expect("weight is 2-D");
    let beta = match bias {
        Some(b) => {
            for mut row in y.rows_mut() {
                row.assign(&b.value);
            }
            1.0
        }
        None => 0.0,
    };
    // y = x Wᵀ (+ b)
    gemm(1.0, x2, w.t(), beta, &mut y);
    out.view()
}

/// Copies `x` (any layout) into `buf` (same number of elements) in logical order.
pub(crate) fn copy_into(buf: &mut Buf, x: &ArrayViewD<'_, f32>) {
    match x.as_slice() {
        Some(s) => buf.as_mut_slice().copy_from_slice(s),
        None => {
            let dst = buf.as_mut_slice();
            for (d, &v) in dst.iter_mut().zip(x.iter()) {
                *d = v;
            }
        }
    }
}

fn check_sizes(kind: &'static str, inputs: usize, outputs: usize) -> Result<()> {
    for (field, v) in [("in", inputs), ("out", outputs)] {
        if v == 0 {
            return Err(Error::InvalidConfig {
                what: kind,
                field,
                reason: "must be at least 1".into(),
            });
        }
    }
    Ok(())
}

/// Matrix product with a weight: the notes' `MatMul`, a fully connected layer without bias.
///
/// - forward: `y = x Wᵀ`, with `W` stored `[out, in]`;
/// - derivatives: `∂L/∂x = dy W`, `∂L/∂W = dyᵀ x`.
///
/// ```
/// use rl_layers::{Layer, MatMul, Mode};
/// let mut m = MatMul::from_weight(ndarray::arr2(&[[1.0f32, 2.0]]).into_dyn()).unwrap();
/// let y = m.forward(ndarray::arr2(&[[3.0f32, 4.0]]).into_dyn().view(), Mode::Eval).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[11.0]);
/// ```
#[derive(Clone, Debug)]
pub struct MatMul(Linear);

impl MatMul {
    /// A `[out, in]` weight drawn from `init`.
    pub fn new<R: Rng + ?Sized>(
        inputs: usize,
        outputs: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        check_sizes("matmul", inputs, outputs)?;
        Self::from_weight(init.sample(&[outputs, inputs], inputs, outputs, rng)?)
    }

    /// Wraps a given `[out, in]` weight.
    pub fn from_weight(weight: ArrayD<f32>) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(shape_err("matmul", "weight [out, in]", weight.shape()));
        }
        Ok(Self(linear("matmul", false, weight, None)?))
    }
}

fn linear(
    kind: &'static str,
    flatten: bool,
    weight: ArrayD<f32>,
    bias: Option<ArrayD<f32>>,
) -> Result<Linear> {
    Ok(Linear {
        kind,
        flatten,
        params: std::iter::once(weight)
            .chain(bias)
            .map(Param::new)
            .collect::<Result<_>>()?,
        x: None,
        spare: None,
        x_shape: Vec::new(),
        out: None,
        dx: Buf::default(),
        sparse: SparseForward::default(),
        live: LiveBackward::default(),
    })
}

impl Layer for MatMul {
    fn kind(&self) -> &'static str {
        "matmul"
    }
    /// # Shapes
    /// `x: [N, in]` → `y: [N, out]`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        self.0.forward(x, mode)
    }
    /// # Shapes
    /// `dy: [N, out]` → `dx: [N, in]`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        Ok(self.0.backward(dy, true)?.expect("dx requested"))
    }
    fn backward_params(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        self.0.backward(dy, false).map(|_| ())
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.0.out.as_ref().map(Buf::view)
    }
    fn param_names(&self) -> &'static [&'static str] {
        self.0.param_names()
    }
    fn params(&self) -> &[Param] {
        &self.0.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        self.0.sparse.invalidate();
        &mut self.0.params
    }
}

/// Fully connected layer with bias (PyTorch's `nn.Linear`). N-d input is
/// flattened to `[N, D]` and `dx` is given back in the input's shape, as the
/// notes' `Affine` does.
///
/// - forward: `y = x Wᵀ + b`, with `W` stored `[out, in]`;
/// - derivatives: `∂L/∂x = dy W`, `∂L/∂W = dyᵀ x`, `∂L/∂b = Σ_n dy[n]`.
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Affine, Init, Layer, Mode};
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let mut fc = Affine::new(4 * 2 * 2, 3, Init::HeUniform, &mut rng).unwrap();
/// let x = ndarray::ArrayD::<f32>::ones(ndarray::IxDyn(&[5, 4, 2, 2]));
/// assert_eq!(fc.forward(x.view(), Mode::Train).unwrap().shape(), &[5, 3]);
/// let dx = fc.backward(ndarray::ArrayD::ones(ndarray::IxDyn(&[5, 3])).view()).unwrap();
/// assert_eq!(dx.shape(), &[5, 4, 2, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct Affine(Linear);

impl Affine {
    /// A layer with `[out, in]` weight drawn from `init` and bias from [`Init::sample_bias`].
    pub fn new<R: Rng + ?Sized>(
        inputs: usize,
        outputs: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        check_sizes("affine", inputs, outputs)?;
        let w = init.sample(&[outputs, inputs], inputs, outputs, rng)?;
        let b = init.sample_bias(outputs, inputs, rng)?;
        Self::from_params(w, b)
    }

    /// Wraps a given `[out, in]` weight and `[out]` bias.
    pub fn from_params(weight: ArrayD<f32>, bias: ArrayD<f32>) -> Result<Self> {
        if weight.ndim() != 2 || bias.shape() != [weight.shape()[0]] {
            return Err(shape_err(
                "affine",
                "weight [out, in] and bias [out]",
                &[weight.shape(), bias.shape()].concat(),
            ));
        }
        Ok(Self(linear("affine", true, weight, Some(bias))?))
    }

    /// Number of input features `in`.
    pub fn inputs(&self) -> usize {
        self.0.in_features()
    }

    /// Number of output features `out`.
    pub fn outputs(&self) -> usize {
        self.0.out_features()
    }
}

impl Layer for Affine {
    fn kind(&self) -> &'static str {
        "affine"
    }
    /// # Shapes
    /// `x: [N, d₁, …, d_k]` with `d₁⋯d_k = in` → `y: [N, out]`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        self.0.forward(x, mode)
    }
    /// # Shapes
    /// `dy: [N, out]` → `dx` in the shape of the forward's `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        Ok(self.0.backward(dy, true)?.expect("dx requested"))
    }
    fn backward_params(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        self.0.backward(dy, false).map(|_| ())
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.0.out.as_ref().map(Buf::view)
    }
    fn param_names(&self) -> &'static [&'static str] {
        self.0.param_names()
    }
    fn params(&self) -> &[Param] {
        &self.0.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        self.0.sparse.invalidate();
        &mut self.0.params
    }
}
