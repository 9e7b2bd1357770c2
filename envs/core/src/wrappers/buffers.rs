//! Element-type-generic helpers on observation buffers, shared by the
//! wrappers and the vector runner. None allocates when the destination
//! already has the right kind and shape.

use crate::{Error, Observation, Result};
use ndarray::ArrayD;

/// Copies `src` into `dst`, reusing `dst`'s buffer when kind and shape match.
pub(crate) fn copy_into(dst: &mut Observation, src: &Observation) {
    fn copy<T: Copy>(d: &mut ArrayD<T>, s: &ArrayD<T>) -> bool {
        if d.shape() != s.shape() {
            return false;
        }
        // A plain memcpy when both are contiguous; ndarray's general
        // `assign` costs more than a small frame's copy.
        match (d.as_slice_mut(), s.as_slice()) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            _ => d.assign(s),
        }
        true
    }
    let copied = match (&mut *dst, src) {
        (Observation::U8(d), Observation::U8(s)) => copy(d, s),
        (Observation::F32(d), Observation::F32(s)) => copy(d, s),
        (Observation::F64(d), Observation::F64(s)) => copy(d, s),
        (Observation::Discrete(d), Observation::Discrete(s)) => {
            *d = *s;
            true
        }
        _ => false,
    };
    if !copied {
        dst.clone_from(src);
    }
}

fn max_arrays<T: Copy + PartialOrd>(dst: &mut ArrayD<T>, other: &ArrayD<T>) -> Result<()> {
    if dst.shape() != other.shape() {
        return Err(Error::Space(format!(
            "cannot max-pool frames of shapes {:?} and {:?}",
            dst.shape(),
            other.shape()
        )));
    }
    dst.zip_mut_with(other, |d, &o| {
        if o > *d {
            *d = o;
        }
    });
    Ok(())
}

/// `dst ← max(dst, other)` elementwise.
pub(crate) fn max_in_place(dst: &mut Observation, other: &Observation) -> Result<()> {
    match (dst, other) {
        (Observation::U8(d), Observation::U8(o)) => max_arrays(d, o),
        (Observation::F32(d), Observation::F32(o)) => max_arrays(d, o),
        (Observation::F64(d), Observation::F64(o)) => max_arrays(d, o),
        (d, o) => Err(Error::Space(format!(
            "cannot max-pool a {} with a {}",
            kind(d),
            kind(o)
        ))),
    }
}

/// The variant's name, for errors.
pub(crate) fn kind(obs: &Observation) -> &'static str {
    match obs {
        Observation::Discrete(_) => "Discrete observation",
        Observation::U8(_) => "uint8 array",
        Observation::F32(_) => "float32 array",
        Observation::F64(_) => "float64 array",
    }
}
