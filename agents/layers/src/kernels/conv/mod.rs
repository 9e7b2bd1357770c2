//! Convolution strategies.

pub(crate) mod sparse;
