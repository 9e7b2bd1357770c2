//! Observation and action spaces with Gymnasium's meaning and a JSON form.
//!
//! Spaces serialise as tagged objects: `{"type": "Discrete", "n": 4, "start": 0}`,
//! `{"type": "Box", "low": 0, "high": 1, "shape": [4, 10, 10], "dtype": "uint8"}`,
//! `{"type": "MultiBinary", "n": [3]}`. JSON has no infinity, so infinite bounds
//! are written as the strings `"inf"` and `"-inf"`, which is what keeps
//! CartPole's unbounded velocity intact through a round trip.

use crate::{Action, Observation};
use ndarray::ArrayD;
use rand::{Rng, RngExt};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Element type of a `Box` space, named as numpy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DType {
    /// Unsigned bytes, e.g. frames.
    #[serde(rename = "uint8")]
    U8,
    /// Single precision.
    #[serde(rename = "float32")]
    F32,
    /// Double precision, e.g. classic-control states.
    #[serde(rename = "float64")]
    F64,
}

/// A set of observations or actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Space {
    /// The integers `start, start + 1, …, start + n - 1`.
    Discrete {
        /// Number of elements; at least 1.
        n: u64,
        /// Smallest element; 0 unless stated.
        #[serde(default)]
        start: i64,
    },
    /// A box `low ≤ x ≤ high` of the given shape; bounds may be infinite.
    Box {
        /// Lower bounds, one per element (row-major) or one for all.
        low: Bounds,
        /// Upper bounds, one per element (row-major) or one for all.
        high: Bounds,
        /// Shape of one element.
        shape: Vec<usize>,
        /// Element type.
        dtype: DType,
    },
    /// Arrays of zeros and ones with the given shape.
    MultiBinary {
        /// Shape; an integer `n` is read as `[n]`.
        #[serde(deserialize_with = "shape_or_int")]
        n: Vec<usize>,
    },
}

/// Bounds of a `Box`: one value per element, row-major.
///
/// A bound given as one number applies to every element and is
/// broadcast when the space is read.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds(pub Vec<f64>);

impl Bounds {
    /// The bound of element `i`, broadcasting a single value.
    pub fn at(&self, i: usize) -> f64 {
        if self.0.len() == 1 {
            self.0[0]
        } else {
            self.0[i]
        }
    }
}

fn finite_or_named(x: f64) -> serde_json_free::Number {
    serde_json_free::Number(x)
}

/// Tiny helper so the crate needs no serde_json: a float that writes
/// `"inf"`, `"-inf"` or `"nan"` where JSON has no number for it.
mod serde_json_free {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub struct Number(pub f64);

    impl Serialize for Number {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let x = self.0;
            if x.is_finite() {
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    s.serialize_i64(x as i64)
                } else {
                    s.serialize_f64(x)
                }
            } else if x.is_nan() {
                s.serialize_str("nan")
            } else if x > 0.0 {
                s.serialize_str("inf")
            } else {
                s.serialize_str("-inf")
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Text(String),
    }

    impl<'de> Deserialize<'de> for Number {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match Raw::deserialize(d)? {
                Raw::Num(x) => Ok(Number(x)),
                Raw::Text(t) => match t.as_str() {
                    "inf" | "+inf" | "Infinity" => Ok(Number(f64::INFINITY)),
                    "-inf" | "-Infinity" => Ok(Number(f64::NEG_INFINITY)),
                    "nan" | "NaN" => Ok(Number(f64::NAN)),
                    other => Err(serde::de::Error::custom(format!(
                        "expected a number, \"inf\" or \"-inf\", found \"{other}\""
                    ))),
                },
            }
        }
    }
}

/// One bound for all elements is written as a number; per-element bounds
/// as a list, so that reading back gives the same value.
impl Serialize for Bounds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let [one] = self.0.as_slice() {
            finite_or_named(*one).serialize(s)
        } else {
            s.collect_seq(self.0.iter().map(|&x| finite_or_named(x)))
        }
    }
}

impl<'de> Deserialize<'de> for Bounds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(serde_json_free::Number),
            Many(Vec<serde_json_free::Number>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(x) => Bounds(vec![x.0]),
            Raw::Many(xs) => Bounds(xs.into_iter().map(|x| x.0).collect()),
        })
    }
}

fn shape_or_int<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(usize),
        Many(Vec<usize>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(n) => vec![n],
        Raw::Many(v) => v,
    })
}

/// Most elements one observation or action may have: 2^26 (64 MiB of
/// `uint8`, far beyond any frame stack). Spaces come from specs and from
/// other processes, and a shape like `[10000000000]` must be refused, not
/// allocated.
pub const MAX_ELEMENTS: usize = 1 << 26;

/// The number of elements of `shape`, or the error naming it when the
/// product overflows or passes [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> crate::Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |size, &n| size.checked_mul(n))
        .filter(|&size| size <= MAX_ELEMENTS)
        .ok_or_else(|| {
            crate::Error::config(
                "shape",
                format!("{shape:?} has more than {MAX_ELEMENTS} elements"),
            )
        })
}

impl Space {
    /// `Discrete(n)` starting at 0.
    pub fn discrete(n: u64) -> Self {
        Space::Discrete { n, start: 0 }
    }

    /// A `Box` with the same bounds for every element.
    pub fn uniform_box(low: f64, high: f64, shape: &[usize], dtype: DType) -> Self {
        Space::Box {
            low: Bounds(vec![low]),
            high: Bounds(vec![high]),
            shape: shape.to_vec(),
            dtype,
        }
    }

    /// A `Box` with per-element bounds.
    pub fn bounded_box(low: Vec<f64>, high: Vec<f64>, shape: &[usize], dtype: DType) -> Self {
        Space::Box {
            low: Bounds(low),
            high: Bounds(high),
            shape: shape.to_vec(),
            dtype,
        }
    }

    /// Number of elements of a `Discrete` space, if it is one.
    pub fn n(&self) -> Option<usize> {
        match self {
            Space::Discrete { n, .. } => Some(*n as usize),
            _ => None,
        }
    }

    /// Shape of one element: `[]` for `Discrete`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Space::Discrete { .. } => &[],
            Space::Box { shape, .. } => shape,
            Space::MultiBinary { n } => n,
        }
    }

    /// Checks the space itself is well formed: `n ≥ 1`, bounds of the
    /// right length, `low ≤ high`.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            Space::Discrete { n, .. } if *n == 0 => {
                Err(crate::Error::config("n", "a Discrete space needs n ≥ 1"))
            }
            Space::MultiBinary { n } => element_count(n).map(|_| ()),
            Space::Discrete { .. } => Ok(()),
            Space::Box {
                low, high, shape, ..
            } => {
                let size = element_count(shape)?;
                for (name, b) in [("low", low), ("high", high)] {
                    if b.0.len() != 1 && b.0.len() != size {
                        return Err(crate::Error::config(
                            name,
                            format!(
                                "has {} values but the shape {:?} has {} elements",
                                b.0.len(),
                                shape,
                                size
                            ),
                        ));
                    }
                }
                for i in 0..size {
                    let (l, h) = (low.at(i), high.at(i));
                    if l.is_nan() || h.is_nan() || l > h {
                        return Err(crate::Error::config(
                            format!("low[{i}]"),
                            format!("bounds [{l}, {h}] are empty"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether `obs` is an element of this space.
    pub fn contains(&self, obs: &Observation) -> bool {
        match (self, obs) {
            (Space::Discrete { n, start }, Observation::Discrete(x)) => {
                *x >= *start && ((*x - *start) as u64) < *n
            }
            (Space::Box { .. }, Observation::U8(a)) => {
                self.box_contains(a.shape(), a.iter().map(|&v| v as f64), DType::U8)
            }
            (Space::Box { .. }, Observation::F32(a)) => {
                self.box_contains(a.shape(), a.iter().map(|&v| v as f64), DType::F32)
            }
            (Space::Box { .. }, Observation::F64(a)) => {
                self.box_contains(a.shape(), a.iter().copied(), DType::F64)
            }
            (Space::MultiBinary { n }, Observation::U8(a)) => {
                a.shape() == n.as_slice() && a.iter().all(|&v| v <= 1)
            }
            _ => false,
        }
    }

    fn box_contains(
        &self,
        got_shape: &[usize],
        values: impl Iterator<Item = f64>,
        got: DType,
    ) -> bool {
        let Space::Box {
            low,
            high,
            shape,
            dtype,
        } = self
        else {
            return false;
        };
        *dtype == got
            && got_shape == shape.as_slice()
            && values
                .enumerate()
                .all(|(i, v)| v >= low.at(i) && v <= high.at(i))
    }

    /// Whether `action` is an element of this space.
    pub fn contains_action(&self, action: &Action) -> bool {
        match (self, action) {
            (Space::Discrete { .. }, Action::Discrete(a)) => {
                self.contains(&Observation::Discrete(*a))
            }
            (
                Space::Box {
                    low, high, shape, ..
                },
                Action::Continuous(v),
            ) => {
                v.len() == shape.iter().product::<usize>()
                    && v.iter()
                        .enumerate()
                        .all(|(i, &x)| x >= low.at(i) && x <= high.at(i))
            }
            _ => false,
        }
    }

    /// A uniformly random element. Unbounded `Box` dimensions are sampled
    /// as Gymnasium does: normal where both bounds are infinite,
    /// shifted exponential where one is.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Observation {
        match self {
            Space::Discrete { n, start } => {
                Observation::Discrete(*start + rng.random_range(0..*n) as i64)
            }
            Space::MultiBinary { n } => {
                Observation::U8(ArrayD::from_shape_fn(n.as_slice(), |_| {
                    rng.random_range(0..2u8)
                }))
            }
            Space::Box {
                low,
                high,
                shape,
                dtype,
            } => {
                let mut i = 0usize;
                let values = ArrayD::from_shape_fn(shape.as_slice(), |_| {
                    let (l, h) = (low.at(i), high.at(i));
                    i += 1;
                    sample_interval(rng, l, h, *dtype)
                });
                match dtype {
                    DType::U8 => Observation::U8(values.mapv(|v| v as u8)),
                    DType::F32 => Observation::F32(values.mapv(|v| v as f32)),
                    DType::F64 => Observation::F64(values),
                }
            }
        }
    }

    /// A random action from this space.
    pub fn sample_action<R: Rng + ?Sized>(&self, rng: &mut R) -> Action {
        match self.sample(rng) {
            Observation::Discrete(a) => Action::Discrete(a),
            Observation::F64(a) => Action::Continuous(a.into_iter().collect()),
            Observation::F32(a) => Action::Continuous(a.into_iter().map(f64::from).collect()),
            Observation::U8(a) => Action::Continuous(a.into_iter().map(f64::from).collect()),
        }
    }

    /// An observation of the right kind and shape, all zeros (or `start`),
    /// to be overwritten by `reset_into`.
    pub fn zeros(&self) -> Observation {
        match self {
            Space::Discrete { start, .. } => Observation::Discrete(*start),
            Space::MultiBinary { n } => Observation::U8(ArrayD::zeros(n.as_slice())),
            Space::Box { shape, dtype, .. } => match dtype {
                DType::U8 => Observation::U8(ArrayD::zeros(shape.as_slice())),
                DType::F32 => Observation::F32(ArrayD::zeros(shape.as_slice())),
                DType::F64 => Observation::F64(ArrayD::zeros(shape.as_slice())),
            },
        }
    }
}

fn sample_interval<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64, dtype: DType) -> f64 {
    let u: f64 = rng.random();
    let value = match (low.is_finite(), high.is_finite()) {
        (true, true) => {
            if dtype == DType::U8 {
                return (low as i64 + rng.random_range(0..=(high as i64 - low as i64))) as f64;
            }
            low + u * (high - low)
        }
        // Box–Muller: a standard normal from two uniforms.
        (false, false) => {
            let v: f64 = rng.random();
            (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
        (true, false) => low - (1.0 - u).ln(),
        (false, true) => high + (1.0 - u).ln(),
    };
    value.clamp(low, high)
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete { n, start: 0 } => write!(f, "Discrete({n})"),
            Space::Discrete { n, start } => write!(f, "Discrete({n}, start={start})"),
            Space::Box {
                low,
                high,
                shape,
                dtype,
            } => {
                let show = |b: &Bounds| {
                    let first = b.0.first().copied().unwrap_or(0.0);
                    if b.0.iter().all(|x| x.to_bits() == first.to_bits()) {
                        format!("{first}")
                    } else {
                        "[…]".to_string()
                    }
                };
                write!(
                    f,
                    "Box({}, {}, {:?}, {:?})",
                    show(low),
                    show(high),
                    shape,
                    dtype
                )
            }
            Space::MultiBinary { n } => write!(f, "MultiBinary({n:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn discrete_json_shape() {
        let s = Space::discrete(4);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"type":"Discrete","n":4,"start":0}"#);
        let back: Space = serde_json::from_str(r#"{"type":"Discrete","n":4}"#).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn infinite_bounds_round_trip() {
        let s = Space::bounded_box(
            vec![-4.8, f64::NEG_INFINITY, -0.42, f64::NEG_INFINITY],
            vec![4.8, f64::INFINITY, 0.42, f64::INFINITY],
            &[4],
            DType::F64,
        );
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains(r#""inf""#) && j.contains(r#""-inf""#), "{j}");
        let back: Space = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_str::<Space>(r#"{"type":"Discrete","n":4,"m":1}"#).is_err());
        assert!(serde_json::from_str::<Space>(r#"{"type":"Tuple"}"#).is_err());
    }

    #[test]
    fn samples_are_contained() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let spaces = [
            Space::Discrete { n: 3, start: -1 },
            Space::uniform_box(0.0, 1.0, &[2, 3], DType::U8),
            Space::uniform_box(f64::NEG_INFINITY, f64::INFINITY, &[5], DType::F64),
            Space::uniform_box(0.0, f64::INFINITY, &[5], DType::F32),
            Space::MultiBinary { n: vec![4] },
        ];
        for s in &spaces {
            for _ in 0..200 {
                let x = s.sample(&mut rng);
                assert!(s.contains(&x), "{s} does not contain {x:?}");
            }
        }
        assert!(!spaces[0].contains(&Observation::Discrete(2)));
        assert!(!spaces[0].contains(&Observation::Discrete(-2)));
        assert!(spaces[0].contains_action(&Action::Discrete(1)));
    }
}
