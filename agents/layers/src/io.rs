//! Save and load in the safetensors format (little-endian `F32` tensors with a
//! JSON header), which Python opens with `safetensors.numpy.load_file` and
//! `safetensors.torch.load_file`.
//!
//! A [`Sequential`]'s tensors are named as PyTorch's `nn.Sequential` names its
//! state dict (`"0.weight"`, `"0.bias"`, `"3.weight"`, …), and weights use
//! PyTorch's layouts, so `model.load_state_dict(load_file(path))` works on the
//! equivalent PyTorch model.

use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::sequential::Sequential;
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Named tensors, in file order.
pub type NamedTensors = Vec<(String, ArrayD<f32>)>;

/// A safetensors file's string metadata.
pub type Metadata = HashMap<String, String>;

struct F32Bytes<'a> {
    shape: &'a [usize],
    bytes: Vec<u8>,
}

impl View for &F32Bytes<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Serializes named `f32` tensors (in logical row-major order) with optional
/// string metadata.
pub fn tensors_to_bytes(
    tensors: &[(String, ArrayD<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let views: Vec<(&str, F32Bytes<'_>)> = tensors
        .iter()
        .map(|(name, a)| {
            let bytes = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            (
                name.as_str(),
                F32Bytes {
                    shape: a.shape(),
                    bytes,
                },
            )
        })
        .collect();
    Ok(safetensors::serialize(
        views.iter().map(|(n, v)| (*n, v)),
        metadata,
    )?)
}

/// Parses a safetensors buffer of `f32` tensors; returns them sorted by name, with the metadata.
pub fn tensors_from_bytes(bytes: &[u8]) -> Result<(NamedTensors, Metadata)> {
    let st = SafeTensors::deserialize(bytes)?;
    let (_, meta) = SafeTensors::read_metadata(bytes)?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::Dtype {
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let a = ArrayD::from_shape_vec(IxDyn(view.shape()), data)
            .map_err(|e| Error::ParamMismatch(format!("tensor {name}: {e}")))?;
        out.push((name, a));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Writes named tensors to a safetensors file.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &[(String, ArrayD<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    std::fs::write(path, tensors_to_bytes(tensors, metadata)?)?;
    Ok(())
}

/// Reads every tensor of a safetensors file (all must be `F32`), with the metadata.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<(NamedTensors, Metadata)> {
    tensors_from_bytes(&std::fs::read(path)?)
}

impl Sequential {
    /// The parameters as a safetensors buffer.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        tensors_to_bytes(&self.named_params(), None)
    }

    /// Sets the parameters from a safetensors buffer (names and shapes must match exactly).
    pub fn load_safetensors_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let (tensors, _) = tensors_from_bytes(bytes)?;
        self.set_named_params(tensors)
    }

    /// Saves the parameters to a safetensors file.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use rl_layers::{Architecture, Init, LayerSpec, Size};
    /// let arch = Architecture(vec![LayerSpec::Affine(Size::Fixed(3))]);
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    /// let net = arch.build(&[2], &[], Init::HeUniform, &mut rng).unwrap();
    /// let mut other = arch.build(&[2], &[], Init::HeUniform, &mut rng).unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// net.save_safetensors(dir.path().join("net.safetensors")).unwrap();
    /// other.load_safetensors(dir.path().join("net.safetensors")).unwrap();
    /// assert_eq!(net.named_params(), other.named_params());
    /// ```
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        std::fs::write(path, self.to_safetensors()?)?;
        Ok(())
    }

    /// Loads the parameters from a safetensors file.
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_safetensors_bytes(&std::fs::read(path)?)
    }
}

impl Optimizer {
    /// The state as a safetensors buffer: tensors `"{param}.{buffer}"` and the
    /// step count in the metadata key `"steps"`.
    pub fn state_to_safetensors(&self) -> Result<Vec<u8>> {
        let meta = HashMap::from([("steps".to_string(), self.steps().to_string())]);
        tensors_to_bytes(&self.state_tensors(), Some(meta))
    }

    /// Restores the state from [`Optimizer::state_to_safetensors`] output.
    pub fn load_state_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        let (tensors, meta) = tensors_from_bytes(bytes)?;
        let steps = meta
            .get("steps")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::OptimizerState("metadata lacks a numeric \"steps\"".into()))?;
        self.set_state_tensors(steps, tensors)
    }
}
