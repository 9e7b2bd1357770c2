// The runs table: every run with its status, progress, speed and latest
// return, filtered in place, kept live by the server-wide event stream.

import { api, follow, batched } from './api.js';
import { h, compact, value, time, statusBadge, progressBar, sparkline, STATUSES, routeQuery } from './util.js';

export const title = () => 'Runs';

/** Most runs the table loads (newest first), in pages of 500. */
const MAX_RUNS = 5000;

export function render(main) {
  const rows = new Map(); // id -> { item, tr, cells }
  const selected = new Set();
  const query = routeQuery();
  const filters = {
    status: h('select', { id: 'filter-status' }, h('option', { value: '' }, 'any'), STATUSES.map((s) => h('option', { value: s }, s))),
    env: h('select', { id: 'filter-env' }, h('option', { value: '' }, 'any')),
    agent: h('select', { id: 'filter-agent' }, h('option', { value: '' }, 'any')),
    text: h('input', { id: 'filter-text', type: 'search', placeholder: 'id, env, agent…', value: query.get('q') || '' }),
  };
  const compareButton = h('button', { id: 'compare-selected', disabled: true, onclick: () => { location.hash = `#/compare?ids=${[...selected].join(',')}`; } }, 'Compare selected');
  const count = h('span', { class: 'muted', id: 'runs-count' });
  const tbody = h('tbody');
  const table = h('table', { id: 'runs-table' },
    h('thead', {}, h('tr', {},
      h('th', {}, h('span', { class: 'visually-hidden' }, 'select')),
      h('th', {}, 'id'), h('th', {}, 'env'), h('th', {}, 'agent'), h('th', {}, 'status'),
      h('th', {}, 'progress'), h('th', { class: 'num' }, 'steps/s'), h('th', { class: 'num', title: 'mean return of the last 100 training episodes' }, 'mean return'), h('th', {}, h('span', { class: 'visually-hidden' }, 'returns')),
      h('th', {}, 'created'), h('th', {}, 'finished'))),
    tbody);
  const empty = h('p', { class: 'empty', hidden: true }, 'No runs yet. ', h('a', { href: '#/launch' }, 'Launch one.'));
  main.append(
    h('h1', {}, 'Runs'),
    h('div', { class: 'toolbar', role: 'search' },
      h('label', { for: 'filter-status' }, 'Status', filters.status),
      h('label', { for: 'filter-env' }, 'Env', filters.env),
      h('label', { for: 'filter-agent' }, 'Agent', filters.agent),
      h('label', { for: 'filter-text' }, 'Search', filters.text),
      count, compareButton, h('a', { class: 'button', href: '#/launch' }, 'Launch a run')),
    table, empty);

  const matches = (item) => {
    const f = { status: filters.status.value, env: filters.env.value, agent: filters.agent.value, text: filters.text.value.trim().toLowerCase() };
    if (f.status && item.status !== f.status) return false;
    if (f.env && item.env !== f.env) return false;
    if (f.agent && item.agent !== f.agent) return false;
    if (f.text && !`${item.id} ${item.env} ${item.agent} ${item.status}`.toLowerCase().includes(f.text)) return false;
    return true;
  };
  const applyFilters = () => {
    let shown = 0;
    for (const { item, tr } of rows.values()) {
      const show = matches(item);
      tr.hidden = !show;
      if (show) shown += 1;
    }
    count.textContent = `${shown} of ${rows.size} runs`;
    empty.hidden = rows.size > 0;
  };
  for (const input of Object.values(filters)) input.addEventListener('input', applyFilters);

  const options = { env: new Set(), agent: new Set() };
  const addOption = (kind, name) => {
    if (options[kind].has(name)) return;
    options[kind].add(name);
    const select = filters[kind];
    const after = [...select.options].slice(1).find((o) => o.value > name);
    select.insertBefore(h('option', { value: name }, name), after || null);
  };

  const fillRow = (entry) => {
    const { item, cells } = entry;
    cells.status.replaceChildren(statusBadge(item.status));
    cells.progress.replaceChildren(progressBar(item.fraction), ' ', h('span', { class: 'muted' }, `${compact(item.steps)} steps`));
    cells.speed.textContent = item.status === 'running' && item.steps_per_second ? compact(item.steps_per_second) : '–';
    cells.ret.textContent = value(item.mean_return_100);
    cells.spark.replaceChildren(sparkline(item.returns || []));
    cells.finished.textContent = time(item.finished_at);
  };

  const addRow = (item, { first = false } = {}) => {
    if (rows.has(item.id)) return;
    const box = h('input', { type: 'checkbox', 'aria-label': `select ${item.id}`, onchange: (e) => {
      if (e.target.checked) selected.add(item.id);
      else selected.delete(item.id);
      compareButton.disabled = selected.size === 0;
    } });
    const cells = { status: h('td'), progress: h('td'), speed: h('td', { class: 'num' }), ret: h('td', { class: 'num' }), spark: h('td'), finished: h('td') };
    const tr = h('tr', { dataset: { run: item.id } },
      h('td', {}, box),
      h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(item.id)}` }, item.id)),
      h('td', {}, item.env), h('td', {}, item.agent),
      cells.status, cells.progress, cells.speed, cells.ret, cells.spark,
      h('td', {}, time(item.created_at)), cells.finished);
    const entry = { item, tr, cells };
    rows.set(item.id, entry);
    fillRow(entry);
    if (first) tbody.prepend(tr);
    else tbody.append(tr);
    addOption('env', item.env);
    addOption('agent', item.agent);
    tr.hidden = !matches(item);
  };

  let stop = null;
  let closed = false;
  (async () => {
    let cursor = null;
    let lastEvent = null;
    let timed = false;
    try {
      do {
        const page = await api(`/v1/runs?limit=500&sparklines=true${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        if (closed) return;
        if (lastEvent === null) lastEvent = page.last_event_id;
        for (const item of page.runs) addRow(item);
        cursor = page.next_cursor;
        applyFilters();
        if (!timed) {
          // For benches: when the first page of rows is on screen.
          timed = true;
          const stats = (window.__rlLab = window.__rlLab || { charts: {} });
          requestAnimationFrame(() => { stats.runsTableRendered = performance.now(); stats.runsTableRows = rows.size; });
        }
      } while (cursor && rows.size < MAX_RUNS);
    } catch (e) {
      main.append(h('p', { class: 'error', role: 'alert' }, `Could not list runs: ${e.message}`));
      return;
    }
    // Live: status changes from the store (resumed by id), progress of
    // running runs once a second. Applied in one batch per frame.
    const apply = batched((events) => {
      const unknown = new Set();
      for (const { event, data } of events) {
        const change = JSON.parse(data);
        const entry = rows.get(change.run_id);
        if (!entry) {
          if (event === 'status') unknown.add(change.run_id);
          continue;
        }
        if (event === 'status') {
          entry.item.status = change.status;
          // A resumed run is running again: it has not finished.
          entry.item.finished_at = ['queued', 'running'].includes(change.status) ? null : change.at;
          if (change.status === 'completed') entry.item.fraction = 1;
        } else if (event === 'progress') {
          Object.assign(entry.item, { steps: change.steps, episodes: change.episodes, steps_per_second: change.steps_per_second, fraction: change.fraction });
          // The sparkline stays as loaded: it shows episode returns, and
          // the live figure is a 100-episode mean, another quantity.
          if (change.mean_return_100 !== undefined && change.mean_return_100 !== null) entry.item.mean_return_100 = change.mean_return_100;
        }
        fillRow(entry);
        entry.tr.hidden = !matches(entry.item);
      }
      for (const id of unknown) {
        api(`/v1/runs/${encodeURIComponent(id)}`).then((run) => {
          if (closed) return;
          addRow({ id: run.id, status: run.status, env: run.spec.env.id, agent: run.spec.agent.id, created_at: run.created_at, started_at: run.started_at, finished_at: run.finished_at, steps: run.progress.steps, episodes: run.progress.episodes, fraction: run.progress.fraction, steps_per_second: run.progress.steps_per_second }, { first: true });
          applyFilters();
        }).catch(() => {});
      }
      applyFilters();
    });
    const connection = document.getElementById('connection');
    stop = follow('/v1/events', apply, {
      after: lastEvent,
      onState: (state) => { connection.textContent = state === 'open' ? 'live' : state === 'retrying' ? 'reconnecting…' : ''; },
    });
  })();
  return () => {
    closed = true;
    if (stop) stop();
    document.getElementById('connection').textContent = '';
  };
}
