// The dashboard's shell: the token prompt, the hash router, and the page
// lifecycle. A page is `{ title, render(main, params) -> cleanup? }`; its
// cleanup runs when the route changes, closing its streams.

import { onUnauthorized, setToken } from './api.js';
import * as runs from './runs.js';
import * as run from './run.js';
import * as launch from './launch.js';
import * as compare from './compare.js';
import * as replay from './replay.js';
import * as envs from './envs.js';
import * as workers from './workers.js';

const routes = [
  [/^#\/runs\/([^/?]+)\/replay$/, replay, 'runs'],
  [/^#\/runs\/([^/?]+)$/, run, 'runs'],
  [/^#\/runs$/, runs, 'runs'],
  [/^#\/compare$/, compare, 'compare'],
  [/^#\/launch$/, launch, 'launch'],
  [/^#\/envs\/(.+)$/, envs, 'envs'],
  [/^#\/envs$/, envs, 'envs'],
  [/^#\/workers$/, workers, 'workers'],
];

const main = document.getElementById('page');
let cleanup = null;

function route() {
  const hash = (location.hash || '#/runs').split('?')[0];
  const match = routes.find(([pattern]) => pattern.test(hash));
  if (!match) {
    location.replace('#/runs');
    return;
  }
  const [pattern, page, nav] = match;
  const params = hash.match(pattern).slice(1).map(decodeURIComponent);
  if (cleanup) cleanup();
  cleanup = null;
  main.replaceChildren();
  for (const link of document.querySelectorAll('.top nav a')) {
    if (link.dataset.page === nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${page.title(...params)} · rl-lab`;
  const result = page.render(main, ...params);
  if (typeof result === 'function') cleanup = result;
  main.focus({ preventScroll: true });
}

// The token prompt: shown once, when the server first refuses a request;
// every request waiting on it goes on once it is given.
const dialog = document.getElementById('token-dialog');
const input = document.getElementById('token-input');
let resumeAfterToken = [];
onUnauthorized((resume) => {
  resumeAfterToken.push(resume);
  if (!dialog.open) {
    input.value = '';
    dialog.showModal();
    input.focus();
  }
});
document.getElementById('token-form').addEventListener('submit', () => {
  setToken(input.value);
  const waiting = resumeAfterToken;
  resumeAfterToken = [];
  for (const resume of waiting) resume();
});

// Pages report uncaught failures here rather than to the console alone.
window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.name === 'AbortError') {
    event.preventDefault();
  }
});

window.addEventListener('hashchange', route);
route();
