//! Where metrics go. The JSONL file is one sink; the server adds SQLite,
//! live streams and TensorBoard behind the same trait, without touching
//! the training loop.

use serde::Serialize;

/// One finished training episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeRecord {
    /// Episode number, from 1.
    pub episode: u64,
    /// Environment steps taken so far in the run, this episode included.
    pub step: u64,
    /// Undiscounted return.
    #[serde(rename = "return")]
    pub episode_return: f64,
    /// Steps in the episode.
    pub length: u64,
    /// Exploration rate used, if the agent has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Whether the episode was cut by a time limit.
    pub truncated: bool,
    /// Seconds since training began.
    pub wall_seconds: f64,
}

/// What a window of merged points holds of one quantity: the recording
/// policy (`rl_runner::recording`) merges the points of a fast series, and
/// these four keep what a plot needs of them (spikes included).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Aggregate {
    /// Mean of the window's points.
    pub mean: f64,
    /// Smallest point.
    pub min: f64,
    /// Largest point.
    pub max: f64,
    /// The window's last point.
    pub last: f64,
}

/// Consecutive training episodes merged into one line, at the step of the
/// last of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeWindow {
    /// The first episode merged.
    pub first_episode: u64,
    /// The last episode merged: episodes `first_episode..=episode`.
    pub episode: u64,
    /// Environment steps taken so far in the run, the last episode included.
    pub step: u64,
    /// Episodes merged.
    pub count: u64,
    /// Their undiscounted returns.
    #[serde(rename = "return")]
    pub episode_return: Aggregate,
    /// Their lengths, in steps.
    pub length: Aggregate,
    /// The exploration rates used, if the agent has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<Aggregate>,
    /// How many of them were cut by a time limit.
    pub truncated: u64,
    /// Seconds since training began, at the last episode.
    pub wall_seconds: f64,
}

/// One line of a run's metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A training episode ended.
    Episode(EpisodeRecord),
    /// Training episodes ended faster than the recording policy keeps
    /// them one by one.
    Episodes(EpisodeWindow),
    /// A named scalar at a step, e.g. `plan/delta` per sweep or `train/loss`.
    Scalar {
        /// Namespaced name, `section/metric`.
        name: String,
        /// Step (env steps, or sweeps for planners) it belongs to.
        step: u64,
        /// Value.
        value: f64,
        /// Seconds since training began.
        wall_seconds: f64,
    },
    /// Consecutive points of one scalar, merged by the recording policy.
    ScalarWindow {
        /// Namespaced name, `section/metric`.
        name: String,
        /// Step of the last point merged.
        step: u64,
        /// Points merged.
        count: u64,
        /// Their mean, min, max and last value.
        #[serde(flatten)]
        values: Aggregate,
        /// Seconds since training began, at the last point.
        wall_seconds: f64,
    },
}

impl Record {
    /// The step the record belongs to (the last one, for a window).
    pub fn step(&self) -> u64 {
        match self {
            Record::Episode(episode) => episode.step,
            Record::Episodes(window) => window.step,
            Record::Scalar { step, .. } | Record::ScalarWindow { step, .. } => *step,
        }
    }
}

/// Receives metrics as training produces them.
pub trait Sink: Send {
    /// Records one metric line. Sinks must not block training for long.
    fn record(&mut self, record: &Record) -> std::io::Result<()>;
    /// Pushes out anything buffered; called when training ends.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink that keeps nothing.
pub struct NullSink;

impl Sink for NullSink {
    fn record(&mut self, _record: &Record) -> std::io::Result<()> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        (**self).record(record)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (**self).flush()
    }
}
