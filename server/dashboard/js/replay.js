// A replay of a run's current policy: one evaluation episode, frame by
// frame, as the environment renders itself, with the action and reward
// that led to each frame and the policy's action values in it. On grids, a
// tabular agent's values and greedy arrows can be drawn over the cells.

import { api } from './api.js';
import { h, value } from './util.js';

export const title = (id) => `Replay ${id}`;

/** Longest side of the picture on screen, in CSS pixels. */
const DISPLAY = 640;

export function render(main, id) {
  const enc = encodeURIComponent(id);
  const message = h('p', { class: 'error', role: 'alert', id: 'replay-message' });
  const canvas = h('canvas', { class: 'frame', id: 'replay-canvas', width: 10, height: 10, role: 'img', 'aria-label': 'the environment' });
  const scrubber = h('input', { type: 'range', id: 'replay-scrubber', min: 0, max: 0, value: 0, 'aria-label': 'frame' });
  const buttons = {
    first: h('button', { id: 'replay-first', 'aria-label': 'first frame' }, '|◀'),
    back: h('button', { id: 'replay-back', 'aria-label': 'previous frame' }, '◀'),
    play: h('button', { id: 'replay-play', class: 'primary' }, 'Play'),
    next: h('button', { id: 'replay-next', 'aria-label': 'next frame' }, '▶'),
    last: h('button', { id: 'replay-last', 'aria-label': 'last frame' }, '▶|'),
  };
  const speed = h('select', { id: 'replay-speed' }, [5, 10, 20, 50].map((fps) => h('option', { value: fps, selected: fps === 10 }, `${fps} frames/s`)));
  const overlay = h('input', { type: 'checkbox', id: 'replay-overlay', checked: true });
  const seedInput = h('input', { type: 'number', id: 'replay-seed', min: 0, step: 1, placeholder: 'run seed', style: 'width:8em' });
  const info = {
    position: h('div', { id: 'replay-position' }),
    action: h('div', { id: 'replay-action' }),
    reward: h('div', { id: 'replay-reward' }),
    total: h('div', { id: 'replay-return' }),
    values: h('table', { id: 'replay-values' }),
    about: h('p', { class: 'muted', id: 'replay-about' }),
  };
  main.append(
    h('p', {}, h('a', { href: `#/runs/${enc}` }, `← Run ${id}`)),
    h('h1', {}, 'Replay ', h('span', { class: 'mono' }, id)),
    h('div', { class: 'toolbar' },
      h('label', { for: 'replay-seed' }, 'Episode seed', seedInput),
      h('button', { id: 'replay-load', onclick: () => load() }, 'Play a new episode'),
      info.about),
    message,
    h('div', { class: 'grid' },
      h('section', { 'aria-label': 'Episode' },
        canvas,
        h('div', { class: 'toolbar' }, buttons.first, buttons.back, buttons.play, buttons.next, buttons.last, scrubber,
          h('label', { for: 'replay-speed' }, 'Speed', speed),
          h('label', { for: 'replay-overlay', id: 'replay-overlay-label', hidden: true }, overlay, 'values and greedy arrows'))),
      h('aside', { class: 'panel' },
        h('h2', {}, 'This frame'), info.position, info.action, info.reward, info.total,
        h('h3', {}, 'Action values'), info.values)));

  let replay = null;
  let images = [];
  let index = 0;
  let timer = null;
  let closed = false;
  const context = canvas.getContext('2d');

  const image = (k) => {
    if (!images[k]) {
      images[k] = new Image();
      images[k].src = `data:image/png;base64,${replay.frames[k].png}`;
    }
    return images[k];
  };

  const drawOverlay = () => {
    const grid = replay.grid;
    if (!grid || !overlay.checked || !grid.values) return;
    const cw = canvas.width / grid.cols;
    const ch = canvas.height / grid.rows;
    context.textAlign = 'center';
    context.textBaseline = 'middle';
    const size = Math.max(8, Math.min(cw, ch) / 4);
    for (let r = 0; r < grid.rows; r++) {
      for (let c = 0; c < grid.cols; c++) {
        const v = grid.values[r][c];
        const arrow = grid.policy ? [...grid.policy[r]][c] : null;
        const x = (c + 0.5) * cw;
        const y = (r + 0.5) * ch;
        context.font = `${size}px system-ui, sans-serif`;
        context.lineWidth = 3;
        context.strokeStyle = 'rgba(255,255,255,0.85)';
        context.fillStyle = '#111';
        if (v !== null && v !== undefined) {
          const text = Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
          context.strokeText(text, x, y + ch * 0.28);
          context.fillText(text, x, y + ch * 0.28);
        }
        if (arrow && arrow !== '·') {
          context.font = `bold ${size * 1.3}px system-ui, sans-serif`;
          context.strokeText(arrow, x, y - ch * 0.18);
          context.fillStyle = '#1f63d6';
          context.fillText(arrow, x, y - ch * 0.18);
        }
      }
    }
  };

  const show = (k) => {
    if (!replay) return;
    index = Math.max(0, Math.min(replay.frames.length - 1, k));
    scrubber.value = index;
    const frame = replay.frames[index];
    const picture = image(index);
    const paint = () => {
      if (closed || index !== k) return;
      const scale = Math.max(1, Math.floor(DISPLAY / Math.max(picture.naturalWidth, picture.naturalHeight)));
      if (canvas.width !== picture.naturalWidth * scale) {
        canvas.width = picture.naturalWidth * scale;
        canvas.height = picture.naturalHeight * scale;
      }
      context.imageSmoothingEnabled = false;
      context.drawImage(picture, 0, 0, canvas.width, canvas.height);
      drawOverlay();
    };
    if (picture.complete && picture.naturalWidth) paint();
    else picture.onload = paint;
    const last = replay.frames.length - 1;
    const total = replay.frames.slice(1, index + 1).reduce((sum, f) => sum + (f.reward || 0), 0);
    info.position.textContent = `step ${index} of ${last}${index === last ? (replay.cut ? ' (recording cut)' : ' (episode over)') : ''}`;
    info.action.textContent = frame.action === null || frame.action === undefined ? 'action: – (reset)' : `action: ${JSON.stringify(frame.action)}`;
    info.reward.textContent = `reward: ${frame.reward === null || frame.reward === undefined ? '–' : value(frame.reward)}`;
    info.total.textContent = `return so far: ${value(total)}`;
    const values = frame.action_values;
    const next = replay.frames[index + 1];
    if (values) {
      const best = values.indexOf(Math.max(...values));
      info.values.replaceChildren(
        h('thead', {}, h('tr', {}, h('th', {}, 'action'), h('th', { class: 'num' }, 'value'))),
        h('tbody', {}, values.map((v, a) => h('tr', { class: a === best ? 'best' : null }, h('td', {}, `${a}${a === best ? ' (greedy)' : ''}${next && next.action === a ? ' ← taken' : ''}`), h('td', { class: 'num' }, value(v))))));
    } else {
      info.values.replaceChildren(h('caption', { class: 'muted' }, index === last ? 'none: the episode ends here' : 'this agent keeps no action values'));
    }
  };

  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
    buttons.play.textContent = 'Play';
  };
  const play = () => {
    if (!replay) return;
    if (timer) {
      stop();
      return;
    }
    if (index >= replay.frames.length - 1) show(0);
    buttons.play.textContent = 'Pause';
    timer = setInterval(() => {
      if (index >= replay.frames.length - 1) stop();
      else show(index + 1);
    }, 1000 / Number(speed.value));
  };
  buttons.play.addEventListener('click', play);
  buttons.first.addEventListener('click', () => { stop(); show(0); });
  buttons.back.addEventListener('click', () => { stop(); show(index - 1); });
  buttons.next.addEventListener('click', () => { stop(); show(index + 1); });
  buttons.last.addEventListener('click', () => { stop(); show(replay ? replay.frames.length - 1 : 0); });
  scrubber.addEventListener('input', () => { stop(); show(Number(scrubber.value)); });
  speed.addEventListener('change', () => { if (timer) { stop(); play(); } });
  overlay.addEventListener('change', () => show(index));
  const keys = (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== 'range') return;
    if (e.key === 'ArrowRight') { stop(); show(index + 1); e.preventDefault(); }
    if (e.key === 'ArrowLeft') { stop(); show(index - 1); e.preventDefault(); }
    if (e.key === ' ' && !(e.target instanceof HTMLButtonElement)) { play(); e.preventDefault(); }
  };
  document.addEventListener('keydown', keys);

  async function load() {
    stop();
    message.textContent = '';
    info.about.textContent = 'Playing an episode…';
    const body = { episodes: 1, record: 'frames' };
    if (seedInput.value !== '') body.seed = Number(seedInput.value);
    try {
      const reply = await api(`/v1/runs/${enc}/evaluate`, { method: 'POST', body });
      if (closed) return;
      replay = reply.replay;
      images = [];
      scrubber.max = replay.frames.length - 1;
      document.getElementById('replay-overlay-label').hidden = !(replay.grid && replay.grid.values);
      info.about.textContent = `The ${reply.policy} policy after ${reply.trained_steps} training steps: return ${value(replay.episode_return)} in ${replay.length} steps.`;
      show(0);
    } catch (e) {
      info.about.textContent = '';
      message.textContent = e.message;
    }
  }
  load();

  return () => {
    closed = true;
    stop();
    document.removeEventListener('keydown', keys);
  };
}
