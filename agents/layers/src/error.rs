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
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn shape_err(op: &'static str, expected: impl Into<String>, got: &[usize]) -> Error {
    Error::Shape {
        op,
        expected: expected.into(),
        got: got.to_vec(),
    }
}
