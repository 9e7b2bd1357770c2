//! Downsampling a metric series for plotting, with min/max-preserving
//! buckets rather than LTTB: a bucket keeps the smallest and largest value
//! of everything in it, so a spike survives however many points fall in one
//! pixel, and it composes: a stored window row, a rollup of migration 3 and
//! a bucket are the same kind of summary ([`MetricPoint`]), so buckets can
//! be filled from rollups without reading the rows. LTTB picks one real
//! point per bucket by the triangle it makes with its neighbours, which
//! needs every point in memory and may still drop a spike that sits beside
//! a larger swing.
//!
//! The first and the last stored row are kept as they are; the rows between
//! them fall in equal step ranges (the cells of a [`Grid`]), each summarised
//! as one point.

use super::ROLLUP_SHIFTS;

/// A stretch of a metric series as one point: a stored row (one point, or
/// a window the recording policy aggregated), a rollup, or a bucket of a
/// downsampled read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricPoint {
    /// The env step of its last point.
    pub step: u64,
    /// The mean of its points.
    pub value: f64,
    /// Seconds since training began, at its last point.
    pub wall_seconds: f64,
    /// How many recorded points it stands for.
    pub count: u64,
    /// The smallest of them.
    pub min: f64,
    /// The largest of them.
    pub max: f64,
}

/// The cells the rows between the first and the last fall in: equal step
/// ranges of `width` from `origin`.
///
/// Both are multiples of the rollup level's bucket width (`1 << shift`), so
/// each rollup bucket lies inside one cell and a read from rollups gives the
/// same buckets as one from the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    /// The rollup level whose buckets tile the cells; `None` when the cells
    /// are narrower than the finest level, and the rows are read.
    pub shift: Option<u32>,
    origin: u64,
    width: u64,
}

impl Grid {
    /// The grid for a series from `first_step` to `last_step` shown in
    /// `max_points` points: at most `max_points - 2` cells (at least one)
    /// cover the steps between.
    ///
    /// The ideal width is the span over the cells; the level is the
    /// coarsest whose buckets are no wider, and the width is rounded up to
    /// a multiple of its buckets, so a long series uses between half and all
    /// of the cells.
    pub fn new(first_step: u64, last_step: u64, max_points: usize) -> Grid {
        let cells = max_points.saturating_sub(2).max(1) as u128;
        let (first, last) = (first_step as u128, last_step.max(first_step) as u128);
        let ideal = (last - first + 1).div_ceil(cells);
        let shift = ROLLUP_SHIFTS
            .iter()
            .rev()
            .copied()
            .find(|&shift| 1u128 << shift <= ideal);
        let granule = shift.map_or(1, |shift| 1u128 << shift);
        let origin = first / granule * granule;
        // ⌈(last − origin + 1) / (cells · granule)⌉ · granule: a multiple of
        // the granule that covers origin..=last in `cells` cells.
        let width = (last - origin + 1).div_ceil(cells * granule) * granule;
        Grid {
            shift,
            origin: origin as u64,
            width: u64::try_from(width).unwrap_or(u64::MAX),
        }
    }

    /// The cell of `step` (steps before the origin count as the first).
    fn cell(&self, step: u64) -> u64 {
        step.saturating_sub(self.origin) / self.width
    }
}

/// Sums of the points of one cell.
struct Bucket {
    cell: u64,
    /// Σ value · count, for the mean.
    sum: f64,
    last: MetricPoint,
    count: u64,
    min: f64,
    max: f64,
}

impl Bucket {
    fn new(cell: u64, point: MetricPoint) -> Bucket {
        Bucket {
            cell,
            sum: point.value * point.count as f64,
            last: point,
            count: point.count,
            min: point.min,
            max: point.max,
        }
    }

    fn add(&mut self, point: MetricPoint) {
        self.sum += point.value * point.count as f64;
        self.count += point.count;
        self.min = self.min.min(point.min);
        self.max = self.max.max(point.max);
        if point.step >= self.last.step {
            self.last = point;
        }
    }

    fn point(&self) -> MetricPoint {
        MetricPoint {
            step: self.last.step,
            value: self.sum / self.count.max(1) as f64,
            wall_seconds: self.last.wall_seconds,
            count: self.count,
            min: self.min,
            max: self.max,
        }
    }
}

/// Builds a downsampled series: the first row, then the points between
/// (rows or rollups, in step order, each inside one cell) summed per cell,
/// then the last row.
pub(crate) struct Downsampler {
    grid: Grid,
    points: Vec<MetricPoint>,
    open: Option<Bucket>,
}

impl Downsampler {
    /// A series that starts with `first` and ends at `last_step`, to be
    /// shown in `max_points` points.
    pub fn new(first: MetricPoint, last_step: u64, max_points: usize) -> Downsampler {
        let mut points = Vec::with_capacity(max_points);
        points.push(first);
        Downsampler {
            grid: Grid::new(first.step, last_step, max_points),
            points,
            open: None,
        }
    }

    /// Where the points between go.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Adds a point between the first and the last.
    pub fn push(&mut self, point: MetricPoint) {
        let cell = self.grid.cell(point.step);
        match &mut self.open {
            Some(bucket) if bucket.cell == cell => bucket.add(point),
            open => {
                if let Some(done) = open.replace(Bucket::new(cell, point)) {
                    self.points.push(done.point());
                }
            }
        }
    }

    /// The series, ending with `last`.
    pub fn finish(mut self, last: MetricPoint) -> Vec<MetricPoint> {
        if let Some(done) = self.open.take() {
            self.points.push(done.point());
        }
        self.points.push(last);
        self.points
    }
}

/// What a downsampled read reads between its first and its last row, in
/// step order: rows, or whole rollup buckets where they fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Span {
    /// The rows with `after < step <= through`.
    Rows {
        /// Below the first step read.
        after: i64,
        /// The last step read.
        through: i64,
    },
    /// The rollups of level `shift` whose buckets lie strictly between
    /// `after` and `before`.
    Rollups {
        /// The level.
        shift: u32,
        /// The bucket before the first read.
        after: i64,
        /// The bucket after the last read.
        before: i64,
    },
}

/// A downsampled read under way, the same for every backend: the backend
/// reads the first `max_points + 1` rows past the cursor and the last row,
/// then feeds the [`Span`]s this plans, in order, to [`SeriesRead::push`].
pub(crate) struct SeriesRead {
    sampler: Downsampler,
    last: MetricPoint,
    /// Whether the first row has come by again (it is already in the
    /// sampler): the spans start with it.
    seen_first: bool,
    /// Each point is held back by one, so that the last row (given to
    /// [`Downsampler::finish`]) is not also summed in a cell.
    held: Option<MetricPoint>,
}

impl SeriesRead {
    /// The read of a series from `first` to `last` in `max_points`
    /// points, and what to feed it.
    pub fn plan(
        first: MetricPoint,
        last: MetricPoint,
        max_points: usize,
    ) -> (SeriesRead, Vec<Span>) {
        let sampler = Downsampler::new(first, last.step, max_points);
        let grid = sampler.grid();
        let (first_step, last_step) = (step_in_sql(first.step), step_in_sql(last.step));
        // A finer level tiles the grid's cells too: take one in which the
        // first and the last row are in different buckets, or the whole
        // span would be read as rows.
        let shift = grid.shift.and_then(|coarsest| {
            ROLLUP_SHIFTS
                .iter()
                .rev()
                .copied()
                .filter(|&shift| shift <= coarsest)
                .find(|&shift| first.step >> shift < last.step >> shift)
        });
        let spans = match shift {
            Some(shift) => {
                // Rows up to the end of the first row's bucket, whole
                // buckets, rows from the start of the last row's bucket.
                let (first_bucket, last_bucket) = (first_step >> shift, last_step >> shift);
                let bucket_start =
                    |bucket: i64| i64::try_from(i128::from(bucket) << shift).unwrap_or(i64::MAX);
                vec![
                    Span::Rows {
                        after: first_step - 1,
                        through: bucket_start(first_bucket + 1) - 1,
                    },
                    Span::Rollups {
                        shift,
                        after: first_bucket,
                        before: last_bucket,
                    },
                    Span::Rows {
                        after: bucket_start(last_bucket) - 1,
                        through: last_step,
                    },
                ]
            }
            None => vec![Span::Rows {
                after: first_step - 1,
                through: last_step,
            }],
        };
        let read = SeriesRead {
            sampler,
            last,
            seen_first: false,
            held: None,
        };
        (read, spans)
    }

    /// The next row or rollup of the spans.
    pub fn push(&mut self, point: MetricPoint) {
        if !self.seen_first {
            self.seen_first = true;
        } else if let Some(earlier) = self.held.replace(point) {
            self.sampler.push(earlier);
        }
    }

    /// The downsampled series.
    pub fn finish(self) -> Vec<MetricPoint> {
        self.sampler.finish(self.last)
    }
}

/// A step as the databases hold it (a signed 64-bit integer); steps past
/// `i64::MAX` (none is stored) read as the last.
pub(crate) fn step_in_sql(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

/// The downsampled form of a whole series of stored rows: the reference
/// the rollup-reading path of `Store::metric_series_downsampled` is tested
/// against, in each backend.
pub fn downsample(rows: &[MetricPoint], max_points: usize) -> Vec<MetricPoint> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Vec::new();
    };
    if rows.len() <= max_points {
        return rows.to_vec();
    }
    let mut sampler = Downsampler::new(*first, last.step, max_points);
    for row in &rows[1..rows.len() - 1] {
        sampler.push(*row);
    }
    sampler.finish(*last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64, value: f64) -> MetricPoint {
        MetricPoint {
            step,
            value,
            wall_seconds: step as f64 / 1000.0,
            count: 1,
            min: value,
            max: value,
        }
    }

    /// A wavy series of `n` points `spacing` steps apart.
    fn series(n: u64, spacing: u64) -> Vec<MetricPoint> {
        (0..n)
            .map(|i| point(i * spacing, (i as f64 * 0.01).sin()))
            .collect()
    }

    #[test]
    fn a_spike_inside_a_bucket_survives() {
        let mut rows = series(100_000, 7);
        rows[54_321].value = 1e6;
        rows[54_321].min = 1e6;
        rows[54_321].max = 1e6;
        rows[12_345].value = -1e6;
        rows[12_345].min = -1e6;
        rows[12_345].max = -1e6;
        let points = downsample(&rows, 1500);
        let top = points.iter().map(|p| p.max).fold(f64::MIN, f64::max);
        let bottom = points.iter().map(|p| p.min).fold(f64::MAX, f64::min);
        assert_eq!((top, bottom), (1e6, -1e6));
        // The spike's bucket holds other points too: it is a real bucket,
        // and its mean is far below the spike.
        let spiked = points.iter().find(|p| p.max == 1e6).unwrap();
        assert!(spiked.count > 1 && spiked.value < 1e5, "{spiked:?}");
        let spike_step = 54_321 * 7;
        assert!(spiked.step >= spike_step, "{spiked:?}");
    }

    #[test]
    fn at_most_max_points_and_every_point_counted() {
        for (n, spacing, max_points) in [
            (100_000, 7, 1500),
            (100_000, 1, 1500),
            (5_000, 1_000_003, 3),
            (5_000, 3, 4),
            (1_000_000, 37, 1500),
            (20_000, 1, 100_000 / 7),
        ] {
            let rows = series(n, spacing);
            let points = downsample(&rows, max_points);
            assert!(
                points.len() <= max_points,
                "{n} points, {max_points}: {}",
                points.len()
            );
            // A long series uses at least half of what it may.
            assert!(
                points.len() >= max_points.min(n as usize) / 2,
                "{n} points, {max_points}: only {}",
                points.len()
            );
            assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), n);
            assert!(points.windows(2).all(|w| w[0].step < w[1].step));
        }
    }

    #[test]
    fn the_first_and_last_rows_are_kept_as_they_are() {
        let mut rows = series(10_000, 3);
        rows[0] = MetricPoint {
            count: 5,
            min: -2.0,
            max: 9.0,
            ..point(0, 4.0)
        };
        let points = downsample(&rows, 100);
        assert_eq!(points[0], rows[0]);
        assert_eq!(points.last(), rows.last());
        // The second point is a bucket, not the second row.
        assert!(points[1].count > 1);
    }

    #[test]
    fn a_window_rows_min_and_max_are_respected() {
        // Window rows whose means are tame but whose extremes are not.
        let mut rows: Vec<MetricPoint> = (0..50_000u64)
            .map(|i| MetricPoint {
                count: 100,
                min: -1.0,
                max: 1.0,
                ..point(i * 1000, 0.0)
            })
            .collect();
        rows[30_000].max = 500.0;
        rows[40_000].min = -700.0;
        let points = downsample(&rows, 1500);
        let top = points.iter().map(|p| p.max).fold(f64::MIN, f64::max);
        let bottom = points.iter().map(|p| p.min).fold(f64::MAX, f64::min);
        assert_eq!((top, bottom), (500.0, -700.0));
        assert!(points.iter().all(|p| p.value == 0.0));
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 5_000_000);
    }

    #[test]
    fn a_bucket_is_the_mean_at_its_last_step() {
        // Three points per cell: steps 0..9, 3 cells of 3 steps (the first
        // and last rows apart).
        let rows: Vec<MetricPoint> = (0..11).map(|i| point(i, i as f64)).collect();
        let points = downsample(&rows, 5);
        assert_eq!(points.len(), 5);
        let middle = &points[1..4];
        assert_eq!(
            middle.iter().map(|p| p.step).collect::<Vec<_>>(),
            [3, 7, 9],
            "{points:?}"
        );
        // Cells of width 4 from 0: {1, 2, 3}, {4, …, 7}, {8, 9}.
        assert_eq!(middle[0].value, 2.0);
        assert_eq!(middle[1].value, 5.5);
        assert_eq!(middle[2].value, 8.5);
        assert_eq!(middle[1].wall_seconds, rows[7].wall_seconds);
        assert_eq!(
            (middle[1].min, middle[1].max, middle[1].count),
            (4.0, 7.0, 4)
        );
    }

    #[test]
    fn a_tiny_series_is_returned_whole() {
        let rows = series(1500, 10);
        assert_eq!(downsample(&rows, 1500), rows);
        assert_eq!(downsample(&rows[..2], 3), rows[..2]);
        assert_eq!(downsample(&[], 3), []);
    }

    #[test]
    fn the_grid_lines_up_with_the_rollups() {
        // 1M points 37 steps apart in 1500: ~24,667 steps a cell, read from
        // the 4,096-step level.
        let grid = Grid::new(0, 36_999_963, 1500);
        assert_eq!(grid.shift, Some(12));
        assert_eq!(grid.width % (1 << 12), 0);
        assert!(grid.width >= 36_999_964_u64.div_ceil(1498));
        // A series that starts mid-bucket: the origin is the bucket's start.
        let grid = Grid::new(1_000_005, 1_100_000, 1500);
        assert_eq!(grid.shift, Some(4));
        assert_eq!(grid.origin, 1_000_000);
        // Narrower than the finest level: the rows themselves.
        assert_eq!(Grid::new(0, 2_000, 1500).shift, None);
        assert_eq!(Grid::new(0, 2_000, 1500).width, 2);
        // The last level, and steps near the top of the range.
        let grid = Grid::new(0, i64::MAX as u64, 1500);
        assert_eq!(grid.shift, Some(32));
        assert!(grid.cell(i64::MAX as u64) < 1498);
    }
}
