//! gym-http-api's wire format: spaces, actions, observations, and the
//! lenient reading of request bodies its clients need.

use super::error::{GymError, Result};
use axum::body::Bytes;
use rl_env::{Action, DType, Space};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Array, RefOr};

/// gym-http-api writes an infinite bound as this number, since JSON has no
/// infinity; clients compare against it.
pub const INFINITY: f64 = 1e100;

/// Reads a request body leniently, as gym-http-api's clients send them:
/// an empty body (even with `Content-Type: application/json`) and `null`
/// both mean `{}`, so every field takes its default.
///
/// A body that is not JSON is a [`GymError::MalformedJson`]; JSON of the
/// wrong shape (an unknown field, a wrong type) is a
/// [`GymError::BadRequest`] with serde's description, which names the field.
pub fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Ok(T::default()),
        // serde would read a struct from an array of its fields in order.
        Some(b'[') => {
            return Err(GymError::BadRequest(
                "invalid request body: expected a JSON object".into(),
            ));
        }
        Some(_) => {}
    }
    match serde_json::from_slice::<Option<T>>(bytes) {
        Ok(value) => Ok(value.unwrap_or_default()),
        Err(e) if e.is_data() => Err(GymError::BadRequest(format!("invalid request body: {e}"))),
        Err(e) => Err(GymError::MalformedJson(e.to_string())),
    }
}

/// A value a required parameter may hold. gym-http-api counts `null`,
/// `""` and `[]` as not provided, and its clients rely on the message
/// that names the parameter.
pub trait Provided {
    /// Whether the value counts as given.
    fn provided(&self) -> bool;
}

impl Provided for String {
    fn provided(&self) -> bool {
        !self.is_empty()
    }
}

impl Provided for Value {
    fn provided(&self) -> bool {
        !(self.is_null() || self.as_str() == Some("") || self.as_array().is_some_and(Vec::is_empty))
    }
}

impl<T> Provided for Vec<T> {
    fn provided(&self) -> bool {
        !self.is_empty()
    }
}

impl Provided for usize {
    fn provided(&self) -> bool {
        true
    }
}

/// A required parameter, or gym-http-api's `A required request parameter
/// 'name' was not provided`.
pub fn required<T: Provided>(value: Option<T>, name: &'static str) -> Result<T> {
    value
        .filter(Provided::provided)
        .ok_or(GymError::MissingParam(name))
}

/// Reads an optional parameter as gym-http-api did: `null`, `""` and `[]`
/// mean "absent, take the default", and anything else must be a `T`.
pub fn lenient<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let mut value = Value::deserialize(d)?;
    if !value.provided() {
        return Ok(None);
    }
    crate::api::whole_numbers_as_integers(&mut value);
    T::deserialize(value)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The schema of an optional field read by [`lenient`]: a value of type
/// `kind`, or one that gym-http-api counts as not given (`null`, `""`,
/// `[]`).
fn lenient_schema(kind: Type) -> Schema {
    AnyOfBuilder::new()
        .item(Object::with_type(kind))
        .item(Object::with_type(Type::Null))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0)),
        )
        .item(ArrayBuilder::new().max_items(Some(0)))
        .build()
        .into()
}

/// [`lenient_schema`] of a boolean.
pub fn lenient_bool() -> Schema {
    lenient_schema(Type::Boolean)
}

/// [`lenient_schema`] of a string.
pub fn lenient_string() -> Schema {
    lenient_schema(Type::String)
}

/// A `400` unless an env config is an object (or absent, or `null`).
pub fn check_config(config: Option<&Value>) -> Result<()> {
    if crate::api::config_shape_ok(config) {
        Ok(())
    } else {
        Err(GymError::BadRequest(
            "config must be a JSON object of the env's settings".into(),
        ))
    }
}

/// The schema of reset `options`: rl-lab's envs take none, so `null` or `{}`.
pub fn no_options() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(0))
        .into()
}

/// Reads an optional integer (a seed), taking a whole number written as a
/// float (`7.0`) as that integer, as JSON Schema does.
pub fn whole<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let mut value = Value::deserialize(d)?;
    crate::api::whole_numbers_as_integers(&mut value);
    Option::<T>::deserialize(value).map_err(serde::de::Error::custom)
}

fn bound(x: f64) -> f64 {
    if x.is_infinite() {
        INFINITY.copysign(x)
    } else {
        x
    }
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::U8 => "uint8",
        DType::F32 => "float32",
        DType::F64 => "float64",
    }
}

/// A space as gym-http-api describes it, with Gymnasium's `dtype` (and
/// `start` for `Discrete`) added:
///
/// - `{"name": "Discrete", "n": 2, "start": 0, "dtype": "int64"}`
/// - `{"name": "Box", "shape": [4], "low": [..], "high": [..], "dtype": "float64"}`,
///   with one bound per element (row-major) and ±∞ written as ±1e100;
/// - `{"name": "MultiBinary", "n": 3, "shape": [3], "dtype": "int8"}`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "name")]
pub enum SpaceInfo {
    /// The integers `start, …, start + n - 1`.
    Discrete {
        /// Number of elements.
        n: u64,
        /// Smallest element.
        start: i64,
        /// Always `int64`.
        dtype: &'static str,
    },
    /// A box `low ≤ x ≤ high`.
    Box {
        /// Shape of one element.
        shape: Vec<usize>,
        /// Lower bounds, one per element, row-major; -∞ is -1e100.
        low: Vec<f64>,
        /// Upper bounds, one per element, row-major; ∞ is 1e100.
        high: Vec<f64>,
        /// `uint8`, `float32` or `float64`.
        dtype: &'static str,
    },
    /// Arrays of zeros and ones.
    MultiBinary {
        /// The length for one dimension (as gym writes it), else the shape.
        #[schema(schema_with = integer_or_shape)]
        n: Value,
        /// The shape.
        shape: Vec<usize>,
        /// Always `int8`.
        dtype: &'static str,
    },
}

/// The space's description.
pub fn space_info(space: &Space) -> SpaceInfo {
    match space {
        Space::Discrete { n, start } => SpaceInfo::Discrete {
            n: *n,
            start: *start,
            dtype: "int64",
        },
        Space::Box {
            low,
            high,
            shape,
            dtype,
        } => {
            let size: usize = shape.iter().product();
            SpaceInfo::Box {
                shape: shape.clone(),
                low: (0..size).map(|i| bound(low.at(i))).collect(),
                high: (0..size).map(|i| bound(high.at(i))).collect(),
                dtype: dtype_name(*dtype),
            }
        }
        Space::MultiBinary { n } => SpaceInfo::MultiBinary {
            n: match n.as_slice() {
                [one] => Value::from(*one),
                _ => Value::from(n.clone()),
            },
            shape: n.clone(),
            dtype: "int8",
        },
    }
}

/// Either of two schemas.
fn one_of(a: impl Into<RefOr<Schema>>, b: impl Into<RefOr<Schema>>) -> Schema {
    OneOfBuilder::new().item(a).item(b).build().into()
}

/// An array of `items`.
fn array_of(items: impl Into<RefOr<Schema>>) -> Array {
    ArrayBuilder::new().items(items.into()).build()
}

/// Numbers in arrays nested as deep as a space's shape, row-major.
fn nested_numbers() -> Array {
    ArrayBuilder::new()
        .items(RefOr::from(one_of(
            Object::with_type(Type::Number),
            Object::with_type(Type::Array),
        )))
        .description(Some(
            "Numbers, in arrays nested as deep as the space's shape, row-major",
        ))
        .build()
}

/// The schema of MultiBinary's `n`: an integer or a shape.
fn integer_or_shape() -> Schema {
    one_of(
        Object::with_type(Type::Integer),
        array_of(Object::with_type(Type::Integer)),
    )
}

/// The schema of an observation: an integer (Discrete), or nested arrays
/// of numbers (Box, MultiBinary).
pub fn observation_schema() -> Schema {
    one_of(Object::with_type(Type::Integer), nested_numbers())
}

/// The schema of many observations, one per copy.
pub fn observations_schema() -> Array {
    array_of(observation_schema())
}

/// The schema of an action: a number (an integer for Discrete, where
/// `1.0` is read as 1), or nested arrays of numbers (Box, MultiBinary).
pub fn action_schema() -> Schema {
    one_of(Object::with_type(Type::Number), nested_numbers())
}

/// The schema of many actions, one per copy.
pub fn actions_schema() -> Array {
    ArrayBuilder::new()
        .items(RefOr::from(action_schema()))
        .min_items(Some(1))
        .build()
}

/// An integer, accepting a float with no fractional part (`1.0`), as
/// clients that keep every number as a double send them.
fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
            .map(|x| x as i64)
    })
}

/// Every number of a (possibly nested) array, row-major, with the shape
/// of the nesting; `None` if a leaf is not a number or the nesting is ragged.
fn flatten(v: &Value) -> Option<(Vec<usize>, Vec<f64>)> {
    struct Walk {
        shape: Vec<usize>,
        values: Vec<f64>,
        /// The depth of the first number; every number must sit there.
        leaf_depth: Option<usize>,
    }
    impl Walk {
        fn visit(&mut self, v: &Value, depth: usize) -> Option<()> {
            match v {
                Value::Array(items) => {
                    if self.leaf_depth.is_some_and(|d| depth >= d) {
                        return None;
                    }
                    if self.shape.len() == depth {
                        self.shape.push(items.len());
                    } else if self.shape.get(depth) != Some(&items.len()) {
                        return None;
                    }
                    items
                        .iter()
                        .try_for_each(|item| self.visit(item, depth + 1))
                }
                Value::Number(n) => {
                    if *self.leaf_depth.get_or_insert(depth) != depth || self.shape.len() != depth {
                        return None;
                    }
                    self.values.push(n.as_f64()?);
                    Some(())
                }
                _ => None,
            }
        }
    }
    let mut walk = Walk {
        shape: Vec::new(),
        values: Vec::new(),
        leaf_depth: None,
    };
    walk.visit(v, 0)?;
    Some((walk.shape, walk.values))
}

/// Reads an action for `space` from JSON: an integer for `Discrete`
/// (`1.0` accepted), a number or a (nested) array of numbers for `Box`.
/// Membership is checked separately, so that an out-of-range action gets
/// the environment's own message.
pub fn action(space: &Space, v: &Value) -> Result<Action> {
    match space {
        Space::Discrete { .. } => integer(v).map(Action::Discrete).ok_or_else(|| {
            GymError::BadRequest(format!(
                "action {v} is not an integer, as the action space {space} needs"
            ))
        }),
        Space::Box { .. } | Space::MultiBinary { .. } => flatten(v)
            .map(|(_, values)| Action::Continuous(values))
            .ok_or_else(|| {
                GymError::BadRequest(format!(
                    "action {v} is not a number or an array of numbers, as the action space {space} needs"
                ))
            }),
    }
}

/// The action `x` of `GET …/action_space/contains/{x}`: gym-http-api reads
/// it as an integer; we also read a float for one-dimensional `Box`es.
pub fn path_action(space: &Space, x: &str) -> Result<Action> {
    let bad = || {
        GymError::BadRequest(format!(
            "'{x}' is not an action: expected a number for the action space {space}"
        ))
    };
    match space {
        Space::Discrete { .. } => x
            .trim()
            .parse::<i64>()
            .map(Action::Discrete)
            .map_err(|_| bad()),
        _ => x
            .trim()
            .parse::<f64>()
            .map(|v| Action::Continuous(vec![v]))
            .map_err(|_| bad()),
    }
}

/// Whether the JSON value `v` is an element of `space`: the right shape,
/// within the bounds, and whole numbers where the dtype is an integer one.
pub fn observation_member(space: &Space, v: &Value) -> bool {
    match space {
        Space::Discrete { n, start } => integer(v).is_some_and(|x| {
            x.checked_sub(*start)
                .is_some_and(|i| i >= 0 && (i as u64) < *n)
        }),
        Space::Box {
            low,
            high,
            shape,
            dtype,
        } => {
            let Some((got, values)) = flatten(v) else {
                return false;
            };
            got == *shape
                && values.iter().enumerate().all(|(i, &x)| {
                    let x = match dtype {
                        DType::U8 if x.fract() != 0.0 => return false,
                        DType::F32 => f64::from(x as f32),
                        _ => x,
                    };
                    x >= low.at(i) && x <= high.at(i)
                })
        }
        Space::MultiBinary { n } => flatten(v)
            .is_some_and(|(got, values)| got == *n && values.iter().all(|&x| x == 0.0 || x == 1.0)),
    }
}

/// gym-http-api's `observation_space/contains`: the body lists properties
/// of the space (`{"name": "Box", "shape": [4]}`), and the answer is
/// whether each matches the space's description exactly.
pub fn properties_match(space: &Space, properties: &Map<String, Value>) -> bool {
    let info = serde_json::to_value(space_info(space)).expect("a space description serialises");
    properties
        .iter()
        .all(|(key, value)| info.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn infinite_bounds_are_1e100() {
        let space = Space::bounded_box(
            vec![-4.8, f64::NEG_INFINITY],
            vec![4.8, f64::INFINITY],
            &[2],
            DType::F32,
        );
        let info = serde_json::to_value(space_info(&space)).unwrap();
        assert_eq!(info["low"], json!([-4.8, -1e100]));
        assert_eq!(info["high"], json!([4.8, 1e100]));
        assert_eq!(info["dtype"], "float32");
        let one = serde_json::to_value(space_info(&Space::uniform_box(
            0.0,
            1.0,
            &[2, 2],
            DType::U8,
        )))
        .unwrap();
        assert_eq!(one["low"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn actions_are_read_leniently() {
        let d = Space::discrete(3);
        assert_eq!(action(&d, &json!(2)).unwrap(), Action::Discrete(2));
        assert_eq!(action(&d, &json!(2.0)).unwrap(), Action::Discrete(2));
        assert!(action(&d, &json!(1.5)).is_err());
        assert!(action(&d, &json!("1")).is_err());
        let b = Space::uniform_box(-1.0, 1.0, &[2], DType::F32);
        assert_eq!(
            action(&b, &json!([0.5, -1])).unwrap(),
            Action::Continuous(vec![0.5, -1.0])
        );
        assert_eq!(
            action(&b, &json!(0.5)).unwrap(),
            Action::Continuous(vec![0.5])
        );
        assert!(action(&b, &json!([[1], 2])).is_err());
        assert!(action(&b, &json!([1, [2]])).is_err());
        assert!(action(&b, &json!([[1, 2], [3]])).is_err());
    }

    #[test]
    fn membership_checks_shape_bounds_and_dtype() {
        let b = Space::uniform_box(0.0, 2.0, &[2, 2], DType::U8);
        assert!(observation_member(&b, &json!([[0, 1], [2, 2]])));
        assert!(!observation_member(&b, &json!([[0, 1], [2, 3]])));
        assert!(!observation_member(&b, &json!([[0, 1.5], [2, 2]])));
        assert!(!observation_member(&b, &json!([0, 1, 2, 2])));
        assert!(!observation_member(&b, &json!([[0, 1], [2]])));
        let d = Space::Discrete { n: 2, start: -1 };
        assert!(observation_member(&d, &json!(-1)));
        assert!(!observation_member(&d, &json!(1)));
        let props = json!({"name": "Discrete", "n": 2});
        assert!(properties_match(&d, props.as_object().unwrap()));
        let props = json!({"name": "Box"});
        assert!(!properties_match(&d, props.as_object().unwrap()));
    }

    #[test]
    fn empty_and_null_bodies_mean_defaults() {
        #[derive(serde::Deserialize, Default, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Seeded {
            seed: Option<u64>,
        }
        let read = |s: &'static str| body::<Seeded>(&Bytes::from_static(s.as_bytes()));
        assert_eq!(read("").unwrap(), Seeded::default());
        assert_eq!(read(" \n").unwrap(), Seeded::default());
        assert_eq!(read("null").unwrap(), Seeded::default());
        assert_eq!(read(r#"{"seed": 3}"#).unwrap().seed, Some(3));
        assert!(matches!(read("{"), Err(GymError::MalformedJson(_))));
        assert!(matches!(read(r#"{"sed": 3}"#), Err(GymError::BadRequest(m)) if m.contains("sed")));
    }
}
