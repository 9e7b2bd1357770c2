// Small DOM and formatting helpers shared by the pages.

/**
 * Makes an element: `h('a', {href: '#/runs', class: 'x'}, 'text', child)`.
 * Attributes starting with `on` are listeners; `null`/`false` ones are left
 * out; children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name === 'value') node.value = value;
    else if (name === 'checked') node.checked = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** A number as people read it: 1234567 as "1.23 M". */
export function compact(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const abs = Math.abs(x);
  if (abs >= 1e9) return `${(x / 1e9).toFixed(2)} G`;
  if (abs >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (abs >= 1e4) return `${(x / 1e3).toFixed(1)} k`;
  if (Number.isInteger(x)) return String(x);
  return x.toPrecision(4);
}

/** A metric value with four significant digits. */
export function value(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return Math.abs(x) >= 1e4 || Number.isInteger(x) ? compact(x) : x.toPrecision(4);
}

/** Unix seconds as local date and time. */
export function time(seconds) {
  if (!seconds) return '–';
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function statusBadge(status) {
  return h('span', { class: `status status-${status}`, dataset: { status } }, status);
}

export function progressBar(fraction) {
  const f = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0;
  return h('span', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(f * 100) },
    h('span', { style: `width:${(f * 100).toFixed(1)}%` }));
}

/** A tiny SVG line of `values`, for the runs table. */
export function sparkline(values, width = 90, height = 22) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('aria-hidden', 'true');
  const finite = (values || []).filter(Number.isFinite);
  if (finite.length >= 2) {
    const lo = Math.min(...finite);
    const hi = Math.max(...finite);
    const span = hi - lo || 1;
    const points = values
      .map((v, i) => (Number.isFinite(v) ? `${((i / (values.length - 1)) * (width - 2) + 1).toFixed(1)},${(height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1)}` : null))
      .filter(Boolean);
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', `M${points.join('L')}`);
    svg.append(path);
  }
  return svg;
}

/** The statuses a run can be in, in the order of its life. */
export const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted'];

export const FINAL = new Set(['completed', 'failed', 'cancelled']);

/** Reads the route's query (`#/compare?ids=a,b`). */
export function routeQuery() {
  const hash = location.hash || '';
  const q = hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
}
