//! Grow-only scratch storage shaped on demand.

use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};

/// A flat `f32` buffer viewed with a shape that may change between calls.
///
/// The vector only ever grows, so alternating batch sizes (a batch of 32 for an
/// update, a batch of 1 to act) reuses one allocation. Shapes of up to four
/// axes are stored inline by ndarray, so taking a view does not allocate.
#[derive(Clone, Debug)]
pub(crate) struct Buf {
    data: Vec<f32>,
    shape: Vec<usize>,
    len: usize,
}

impl Default for Buf {
    /// An empty `[0]` buffer, so that its view is valid before the first reshape.
    fn default() -> Self {
        Self {
            data: Vec::new(),
            shape: vec![0],
            len: 0,
        }
    }
}

impl Buf {
    /// Sets the shape, growing the storage when needed. Contents are unspecified:
    /// callers overwrite every element or call [`Buf::fill`].
    pub(crate) fn reshape(&mut self, shape: &[usize]) {
        let len = shape.iter().product();
        if self.data.len() < len {
            self.data.resize(len, 0.0);
        }
        self.len = len;
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.data[..self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }

    pub(crate) fn fill(&mut self, v: f32) {
        self.as_mut_slice().fill(v);
    }

    pub(crate) fn view(&self) -> ArrayViewD<'_, f32> {
        ArrayViewD::from_shape(IxDyn(&self.shape), &self.data[..self.len])
            .expect("buffer length equals the product of its shape")
    }

    pub(crate) fn view_mut(&mut self) -> ArrayViewMutD<'_, f32> {
        ArrayViewMutD::from_shape(IxDyn(&self.shape), &mut self.data[..self.len])
            .expect("buffer length equals the product of its shape")
    }
}

/// Takes storage for a backward cache: from the cache itself, else from the spare slot.
pub(crate) fn take_storage<T: Default>(cache: &mut Option<T>, spare: &mut Option<T>) -> T {
    cache.take().or_else(|| spare.take()).unwrap_or_default()
}

/// Invalidates a backward cache while keeping its memory for the next train-mode forward.
pub(crate) fn invalidate<T>(cache: &mut Option<T>, spare: &mut Option<T>) {
    if let Some(b) = cache.take() {
        *spare = Some(b);
    }
}
