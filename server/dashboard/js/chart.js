// Line charts over uPlot: several lines on one x-axis, each optionally with
// a band (a bucket's min/max, or a seed group's spread), smoothing, a log
// y-axis, drag-to-zoom (double-click to reset) and a legend that reads the
// values under the cursor.
//
// uPlot draws what it is given and nothing more, so smoothing and aligning
// lines of different x values are done here.

const STYLE = getComputedStyle(document.documentElement);

/** The i-th series colour of the palette (light or dark). */
export function color(i) {
  return STYLE.getPropertyValue(`--series-${i % 8}`).trim() || '#1f63d6';
}

function alpha(hex, a) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

/**
 * TensorBoard's smoothing: an exponential moving average with weight `w`,
 * debiased by `1 - w^n` so the first points are not pulled towards zero.
 * Non-finite points pass through and do not count.
 */
export function smooth(ys, w) {
  if (!(w > 0)) return ys;
  const out = new Array(ys.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || !Number.isFinite(y)) {
      out[i] = y;
      continue;
    }
    last = last * w + (1 - w) * y;
    n += 1;
    out[i] = last / (1 - w ** n);
  }
  return out;
}

/** Every chart on the page by its id, for tests to read their data. */
const registry = (window.__rlLab = window.__rlLab || { charts: {} }).charts;

export class Chart {
  /**
   * `container` gets the chart; `id` names it in `window.__rlLab.charts`.
   * `options.xLabel`, `options.xTime` (x is wall seconds).
   */
  constructor(container, id, options = {}) {
    this.container = container;
    this.id = id;
    this.options = options;
    this.lines = [];
    this.smoothing = 0;
    this.logY = false;
    this.plot = null;
    this.shape = '';
    this.zoomed = false;
    registry[id] = this;
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize(this.size());
    });
    this.resize.observe(container);
  }

  size() {
    return { width: Math.max(200, this.container.clientWidth - 4), height: this.options.height || 220 };
  }

  /**
   * `lines`: `[{label, x, y, lo?, hi?, color?}]`, each x increasing. Lines
   * with `lo` and `hi` get a band between them.
   */
  setLines(lines) {
    this.lines = lines;
    this.draw();
  }

  setSmoothing(w) {
    this.smoothing = w;
    this.draw();
  }

  setLogY(on) {
    this.logY = on;
    this.shape = '';
    this.draw();
  }

  /** Whether every value is positive, so a log axis can show them. */
  canLog() {
    return this.lines.some((l) => l.y.length) && this.lines.every((l) => l.y.every((y) => y === null || !Number.isFinite(y) || y > 0) && (!l.lo || l.lo.every((y) => !Number.isFinite(y) || y > 0)));
  }

  /** Points drawn, over every line (what a test reads). */
  points() {
    return this.lines.reduce((n, l) => n + l.x.length, 0);
  }

  /** The data as drawn: `[{label, x, y}]` (y smoothed). */
  data() {
    return this.lines.map((l) => ({ label: l.label, x: [...l.x], y: smooth(l.y, this.smoothing), lo: l.lo ? [...l.lo] : null, hi: l.hi ? [...l.hi] : null }));
  }

  draw() {
    const lines = this.lines;
    const w = this.smoothing;
    // Series per line: the smoothed line, and with smoothing the raw line
    // faintly; with a band, its low and high edges (not in the legend).
    const tables = [];
    const series = [{ label: this.options.xLabel || 'step', value: this.options.xTime ? (u, v) => (v === null ? '–' : `${v.toFixed(1)} s`) : undefined }];
    const bands = [];
    const bandEdges = new Set();
    lines.forEach((line, i) => {
      const c = line.color || color(i);
      const columns = [line.x, smooth(line.y, w)];
      series.push({ label: line.label, stroke: c, width: 1.5, spanGaps: true, points: { show: line.x.length < 60 } });
      if (w > 0) {
        columns.push(line.y);
        series.push({ label: `${line.label} (raw)`, stroke: alpha(c, 0.25), width: 1, spanGaps: true, points: { show: false } });
      }
      if (line.lo && line.hi) {
        columns.push(line.hi, line.lo);
        series.push({ label: `${line.label} max`, stroke: alpha(c, 0.0), width: 0, points: { show: false }, spanGaps: true });
        series.push({ label: `${line.label} min`, stroke: alpha(c, 0.0), width: 0, points: { show: false }, spanGaps: true });
        bands.push({ series: [series.length - 2, series.length - 1], fill: alpha(c, 0.15) });
        bandEdges.add(series.length - 2).add(series.length - 1);
      }
      tables.push(columns);
    });
    const data = tables.length ? uPlot.join(tables) : [[]];
    const shape = `${series.map((s) => s.label).join('|')}#${this.logY}`;
    if (!this.plot || shape !== this.shape) {
      if (this.plot) this.plot.destroy();
      this.container.replaceChildren();
      this.shape = shape;
      this.zoomed = false;
      const chart = this;
      this.plot = new uPlot(
        {
          ...this.size(),
          series,
          bands,
          legend: { live: true },
          cursor: { drag: { x: true, y: false } },
          scales: { x: { time: false }, y: { distr: this.logY ? 3 : 1 } },
          axes: [
            { stroke: STYLE.getPropertyValue('--muted').trim(), grid: { stroke: STYLE.getPropertyValue('--line').trim() } },
            { stroke: STYLE.getPropertyValue('--muted').trim(), grid: { stroke: STYLE.getPropertyValue('--line').trim() }, size: 60 },
          ],
          hooks: {
            setSelect: [() => { chart.zoomed = true; }],
            ready: [(u) => u.over.addEventListener('dblclick', () => { chart.zoomed = false; })],
          },
        },
        data,
        this.container,
      );
      // The legend's table rows are the series: hide the band edges there.
      this.plot.root.querySelectorAll('.u-legend .u-series').forEach((row, i) => {
        if (bandEdges.has(i)) row.style.display = 'none';
      });
    } else {
      this.plot.setData(data, !this.zoomed);
    }
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
    if (registry[this.id] === this) delete registry[this.id];
  }
}
