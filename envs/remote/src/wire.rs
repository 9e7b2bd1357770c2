//! Spaces and values as the wire carries them (docs/env-protocol.md §1),
//! mapped onto rl-lab's spaces.
//!
//! rl-lab has three kinds of space: `Discrete`, `Box` and `MultiBinary`.
//! The wire has Gymnasium's six. The mapping keeps what an agent can use:
//!
//! | wire space | rl-lab space |
//! |---|---|
//! | `Discrete(n, start)` | the same |
//! | `Box` of `uint8` / `float32` / `float64` | the same; ±1e100 bounds read as ±∞ |
//! | `Box` of `bool` | `uint8` |
//! | `Box` of another integer type | `float64` (exact up to 2⁵³) |
//! | `Box` of `float16` | `float32` |
//! | `MultiBinary` | the same |
//! | `MultiDiscrete` observation | a `float64` `Box` over `[start, start + nvec - 1]` |
//! | `Tuple`/`Dict`/`MultiDiscrete` of `Discrete`s | one `Discrete` over the product (Blackjack's three numbers become one state, for tabular agents) |
//! | `Tuple`/`Dict` of arrays (`Discrete` members count as one number) | one flat `Box` of the members' values concatenated (`uint8` if all are, else `float32` if all fit, else `float64`) |
//!
//! Actions may be `Discrete`, `Box`, or a product of `Discrete`s (sent back
//! as the array or object the server expects). Anything else is refused
//! with a message naming the space. Dict members are taken in key order,
//! which is Gymnasium's own order for a `Dict` built from a plain dict.

use base64::Engine as _;
use rl_env::{Action, Bounds, DType, Observation, Space};
use serde_json::{Map, Value};

/// gym-http-api's infinity: a bound this large is infinite.
const WIRE_INFINITY: f64 = 1e100;

/// Largest product of `Discrete` sizes mapped onto one `Discrete`: beyond
/// it no tabular agent could hold the table.
const MAX_PRODUCT: u64 = 1 << 24;

/// Whether a space describes observations or actions: actions can only be
/// what an agent can emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The observation space.
    Observation,
    /// The action space.
    Action,
}

/// A wire space mapped onto an rl-lab space, with the way its values move.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The rl-lab space agents see.
    pub space: Space,
    codec: Codec,
}

/// Where a member of a Tuple or Dict sits in its value.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    /// Position in a JSON array (Tuple, MultiDiscrete).
    Index(usize),
    /// Key in a JSON object (Dict).
    Name(String),
}

impl Key {
    fn pick<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        match self {
            Key::Index(i) => value.as_array()?.get(*i),
            Key::Name(k) => value.as_object()?.get(k),
        }
    }
}

/// One `Discrete` member of a product.
#[derive(Clone, Debug, PartialEq)]
struct Digit {
    key: Key,
    n: u64,
    start: i64,
}

/// One member of a flattened Tuple/Dict.
#[derive(Clone, Debug, PartialEq)]
struct Part {
    key: Key,
    /// `None` for a Discrete member (one number), else its shape.
    shape: Option<Vec<usize>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Codec {
    /// An integer.
    Integer,
    /// Nested arrays (or base64 bytes) of the space's shape and dtype.
    Array,
    /// A Tuple, Dict or MultiDiscrete of Discretes as one index, the first
    /// member the most significant digit.
    Product { digits: Vec<Digit>, object: bool },
    /// A Tuple or Dict of arrays, concatenated.
    Concat { parts: Vec<Part> },
}

/// A member's description, before the mapping decides what it becomes.
enum Member {
    Discrete {
        n: u64,
        start: i64,
    },
    Array {
        low: Vec<f64>,
        high: Vec<f64>,
        shape: Vec<usize>,
        dtype: DType,
    },
}

impl Mapped {
    /// Reads a space as the server describes it, for `role`.
    pub fn from_wire(wire: &Value, role: Role) -> Result<Mapped, String> {
        let name = wire
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a space needs a \"name\", got {}", snippet(wire)))?;
        match (name, role) {
            ("Discrete", _) => {
                let (n, start) = discrete(wire)?;
                Ok(Mapped {
                    space: Space::Discrete { n, start },
                    codec: Codec::Integer,
                })
            }
            ("Box", _)
            | ("MultiBinary", Role::Observation)
            | ("MultiDiscrete", Role::Observation) => {
                let Member::Array {
                    low,
                    high,
                    shape,
                    dtype,
                } = array_member(name, wire)?
                else {
                    unreachable!("array_member returns arrays")
                };
                let space = if name == "MultiBinary" {
                    Space::MultiBinary { n: shape }
                } else {
                    Space::bounded_box(low, high, &shape, dtype)
                };
                if role == Role::Action && !matches!(dtype, DType::F32 | DType::F64) {
                    return Err(format!(
                        "the action space {} has dtype {:?}: only float Boxes are continuous actions rl-lab's agents emit",
                        snippet(wire),
                        dtype
                    ));
                }
                Ok(Mapped {
                    space,
                    codec: Codec::Array,
                })
            }
            ("MultiDiscrete", Role::Action) => {
                let (nvec, start) = multi_discrete(wire)?;
                let digits = nvec
                    .into_iter()
                    .zip(start)
                    .enumerate()
                    .map(|(i, (n, start))| Digit {
                        key: Key::Index(i),
                        n,
                        start,
                    })
                    .collect();
                product(digits, false, wire)
            }
            ("Tuple" | "Dict", _) => {
                let members = composite_members(name, wire)?;
                let object = name == "Dict";
                if members
                    .iter()
                    .all(|(_, m)| matches!(m, Member::Discrete { .. }))
                {
                    let digits = members
                        .into_iter()
                        .map(|(key, m)| match m {
                            Member::Discrete { n, start } => Digit { key, n, start },
                            Member::Array { .. } => unreachable!("all members are Discrete"),
                        })
                        .collect();
                    return product(digits, object, wire);
                }
                if role == Role::Action {
                    return Err(format!(
                        "the action space {} mixes arrays into a {name}: rl-lab's agents emit one integer or one float vector",
                        snippet(wire)
                    ));
                }
                concat(members)
            }
            _ => Err(format!(
                "the {} space {} {}: rl-lab maps Discrete, Box, MultiBinary, MultiDiscrete, and Tuple/Dict of those",
                role_name(role),
                snippet(wire),
                if matches!(name, "MultiBinary") {
                    "cannot be an action space"
                } else {
                    "has no rl-lab counterpart"
                }
            )),
        }
    }

    /// Writes the wire value `value` into `obs`, reusing its storage when
    /// its kind and shape already fit. The caller checks the result against
    /// the space.
    pub fn decode(&self, value: &Value, obs: &mut Observation) -> Result<(), String> {
        match &self.codec {
            Codec::Integer => {
                *obs = Observation::Discrete(integer(value).ok_or_else(|| {
                    format!("expected an integer observation, got {}", snippet(value))
                })?);
                Ok(())
            }
            Codec::Product { digits, .. } => {
                let mut index: i64 = 0;
                for digit in digits {
                    let x = digit.key.pick(value).and_then(integer).ok_or_else(|| {
                        format!(
                            "expected an integer at {} of the observation, got {}",
                            key_name(&digit.key),
                            snippet(value)
                        )
                    })?;
                    let d = x.wrapping_sub(digit.start);
                    if d < 0 || d as u64 >= digit.n {
                        return Err(format!(
                            "member {} = {x} is outside Discrete({}, start={})",
                            key_name(&digit.key),
                            digit.n,
                            digit.start
                        ));
                    }
                    // index = Σ_i d_i · Π_{j>i} n_j (mixed radix, first digit most significant)
                    index = index * digit.n as i64 + d;
                }
                *obs = Observation::Discrete(index);
                Ok(())
            }
            Codec::Array => {
                let mut writer = Writer::over(&self.space, obs);
                fill_array(value, self.space.shape(), &mut writer)?;
                writer.finish()
            }
            Codec::Concat { parts } => {
                let mut writer = Writer::over(&self.space, obs);
                for part in parts {
                    let member = part.key.pick(value).ok_or_else(|| {
                        format!("the observation has no member {}", key_name(&part.key))
                    })?;
                    match &part.shape {
                        None => {
                            let x = integer(member).ok_or_else(|| {
                                format!(
                                    "expected an integer at {}, got {}",
                                    key_name(&part.key),
                                    snippet(member)
                                )
                            })?;
                            writer.push(x as f64)?;
                        }
                        Some(shape) => fill_array(member, shape, &mut writer)?,
                    }
                }
                writer.finish()
            }
        }
    }

    /// The wire form of `action`, which the caller has checked is in the space.
    pub fn encode(&self, action: &Action) -> Result<Value, String> {
        match (&self.codec, action) {
            (Codec::Integer, Action::Discrete(a)) => Ok(Value::from(*a)),
            (Codec::Product { digits, object }, Action::Discrete(a)) => {
                let mut rest = *a as u64;
                let mut values = vec![0i64; digits.len()];
                for (slot, digit) in values.iter_mut().zip(digits).rev() {
                    *slot = digit.start + (rest % digit.n) as i64;
                    rest /= digit.n;
                }
                Ok(if *object {
                    let map: Map<String, Value> = digits
                        .iter()
                        .zip(values)
                        .map(|(d, v)| match &d.key {
                            Key::Name(k) => (k.clone(), Value::from(v)),
                            Key::Index(i) => (i.to_string(), Value::from(v)),
                        })
                        .collect();
                    Value::Object(map)
                } else {
                    Value::from(values)
                })
            }
            (Codec::Array, Action::Continuous(v)) => Ok(nest(v, self.space.shape())),
            _ => Err(format!(
                "cannot send {action:?} for the action space {}",
                self.space
            )),
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Observation => "observation",
        Role::Action => "action",
    }
}

fn key_name(key: &Key) -> String {
    match key {
        Key::Index(i) => format!("[{i}]"),
        Key::Name(k) => format!("\"{k}\""),
    }
}

fn product(digits: Vec<Digit>, object: bool, wire: &Value) -> Result<Mapped, String> {
    let mut n: u64 = 1;
    for digit in &digits {
        n = n
            .checked_mul(digit.n)
            .filter(|&n| n <= MAX_PRODUCT)
            .ok_or_else(|| {
                format!(
                    "the space {} has more than {MAX_PRODUCT} combinations: too many for one Discrete",
                    snippet(wire)
                )
            })?;
    }
    if digits.is_empty() {
        return Err(format!("the space {} has no members", snippet(wire)));
    }
    Ok(Mapped {
        space: Space::discrete(n),
        codec: Codec::Product { digits, object },
    })
}

fn concat(members: Vec<(Key, Member)>) -> Result<Mapped, String> {
    let (mut low, mut high, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut all_u8, mut all_f32) = (true, true);
    for (key, member) in members {
        match member {
            Member::Discrete { n, start } => {
                low.push(start as f64);
                high.push((start + n as i64 - 1) as f64);
                all_u8 &= start >= 0 && start + n as i64 - 1 <= 255;
                all_f32 &= n < (1 << 24);
                parts.push(Part { key, shape: None });
            }
            Member::Array {
                low: l,
                high: h,
                shape,
                dtype,
            } => {
                all_u8 &= dtype == DType::U8;
                all_f32 &= dtype != DType::F64;
                low.extend(l);
                high.extend(h);
                parts.push(Part {
                    key,
                    shape: Some(shape),
                });
            }
        }
    }
    let dtype = if all_u8 {
        DType::U8
    } else if all_f32 {
        DType::F32
    } else {
        DType::F64
    };
    let size = low.len();
    Ok(Mapped {
        space: Space::bounded_box(low, high, &[size], dtype),
        codec: Codec::Concat { parts },
    })
}

fn composite_members(name: &str, wire: &Value) -> Result<Vec<(Key, Member)>, String> {
    let spaces = wire
        .get("spaces")
        .ok_or_else(|| format!("a {name} space needs \"spaces\", got {}", snippet(wire)))?;
    let listed: Vec<(Key, &Value)> = match spaces {
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| (Key::Index(i), s))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, s)| (Key::Name(k.clone()), s)).collect(),
        other => {
            return Err(format!(
                "\"spaces\" of a {name} must be a list or an object, got {}",
                snippet(other)
            ));
        }
    };
    listed
        .into_iter()
        .map(|(key, member)| {
            let member_name = member.get("name").and_then(Value::as_str).unwrap_or("?");
            let mapped = match member_name {
                "Discrete" => discrete(member).map(|(n, start)| Member::Discrete { n, start }),
                "Box" | "MultiBinary" | "MultiDiscrete" => array_member(member_name, member),
                _ => Err(format!(
                    "member {} of the {name} space is {}: rl-lab maps Tuple/Dict members that are Discrete, Box, MultiBinary or MultiDiscrete",
                    key_name(&key),
                    snippet(member)
                )),
            }?;
            Ok((key, mapped))
        })
        .collect()
}

fn discrete(wire: &Value) -> Result<(u64, i64), String> {
    let n = wire
        .get("n")
        .and_then(integer)
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("a Discrete space needs n ≥ 1, got {}", snippet(wire)))?;
    let start = match wire.get("start") {
        None | Some(Value::Null) => 0,
        Some(s) => {
            integer(s).ok_or_else(|| format!("\"start\" must be an integer, got {}", snippet(s)))?
        }
    };
    Ok((n as u64, start))
}

fn multi_discrete(wire: &Value) -> Result<(Vec<u64>, Vec<i64>), String> {
    let nvec: Vec<u64> = numbers(wire.get("nvec"))
        .and_then(|v| {
            v.into_iter()
                .map(|x| (x >= 1.0 && x.fract() == 0.0).then_some(x as u64))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            format!(
                "a MultiDiscrete space needs \"nvec\" ≥ 1, got {}",
                snippet(wire)
            )
        })?;
    let start: Vec<i64> = match wire.get("start") {
        None | Some(Value::Null) => vec![0; nvec.len()],
        s => numbers(s)
            .filter(|v| v.len() == nvec.len())
            .map(|v| v.into_iter().map(|x| x as i64).collect())
            .ok_or_else(|| format!("\"start\" must match \"nvec\", got {}", snippet(wire)))?,
    };
    Ok((nvec, start))
}

fn array_member(name: &str, wire: &Value) -> Result<Member, String> {
    match name {
        "MultiBinary" => {
            let shape = shape_of(wire)
                .or_else(|| wire.get("n").and_then(integer).map(|n| vec![n as usize]))
                .ok_or_else(|| {
                    format!(
                        "a MultiBinary space needs \"n\" or \"shape\", got {}",
                        snippet(wire)
                    )
                })?;
            let size = checked_size(&shape)?;
            Ok(Member::Array {
                low: vec![0.0; size],
                high: vec![1.0; size],
                shape,
                dtype: DType::U8,
            })
        }
        "MultiDiscrete" => {
            let (nvec, start) = multi_discrete(wire)?;
            let shape = shape_of(wire).unwrap_or_else(|| vec![nvec.len()]);
            if checked_size(&shape)? != nvec.len() {
                return Err(format!(
                    "the shape of {} does not match its nvec",
                    snippet(wire)
                ));
            }
            Ok(Member::Array {
                low: start.iter().map(|&s| s as f64).collect(),
                high: nvec
                    .iter()
                    .zip(&start)
                    .map(|(&n, &s)| (s + n as i64 - 1) as f64)
                    .collect(),
                shape,
                dtype: DType::F64,
            })
        }
        _ => {
            let shape = shape_of(wire)
                .ok_or_else(|| format!("a Box needs a \"shape\", got {}", snippet(wire)))?;
            let dtype = match wire.get("dtype").and_then(Value::as_str) {
                Some("uint8" | "bool") => DType::U8,
                Some("float32" | "float16") => DType::F32,
                // Gym's Box defaults to float32; the original gym-http-api
                // does not say.
                None => DType::F32,
                Some(
                    "float64" | "int8" | "int16" | "int32" | "int64" | "uint16" | "uint32"
                    | "uint64",
                ) => DType::F64,
                Some(other) => {
                    return Err(format!(
                        "the Box {} has dtype {other}, which rl-lab cannot hold (it reads uint8, bool, integers and floats)",
                        snippet(wire)
                    ));
                }
            };
            let size = checked_size(&shape)?;
            let bound = |field: &str| -> Result<Vec<f64>, String> {
                let values = numbers(wire.get(field))
                    .ok_or_else(|| format!("a Box needs \"{field}\", got {}", snippet(wire)))?;
                let values: Vec<f64> = values.into_iter().map(unwire_bound).collect();
                match values.len() {
                    1 => Ok(vec![values[0]; size]),
                    n if n == size => Ok(values),
                    n => Err(format!(
                        "\"{field}\" of the Box has {n} values for shape {shape:?}"
                    )),
                }
            };
            let (low, high) = (bound("low")?, bound("high")?);
            let space = Space::Box {
                low: Bounds(low.clone()),
                high: Bounds(high.clone()),
                shape: shape.clone(),
                dtype,
            };
            space
                .validate()
                .map_err(|e| format!("the Box {}: {e}", snippet(wire)))?;
            Ok(Member::Array {
                low,
                high,
                shape,
                dtype,
            })
        }
    }
}

fn unwire_bound(x: f64) -> f64 {
    if x >= WIRE_INFINITY {
        f64::INFINITY
    } else if x <= -WIRE_INFINITY {
        f64::NEG_INFINITY
    } else {
        x
    }
}

/// The element count of a space's shape, refused past
/// [`rl_env::space::MAX_ELEMENTS`] before anything that size is allocated.
fn checked_size(shape: &[usize]) -> Result<usize, String> {
    rl_env::space::element_count(shape).map_err(|e| match e {
        rl_env::Error::Config { message, .. } => format!("the shape {message}"),
        other => other.to_string(),
    })
}

fn shape_of(wire: &Value) -> Option<Vec<usize>> {
    shape_field(wire.get("shape"))
}

/// A `shape` field's sizes, however written (see [`numbers`]).
fn shape_field(field: Option<&Value>) -> Option<Vec<usize>> {
    numbers(field)?
        .into_iter()
        .map(|x| (x >= 0.0 && x.fract() == 0.0).then_some(x as usize))
        .collect()
}

/// A list of numbers: a JSON number, nested arrays (flattened row-major),
/// or the same written as a string (`"(4,)"`, `"[-4.8 -inf]"`, `"3"`),
/// as the Gymnasium-era gym-http-api port sends them.
fn numbers(value: Option<&Value>) -> Option<Vec<f64>> {
    fn walk(value: &Value, out: &mut Vec<f64>) -> Option<()> {
        match value {
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, out)),
            Value::String(text) => {
                for token in text
                    .split(|c: char| c.is_whitespace() || "[](),".contains(c))
                    .filter(|t| !t.is_empty())
                {
                    out.push(parse_number(token)?);
                }
                Some(())
            }
            other => {
                out.push(number(other)?);
                Some(())
            }
        }
    }
    let mut out = Vec::new();
    walk(value?, &mut out)?;
    Some(out)
}

fn parse_number(token: &str) -> Option<f64> {
    match token {
        "inf" | "+inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        "nan" | "NaN" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

/// A JSON number, or one of the strings the protocol writes for
/// non-finite values (`"inf"`, `"-inf"`, `"nan"`).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// An integer, also from a float with no fraction (`1.0`) or a string.
pub fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        number(value)
            .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
            .map(|x| x as i64)
    })
}

/// The first characters of a value, for messages.
pub fn snippet(value: &Value) -> String {
    let text = value.to_string();
    cut(&text, 120)
}

/// The first `limit` characters of `text`, marked when cut.
pub fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Nests a flat row-major vector into arrays of `shape`.
fn nest(flat: &[f64], shape: &[usize]) -> Value {
    match shape {
        [] => Value::from(flat.first().copied().unwrap_or(0.0)),
        [_] => Value::from(flat.to_vec()),
        [outer, inner @ ..] => {
            let stride: usize = inner.iter().product();
            Value::Array(
                (0..*outer)
                    .map(|i| nest(&flat[i * stride..(i + 1) * stride], inner))
                    .collect(),
            )
        }
    }
}

/// Writes numbers into an observation's storage, in row-major order.
struct Writer<'a> {
    obs: &'a mut Observation,
    at: usize,
    size: usize,
}

impl<'a> Writer<'a> {
    /// Makes `obs` an array of the space's kind and shape, reusing it when
    /// it already is one.
    fn over(space: &Space, obs: &'a mut Observation) -> Writer<'a> {
        let fits = match (space, &*obs) {
            (Space::MultiBinary { n }, Observation::U8(a)) => a.shape() == n.as_slice(),
            (Space::Box { dtype, shape, .. }, o) => match (dtype, o) {
                (DType::U8, Observation::U8(a)) => a.shape() == shape.as_slice(),
                (DType::F32, Observation::F32(a)) => a.shape() == shape.as_slice(),
                (DType::F64, Observation::F64(a)) => a.shape() == shape.as_slice(),
                _ => false,
            },
            _ => false,
        };
        if !fits {
            *obs = space.zeros();
        }
        let size = space.shape().iter().product();
        Writer { obs, at: 0, size }
    }

    fn push(&mut self, x: f64) -> Result<(), String> {
        if self.at >= self.size {
            return Err(format!(
                "the observation has more than {} values",
                self.size
            ));
        }
        let at = self.at;
        self.at += 1;
        let slot = |len: usize| at < len;
        match self.obs {
            Observation::U8(a) => {
                if !(x.fract() == 0.0 && (0.0..=255.0).contains(&x)) {
                    return Err(format!("value {x} at element {at} is not a uint8"));
                }
                if let Some(s) = a.as_slice_mut().filter(|s| slot(s.len())) {
                    s[at] = x as u8;
                }
            }
            // The wire writes an infinite element as ±1e100, as it does bounds.
            Observation::F32(a) => {
                if let Some(s) = a.as_slice_mut().filter(|s| slot(s.len())) {
                    s[at] = unwire_bound(x) as f32;
                }
            }
            Observation::F64(a) => {
                if let Some(s) = a.as_slice_mut().filter(|s| slot(s.len())) {
                    s[at] = unwire_bound(x);
                }
            }
            Observation::Discrete(_) => {}
        }
        Ok(())
    }

    /// Copies raw bytes (a base64 `uint8` array) in.
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        if let Observation::U8(a) = self.obs
            && let Some(s) = a.as_slice_mut()
            && self.at + bytes.len() <= s.len()
        {
            s[self.at..self.at + bytes.len()].copy_from_slice(bytes);
            self.at += bytes.len();
            return Ok(());
        }
        bytes.iter().try_for_each(|&b| self.push(f64::from(b)))
    }

    fn finish(self) -> Result<(), String> {
        if self.at == self.size {
            Ok(())
        } else {
            Err(format!(
                "the observation has {} values where its space has {}",
                self.at, self.size
            ))
        }
    }
}

/// Reads nested arrays of `shape` (or the base64 form) into `writer`.
fn fill_array(value: &Value, shape: &[usize], writer: &mut Writer<'_>) -> Result<(), String> {
    if let Value::Object(fields) = value {
        return fill_base64(fields, shape, writer);
    }
    match shape {
        [] => {
            let x = number(value)
                .ok_or_else(|| format!("expected a number, got {}", snippet(value)))?;
            writer.push(x)
        }
        [len, inner @ ..] => {
            let items = value
                .as_array()
                .filter(|items| items.len() == *len)
                .ok_or_else(|| {
                    format!(
                        "expected an array of {len} for shape {shape:?}, got {}",
                        snippet(value)
                    )
                })?;
            items
                .iter()
                .try_for_each(|item| fill_array(item, inner, writer))
        }
    }
}

fn fill_base64(
    fields: &Map<String, Value>,
    shape: &[usize],
    writer: &mut Writer<'_>,
) -> Result<(), String> {
    let encoded = fields.get("base64").and_then(Value::as_str);
    let dtype = fields.get("dtype").and_then(Value::as_str);
    let sent_shape = shape_field(fields.get("shape"));
    match (encoded, dtype) {
        (Some(encoded), Some("uint8")) => {
            if sent_shape.as_deref().is_some_and(|s| s != shape) {
                return Err(format!(
                    "base64 array of shape {:?} where the space has {shape:?}",
                    sent_shape.unwrap_or_default()
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("bad base64 array: {e}"))?;
            if bytes.len() != shape.iter().product::<usize>() {
                return Err(format!(
                    "base64 array of {} bytes for shape {shape:?}",
                    bytes.len()
                ));
            }
            writer.bytes(&bytes)
        }
        _ => Err(format!(
            "expected nested arrays or {{\"dtype\": \"uint8\", \"shape\", \"base64\"}}, got {}",
            cut(&Value::Object(fields.clone()).to_string(), 120)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observe(wire: Value) -> Mapped {
        Mapped::from_wire(&wire, Role::Observation).unwrap()
    }

    #[test]
    fn boxes_read_infinity_dtype_and_strings() {
        let m = observe(json!({"name": "Box", "shape": [4], "dtype": "float32",
            "low": [-4.8, -1e100, -0.42, -1e100], "high": [4.8, 1e100, 0.42, 1e100]}));
        assert_eq!(
            m.space,
            Space::bounded_box(
                vec![-4.8, f64::NEG_INFINITY, -0.42, f64::NEG_INFINITY],
                vec![4.8, f64::INFINITY, 0.42, f64::INFINITY],
                &[4],
                DType::F32
            )
        );
        let strings = observe(json!({"name": "Box", "shape": "(2,)", "dtype": "float64",
            "low": "[-1. -inf]", "high": "[1 inf]"}));
        assert_eq!(
            strings.space,
            Space::bounded_box(
                vec![-1.0, f64::NEG_INFINITY],
                vec![1.0, f64::INFINITY],
                &[2],
                DType::F64
            )
        );
        let ints =
            observe(json!({"name": "Box", "shape": [2], "dtype": "int64", "low": 0, "high": 9}));
        assert_eq!(
            ints.space,
            Space::bounded_box(vec![0.0; 2], vec![9.0; 2], &[2], DType::F64)
        );
        let err = Mapped::from_wire(
            &json!({"name": "Box", "shape": [1], "dtype": "complex64", "low": 0, "high": 1}),
            Role::Observation,
        )
        .unwrap_err();
        assert!(err.contains("complex64"), "{err}");
        let n_as_string = observe(json!({"name": "Discrete", "n": "6"}));
        assert_eq!(n_as_string.space, Space::discrete(6));
    }

    #[test]
    fn a_tuple_of_discretes_is_one_discrete_both_ways() {
        // Blackjack-v1: (player sum, dealer card, usable ace).
        let m = observe(json!({"name": "Tuple", "spaces": [
            {"name": "Discrete", "n": 32}, {"name": "Discrete", "n": 11}, {"name": "Discrete", "n": 2}]}));
        assert_eq!(m.space, Space::discrete(704));
        let mut obs = Observation::Discrete(0);
        m.decode(&json!([14, 10, 1]), &mut obs).unwrap();
        assert_eq!(obs, Observation::Discrete((14 * 11 + 10) * 2 + 1));
        assert!(
            m.decode(&json!([14, 11, 1]), &mut obs)
                .unwrap_err()
                .contains("[1]")
        );

        let action = Mapped::from_wire(
            &json!({"name": "Dict", "spaces": {"a": {"name": "Discrete", "n": 2},
                "b": {"name": "Discrete", "n": 3, "start": 1}}}),
            Role::Action,
        )
        .unwrap();
        assert_eq!(action.space, Space::discrete(6));
        assert_eq!(
            action.encode(&Action::Discrete(5)).unwrap(),
            json!({"a": 1, "b": 3})
        );
        let md = Mapped::from_wire(
            &json!({"name": "MultiDiscrete", "nvec": [3, 2]}),
            Role::Action,
        )
        .unwrap();
        assert_eq!(md.encode(&Action::Discrete(3)).unwrap(), json!([1, 1]));
    }

    #[test]
    fn a_dict_of_boxes_is_one_flat_box() {
        let m = observe(json!({"name": "Dict", "spaces": {
            "pos": {"name": "Box", "shape": [2], "dtype": "float32", "low": -1, "high": 1},
            "hp": {"name": "Discrete", "n": 3}}}));
        assert_eq!(
            m.space,
            Space::bounded_box(vec![0.0, -1.0, -1.0], vec![2.0, 1.0, 1.0], &[3], DType::F32)
        );
        let mut obs = m.space.zeros();
        m.decode(&json!({"pos": [0.5, -0.25], "hp": 2}), &mut obs)
            .unwrap();
        assert_eq!(
            obs,
            Observation::F32(ndarray_of(&[3], vec![2.0, 0.5, -0.25]))
        );
    }

    fn ndarray_of(shape: &[usize], v: Vec<f32>) -> ndarray::ArrayD<f32> {
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), v).unwrap()
    }

    #[test]
    fn unmappable_spaces_are_refused_by_name() {
        for (wire, role, says) in [
            (
                json!({"name": "Text", "max_length": 5}),
                Role::Observation,
                "Text",
            ),
            (
                json!({"name": "MultiBinary", "n": 3}),
                Role::Action,
                "MultiBinary",
            ),
            (
                json!({"name": "Tuple", "spaces": [{"name": "Discrete", "n": 2}, {"name": "Graph"}]}),
                Role::Observation,
                "Graph",
            ),
            (
                json!({"name": "Tuple", "spaces": [{"name": "Box", "shape": [1], "low": 0, "high": 1}, {"name": "Discrete", "n": 2}]}),
                Role::Action,
                "Tuple",
            ),
        ] {
            let err = Mapped::from_wire(&wire, role).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn values_decode_in_place_and_base64() {
        let m = observe(
            json!({"name": "Box", "shape": [2, 2], "dtype": "uint8", "low": 0, "high": 255}),
        );
        let mut obs = m.space.zeros();
        let before = match &obs {
            Observation::U8(a) => a.as_ptr(),
            _ => unreachable!(),
        };
        m.decode(&json!([[1, 2], [3, 4]]), &mut obs).unwrap();
        m.decode(
            &json!({"dtype": "uint8", "shape": [2, 2], "base64": "AQIDBQ=="}),
            &mut obs,
        )
        .unwrap();
        match &obs {
            Observation::U8(a) => {
                assert_eq!(a.as_ptr(), before, "the buffer was reallocated");
                assert_eq!(a.as_slice().unwrap(), &[1, 2, 3, 5]);
            }
            other => panic!("{other:?}"),
        }
        assert!(m.decode(&json!([[1, 2], [3]]), &mut obs).is_err());
        assert!(
            m.decode(&json!([[1, 2], [3, 256]]), &mut obs)
                .unwrap_err()
                .contains("uint8")
        );
        let f = observe(
            json!({"name": "Box", "shape": [1], "dtype": "float32", "low": -1e100, "high": 1e100}),
        );
        let mut obs = f.space.zeros();
        // The shortest decimal of a float32 reads back bit for bit.
        f.decode(&json!([0.1f32 as f64]), &mut obs).unwrap();
        assert_eq!(obs, Observation::F32(ndarray_of(&[1], vec![0.1f32])));
    }
}
