// The environment catalogue: every registered env with its spaces and
// defaults, a rendered first frame, and for gridworlds and classic control
// a "play it yourself" mode on a live env instance (the gym routes).

import { api, fetchFile } from './api.js';
import { h, value } from './util.js';

export const title = (id) => (id ? `Env ${id}` : 'Environments');

/** Envs a person can play, and the keys for each action. */
const CLASSIC_KEYS = {
  'CartPole-v0': { ArrowLeft: [0, 'push left'], ArrowRight: [1, 'push right'] },
  'CartPole-v1': { ArrowLeft: [0, 'push left'], ArrowRight: [1, 'push right'] },
  'MountainCar-v0': { ArrowLeft: [0, 'accelerate left'], ArrowDown: [1, 'coast'], ArrowRight: [2, 'accelerate right'] },
  'Acrobot-v1': { ArrowLeft: [0, 'torque −1'], ArrowDown: [1, 'no torque'], ArrowRight: [2, 'torque +1'] },
};
const ARROW_KEYS = { '↑': 'ArrowUp', '→': 'ArrowRight', '↓': 'ArrowDown', '←': 'ArrowLeft' };

/** Where an env is only for runs (an external process, a remote server). */
const RUN_ONLY = new Set(['external', 'remote']);

function describeSpace(s) {
  if (!s) return '–';
  if (s.type === 'Discrete') return `Discrete(${s.n})`;
  if (s.shape) return `${s.type} ${JSON.stringify(s.shape)}${s.dtype ? ` ${s.dtype}` : ''}`;
  return s.type;
}

/** Fetches an instance's rendered frame as an object URL. */
async function frameUrl(instance) {
  const response = await fetchFile(`/v1/envs/${instance}/render`);
  return URL.createObjectURL(await response.blob());
}

/**
 * `envId`'s first frame after a reset with seed 0, as an object URL (the
 * caller revokes it): made on a short-lived instance, closed at once.
 * `null` for envs that live in another process.
 */
export async function firstFrame(envId, config = null) {
  if (RUN_ONLY.has(envId)) return null;
  const body = { env_id: envId, seed: 0 };
  if (config) body.config = config;
  const { instance_id: instance } = await api('/v1/envs/', { method: 'POST', body });
  try {
    await api(`/v1/envs/${instance}/reset/`, { method: 'POST', body: { seed: 0 } });
    return await frameUrl(instance);
  } finally {
    api(`/v1/envs/${instance}/close/`, { method: 'POST' }).catch(() => {});
  }
}

export function render(main, id) {
  if (!id) return list(main);
  return detail(main, id);
}

function list(main) {
  const body = h('tbody');
  main.append(h('h1', {}, 'Environments'),
    h('table', { id: 'envs-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'id'), h('th', {}, 'observations'), h('th', {}, 'actions'), h('th', {}, 'model'), h('th', {}, 'about'))),
      body));
  api('/v1/catalog/envs').then((catalog) => {
    for (const env of catalog.envs) {
      body.append(h('tr', {},
        h('td', {}, h('a', { href: `#/envs/${encodeURIComponent(env.id)}` }, env.id)),
        h('td', { class: 'mono' }, describeSpace(env.observation_space)),
        h('td', { class: 'mono' }, describeSpace(env.action_space)),
        h('td', {}, env.has_model ? 'yes' : ''),
        h('td', { style: 'white-space:normal' }, env.summary)));
    }
  }).catch((e) => main.append(h('p', { class: 'error', role: 'alert' }, e.message)));
  return undefined;
}

function detail(main, id) {
  const message = h('p', { class: 'error', role: 'alert', id: 'env-message' });
  const picture = h('img', { class: 'frame', id: 'env-frame', style: 'width:min(100%, 600px)', alt: `${id}: the first frame after a reset with seed 0` });
  const status = h('div', { id: 'play-status', 'aria-live': 'polite' });
  const keysHelp = h('div', { class: 'muted', id: 'play-keys' });
  main.append(
    h('p', {}, h('a', { href: '#/envs' }, '← Environments')),
    h('h1', {}, id), message,
    h('div', { class: 'grid' },
      h('section', { 'aria-label': 'Frame' }, picture, status, keysHelp),
      h('aside', {}, h('section', { class: 'panel', id: 'env-about' }))));
  let instance = null;
  let closed = false;
  let total = 0;
  let done = false;
  let pictureUrl = null;

  const showFrame = async () => {
    const url = await frameUrl(instance);
    if (pictureUrl) URL.revokeObjectURL(pictureUrl);
    pictureUrl = url;
    picture.src = url;
  };

  const reset = async () => {
    await api(`/v1/envs/${instance}/reset/`, { method: 'POST', body: { seed: 0 } });
    total = 0;
    done = false;
    status.textContent = 'return 0';
    await showFrame();
  };

  let keys = null;
  // Keys are played one after another, each step after the last one's
  // answer, however fast they are pressed.
  let queue = Promise.resolve();
  const onKey = (e) => {
    if (!keys || e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    if (e.key !== 'r' && !keys[e.key]) return;
    e.preventDefault();
    const key = e.key;
    queue = queue.then(() => play(key)).catch((err) => { message.textContent = err.message; });
  };
  const play = async (key) => {
    if (closed) return;
    if (key === 'r') {
      await reset();
      return;
    }
    const entry = keys[key];
    if (done) return;
    try {
      const out = await api(`/v1/envs/${instance}/step/`, { method: 'POST', body: { action: entry[0], render: false } });
      total += out.reward;
      done = out.terminated || out.truncated;
      status.textContent = `${entry[1]}: reward ${value(out.reward)}, return ${value(total)}${out.terminated ? ' (episode over: press r)' : out.truncated ? ' (time limit: press r)' : ''}`;
      await showFrame();
    } catch (err) {
      message.textContent = err.message;
    }
  };

  (async () => {
    try {
      const catalog = await api('/v1/catalog/envs');
      const env = catalog.envs.find((e) => e.id === id);
      if (!env) {
        message.textContent = `No env ${id}.`;
        return;
      }
      document.getElementById('env-about').append(
        h('h2', {}, 'About'), h('p', {}, env.summary),
        h('p', {}, 'observations ', h('span', { class: 'mono' }, describeSpace(env.observation_space)), h('br'), 'actions ', h('span', { class: 'mono' }, describeSpace(env.action_space)), h('br'), env.has_model ? 'has an exact model (dynamic programming can plan on it)' : 'no model'),
        h('h3', {}, 'Config defaults'), h('pre', { id: 'env-defaults' }, JSON.stringify(env.defaults, null, 2)),
        h('p', {}, h('a', { href: `#/launch?env=${encodeURIComponent(id)}` }, 'Launch a run on it')));
      if (RUN_ONLY.has(id)) {
        picture.remove();
        status.textContent = 'This env lives in another process: it has no frame here.';
        return;
      }
      const created = await api('/v1/envs/', { method: 'POST', body: { env_id: id, seed: 0 } });
      if (closed) {
        api(`/v1/envs/${created.instance_id}/close/`, { method: 'POST' }).catch(() => {});
        return;
      }
      instance = created.instance_id;
      await reset();
      if (env.grid) {
        keys = {};
        env.grid.action_arrows.forEach((arrow, action) => {
          if (ARROW_KEYS[arrow]) keys[ARROW_KEYS[arrow]] = [action, `move ${arrow}`];
        });
      } else if (CLASSIC_KEYS[id]) {
        keys = CLASSIC_KEYS[id];
      }
      if (keys && Object.keys(keys).length) {
        keysHelp.replaceChildren(h('h2', {}, 'Play it yourself'),
          h('p', {}, Object.entries(keys).map(([key, [action, label]]) => h('span', { class: 'mono' }, `${key}: ${label} (action ${action})  `)), h('br'), 'r: reset (seed 0)'));
        document.addEventListener('keydown', onKey);
      }
    } catch (e) {
      message.textContent = e.message;
    }
  })();

  return () => {
    closed = true;
    document.removeEventListener('keydown', onKey);
    if (instance) api(`/v1/envs/${instance}/close/`, { method: 'POST' }).catch(() => {});
    if (pictureUrl) URL.revokeObjectURL(pictureUrl);
  };
}
