//! Exploration and step-size schedules, as data.

use crate::{Error, Result};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// ε for ε-greedy exploration, as a function of the episode number (from 0).
///
/// In JSON: a number (`0.1`, constant), `{"linear": {"start": 1.0, "end": 0.05,
/// "episodes": 400}}`, or `{"exponential": {"start": 1.0, "end": 0.01,
/// "decay": 0.99}}`, which gives `max(end, start · decayᵏ)` in episode k.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EpsilonSchedule {
    /// The same ε every episode.
    Constant(#[schemars(range(min = 0.0, max = 1.0))] f64),
    /// Linear from `start` to `end` over `episodes`, then `end`.
    Linear {
        /// The linear schedule.
        linear: LinearDecay,
    },
    /// Geometric decay towards `end`.
    Exponential {
        /// The exponential schedule.
        exponential: ExponentialDecay,
    },
}

/// Parameters of [`EpsilonSchedule::Linear`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinearDecay {
    /// ε in episode 0.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub start: f64,
    /// ε from episode `episodes` on.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub end: f64,
    /// Length of the decay, in episodes.
    #[schemars(range(min = 1))]
    pub episodes: u64,
}

/// Parameters of [`EpsilonSchedule::Exponential`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExponentialDecay {
    /// ε in episode 0.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub start: f64,
    /// The floor ε never goes below.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub end: f64,
    /// Factor per episode, in (0, 1].
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub decay: f64,
}

impl EpsilonSchedule {
    /// ε in episode `episode` (counted from 0).
    pub fn value(&self, episode: u64) -> f64 {
        match self {
            EpsilonSchedule::Constant(e) => *e,
            EpsilonSchedule::Linear { linear: l } => {
                let fraction = (episode as f64 / l.episodes.max(1) as f64).min(1.0);
                l.start + fraction * (l.end - l.start)
            }
            EpsilonSchedule::Exponential { exponential: x } => {
                (x.start * x.decay.powf(episode as f64)).max(x.end)
            }
        }
    }

    /// Checks every probability is in [0, 1]; `field` names the config key.
    pub fn validate(&self, field: &str) -> Result<()> {
        let probability = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(Error::config(
                    format!("{field}{name}"),
                    format!("{p} is not a probability in [0, 1]"),
                ))
            }
        };
        match self {
            EpsilonSchedule::Constant(e) => probability("", *e),
            EpsilonSchedule::Linear { linear: l } => {
                probability(".linear.start", l.start)?;
                probability(".linear.end", l.end)?;
                if l.episodes == 0 {
                    return Err(Error::config(
                        format!("{field}.linear.episodes"),
                        "must be at least 1",
                    ));
                }
                Ok(())
            }
            EpsilonSchedule::Exponential { exponential: x } => {
                probability(".exponential.start", x.start)?;
                probability(".exponential.end", x.end)?;
                if !(x.decay > 0.0 && x.decay <= 1.0) {
                    return Err(Error::config(
                        format!("{field}.exponential.decay"),
                        format!("{} is not in (0, 1]", x.decay),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// The learning rate α: a constant, or `"1/n"` for the sample average
/// (α = 1/N(s, a), which makes tabular estimates exact averages).
#[derive(Clone, Copy, Debug, PartialEq, JsonSchema)]
#[schemars(schema_with = "step_size_schema")]
pub enum StepSize {
    /// The same α for every update.
    Constant(f64),
    /// α = 1 / (number of updates of this entry so far, this one included).
    SampleAverage,
}

impl StepSize {
    /// α for the `count`-th update of an entry (from 1).
    pub fn alpha(&self, count: u64) -> f64 {
        match self {
            StepSize::Constant(a) => *a,
            StepSize::SampleAverage => 1.0 / count.max(1) as f64,
        }
    }

    /// Checks a constant α is in (0, 1].
    pub fn validate(&self, field: &str) -> Result<()> {
        match self {
            StepSize::Constant(a) if !(*a > 0.0 && *a <= 1.0) => Err(Error::config(
                field,
                format!("{a} is not a step size in (0, 1]"),
            )),
            _ => Ok(()),
        }
    }
}

impl Serialize for StepSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StepSize::Constant(a) => s.serialize_f64(*a),
            StepSize::SampleAverage => s.serialize_str("1/n"),
        }
    }
}

/// The schema of [`StepSize`]'s JSON forms, which its hand-written serde
/// impls (a number or `"1/n"`) define.
fn step_size_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A constant step size in (0, 1], or \"1/n\" for the sample average.",
        "anyOf": [{"type": "number", "exclusiveMinimum": 0.0, "maximum": 1.0}, {"const": "1/n"}]
    })
}

impl<'de> Deserialize<'de> for StepSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a number or \"1/n\""))?
        {
            Raw::Number(a) => Ok(StepSize::Constant(a)),
            Raw::Text(t) if t == "1/n" => Ok(StepSize::SampleAverage),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected a number or \"1/n\", found \"{t}\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_from_json_and_decay() {
        let c: EpsilonSchedule = serde_json::from_str("0.1").unwrap();
        assert_eq!(c.value(1000), 0.1);
        let l: EpsilonSchedule =
            serde_json::from_str(r#"{"linear": {"start": 1.0, "end": 0.0, "episodes": 10}}"#)
                .unwrap();
        assert_eq!((l.value(0), l.value(5), l.value(20)), (1.0, 0.5, 0.0));
        let x: EpsilonSchedule =
            serde_json::from_str(r#"{"exponential": {"start": 1.0, "end": 0.2, "decay": 0.5}}"#)
                .unwrap();
        assert_eq!((x.value(1), x.value(10)), (0.5, 0.2));
        assert!(EpsilonSchedule::Constant(1.5).validate("epsilon").is_err());
    }

    #[test]
    fn step_size_reads_numbers_and_sample_average() {
        let a: StepSize = serde_json::from_str("0.5").unwrap();
        assert_eq!(a.alpha(7), 0.5);
        let n: StepSize = serde_json::from_str(r#""1/n""#).unwrap();
        assert_eq!(n.alpha(4), 0.25);
        let err = serde_json::from_str::<StepSize>(r#""1/t""#).unwrap_err();
        assert!(err.to_string().contains("1/n"), "{err}");
        assert!(StepSize::Constant(0.0).validate("alpha").is_err());
    }
}
