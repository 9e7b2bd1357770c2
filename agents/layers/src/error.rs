//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// An array had a shape the operation cannot accept.
    #[error("{op}: expected shape {expected}, got {got:?}")]
    Shape {
        /// The operation that rejected the array.
        op: &'static str,
        /// What was expected, in words (for example "[N, C, H, W] with C = 4").
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// `backward` was called without a preceding train-mode `forward`.
    #[error("{layer}: backward called without a train-mode forward")]
    NoForwardCache {
        /// The layer's name.
        layer: &'static str,
    },
    /// A layer of an architecture is invalid.
    #[error("layer {index} ({layer}), field `{field}`: {reason}")]
    InvalidLayer {
        /// Position of the layer in the architecture, from 0.
        index: usize,
        /// The layer's kind.
        layer: &'static str,
        /// The offending field.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("{what}: `{field}` {reason}")]
    InvalidConfig {
        /// The configured object.
        what: &'static str,
        /// The offending field.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// Two networks (or a network and a set of tensors) do not have the same parameters.
    #[error("parameter mismatch: {0}")]
    ParamMismatch(String),
    /// The optimiser's state does not fit the parameters it is asked to update.
    #[error("optimiser state mismatch: {0}")]
    OptimizerState(String),
    /// A stored tensor is not `f32`.
    #[error("tensor {name}: dtype {dtype}, expected F32")]
    Dtype {
        /// The tensor's name.
        name: String,
        /// Its dtype as safetensors names it.
        dtype: String,
    },
    /// A safetensors file could not be read or written.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// File input or output failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The allocator refused a buffer (weights, gradients, optimiser state):
    /// the caller ends its work instead of the process aborting.
    #[error("out of memory: could not allocate {bytes} bytes for {what}")]
    OutOfMemory {
        /// What the buffer was for.
        what: &'static str,
        /// The size asked for.
        bytes: usize,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An `f32` array of `shape` filled by `fill`, allocated fallibly: a
/// network of hundreds of millions of parameters must fail its run, not
/// abort the process that hosts many runs.
pub(crate) fn try_array(
    what: &'static str,
    shape: &[usize],
    fill: impl FnMut() -> f32,
) -> Result<ndarray::ArrayD<f32>> {
    let len = scalars(what, shape)?;
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| out_of_memory(what, len))?;
    data.extend(std::iter::repeat_with(fill).take(len));
    Ok(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data)
        .expect("the length is the product of the shape"))
}

/// A zero `f32` array of `shape`, allocated fallibly. The reservation is
/// tried and released first; `zeros` then asks for zeroed memory, which
/// the OS maps lazily (filling a reserved buffer would touch every page).
pub(crate) fn try_zeros(what: &'static str, shape: &[usize]) -> Result<ndarray::ArrayD<f32>> {
    try_room(what, shape)?;
    Ok(ndarray::ArrayD::zeros(ndarray::IxDyn(shape)))
}

/// Reserves and releases room for `shape`'s scalars.
fn try_room(what: &'static str, shape: &[usize]) -> Result<()> {
    let len = scalars(what, shape)?;
    Vec::<f32>::new()
        .try_reserve_exact(len)
        .map_err(|_| out_of_memory(what, len))
}

/// The number of scalars in `shape`; one past `usize` could never be
/// allocated.
fn scalars(what: &'static str, shape: &[usize]) -> Result<usize> {
    checked_product(shape).ok_or(Error::OutOfMemory {
        what,
        bytes: usize::MAX,
    })
}

fn out_of_memory(what: &'static str, scalars: usize) -> Error {
    Error::OutOfMemory {
        what,
        bytes: scalars.saturating_mul(std::mem::size_of::<f32>()),
    }
}

/// The number of scalars in a shape, `None` past `usize`.
pub(crate) fn checked_product(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

pub(crate) fn shape_err(op: &'static str, expected: impl Into<String>, got: &[usize]) -> Error {
    Error::Shape {
        op,
        expected: expected.into(),
        got: got.to_vec(),
    }
}
