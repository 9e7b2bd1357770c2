// Talking to the server: JSON requests and server-sent events, both with the
// bearer token when the server has one.
//
// Events are read with fetch rather than EventSource: EventSource cannot
// send an Authorization header, and putting the token in a URL would leave
// it in logs and history.

const TOKEN_KEY = 'rl-lab-token';

/** The token this tab was given, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

/** A refusal from the server, with its `code`, `message` and `field`. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || null;
    this.field = error.field || null;
  }
}

// Called once when a request is refused for want of the token; the app
// asks for it and retries what was waiting.
let unauthorized = null;
let waitingForToken = null;

export function onUnauthorized(handler) {
  unauthorized = handler;
}

function tokenWanted() {
  if (!waitingForToken) {
    waitingForToken = new Promise((resolve) => {
      unauthorized(() => {
        waitingForToken = null;
        resolve();
      });
    });
  }
  return waitingForToken;
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/**
 * A JSON request. Resolves to the parsed body (null for an empty one);
 * rejects with an ApiError for a 4xx or 5xx.
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  for (;;) {
    const init = { method, signal, headers: headers() };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      await tokenWanted();
      continue;
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { error: { message: text } };
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

/**
 * A GET of something other than JSON (a file, a PNG, JSON lines), with the
 * token, asking for it on a 401 like every other request. Rejects with an
 * ApiError for a 4xx or 5xx; resolves to the Response.
 */
export async function fetchFile(path) {
  for (;;) {
    const response = await fetch(path, { headers: headers() });
    if (response.status === 401) {
      await tokenWanted();
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, null);
    return response;
  }
}

/** Fetches a file (an artefact) with the token and hands it to the browser as a download. */
export async function download(path, name) {
  const response = await fetchFile(path);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows a server-sent event stream: `onEvent({id, event, data})` for each
 * event, reconnecting after a drop with `Last-Event-ID`, so nothing is
 * missed or repeated. `onState('open' | 'retrying' | 'closed')` reports the
 * connection. Returns a function that stops it.
 */
export function follow(path, onEvent, { after = null, onState = () => {} } = {}) {
  let lastId = after;
  let stopped = false;
  const abort = new AbortController();

  async function connect() {
    const extra = { Accept: 'text/event-stream' };
    if (lastId !== null) extra['Last-Event-ID'] = String(lastId);
    const response = await fetch(path, { headers: headers(extra), signal: abort.signal });
    if (response.status === 401) {
      await tokenWanted();
      return true;
    }
    if (response.status === 404) return false;
    if (!response.ok || !response.body) return true;
    onState('open');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (event.data !== undefined) {
            if (event.id !== undefined) lastId = event.id;
            onEvent({ id: event.id, event: event.event || 'message', data: event.data });
          }
          event = {};
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'data') event.data = event.data === undefined ? text : `${event.data}\n${text}`;
        else if (field === 'id') event.id = text;
        else if (field === 'event') event.event = text;
      }
    }
  }

  (async () => {
    while (!stopped) {
      let again = true;
      try {
        again = await connect();
      } catch {
        // A dropped connection or a server restart: retry below.
      }
      if (stopped || !again) break;
      onState('retrying');
      await sleep(1000);
    }
    onState('closed');
  })();

  return () => {
    stopped = true;
    abort.abort();
  };
}

/**
 * Collects items and hands them to `apply` in one batch per animation
 * frame (once a second while the tab is hidden, when frames do not run), so
 * a fast stream costs one redraw a frame however many events it brings.
 */
export function batched(apply) {
  let queue = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const items = queue;
    queue = [];
    apply(items);
    // For benches and tests: the newest event the page has drawn.
    const stats = (window.__rlLab = window.__rlLab || { charts: {} });
    const newest = items.findLast((item) => item && item.id !== undefined);
    if (newest) stats.appliedEventId = Number(newest.id);
    stats.batches = (stats.batches || 0) + 1;
  };
  return (item) => {
    queue.push(item);
    if (scheduled) return;
    scheduled = true;
    if (document.hidden) setTimeout(flush, 1000);
    else requestAnimationFrame(flush);
  };
}
