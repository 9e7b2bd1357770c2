//! [`ToF32`]: observations as `float32`, bytes scaled to [0, 1].

use super::{forward_render, inner_access};
use crate::{
    Action, DType, Env, Error, Frame, GridView, Info, Observation, Result, Space, StepOutcome,
};
use ndarray::ArrayD;

/// How one source element becomes a `float32`.
enum Conversion {
    /// `uint8` with the same bounds everywhere: a 256-entry table of
    /// `(x − low) / (high − low)`.
    Table(Box<[f32; 256]>),
    /// `uint8` with per-element bounds: `(x − low[i]) · inv[i]`.
    PerElement { low: Vec<f32>, inv: Vec<f32> },
    /// `float64` or `float32`: a plain cast, bounds kept.
    Cast,
}

/// Turns array observations into `float32`, the input networks want.
///
/// - `uint8` boxes are scaled to [0, 1] by their own bounds,
///   `(x − low) / (high − low)`: pixel frames in [0, 255] are divided by
///   255, while MinAtar's 0/1 planes stay 0/1. A bound that is equal on
///   both sides maps to 0. `MultiBinary` is read as a [0, 1] box.
/// - `float64` boxes are cast; their bounds are kept.
/// - `float32` boxes pass through.
///
/// A `Discrete` space is refused: use [`OneHot`](super::OneHot).
pub struct ToF32<E> {
    env: E,
    space: Space,
    conversion: Conversion,
    /// The wrapped env's observation, before conversion.
    raw: Observation,
}

impl<E: Env> ToF32<E> {
    /// Wraps `env`.
    pub fn new(env: E) -> Result<Self> {
        let inner = env.observation_space().clone();
        let (space, conversion) = match &inner {
            Space::MultiBinary { n } => {
                (Space::uniform_box(0.0, 1.0, n, DType::F32), table(0.0, 1.0))
            }
            Space::Box {
                low,
                high,
                shape,
                dtype: DType::U8,
            } => {
                let space = Space::uniform_box(0.0, 1.0, shape, DType::F32);
                if low.0.len() <= 1 && high.0.len() <= 1 {
                    (space, table(low.at(0), high.at(0)))
                } else {
                    let size: usize = shape.iter().product();
                    let low_v: Vec<f32> = (0..size).map(|i| low.at(i) as f32).collect();
                    let inv = (0..size)
                        .map(|i| inverse_range(low.at(i), high.at(i)))
                        .collect();
                    (space, Conversion::PerElement { low: low_v, inv })
                }
            }
            Space::Box {
                low, high, shape, ..
            } => (
                Space::Box {
                    low: low.clone(),
                    high: high.clone(),
                    shape: shape.clone(),
                    dtype: DType::F32,
                },
                Conversion::Cast,
            ),
            Space::Discrete { .. } => {
                return Err(Error::Space(format!(
                    "to_f32 needs an array observation space, not {inner}; use one_hot"
                )));
            }
        };
        Ok(ToF32 {
            raw: inner.zeros(),
            env,
            space,
            conversion,
        })
    }

    fn convert(&self, obs: &mut Observation) -> Result<()> {
        let shape = self.space.shape();
        if !matches!(obs, Observation::F32(a) if a.shape() == shape) {
            *obs = Observation::F32(ArrayD::zeros(shape));
        }
        let Observation::F32(out) = obs else {
            unreachable!("made float32 just above")
        };
        let fits = match (&self.raw, &self.conversion) {
            (Observation::U8(raw), Conversion::Table(t)) if raw.len() == out.len() => {
                out.iter_mut()
                    .zip(raw.iter())
                    .for_each(|(o, &x)| *o = t[x as usize]);
                true
            }
            (Observation::U8(raw), Conversion::PerElement { low, inv })
                if raw.len() == out.len() =>
            {
                for (((o, &x), &l), &s) in out.iter_mut().zip(raw.iter()).zip(low).zip(inv) {
                    *o = (x as f32 - l) * s;
                }
                true
            }
            (Observation::F64(raw), Conversion::Cast) if raw.len() == out.len() => {
                out.iter_mut()
                    .zip(raw.iter())
                    .for_each(|(o, &x)| *o = x as f32);
                true
            }
            (Observation::F32(raw), Conversion::Cast) if raw.len() == out.len() => {
                out.assign(raw);
                true
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(Error::Space(format!(
                "to_f32: the wrapped env wrote an observation outside {}",
                self.env.observation_space()
            )))
        }
    }
}

fn inverse_range(low: f64, high: f64) -> f32 {
    if high > low && (high - low).is_finite() {
        (1.0 / (high - low)) as f32
    } else {
        0.0
    }
}

fn table(low: f64, high: f64) -> Conversion {
    let range = high - low;
    let mut t = Box::new([0.0f32; 256]);
    if range > 0.0 && range.is_finite() {
        for (x, v) in t.iter_mut().enumerate() {
            // Divided in float64, rounded once: x/255 is exactly what a
            // float32 division would give.
            *v = ((x as f64 - low) / range) as f32;
        }
    }
    Conversion::Table(t)
}

inner_access!(ToF32);

impl<E: Env> Env for ToF32<E> {
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        let info = self.env.reset_into(seed, &mut self.raw)?;
        self.convert(obs)?;
        Ok(info)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let out = self.env.step_into(action, &mut self.raw)?;
        self.convert(obs)?;
        Ok(out)
    }
    forward_render!();
}
