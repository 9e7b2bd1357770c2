//! The messages of `rl-lab-external/1` (docs/env-protocol.md §3) and how
//! they are read: every refusal names the field at fault.

use crate::Error;
use ndarray::ArrayD;
use rl_env::{Action, DType, Observation, Space};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol's name, sent in `hello`.
pub const PROTOCOL: &str = "rl-lab-external";
/// The protocol version this crate speaks; a different major is refused.
pub const VERSION: &str = "1.0";

/// What an env process sends. Each is answered by exactly one [`Reply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The first message: who is speaking and on which spaces.
    Hello(Hello),
    /// Asks for a new episode.
    StartEpisode,
    /// An observation of the episode; the lab answers with an action.
    GetAction {
        /// The episode, as `start_episode` named it.
        episode_id: String,
        /// The observation, in the observation space.
        observation: Value,
    },
    /// A reward, added to the current step's.
    LogReturns {
        /// The episode.
        episode_id: String,
        /// The reward; finite.
        reward: f64,
    },
    /// The episode's last observation and how it ended.
    EndEpisode {
        /// The episode.
        episode_id: String,
        /// The final observation.
        observation: Value,
        /// A terminal state was reached.
        terminated: bool,
        /// The episode was cut short.
        truncated: bool,
    },
}

/// `hello`'s fields.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Must be [`PROTOCOL`].
    pub protocol: String,
    /// `MAJOR.MINOR`; the major must be [`VERSION`]'s.
    pub version: String,
    /// The process's observation space, in the run spec's form.
    pub observation_space: Value,
    /// The process's action space.
    pub action_space: Value,
    /// A name for the process (host and pid, say), quoted when a second
    /// process is refused.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetActionFields {
    episode_id: String,
    observation: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogReturnsFields {
    episode_id: String,
    reward: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndEpisodeFields {
    episode_id: String,
    observation: Value,
    terminated: bool,
    truncated: bool,
}

/// Every message type, for the error that names an unknown one.
const TYPES: &str = "hello, start_episode, get_action, log_returns, end_episode";

impl Request {
    /// Reads one message. The error names the field at fault (`type` for an
    /// unknown or missing type, `message` for text that is not a JSON object).
    pub fn parse(text: &str) -> Result<Request, Error> {
        let mut value: Value = serde_json::from_str(text)
            .map_err(|e| Error::field("message", format!("not JSON: {e}")))?;
        let fields = value
            .as_object_mut()
            .ok_or_else(|| Error::field("message", "a message is a JSON object with a `type`"))?;
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(Error::field(
                    "type",
                    format!("must be a string, one of {TYPES}; got {other}"),
                ));
            }
            None => return Err(Error::field("type", format!("missing; one of {TYPES}"))),
        };
        Ok(match kind.as_str() {
            "hello" => Request::Hello(fields_of(value)?),
            "start_episode" => {
                let NoFields {} = fields_of(value)?;
                Request::StartEpisode
            }
            "get_action" => {
                let f: GetActionFields = fields_of(value)?;
                Request::GetAction {
                    episode_id: f.episode_id,
                    observation: f.observation,
                }
            }
            "log_returns" => {
                let f: LogReturnsFields = fields_of(value)?;
                if !f.reward.is_finite() {
                    return Err(Error::field("reward", "must be finite"));
                }
                Request::LogReturns {
                    episode_id: f.episode_id,
                    reward: f.reward,
                }
            }
            "end_episode" => {
                let f: EndEpisodeFields = fields_of(value)?;
                Request::EndEpisode {
                    episode_id: f.episode_id,
                    observation: f.observation,
                    terminated: f.terminated,
                    truncated: f.truncated,
                }
            }
            other => {
                return Err(Error::field(
                    "type",
                    format!("unknown message type '{other}'; one of {TYPES}"),
                ));
            }
        })
    }

    /// The message's `type`, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::StartEpisode => "start_episode",
            Request::GetAction { .. } => "get_action",
            Request::LogReturns { .. } => "log_returns",
            Request::EndEpisode { .. } => "end_episode",
        }
    }
}

/// Reads a message's fields; a missing or unknown field is named as the
/// field (serde says "missing field `x`" at the object itself).
fn fields_of<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = if path == "." {
            // "missing field `episode_id`" / "unknown field `x`, expected …"
            message
                .split('`')
                .nth(1)
                .map_or_else(|| "message".to_string(), str::to_string)
        } else {
            path
        };
        Error::field(field, message)
    })
}

/// What the lab answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// `hello` accepted.
    Ready {
        /// The run the process drives.
        run_id: String,
    },
    /// `hello` refused; the socket closes.
    Refused {
        /// Why.
        reason: String,
    },
    /// A new episode.
    Episode {
        /// Quote it in the episode's messages.
        episode_id: String,
    },
    /// The run has its budget: no more episodes.
    Finished,
    /// The lab's action.
    Action {
        /// In the action space.
        action: Action,
    },
    /// `log_returns` or `end_episode` taken.
    Ok,
    /// The request was not taken; nothing changed.
    Error {
        /// The field at fault: `type`, `episode_id`, `observation`, …
        field: String,
        /// What is wrong, starting with the field.
        message: String,
    },
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Field { field, .. } => Reply::Error { field, message },
        }
    }
}

impl Reply {
    /// The reply as one JSON text frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("replies serialise: their fields are plain")
    }
}

/// Whether `version` has [`VERSION`]'s major.
pub fn same_major(version: &str) -> bool {
    let major = |v: &str| v.split('.').next().map(str::to_string);
    major(version).is_some() && major(version) == major(VERSION)
}

/// Whether two spaces are the same set. Bounds given once or per element
/// compare alike, and `float32` bounds compare at `float32` precision
/// (a Gymnasium `Box(-4.8, 4.8)` has the bound 4.800000190734863).
pub fn same_space(a: &Space, b: &Space) -> bool {
    match (a, b) {
        (
            Space::Box {
                low: la,
                high: ha,
                shape: sa,
                dtype: da,
            },
            Space::Box {
                low: lb,
                high: hb,
                shape: sb,
                dtype: db,
            },
        ) => {
            let size: usize = sa.iter().product();
            let same = |x: f64, y: f64| match da {
                DType::F32 => (x as f32).to_bits() == (y as f32).to_bits(),
                _ => x.to_bits() == y.to_bits(),
            };
            sa == sb
                && da == db
                && (0..size).all(|i| same(la.at(i), lb.at(i)) && same(ha.at(i), hb.at(i)))
        }
        _ => a == b,
    }
}

/// Reads `value` as an element of `space` into `out`, which has the
/// space's kind and shape (`Space::zeros`); nothing is allocated. On error
/// `out` may be partly written.
pub fn read_observation(space: &Space, value: &Value, out: &mut Observation) -> Result<(), Error> {
    let outside = |detail: String| Error::field("observation", detail);
    match (space, &mut *out) {
        (Space::Discrete { .. }, Observation::Discrete(x)) => {
            *x = value
                .as_i64()
                .ok_or_else(|| outside(format!("{value} is not an integer of {space}")))?;
        }
        (Space::Box { dtype, .. }, Observation::U8(a)) if *dtype == DType::U8 => {
            fill(a, value, |v| {
                v.as_u64()
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or("is not an integer 0 to 255")
            })
            .map_err(outside)?;
        }
        (Space::MultiBinary { .. }, Observation::U8(a)) => {
            fill(a, value, |v| {
                v.as_u64()
                    .and_then(|v| u8::try_from(v).ok())
                    .filter(|&v| v <= 1)
                    .ok_or("is not 0 or 1")
            })
            .map_err(outside)?;
        }
        (Space::Box { .. }, Observation::F32(a)) => {
            fill(a, value, |v| {
                v.as_f64().map(|v| v as f32).ok_or("is not a number")
            })
            .map_err(outside)?;
        }
        (Space::Box { .. }, Observation::F64(a)) => {
            fill(a, value, |v| v.as_f64().ok_or("is not a number")).map_err(outside)?;
        }
        (space, _) => {
            return Err(outside(format!(
                "the buffer does not match the observation space {space}"
            )));
        }
    }
    let out = &*out;
    if space.contains(out) {
        Ok(())
    } else {
        Err(outside(format!(
            "{value} is not in the observation space {space}"
        )))
    }
}

/// Writes the nested arrays of `value` into `out` row-major, checking
/// that their shape is `out`'s.
fn fill<T>(
    out: &mut ArrayD<T>,
    value: &Value,
    read: impl Fn(&Value) -> Result<T, &'static str>,
) -> Result<(), String> {
    let shape = out.shape().to_vec();
    let mut slots = out.iter_mut();
    fill_level(&shape, value, &read, &mut slots, &mut Vec::new())
}

fn fill_level<'a, T: 'a>(
    shape: &[usize],
    value: &Value,
    read: &impl Fn(&Value) -> Result<T, &'static str>,
    slots: &mut impl Iterator<Item = &'a mut T>,
    at: &mut Vec<usize>,
) -> Result<(), String> {
    // `[0][1]`, or "the observation" at the top.
    let place = |at: &[usize]| {
        if at.is_empty() {
            "the observation".to_string()
        } else {
            at.iter().map(|i| format!("[{i}]")).collect()
        }
    };
    match shape.split_first() {
        None => {
            let x = read(value).map_err(|why| format!("{} = {value} {why}", place(at)))?;
            if let Some(slot) = slots.next() {
                *slot = x;
            }
            Ok(())
        }
        Some((&len, rest)) => {
            let items = value
                .as_array()
                .filter(|items| items.len() == len)
                .ok_or_else(|| {
                    format!(
                        "{} must be a list of {len} (the shape from there is {shape:?}), not {value}",
                        place(at)
                    )
                })?;
            for (i, item) in items.iter().enumerate() {
                at.push(i);
                fill_level(rest, item, read, slots, at)?;
                at.pop();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let field = |text: &str| match Request::parse(text) {
            Err(Error::Field { field, .. }) => field,
            Ok(request) => panic!("{text} parsed as {request:?}"),
        };
        assert_eq!(field("{"), "message");
        assert_eq!(field("[1]"), "message");
        assert_eq!(field(r#"{"episode_id": "1"}"#), "type");
        assert_eq!(field(r#"{"type": "jump"}"#), "type");
        assert_eq!(
            field(r#"{"type": "get_action", "observation": 1}"#),
            "episode_id"
        );
        assert_eq!(
            field(r#"{"type": "get_action", "episode_id": 3, "observation": 1}"#),
            "episode_id"
        );
        assert_eq!(
            field(r#"{"type": "log_returns", "episode_id": "1", "reward": "x"}"#),
            "reward"
        );
        assert_eq!(field(r#"{"type": "start_episode", "extra": 1}"#), "extra");
        assert_eq!(
            field(
                r#"{"type": "end_episode", "episode_id": "1", "observation": 0, "terminated": true}"#
            ),
            "truncated"
        );
    }

    #[test]
    fn observations_are_read_in_place_and_checked() {
        let space = Space::uniform_box(-1.0, 1.0, &[2, 2], DType::F32);
        let mut out = space.zeros();
        read_observation(&space, &json!([[0.5, -0.5], [1, 0]]), &mut out).unwrap();
        assert_eq!(
            out,
            Observation::F32(
                ArrayD::from_shape_vec(vec![2, 2], vec![0.5, -0.5, 1.0, 0.0]).unwrap()
            )
        );
        let err = read_observation(&space, &json!([[0.5, -0.5], [1]]), &mut out).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("observation: [1] must be a list of 2"),
            "{err}"
        );
        let err = read_observation(&space, &json!([[0.5, 2], [1, 0]]), &mut out).unwrap_err();
        assert!(
            err.to_string().contains("not in the observation space"),
            "{err}"
        );
        let err = read_observation(&space, &json!([[0.5, "a"], [1, 0]]), &mut out).unwrap_err();
        assert!(
            err.to_string().contains("[0][1] = \"a\" is not a number"),
            "{err}"
        );
        let discrete = Space::discrete(4);
        let mut index = discrete.zeros();
        read_observation(&discrete, &json!(3), &mut index).unwrap();
        assert_eq!(index, Observation::Discrete(3));
        assert!(read_observation(&discrete, &json!(4), &mut index).is_err());
        assert!(read_observation(&discrete, &json!(1.5), &mut index).is_err());
    }

    #[test]
    fn float32_bounds_compare_at_float32_precision() {
        let ours = Space::bounded_box(vec![-4.8], vec![4.8], &[1], DType::F32);
        let gymnasium = Space::bounded_box(
            vec![-4.800000190734863],
            vec![4.800000190734863],
            &[1],
            DType::F32,
        );
        assert!(same_space(&ours, &gymnasium));
        let wider = Space::bounded_box(vec![-5.0], vec![4.8], &[1], DType::F32);
        assert!(!same_space(&ours, &wider));
        assert!(same_space(
            &Space::uniform_box(0.0, 1.0, &[3], DType::F64),
            &Space::bounded_box(vec![0.0; 3], vec![1.0; 3], &[3], DType::F64)
        ));
    }

    #[test]
    fn versions_compare_by_major() {
        assert!(same_major("1.0") && same_major("1.7"));
        assert!(!same_major("2.0") && !same_major(""));
    }
}
