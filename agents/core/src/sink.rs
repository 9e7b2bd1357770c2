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

/// One line of a run's metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A training episode ended.
    Episode(EpisodeRecord),
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
