// A run's metric series in the browser: loaded downsampled, then extended
// by the run's live `metric` events, and turned into chart lines on the
// x-axis the user picked (env steps, episodes, or wall time).

import { api } from './api.js';

/** Points a series is read with, as TensorBoard and W&B show about as many. */
export const MAX_POINTS = 1500;

export const EPISODE_RETURN = 'rollout/episode_return';
const EPISODE_LENGTH = 'rollout/episode_length';
const EPSILON = 'rollout/epsilon';

/** One series, columnar as the server sends it. */
function emptySeries() {
  return { step: [], value: [], wall_seconds: [], min: [], max: [], count: [] };
}

/**
 * The points a live `metric` event (a `metrics.jsonl` record) adds, by
 * series name: an episode gives its return, length and ε; a merged window
 * its means with their min, max and count; a scalar its value.
 */
export function pointsOf(record) {
  const one = (v) => ({ value: v, min: v, max: v, count: 1 });
  const merged = (a, count) => ({ value: a.mean, min: a.min, max: a.max, count });
  const at = { step: record.step, wall_seconds: record.wall_seconds ?? null };
  switch (record.kind) {
    case 'episode': {
      const out = { [EPISODE_RETURN]: { ...at, ...one(record.return) }, [EPISODE_LENGTH]: { ...at, ...one(record.length) } };
      if (record.epsilon !== null && record.epsilon !== undefined) out[EPSILON] = { ...at, ...one(record.epsilon) };
      return out;
    }
    case 'episodes': {
      const out = { [EPISODE_RETURN]: { ...at, ...merged(record.return, record.count) }, [EPISODE_LENGTH]: { ...at, ...merged(record.length, record.count) } };
      if (record.epsilon) out[EPSILON] = { ...at, ...merged(record.epsilon, record.count) };
      return out;
    }
    case 'scalar':
      return { [record.name]: { ...at, ...one(record.value) } };
    case 'scalar_window':
      return { [record.name]: { ...at, ...merged(record, record.count) } };
    default:
      return {};
  }
}

export class RunMetrics {
  constructor(runId) {
    this.runId = runId;
    this.series = new Map();
    this.lastEventId = null;
  }

  /** Every series, downsampled; remembers the last event id of the same read. */
  async load(names = null) {
    const q = names ? `&name=${names.map(encodeURIComponent).join(',')}` : '';
    const reply = await api(`/v1/runs/${encodeURIComponent(this.runId)}/metrics?max_points=${MAX_POINTS}${q}`);
    for (const [name, s] of Object.entries(reply.metrics)) this.series.set(name, s);
    if (this.lastEventId === null) this.lastEventId = reply.last_event_id;
    return reply;
  }

  /** Adds a live record's points; returns the names it touched. */
  add(record) {
    const touched = [];
    for (const [name, p] of Object.entries(pointsOf(record))) {
      let s = this.series.get(name);
      if (!s) {
        s = emptySeries();
        this.series.set(name, s);
      }
      // A resumed run replays from its checkpoint: drop what it replaces.
      let keep = s.step.length;
      while (keep > 0 && s.step[keep - 1] >= p.step) keep -= 1;
      if (keep < s.step.length) for (const column of Object.values(s)) column.length = keep;
      s.step.push(p.step);
      s.value.push(p.value);
      s.wall_seconds.push(p.wall_seconds);
      s.min.push(p.min);
      s.max.push(p.max);
      s.count.push(p.count);
      touched.push(name);
    }
    return touched;
  }

  /** Names that grew past what a chart needs, to read again downsampled. */
  oversized() {
    return [...this.series].filter(([, s]) => s.step.length > 3 * MAX_POINTS).map(([name]) => name);
  }

  /** Reads `names` again downsampled, keeping live points past the read. */
  async reload(names) {
    const before = new Map(names.map((n) => [n, this.series.get(n)]));
    const reply = await api(`/v1/runs/${encodeURIComponent(this.runId)}/metrics?max_points=${MAX_POINTS}&name=${names.map(encodeURIComponent).join(',')}`);
    for (const [name, fresh] of Object.entries(reply.metrics)) {
      const old = before.get(name);
      const last = fresh.step.length ? fresh.step[fresh.step.length - 1] : -1;
      const current = this.series.get(name);
      if (current === old && old) {
        for (let i = 0; i < old.step.length; i++) {
          if (old.step[i] <= last) continue;
          for (const key of Object.keys(fresh)) fresh[key].push(old[key][i]);
        }
      }
      this.series.set(name, fresh);
    }
  }

  /** Episodes finished by each point of the return series: its running count. */
  episodeIndex() {
    const s = this.series.get(EPISODE_RETURN);
    if (!s) return null;
    const steps = s.step;
    const episodes = [];
    let total = 0;
    for (const c of s.count) {
      total += c || 1;
      episodes.push(total);
    }
    return { steps, episodes };
  }

  /**
   * `name` as a chart line on `xAxis` ('step' | 'episode' | 'wall'), with
   * a min/max band where points stand for merged windows or buckets.
   */
  line(name, xAxis, label = name) {
    const s = this.series.get(name);
    if (!s) return null;
    let x = s.step;
    if (xAxis === 'wall') x = s.wall_seconds.map((w) => (w === null ? NaN : w));
    if (xAxis === 'episode') {
      const index = this.episodeIndex();
      x = index ? s.step.map((step) => interpolate(index.steps, index.episodes, step)) : s.step;
    }
    // uPlot needs x increasing: drop points whose x does not advance.
    const keep = [];
    let lastX = -Infinity;
    for (let i = 0; i < x.length; i++) {
      if (Number.isFinite(x[i]) && x[i] > lastX) {
        keep.push(i);
        lastX = x[i];
      }
    }
    const pick = (column) => keep.map((i) => column[i]);
    const merged = s.count.some((c) => c > 1);
    return { label, x: pick(x), y: pick(s.value), lo: merged ? pick(s.min) : null, hi: merged ? pick(s.max) : null };
  }
}

/** y at `x` on the polyline (xs, ys), xs increasing; clamped at the ends. */
export function interpolate(xs, ys, x) {
  if (!xs.length) return NaN;
  if (x <= xs[0]) return ys[0];
  if (x >= xs[xs.length - 1]) return ys[ys.length - 1];
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid;
    else hi = mid;
  }
  const t = (x - xs[lo]) / (xs[hi] - xs[lo] || 1);
  return ys[lo] + t * (ys[hi] - ys[lo]);
}
