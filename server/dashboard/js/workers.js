// The processes that execute runs: this server, other servers and
// `rl-lab worker` processes sharing its store, each with its last
// heartbeat and the runs it holds. Refreshed every few seconds, since a
// heartbeat is a row, not an event.

import { api } from './api.js';
import { h, time } from './util.js';

// This server, or one of the local worker processes it started (named
// after it: `SERVER.1`, `SERVER.2`, …), which execute its runs.
function role(name, server) {
  if (name === server) return h('span', { class: 'muted' }, ' (this server)');
  if (name.startsWith(`${server}.`)) return h('span', { class: 'muted' }, ' (this server\'s local worker)');
  return null;
}

export const title = () => 'Workers';

/** How often the list is read again. */
const REFRESH_MS = 2000;

/** Seconds as "4 s ago" / "3 min ago". */
function ago(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  const s = Math.max(0, seconds);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function render(main) {
  const message = h('p', { class: 'error', role: 'alert', id: 'workers-message' });
  const summary = h('p', { class: 'muted', id: 'workers-summary' });
  const tbody = h('tbody');
  main.append(
    h('h1', {}, 'Workers'),
    summary, message,
    h('table', { id: 'workers-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'name'), h('th', {}, 'host'), h('th', { class: 'num' }, 'pid'), h('th', { class: 'num' }, 'slots'),
        h('th', {}, 'last heartbeat'), h('th', {}, 'started'), h('th', {}, 'runs'))),
      tbody));
  let closed = false;
  let timer = null;
  const load = async () => {
    try {
      const list = await api('/v1/workers');
      if (closed) return;
      message.textContent = '';
      // Ages from the newest heartbeat's clock (the database's), not the
      // browser's, which may be set differently.
      const newest = Math.max(...list.workers.map((w) => w.heartbeat_at), 0);
      const busy = list.workers.filter((w) => w.runs.length).length;
      summary.textContent = `${list.workers.length} worker${list.workers.length === 1 ? '' : 's'}, ${busy} running something; this server is ${list.server}.`;
      tbody.replaceChildren(...list.workers.map((w) => h('tr', { dataset: { worker: w.name } },
        h('td', { class: 'mono' }, w.name, role(w.name, list.server)),
        h('td', {}, w.host), h('td', { class: 'num' }, String(w.pid)), h('td', { class: 'num' }, String(w.slots)),
        h('td', { class: 'heartbeat', title: time(w.heartbeat_at) }, ago(newest - w.heartbeat_at)),
        h('td', {}, time(w.started_at)),
        h('td', {}, w.runs.length
          ? w.runs.map((id, k) => [k ? ', ' : '', h('a', { href: `#/runs/${encodeURIComponent(id)}` }, id)])
          : h('span', { class: 'muted' }, 'idle')))));
    } catch (e) {
      if (!closed) message.textContent = e.message;
    }
    if (!closed) timer = setTimeout(load, REFRESH_MS);
  };
  load();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
  };
}
