//! The recording policy: which metric points reach a run's `metrics.jsonl`,
//! the server's SQLite tables, its live streams and TensorBoard. It sits in
//! the one training loop ([`crate::train::train`]) in front of whatever
//! sink the caller gives, so the CLI and every consumer of the server see
//! the same points.
//!
//! A run's data must grow with time, not with episodes: tabular Q-learning
//! finishes some 200,000 episodes a second, and a row per episode filled
//! gigabytes in a minute. So each series (the episodes; each scalar name)
//! has a token bucket: it keeps every point while it is slower than
//! [`RecordingPolicy::points_per_second`], after a first burst of up to
//! [`RecordingPolicy::burst`] points. Past that, its points are merged into
//! windows of `1 / windows_per_second` seconds, each written as one line
//! with the count, mean, min, max and last value, at the step of its last
//! point ([`Record::Episodes`], [`Record::ScalarWindow`]); a window of a
//! single point is written as that point. Each window costs the tokens the
//! bucket refills while it is open, so a fast series writes about
//! [`RecordingPolicy::windows_per_second`] lines a second, whatever its
//! speed.
//!
//! Time is the records' own `wall_seconds`, so the policy is a pure
//! function of what it is given, and its tests need no clock.

use rl_agent::{Aggregate, EpisodeRecord, EpisodeWindow, Record, Sink};
use std::collections::HashMap;

/// How many points a series keeps one by one before it merges them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordingPolicy {
    /// The sustained rate below which a series keeps every point, in
    /// points per second: the bucket's refill.
    pub points_per_second: f64,
    /// How many merged windows a series writes a second once it is faster
    /// than that; each window costs `points_per_second / windows_per_second`
    /// tokens, so a fast series writes no single points between windows.
    pub windows_per_second: f64,
    /// Points a series may write at once (the bucket's size): a slow run's
    /// quick start (DQN's random-action phase) is kept whole.
    pub burst: f64,
}

impl Default for RecordingPolicy {
    /// Every point while a series is slower than 20 a second, after a burst
    /// of 10,000; past that, 10 windows a second. The arithmetic is in
    /// docs/server.md ("Recording policy"): a merged episode line costs
    /// about 2.9 kB across `metrics.jsonl`, SQLite (the rows and their
    /// rollups) and TensorBoard, so a series at full speed writes about
    /// 18 MB in ten minutes, and with the burst's 15 MB stays under the
    /// 50 MB goal. The point rate is twice the window rate so that DQN on
    /// MinAtar Breakout, whose short early episodes come 15 to 65 a second,
    /// keeps every episode; DQN's scalars come once per 1,000 gradient
    /// updates.
    fn default() -> Self {
        RecordingPolicy {
            points_per_second: 20.0,
            windows_per_second: 10.0,
            burst: 10_000.0,
        }
    }
}

impl RecordingPolicy {
    /// How long a window lasts.
    fn window_seconds(&self) -> f64 {
        1.0 / self.windows_per_second
    }

    /// The tokens a window's line costs: what the bucket refills while it
    /// is open.
    fn window_tokens(&self) -> f64 {
        self.points_per_second / self.windows_per_second
    }
}

/// Running count, sum, min, max and last of one quantity.
#[derive(Clone, Copy, Debug)]
struct Fold {
    sum: f64,
    min: f64,
    max: f64,
    last: f64,
}

impl Fold {
    fn new(value: f64) -> Self {
        Fold {
            sum: value,
            min: value,
            max: value,
            last: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = value;
    }

    fn aggregate(&self, count: u64) -> Aggregate {
        Aggregate {
            mean: self.sum / count as f64,
            min: self.min,
            max: self.max,
            last: self.last,
        }
    }
}

/// A window being filled: what one series merges.
trait Window {
    /// One point of the series.
    type Point: ?Sized;
    fn open(point: &Self::Point) -> Self;
    fn add(&mut self, point: &Self::Point);
}

/// Episodes being merged.
struct EpisodeFold {
    /// The first episode, written as itself if it stays alone.
    first: EpisodeRecord,
    count: u64,
    last_episode: u64,
    step: u64,
    episode_return: Fold,
    length: Fold,
    epsilon: Option<Fold>,
    truncated: u64,
    wall_seconds: f64,
}

impl Window for EpisodeFold {
    type Point = EpisodeRecord;

    fn open(episode: &EpisodeRecord) -> Self {
        EpisodeFold {
            first: episode.clone(),
            count: 1,
            last_episode: episode.episode,
            step: episode.step,
            episode_return: Fold::new(episode.episode_return),
            length: Fold::new(episode.length as f64),
            epsilon: episode.epsilon.map(Fold::new),
            truncated: u64::from(episode.truncated),
            wall_seconds: episode.wall_seconds,
        }
    }

    fn add(&mut self, episode: &EpisodeRecord) {
        self.count += 1;
        self.last_episode = episode.episode;
        self.step = episode.step;
        self.episode_return.add(episode.episode_return);
        self.length.add(episode.length as f64);
        // An agent has an exploration rate for every episode or for none.
        match (&mut self.epsilon, episode.epsilon) {
            (Some(fold), Some(epsilon)) => fold.add(epsilon),
            (None, Some(epsilon)) => self.epsilon = Some(Fold::new(epsilon)),
            (_, None) => {}
        }
        self.truncated += u64::from(episode.truncated);
        self.wall_seconds = episode.wall_seconds;
    }
}

impl EpisodeFold {
    fn into_record(self) -> Record {
        if self.count == 1 {
            return Record::Episode(self.first);
        }
        Record::Episodes(EpisodeWindow {
            first_episode: self.first.episode,
            episode: self.last_episode,
            step: self.step,
            count: self.count,
            episode_return: self.episode_return.aggregate(self.count),
            length: self.length.aggregate(self.count),
            epsilon: self.epsilon.map(|fold| fold.aggregate(self.count)),
            truncated: self.truncated,
            wall_seconds: self.wall_seconds,
        })
    }
}

/// A scalar's point: step, value, seconds since training began.
struct ScalarPoint {
    step: u64,
    value: f64,
    wall_seconds: f64,
}

/// Points of one scalar being merged.
struct ScalarFold {
    count: u64,
    step: u64,
    values: Fold,
    wall_seconds: f64,
}

impl Window for ScalarFold {
    type Point = ScalarPoint;

    fn open(point: &ScalarPoint) -> Self {
        ScalarFold {
            count: 1,
            step: point.step,
            values: Fold::new(point.value),
            wall_seconds: point.wall_seconds,
        }
    }

    fn add(&mut self, point: &ScalarPoint) {
        self.count += 1;
        self.step = point.step;
        self.values.add(point.value);
        self.wall_seconds = point.wall_seconds;
    }
}

impl ScalarFold {
    fn into_record(self, name: &str) -> Record {
        let name = name.to_string();
        if self.count == 1 {
            return Record::Scalar {
                name,
                step: self.step,
                value: self.values.last,
                wall_seconds: self.wall_seconds,
            };
        }
        Record::ScalarWindow {
            name,
            step: self.step,
            count: self.count,
            values: self.values.aggregate(self.count),
            wall_seconds: self.wall_seconds,
        }
    }
}

/// What a series does with a point.
struct Decision<W> {
    /// A window that ended before this point: write it first.
    closed: Option<W>,
    /// Whether the point is written as itself (else it was merged).
    keep: bool,
}

/// One series: its token bucket and its open window.
struct Series<W> {
    tokens: f64,
    /// When the bucket was last filled, in the records' seconds.
    filled_at: f64,
    /// The open window and when it opened.
    window: Option<(f64, W)>,
}

impl<W: Window> Series<W> {
    fn new(policy: &RecordingPolicy) -> Self {
        Series {
            tokens: policy.burst,
            filled_at: 0.0,
            window: None,
        }
    }

    fn offer(&mut self, policy: &RecordingPolicy, now: f64, point: &W::Point) -> Decision<W> {
        // The bucket refills at the policy's rate, up to the burst.
        self.tokens = (self.tokens + (now - self.filled_at).max(0.0) * policy.points_per_second)
            .min(policy.burst);
        self.filled_at = now;
        let closed = match &self.window {
            Some((opened, _)) if now - opened >= policy.window_seconds() => self.close(policy),
            _ => None,
        };
        let keep = match &mut self.window {
            Some((_, window)) => {
                window.add(point);
                false
            }
            None if self.tokens >= 1.0 => {
                self.tokens -= 1.0;
                true
            }
            None => {
                self.window = Some((now, W::open(point)));
                false
            }
        };
        Decision { closed, keep }
    }

    /// Ends the open window, if any; its line costs what the bucket refills
    /// in a window's time.
    fn close(&mut self, policy: &RecordingPolicy) -> Option<W> {
        let (_, window) = self.window.take()?;
        self.tokens -= policy.window_tokens();
        Some(window)
    }
}

/// A sink that applies a [`RecordingPolicy`] before passing records on.
pub struct Recording<S: Sink> {
    inner: S,
    policy: RecordingPolicy,
    episodes: Series<EpisodeFold>,
    scalars: HashMap<String, Series<ScalarFold>>,
}

impl<S: Sink> Recording<S> {
    /// Records into `inner` under `policy`.
    pub fn new(inner: S, policy: RecordingPolicy) -> Self {
        Recording {
            episodes: Series::new(&policy),
            inner,
            policy,
            scalars: HashMap::new(),
        }
    }

    /// Writes every open window. The loop calls it before a checkpoint, so
    /// that no window spans one (a resumed run drops lines past its
    /// checkpoint's step, and would lose the window's earlier points), and
    /// when training ends.
    pub fn close_windows(&mut self) -> std::io::Result<()> {
        if let Some(window) = self.episodes.close(&self.policy) {
            self.inner.record(&window.into_record())?;
        }
        for (name, series) in &mut self.scalars {
            if let Some(window) = series.close(&self.policy) {
                self.inner.record(&window.into_record(name))?;
            }
        }
        Ok(())
    }

    /// The sink records were passed to.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Sink> Sink for Recording<S> {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        match record {
            Record::Episode(episode) => {
                let decision = self
                    .episodes
                    .offer(&self.policy, episode.wall_seconds, episode);
                if let Some(window) = decision.closed {
                    self.inner.record(&window.into_record())?;
                }
                if decision.keep {
                    self.inner.record(record)?;
                }
            }
            Record::Scalar {
                name,
                step,
                value,
                wall_seconds,
            } => {
                let series = match self.scalars.get_mut(name.as_str()) {
                    Some(series) => series,
                    None => self
                        .scalars
                        .entry(name.clone())
                        .or_insert_with(|| Series::new(&self.policy)),
                };
                let point = ScalarPoint {
                    step: *step,
                    value: *value,
                    wall_seconds: *wall_seconds,
                };
                let decision = series.offer(&self.policy, *wall_seconds, &point);
                if let Some(window) = decision.closed {
                    self.inner.record(&window.into_record(name))?;
                }
                if decision.keep {
                    self.inner.record(record)?;
                }
            }
            // Already merged upstream: passed on as they are.
            Record::Episodes(_) | Record::ScalarWindow { .. } => self.inner.record(record)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.close_windows()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every record it is given.
    #[derive(Default)]
    struct Kept(Vec<Record>);

    impl Sink for Kept {
        fn record(&mut self, record: &Record) -> std::io::Result<()> {
            self.0.push(record.clone());
            Ok(())
        }
    }

    fn episode(episode: u64, wall_seconds: f64, episode_return: f64) -> Record {
        Record::Episode(EpisodeRecord {
            episode,
            step: episode * 10,
            episode_return,
            length: 10 + episode % 3,
            epsilon: Some(1.0 / episode as f64),
            truncated: episode.is_multiple_of(4),
            wall_seconds,
        })
    }

    fn scalar(step: u64, wall_seconds: f64, value: f64) -> Record {
        Record::Scalar {
            name: "train/loss".into(),
            step,
            value,
            wall_seconds,
        }
    }

    /// Episodes covered by the lines: each episode exactly once, in order.
    fn episodes_covered(records: &[Record]) -> Vec<(u64, u64)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Episode(e) => Some((e.episode, e.episode)),
                Record::Episodes(w) => Some((w.first_episode, w.episode)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_series_slower_than_the_rate_is_kept_whole() {
        let policy = RecordingPolicy {
            points_per_second: 20.0,
            windows_per_second: 20.0,
            burst: 5.0,
        };
        // 19 points a second for a minute: never short of tokens.
        assert_kept_whole(policy, 19, 60);
    }

    /// Asserts that `policy` keeps every one of `rate` episodes a second
    /// for `seconds`.
    fn assert_kept_whole(policy: RecordingPolicy, rate: u64, seconds: u64) {
        let mut recording = Recording::new(Kept::default(), policy);
        let given: Vec<Record> = (1..=rate * seconds)
            .map(|i| episode(i, i as f64 / rate as f64, i as f64))
            .collect();
        for record in &given {
            recording.record(record).unwrap();
        }
        recording.flush().unwrap();
        assert_eq!(recording.into_inner().0, given);
    }

    #[test]
    fn a_burst_within_the_bucket_is_kept_whole_and_the_next_point_merges() {
        let policy = RecordingPolicy {
            points_per_second: 10.0,
            windows_per_second: 10.0,
            burst: 100.0,
        };
        let mut recording = Recording::new(Kept::default(), policy);
        // 100 points at the same instant: exactly the bucket.
        for i in 1..=100 {
            recording.record(&scalar(i, 0.0, i as f64)).unwrap();
        }
        assert_eq!(recording.inner.0.len(), 100);
        assert!(
            recording
                .inner
                .0
                .iter()
                .all(|r| matches!(r, Record::Scalar { .. }))
        );
        // The 101st opens a window; nothing is written until it closes.
        recording.record(&scalar(101, 0.0, 5.0)).unwrap();
        recording.record(&scalar(102, 0.01, -3.0)).unwrap();
        recording.record(&scalar(103, 0.02, 7.0)).unwrap();
        recording.record(&scalar(104, 0.05, 1.0)).unwrap();
        assert_eq!(recording.inner.0.len(), 100);
        // 0.1 s (the window) after it opened, the next point closes it.
        recording.record(&scalar(105, 0.1, 2.0)).unwrap();
        let written = &recording.inner.0;
        assert_eq!(written.len(), 101);
        assert_eq!(
            written[100],
            Record::ScalarWindow {
                name: "train/loss".into(),
                step: 104,
                count: 4,
                values: Aggregate {
                    mean: 2.5,
                    min: -3.0,
                    max: 7.0,
                    last: 1.0,
                },
                wall_seconds: 0.05,
            }
        );
        // The refilled token (0.1 s at 10/s) paid for that window, so point
        // 105 opened the next one; at the end it stands alone, as itself.
        recording.flush().unwrap();
        assert_eq!(recording.inner.0[101], scalar(105, 0.1, 2.0));
        assert_eq!(recording.inner.0.len(), 102);
    }

    #[test]
    fn a_fast_series_writes_about_the_rate_and_covers_every_episode_once() {
        let policy = RecordingPolicy::default();
        let mut recording = Recording::new(Kept::default(), policy);
        // 200,000 episodes a second for 10 s, as tabular Q-learning runs.
        let (rate, seconds) = (200_000u64, 10u64);
        let mut sum = 0.0;
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 1..=rate * seconds {
            let value = ((i * 7919) % 1000) as f64 - 500.0;
            sum += value;
            min = min.min(value);
            max = max.max(value);
            recording
                .record(&episode(i, i as f64 / rate as f64, value))
                .unwrap();
        }
        recording.flush().unwrap();
        let written = recording.into_inner().0;
        // The burst, then the policy's windows a second.
        let windows = written.len() as f64 - policy.burst;
        let expected = policy.windows_per_second * seconds as f64;
        assert!(
            (windows - expected).abs() <= 2.0,
            "{} lines: {windows} past the burst, expected about {expected}",
            written.len()
        );
        // Every episode once, in order, none missing.
        let covered = episodes_covered(&written);
        let mut next = 1;
        for (first, last) in &covered {
            assert_eq!(*first, next);
            next = last + 1;
        }
        assert_eq!(next, rate * seconds + 1);
        // Counts, means, mins and maxes add up to the whole series.
        let (mut count, mut total) = (0u64, 0.0);
        let (mut seen_min, mut seen_max) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut truncated = 0;
        for record in &written {
            match record {
                Record::Episode(e) => {
                    count += 1;
                    total += e.episode_return;
                    seen_min = seen_min.min(e.episode_return);
                    seen_max = seen_max.max(e.episode_return);
                    truncated += u64::from(e.truncated);
                }
                Record::Episodes(w) => {
                    assert_eq!(w.count, w.episode - w.first_episode + 1);
                    assert_eq!(w.step, w.episode * 10);
                    count += w.count;
                    total += w.episode_return.mean * w.count as f64;
                    seen_min = seen_min.min(w.episode_return.min);
                    seen_max = seen_max.max(w.episode_return.max);
                    let last = ((w.episode * 7919) % 1000) as f64 - 500.0;
                    assert_eq!(w.episode_return.last, last);
                    assert_eq!(w.epsilon.unwrap().last, 1.0 / w.episode as f64);
                    assert_eq!(w.length.max, 12.0);
                    truncated += w.truncated;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(count, rate * seconds);
        assert!((total - sum).abs() < 1e-6 * sum.abs().max(1.0));
        assert_eq!((seen_min, seen_max), (min, max));
        assert_eq!(truncated, rate * seconds / 4);
    }

    #[test]
    fn a_series_between_the_window_rate_and_the_point_rate_is_kept_whole() {
        // DQN on Breakout: 15 episodes a second for two hours, well past
        // the burst; every one is kept.
        let policy = RecordingPolicy::default();
        assert!(policy.windows_per_second < 15.0 && 15.0 < policy.points_per_second);
        assert_kept_whole(policy, 15, 7200);
    }

    #[test]
    fn a_series_just_over_the_point_rate_writes_at_most_the_window_rate() {
        // 25 a second for 1,000 s: the burst lasts 2,000 s at 5 a second
        // net, so start it empty.
        let policy = RecordingPolicy {
            burst: 1.0,
            ..RecordingPolicy::default()
        };
        let mut recording = Recording::new(Kept::default(), policy);
        let seconds = 1_000u64;
        for i in 1..=25 * seconds {
            recording.record(&episode(i, i as f64 / 25.0, 1.0)).unwrap();
        }
        recording.flush().unwrap();
        let written = recording.into_inner().0;
        // A window closes at its first point 0.1 s after it opened, 0.12 s
        // at 25 points a second: a little under the window rate.
        let most = policy.windows_per_second * seconds as f64;
        let lines = written.len() as f64;
        assert!(
            lines <= most + 2.0 && lines >= 0.8 * most,
            "{lines} lines in {seconds} s, at most {most}"
        );
        assert_eq!(episodes_covered(&written).last().unwrap().1, 25 * seconds);
    }

    #[test]
    fn series_are_counted_apart() {
        let policy = RecordingPolicy {
            points_per_second: 1.0,
            windows_per_second: 1.0,
            burst: 2.0,
        };
        let mut recording = Recording::new(Kept::default(), policy);
        // A fast loss does not use up the episodes' tokens.
        for i in 1..=50 {
            recording.record(&scalar(i, 0.0, 1.0)).unwrap();
        }
        recording.record(&episode(1, 0.0, 3.0)).unwrap();
        recording.record(&episode(2, 0.0, 4.0)).unwrap();
        recording.flush().unwrap();
        let written = recording.into_inner().0;
        // Two losses, two episodes, then (at the end) the other 48 losses.
        assert_eq!(written.len(), 2 + 2 + 1);
        assert_eq!(written[4].step(), 50);
        assert!(matches!(
            &written[4],
            Record::ScalarWindow { count: 48, .. }
        ));
        assert_eq!(episodes_covered(&written), [(1, 1), (2, 2)]);
    }
}
