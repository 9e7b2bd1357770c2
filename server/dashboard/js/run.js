// One run: live curves of every metric series, and beside them the spec,
// the status history, the log tail, the artefacts and the run's controls.

import { api, follow, batched, download, fetchFile } from './api.js';
import { h, compact, value, time, statusBadge, progressBar } from './util.js';
import { Chart } from './chart.js';
import { RunMetrics } from './metrics.js';

export const title = (id) => `Run ${id}`;

/** Log lines the tail keeps. */
const LOG_TAIL = 300;

/** Series whose values span decades, shown on a log axis by default. */
const LOG_BY_DEFAULT = new Set(['train/loss', 'plan/delta']);

export function render(main, id) {
  const enc = encodeURIComponent(id);
  const cleanups = [];
  let closed = false;

  const header = h('div', { class: 'toolbar', id: 'run-header' });
  const message = h('p', { class: 'error', role: 'alert', id: 'run-message' });
  const controls = {
    smoothing: h('input', { id: 'smoothing', type: 'range', min: 0, max: 0.99, step: 0.01, value: 0 }),
    smoothingValue: h('output', { for: 'smoothing' }, '0.00'),
    xAxis: h('select', { id: 'x-axis' }, h('option', { value: 'step' }, 'env steps'), h('option', { value: 'episode' }, 'episodes'), h('option', { value: 'wall' }, 'wall time')),
  };
  const charts = h('div', { class: 'charts', id: 'charts' });
  const side = {
    spec: h('pre', { id: 'run-spec' }),
    history: h('ul', { class: 'plain', id: 'status-history' }),
    log: h('div', { class: 'log mono', id: 'log-tail', 'aria-live': 'off' }),
    artifacts: h('ul', { class: 'plain', id: 'artifacts' }),
    evaluation: h('div', { id: 'evaluation' }),
  };
  const episodesInput = h('input', { id: 'eval-episodes', type: 'number', min: 1, max: 10000, value: 10, style: 'width:6em' });
  const buttons = {
    cancel: h('button', { id: 'cancel', class: 'danger' }, 'Cancel'),
    resume: h('button', { id: 'resume' }, 'Resume'),
    del: h('button', { id: 'delete', class: 'danger' }, 'Delete'),
    evaluate: h('button', { id: 'evaluate' }, 'Evaluate'),
    replay: h('a', { class: 'button', id: 'replay', href: `#/runs/${enc}/replay` }, 'Replay'),
  };
  main.append(
    h('p', {}, h('a', { href: '#/runs' }, '← Runs')),
    h('h1', {}, 'Run ', h('span', { class: 'mono' }, id)),
    header, message,
    h('div', { class: 'actions' }, buttons.cancel, buttons.resume, buttons.del,
      h('label', { for: 'eval-episodes' }, 'Episodes'), episodesInput, buttons.evaluate, buttons.replay),
    h('div', { class: 'grid' },
      h('section', { 'aria-label': 'Curves' },
        h('div', { class: 'toolbar' },
          h('label', { for: 'smoothing' }, 'Smoothing', controls.smoothing, controls.smoothingValue),
          h('label', { for: 'x-axis' }, 'x-axis', controls.xAxis)),
        charts),
      h('aside', {},
        h('section', { class: 'panel' }, h('h2', {}, 'Evaluation'), side.evaluation),
        h('section', { class: 'panel' }, h('h2', {}, 'Status history'), side.history),
        h('section', { class: 'panel' }, h('h2', {}, 'Log'), side.log),
        h('section', { class: 'panel' }, h('h2', {}, 'Artefacts'), side.artifacts),
        h('section', { class: 'panel' }, h('h2', {}, 'Spec'), side.spec))));

  let view = null;
  const showHeader = () => {
    const p = view.progress;
    const budget = p.budget ? Object.entries(p.budget).map(([k, v]) => `${compact(v)} ${k}`).join('') : '';
    header.replaceChildren(
      statusBadge(view.status),
      h('span', {}, `${view.spec.env.id} · ${view.spec.agent.id} · seed ${view.spec.seed ?? 0}`),
      progressBar(p.fraction),
      h('span', { id: 'run-progress', class: 'muted' }, `${compact(p.steps)} steps, ${compact(p.episodes)} episodes${budget ? ` of ${budget}` : ''}`),
      view.status === 'running' && p.steps_per_second ? h('span', { class: 'muted' }, `${compact(p.steps_per_second)} steps/s`) : null,
      view.worker ? h('span', { class: 'muted', id: 'run-worker' }, `${view.status === 'running' ? 'on' : 'last on'} `, h('a', { href: '#/workers' }, view.worker), view.attempts > 1 ? ` (attempt ${view.attempts})` : '') : null);
    const active = view.status === 'queued' || view.status === 'running';
    buttons.cancel.disabled = !active;
    buttons.resume.disabled = !['interrupted', 'cancelled', 'failed'].includes(view.status);
    buttons.del.disabled = view.status === 'running';
    side.history.replaceChildren(...view.status_history.map((c) => h('li', {}, statusBadge(c.status), ' ', time(c.at), c.error ? h('div', { class: 'error' }, c.error) : null)));
  };

  // Charts: one per series, in a stable order (episode series first).
  const metrics = new RunMetrics(id);
  const chartOf = new Map();
  const order = (a, b) => (a.startsWith('rollout/') === b.startsWith('rollout/') ? a.localeCompare(b) : a.startsWith('rollout/') ? -1 : 1);
  const ensureChart = (name) => {
    if (chartOf.has(name)) return chartOf.get(name);
    const body = h('div');
    const logBox = h('input', { type: 'checkbox', id: `log-${name}`, 'aria-label': `log scale for ${name}` });
    const panel = h('div', { class: 'chart', dataset: { series: name } },
      h('h3', {}, h('span', {}, name), h('label', {}, logBox, ' log')),
      body);
    const names = [...chartOf.keys(), name].sort(order);
    const next = names[names.indexOf(name) + 1];
    charts.insertBefore(panel, next ? chartOf.get(next).panel : null);
    const chart = new Chart(body, name, { xLabel: 'step' });
    chart.smoothing = Number(controls.smoothing.value);
    const entry = { chart, panel, logBox, wantLog: LOG_BY_DEFAULT.has(name) };
    logBox.addEventListener('change', () => {
      entry.wantLog = logBox.checked;
      chart.setLogY(logBox.checked && chart.canLog());
    });
    chartOf.set(name, entry);
    cleanups.push(() => chart.destroy());
    return entry;
  };
  const redraw = (names) => {
    const axis = controls.xAxis.value;
    for (const name of names) {
      const entry = ensureChart(name);
      const line = metrics.line(name, axis, name);
      entry.chart.options.xLabel = axis === 'wall' ? 'wall s' : axis === 'episode' ? 'episode' : 'step';
      entry.chart.options.xTime = axis === 'wall';
      entry.chart.lines = line ? [line] : [];
      const canLog = entry.chart.canLog();
      entry.logBox.disabled = !canLog;
      entry.logBox.checked = entry.wantLog && canLog;
      if (entry.chart.logY !== entry.logBox.checked) entry.chart.logY = entry.logBox.checked;
      entry.chart.draw();
    }
  };
  controls.smoothing.addEventListener('input', () => {
    controls.smoothingValue.textContent = Number(controls.smoothing.value).toFixed(2);
    for (const { chart } of chartOf.values()) chart.setSmoothing(Number(controls.smoothing.value));
  });
  controls.xAxis.addEventListener('change', () => {
    for (const { chart } of chartOf.values()) chart.shape = '';
    redraw([...metrics.series.keys()]);
  });

  const logLine = (line) => {
    const level = (line.level || '').toLowerCase();
    const fields = line.fields && Object.keys(line.fields).length ? ` ${JSON.stringify(line.fields)}` : '';
    side.log.append(h('div', { class: level === 'warn' ? 'warn' : level === 'error' ? 'error' : null }, `${time(line.time)} ${line.level || ''} ${line.message || ''}${fields}`));
    while (side.log.childElementCount > LOG_TAIL) side.log.firstElementChild.remove();
    side.log.scrollTop = side.log.scrollHeight;
  };

  const loadArtifacts = async () => {
    const list = await api(`/v1/runs/${enc}/artifacts`);
    side.artifacts.replaceChildren(...list.artifacts.map((a) => h('li', {},
      h('a', { href: `/v1/runs/${enc}/artifacts/${encodeURIComponent(a.name)}`, onclick: (e) => {
        e.preventDefault();
        download(`/v1/runs/${enc}/artifacts/${encodeURIComponent(a.name)}`, a.name.split('/').pop()).catch((err) => { message.textContent = err.message; });
      } }, a.name), ` `, h('span', { class: 'muted' }, compact(a.bytes), ' B'))));
  };

  const act = async (button, work) => {
    message.textContent = '';
    button.disabled = true;
    try {
      await work();
    } catch (e) {
      message.textContent = e.message;
    } finally {
      if (!closed && view) showHeader();
    }
  };
  buttons.cancel.addEventListener('click', () => act(buttons.cancel, async () => {
    const reply = await api(`/v1/runs/${enc}/cancel`, { method: 'POST' });
    view.status = reply.status;
  }));
  buttons.resume.addEventListener('click', () => act(buttons.resume, async () => {
    const reply = await api(`/v1/runs/${enc}/resume`, { method: 'POST' });
    view.status = reply.status;
  }));
  buttons.del.addEventListener('click', () => act(buttons.del, async () => {
    if (!confirm(`Delete run ${id} and its files?`)) return;
    await api(`/v1/runs/${enc}`, { method: 'DELETE' });
    location.hash = '#/runs';
  }));
  buttons.evaluate.addEventListener('click', () => act(buttons.evaluate, async () => {
    side.evaluation.textContent = 'Evaluating…';
    try {
      const r = await api(`/v1/runs/${enc}/evaluate`, { method: 'POST', body: { episodes: Number(episodesInput.value) } });
      side.evaluation.replaceChildren(
        h('div', { id: 'eval-result' }, `${r.episodes} episodes of the ${r.policy} policy at ${compact(r.trained_steps)} steps: mean return `, h('strong', {}, value(r.mean_return)), `, mean length ${value(r.mean_length)}`));
    } catch (e) {
      side.evaluation.textContent = '';
      throw e;
    }
  }));

  (async () => {
    try {
      view = await api(`/v1/runs/${enc}`);
    } catch (e) {
      message.textContent = e.status === 404 ? `No run ${id}.` : e.message;
      return;
    }
    if (closed) return;
    showHeader();
    side.spec.textContent = JSON.stringify(view.spec, null, 2);
    const [, logs] = await Promise.all([
      metrics.load().then(() => {
        redraw([...metrics.series.keys()]);
        // For benches: when every series' chart is first drawn.
        const stats = (window.__rlLab = window.__rlLab || { charts: {} });
        requestAnimationFrame(() => { stats.runChartsRendered = performance.now(); });
      }),
      fetchLogs(enc),
      loadArtifacts().catch(() => {}),
    ]).catch((e) => { message.textContent = e.message; return []; });
    if (closed) return;
    for (const line of logs || []) logLine(line);
    if (!metrics.series.size) charts.append(h('p', { class: 'empty', id: 'no-metrics' }, 'No metrics yet.'));

    // Live: every event after the metrics' snapshot, applied once a frame.
    const apply = batched((events) => {
      const touched = new Set();
      let statusChanged = false;
      for (const { event, data } of events) {
        const payload = JSON.parse(data);
        if (event === 'metric') {
          for (const name of metrics.add(payload)) touched.add(name);
        } else if (event === 'log') {
          logLine(payload);
        } else if (event === 'status') {
          view.status = payload.status;
          view.status_history.push({ status: payload.status, at: payload.at, error: payload.error });
          statusChanged = true;
        } else if (event === 'progress') {
          Object.assign(view.progress, { steps: payload.steps, episodes: payload.episodes, steps_per_second: payload.steps_per_second, fraction: payload.fraction });
        }
      }
      if (touched.size) {
        const none = document.getElementById('no-metrics');
        if (none) none.remove();
        redraw([...touched]);
      }
      showHeader();
      if (statusChanged) {
        loadArtifacts().catch(() => {});
        api(`/v1/runs/${enc}`).then((fresh) => { if (!closed) { view = fresh; showHeader(); } }).catch(() => {});
      }
      const big = metrics.oversized();
      if (big.length) metrics.reload(big).then(() => { if (!closed) redraw(big); }).catch(() => {});
    });
    const connection = document.getElementById('connection');
    cleanups.push(follow(`/v1/events?runs=${enc}&kinds=status,progress,metric,log`, apply, {
      after: metrics.lastEventId,
      onState: (state) => { connection.textContent = state === 'open' ? 'live' : state === 'retrying' ? 'reconnecting…' : ''; },
    }));
  })();

  return () => {
    closed = true;
    for (const c of cleanups) c();
    document.getElementById('connection').textContent = '';
  };
}

/** The run's log lines so far, as JSON lines. */
async function fetchLogs(enc) {
  const text = await (await fetchFile(`/v1/runs/${enc}/logs`)).text();
  return text.split('\n').filter(Boolean).slice(-LOG_TAIL).map((line) => JSON.parse(line));
}
