// Several runs side by side: one metric overlaid, runs that differ only in
// their seed grouped into a mean with a band, and a table of the settings
// that differ. Live runs keep extending their lines.

import { api, follow, batched } from './api.js';
import { h, time, statusBadge, routeQuery } from './util.js';
import { Chart, color } from './chart.js';
import { RunMetrics, EPISODE_RETURN, interpolate } from './metrics.js';

export const title = () => 'Compare';

/** Points of a group's mean curve. */
const GRID_POINTS = 300;

/** A spec as `{path: value}`, leaves only (arrays are leaves). */
function flatten(value, prefix = '', out = {}) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const key of Object.keys(value).sort()) flatten(value[key], prefix ? `${prefix}.${key}` : key, out);
  } else {
    out[prefix] = JSON.stringify(value);
  }
  return out;
}

/** The spec without its seed, as one canonical string: runs equal here are seeds of one setting. */
function settingKey(spec) {
  const flat = flatten(spec);
  delete flat.seed;
  return JSON.stringify(Object.entries(flat));
}

/**
 * The mean of several lines on a common x grid, with the spread at each x:
 * standard deviation or min/max. Each run counts only within its own x range.
 */
export function aggregate(lines, band) {
  const live = lines.filter((l) => l.x.length >= 1);
  if (!live.length) return { x: [], y: [], lo: [], hi: [] };
  const start = Math.min(...live.map((l) => l.x[0]));
  const end = Math.max(...live.map((l) => l.x[l.x.length - 1]));
  const n = end > start ? GRID_POINTS : 1;
  const out = { x: [], y: [], lo: [], hi: [] };
  for (let i = 0; i < n; i++) {
    const x = n === 1 ? start : start + ((end - start) * i) / (n - 1);
    const ys = live.filter((l) => x >= l.x[0] && x <= l.x[l.x.length - 1]).map((l) => interpolate(l.x, l.y, x)).filter(Number.isFinite);
    if (!ys.length) continue;
    const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
    let lo;
    let hi;
    if (band === 'minmax') {
      lo = Math.min(...ys);
      hi = Math.max(...ys);
    } else {
      const sd = Math.sqrt(ys.reduce((a, b) => a + (b - mean) ** 2, 0) / ys.length);
      lo = mean - sd;
      hi = mean + sd;
    }
    out.x.push(x);
    out.y.push(mean);
    out.lo.push(lo);
    out.hi.push(hi);
  }
  return out;
}

/** A sweep configuration's varied values as one label. */
function paramsLabel(params) {
  const entries = Object.entries(params || {});
  return entries.length ? entries.map(([path, v]) => `${path}=${JSON.stringify(v)}`).join(', ') : 'the base spec';
}

export function render(main) {
  const query = routeQuery();
  const ids = (query.get('ids') || '').split(',').filter(Boolean);
  const sweepId = query.get('sweep');
  const heading = h('h1', {}, 'Compare runs');
  main.append(heading);
  if (!ids.length && !sweepId) {
    pickRuns(main);
    return undefined;
  }
  // A sweep's runs, grouped by its configurations: id -> {index, label}.
  const configurationOf = new Map();
  const message = h('p', { class: 'error', role: 'alert' });
  const controls = {
    metric: h('select', { id: 'compare-metric' }),
    group: h('input', { id: 'group-seeds', type: 'checkbox', checked: true }),
    band: h('select', { id: 'band' }, h('option', { value: 'std' }, 'mean ± std'), h('option', { value: 'minmax' }, 'min / max')),
    smoothing: h('input', { id: 'compare-smoothing', type: 'range', min: 0, max: 0.99, step: 0.01, value: 0 }),
    xAxis: h('select', { id: 'compare-x' }, h('option', { value: 'step' }, 'env steps'), h('option', { value: 'episode' }, 'episodes'), h('option', { value: 'wall' }, 'wall time')),
  };
  const chartBox = h('div', { class: 'chart' });
  const groupsList = h('ul', { class: 'plain', id: 'compare-groups' });
  const diffTable = h('table', { id: 'compare-diff' });
  main.append(
    h('div', { class: 'toolbar' },
      h('label', { for: 'compare-metric' }, 'Metric', controls.metric),
      h('label', { for: 'group-seeds' }, controls.group, 'Group seeds'),
      h('label', { for: 'band' }, 'Band', controls.band),
      h('label', { for: 'compare-smoothing' }, 'Smoothing', controls.smoothing),
      h('label', { for: 'compare-x' }, 'x-axis', controls.xAxis)),
    message, chartBox,
    h('h2', {}, 'Groups'), groupsList,
    h('h2', {}, 'Settings that differ'), diffTable);
  const chart = new Chart(chartBox, 'compare', { height: 360 });
  const runs = new Map(); // id -> { view, metrics }
  let closed = false;

  const draw = () => {
    const name = controls.metric.value || EPISODE_RETURN;
    const axis = controls.xAxis.value;
    chart.options.xLabel = axis === 'wall' ? 'wall s' : axis === 'episode' ? 'episode' : 'step';
    const groups = new Map();
    // In the order asked for (a sweep's: by configuration, then seed),
    // whatever order the runs loaded in.
    for (const id of ids.filter((i) => runs.has(i))) {
      const run = runs.get(id);
      const configuration = configurationOf.get(id);
      const setting = configuration ? `configuration ${configuration.index}` : settingKey(run.view.spec);
      const key = controls.group.checked ? setting : id;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(id);
    }
    const lines = [];
    groupsList.replaceChildren();
    [...groups.values()].forEach((members, i) => {
      const first = runs.get(members[0]).view;
      const configuration = configurationOf.get(members[0]);
      const seeds = members.length > 1 ? ` (${members.length} seeds)` : `, seed ${first.spec.seed ?? 0}`;
      const label = configuration && controls.group.checked
        ? `${paramsLabel(configuration.params)}${seeds}`
        : members.length > 1 ? `${first.spec.env.id} · ${first.spec.agent.id}${seeds}` : `${members[0]} (${first.spec.agent.id}${seeds})`;
      const memberLines = members.map((id) => runs.get(id).metrics.line(name, axis)).filter(Boolean);
      if (memberLines.length > 1) lines.push({ label, color: color(i), ...aggregate(memberLines, controls.band.value) });
      else if (memberLines.length === 1) lines.push({ ...memberLines[0], label, color: color(i) });
      groupsList.append(h('li', { dataset: { members: members.join(',') } },
        h('span', { style: `color:${color(i)}` }, '■ '), label, ': ',
        members.map((id, k) => [k ? ', ' : '', h('a', { href: `#/runs/${encodeURIComponent(id)}` }, id), ' ', statusBadge(runs.get(id).view.status)])));
    });
    chart.smoothing = Number(controls.smoothing.value);
    chart.setLines(lines);
  };
  for (const c of Object.values(controls)) c.addEventListener('input', () => { if (c === controls.xAxis) chart.shape = ''; draw(); });

  const showDiff = () => {
    const flats = ids.filter((i) => runs.has(i)).map((id) => [id, flatten(runs.get(id).view.spec)]);
    const paths = [...new Set(flats.flatMap(([, f]) => Object.keys(f)))].sort();
    const differing = paths.filter((p) => new Set(flats.map(([, f]) => f[p] ?? '—')).size > 1);
    diffTable.replaceChildren(
      h('thead', {}, h('tr', {}, h('th', {}, 'run'), differing.map((p) => h('th', {}, p)))),
      h('tbody', {}, flats.map(([id, f]) => h('tr', {}, h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(id)}` }, id)), differing.map((p) => h('td', { class: 'mono' }, f[p] ?? '—'))))));
    if (!differing.length) diffTable.replaceChildren(h('caption', { class: 'muted' }, 'The runs have the same spec.'));
  };

  let stop = null;
  (async () => {
    try {
      if (sweepId) {
        const sweep = await api(`/v1/sweeps/${encodeURIComponent(sweepId)}`);
        heading.textContent = `Compare sweep ${sweep.name} (${sweep.id})`;
        for (const c of sweep.configurations) {
          for (const r of c.runs) {
            ids.push(r.id);
            configurationOf.set(r.id, { index: c.index, params: c.params });
          }
        }
      }
      await Promise.all(ids.map(async (id) => {
        const view = await api(`/v1/runs/${encodeURIComponent(id)}`);
        const metrics = new RunMetrics(id);
        await metrics.load();
        runs.set(id, { view, metrics });
      }));
    } catch (e) {
      message.textContent = e.message;
      if (!runs.size) return;
    }
    if (closed) return;
    const names = [...new Set([...runs.values()].flatMap((r) => [...r.metrics.series.keys()]))].sort();
    if (!names.includes(EPISODE_RETURN)) names.unshift(EPISODE_RETURN);
    controls.metric.replaceChildren(...names.map((n) => h('option', { value: n, selected: n === EPISODE_RETURN }, n)));
    controls.group.checked = configurationOf.size > 0 || new Set([...runs.values()].map((r) => settingKey(r.view.spec))).size < runs.size;
    showDiff();
    draw();
    // Live: the runs' metrics and status changes, on one connection.
    const after = Math.min(...[...runs.values()].map((r) => r.metrics.lastEventId));
    const apply = batched((events) => {
      for (const { event, data } of events) {
        const payload = JSON.parse(data);
        const run = runs.get(payload.run_id);
        if (!run) continue;
        if (event === 'metric') run.metrics.add(payload);
        else if (event === 'status') run.view.status = payload.status;
      }
      draw();
    });
    stop = follow(`/v1/events?runs=${[...runs.keys()].map(encodeURIComponent).join(',')}&kinds=metric,status`, apply, { after });
  })();
  return () => {
    closed = true;
    if (stop) stop();
    chart.destroy();
  };
}

/** Without ids: recent sweeps and runs to pick from. */
async function pickRuns(main) {
  const [list, sweeps] = await Promise.all([api('/v1/runs?limit=100'), api('/v1/sweeps')]);
  if (sweeps.sweeps.length) {
    main.append(h('h2', {}, 'Sweeps'), h('ul', { class: 'plain', id: 'compare-sweeps' }, sweeps.sweeps.map((s) => h('li', {},
      h('a', { href: `#/compare?sweep=${encodeURIComponent(s.id)}` }, `${s.name} (${s.id})`),
      h('span', { class: 'muted' }, ` ${s.configurations} configurations, ${time(s.created_at)}`)))),
    h('h2', {}, 'Runs'));
  }
  const chosen = new Set();
  const go = h('button', { class: 'primary', disabled: true, onclick: () => { location.hash = `#/compare?ids=${[...chosen].join(',')}`; } }, 'Compare');
  main.append(
    h('p', { class: 'muted' }, 'Pick runs to compare (or select them in the Runs table).'),
    h('table', {}, h('tbody', {}, list.runs.map((r) => h('tr', {},
      h('td', {}, h('input', { type: 'checkbox', 'aria-label': `select ${r.id}`, onchange: (e) => {
        if (e.target.checked) chosen.add(r.id);
        else chosen.delete(r.id);
        go.disabled = chosen.size === 0;
      } })),
      h('td', {}, r.id), h('td', {}, r.env), h('td', {}, r.agent), h('td', {}, statusBadge(r.status)), h('td', {}, time(r.created_at)))))),
    h('div', { class: 'actions' }, go));
}
