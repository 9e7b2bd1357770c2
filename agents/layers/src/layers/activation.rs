//! Element-wise activations. Each caches its output `y`, from which its
//! derivative follows, so backward never needs (or mutates) the input.
//!
//! Activations compute the same function in both modes, so their cache is
//! filled by every forward.

use super::{Layer, Mode};
use crate::buf::Buf;
use crate::error::{Error, Result, shape_err};
use crate::kernels::simd::{Kernel, dispatch};
use ndarray::{ArrayViewD, Zip};

fn act_forward<'a>(
    y: &'a mut Option<Buf>,
    x: ArrayViewD<'_, f32>,
    f: impl Fn(f32) -> f32,
) -> ArrayViewD<'a, f32> {
    let buf = y.get_or_insert_with(Buf::default);
    buf.reshape(x.shape());
    match x.as_slice() {
        Some(xs) => dispatch(Map {
            out: buf.as_mut_slice(),
            a: xs,
            b: xs,
            f: |x, _| f(x),
        }),
        None => Zip::from(buf.view_mut())
            .and(&x)
            .for_each(|y, &x| *y = f(x)),
    }
    buf.view()
}

/// `out[i] = f(a[i], b[i])` over equal-length slices, in the AVX2 build when available.
struct Map<'a, F> {
    out: &'a mut [f32],
    a: &'a [f32],
    b: &'a [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> f32> Kernel for Map<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let n = self.out.len();
        let (a, b) = (&self.a[..n], &self.b[..n]);
        for i in 0..n {
            self.out[i] = (self.f)(a[i], b[i]);
        }
    }
}

fn act_backward<'a>(
    kind: &'static str,
    y: &Option<Buf>,
    dx: &'a mut Buf,
    dy: ArrayViewD<'_, f32>,
    df: impl Fn(f32, f32) -> f32,
) -> Result<ArrayViewD<'a, f32>> {
    let y = y.as_ref().ok_or(Error::NoForwardCache { layer: kind })?;
    if dy.shape() != y.shape() {
        return Err(shape_err(
            kind,
            format!("dy with the output's shape {:?}", y.shape()),
            dy.shape(),
        ));
    }
    dx.reshape(y.shape());
    match dy.as_slice() {
        Some(dys) => dispatch(Map {
            out: dx.as_mut_slice(),
            a: y.as_slice(),
            b: dys,
            f: df,
        }),
        None => Zip::from(dx.view_mut())
            .and(&y.view())
            .and(&dy)
            .for_each(|dx, &y, &dy| *dx = df(y, dy)),
    }
    Ok(dx.view())
}

/// Logistic sigmoid.
///
/// - forward: `y = 1 / (1 + e^(−x))`, computed as `e^x / (1 + e^x)` for `x < 0` so
///   that neither branch overflows;
/// - derivative: `∂y/∂x = y (1 − y)`.
///
/// ```
/// use rl_layers::{Layer, Mode, Sigmoid};
/// let mut s = Sigmoid::new();
/// let y = s.forward(ndarray::arr2(&[[0.0f32, 1e4, -1e4]]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[0.5, 1.0, 0.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Sigmoid {
    y: Option<Buf>,
    dx: Buf,
}

impl Sigmoid {
    /// A sigmoid layer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Numerically stable logistic function.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Layer for Sigmoid {
    fn kind(&self) -> &'static str {
        "sigmoid"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        Ok(act_forward(&mut self.y, x, sigmoid))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        // ∂L/∂x = ∂L/∂y · y (1 − y)
        act_backward("sigmoid", &self.y, &mut self.dx, dy, |y, dy| {
            dy * y * (1.0 - y)
        })
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.y.as_ref().map(Buf::view)
    }
}

/// Rectified linear unit.
///
/// - forward: `y = max(0, x)`;
/// - derivative: `∂y/∂x = 1` if `x > 0`, else `0` (read from `y > 0`).
///
/// ```
/// use rl_layers::{Layer, Mode, Relu};
/// let mut r = Relu::new();
/// let y = r.forward(ndarray::arr1(&[-1.0f32, 2.0]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[0.0, 2.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Relu {
    y: Option<Buf>,
    dx: Buf,
}

impl Relu {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "relu"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        Ok(act_forward(&mut self.y, x, |x| x.max(0.0)))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        // ∂L/∂x = ∂L/∂y · [x > 0]
        act_backward("relu", &self.y, &mut self.dx, dy, |y, dy| {
            if y > 0.0 { dy } else { 0.0 }
        })
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.y.as_ref().map(Buf::view)
    }
}

/// Leaky ReLU with slope `a ≥ 0` for negative inputs.
///
/// - forward: `y = x` if `x > 0`, else `a·x`;
/// - derivative: `∂y/∂x = 1` if `x > 0`, else `a` (read from `y > 0`, which
///   needs `a ≥ 0`; [`LeakyRelu::new`] enforces it).
///
/// ```
/// use rl_layers::{Layer, LeakyRelu, Mode};
/// let mut r = LeakyRelu::new(0.1).unwrap();
/// let y = r.forward(ndarray::arr1(&[-1.0f32, 2.0]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[-0.1, 2.0]);
/// ```
#[derive(Clone, Debug)]
pub struct LeakyRelu {
    a: f32,
    y: Option<Buf>,
    dx: Buf,
}

impl LeakyRelu {
    /// A leaky ReLU; `a` must be finite and non-negative.
    pub fn new(a: f32) -> Result<Self> {
        if !(a.is_finite() && a >= 0.0) {
            return Err(Error::InvalidConfig {
                what: "leaky_relu",
                field: "a",
                reason: format!("must be finite and ≥ 0, got {a}"),
            });
        }
        Ok(Self {
            a,
            y: None,
            dx: Buf::default(),
        })
    }

    /// The negative slope.
    pub fn slope(&self) -> f32 {
        self.a
    }
}

impl Layer for LeakyRelu {
    fn kind(&self) -> &'static str {
        "leaky_relu"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        let a = self.a;
        Ok(act_forward(
            &mut self.y,
            x,
            |x| if x > 0.0 { x } else { a * x },
        ))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        let a = self.a;
        // ∂L/∂x = ∂L/∂y · (1 if x > 0 else a)
        act_backward("leaky_relu", &self.y, &mut self.dx, dy, |y, dy| {
            if y > 0.0 { dy } else { a * dy }
        })
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.y.as_ref().map(Buf::view)
    }
}

/// Hyperbolic tangent.
///
/// - forward: `y = tanh x = (e^(2x) − 1) / (e^(2x) + 1)`;
/// - derivative: `∂y/∂x = 1 − y²`, from the cached output (the notes' sample
///   reads a field its forward never set; here the output is the cache).
///
/// ```
/// use rl_layers::{Layer, Mode, Tanh};
/// let mut t = Tanh::new();
/// let y = t.forward(ndarray::arr1(&[0.0f32, 1e4]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[0.0, 1.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Tanh {
    y: Option<Buf>,
    dx: Buf,
}

impl Tanh {
    /// A tanh layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Tanh {
    fn kind(&self) -> &'static str {
        "tanh"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        Ok(act_forward(&mut self.y, x, f32::tanh))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        // ∂L/∂x = ∂L/∂y · (1 − y²)
        act_backward("tanh", &self.y, &mut self.dx, dy, |y, dy| {
            dy * (1.0 - y * y)
        })
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.y.as_ref().map(Buf::view)
    }
}

/// Hard tanh: tanh's piecewise-linear approximation on `[−1, 1]`.
///
/// - forward: `y = −1` if `x < −1`, `x` if `−1 ≤ x ≤ 1`, `1` if `x > 1`;
/// - derivative: `∂y/∂x = 1` if `−1 < x < 1`, else `0` (PyTorch's convention at
///   the kinks; read from `|y| < 1`).
///
/// ```
/// use rl_layers::{Hardtanh, Layer, Mode};
/// let mut h = Hardtanh::new();
/// let y = h.forward(ndarray::arr1(&[-3.0f32, 0.5, 3.0]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[-1.0, 0.5, 1.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Hardtanh {
    y: Option<Buf>,
    dx: Buf,
}

impl Hardtanh {
    /// A hard-tanh layer with range `[−1, 1]`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Hardtanh {
    fn kind(&self) -> &'static str {
        "hardtanh"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        Ok(act_forward(&mut self.y, x, |x| x.clamp(-1.0, 1.0)))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        // ∂L/∂x = ∂L/∂y · [−1 < x < 1]
        act_backward("hardtanh", &self.y, &mut self.dx, dy, |y, dy| {
            if y > -1.0 && y < 1.0 { dy } else { 0.0 }
        })
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.y.as_ref().map(Buf::view)
    }
}

/// The cache of an activation whose derivative needs its input, not only
/// its output: the input `x` and the output `y`.
#[derive(Clone, Debug, Default)]
struct InputCache {
    x: Option<Buf>,
    y: Option<Buf>,
    dx: Buf,
}

impl InputCache {
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        f: impl Fn(f32) -> f32,
    ) -> ArrayViewD<'a, f32> {
        let kept = self.x.get_or_insert_with(Buf::default);
        kept.reshape(x.shape());
        kept.view_mut().assign(&x);
        act_forward(&mut self.y, x, f)
    }

    fn backward<'a>(
        &'a mut self,
        kind: &'static str,
        dy: ArrayViewD<'_, f32>,
        derivative: impl Fn(f32) -> f32,
    ) -> Result<ArrayViewD<'a, f32>> {
        act_backward(kind, &self.x, &mut self.dx, dy, |x, dy| dy * derivative(x))
    }
}

/// Sigmoid-weighted linear unit (SiLU; Elfwing, Uchibe & Doya 2018), the
/// activation of the convolution in MinAtar's AC(λ) network.
///
/// - forward: `y = x σ(x)`;
/// - derivative: `∂y/∂x = σ(x) (1 + x (1 − σ(x)))`, from the cached input.
///
/// ```
/// use rl_layers::{Layer, Mode, Silu};
/// let mut s = Silu::new();
/// let y = s.forward(ndarray::arr1(&[0.0f32, 1e4, -1e4]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[0.0, 1e4, -0.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Silu {
    cache: InputCache,
}

impl Silu {
    /// A SiLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Silu {
    fn kind(&self) -> &'static str {
        "silu"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        Ok(self.cache.forward(x, |x| x * sigmoid(x)))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        self.cache.backward("silu", dy, dsilu)
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.cache.y.as_ref().map(Buf::view)
    }
}

/// SiLU's derivative, `σ(x) (1 + x (1 − σ(x)))`.
fn dsilu(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// The derivative of SiLU used as an activation (dSiLU; Elfwing, Uchibe &
/// Doya 2018), the activation of the hidden layer in MinAtar's AC(λ)
/// network: a sigmoid-like curve that overshoots to about 1.1 near x ≈ 2.4.
///
/// - forward: `y = σ(x) (1 + x (1 − σ(x)))`;
/// - derivative: `∂y/∂x = σ(x) (1 − σ(x)) (2 + x (1 − 2σ(x)))`, from the
///   cached input.
///
/// ```
/// use rl_layers::{Dsilu, Layer, Mode};
/// let mut d = Dsilu::new();
/// let y = d.forward(ndarray::arr1(&[0.0f32, 1e4, -1e4]).into_dyn().view(), Mode::Train).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[0.5, 1.0, 0.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Dsilu {
    cache: InputCache,
}

impl Dsilu {
    /// A dSiLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Dsilu {
    fn kind(&self) -> &'static str {
        "dsilu"
    }
    /// # Shapes
    /// Any shape; `y` has the shape of `x`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        Ok(self.cache.forward(x, dsilu))
    }
    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        self.cache.backward("dsilu", dy, |x| {
            let s = sigmoid(x);
            s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))
        })
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.cache.y.as_ref().map(Buf::view)
    }
}
