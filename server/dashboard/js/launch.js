// The launch form, generated from the catalogue: an env with its config, an
// agent with every hyperparameter (type, default, bounds, doc), the budget,
// seed and evaluation. The server's 422 is shown on the field it names.

import { api, token } from './api.js';
import { h, routeQuery } from './util.js';
import { firstFrame } from './envs.js';

export const title = () => 'Launch';

/** Seeds "Launch N seeds" submits by default: 0 to 4. */
const DEFAULT_SEEDS = 5;

/**
 * Reads a text field whose type is a union (`number | object`, …): JSON
 * when it parses as JSON, else the text as a string (`"1/n"`, `"auto"`).
 */
function parseLoose(text) {
  const trimmed = text.trim();
  try {
    return JSON.parse(trimmed);
  } catch {
    return trimmed;
  }
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** An input for one config field, and how to read it back. */
function fieldInput(path, spec) {
  const id = `field-${path.replace(/[^a-zA-Z0-9_-]/g, '-')}`;
  const type = spec.type || typeof spec.default;
  const def = spec.default;
  let input;
  let read;
  if (Array.isArray(spec.enum) && spec.enum.length) {
    input = h('select', { id }, spec.enum.map((choice) => h('option', { value: JSON.stringify(choice), selected: same(choice, def) }, String(choice))));
    read = () => JSON.parse(input.value);
  } else if (type === 'boolean') {
    input = h('input', { id, type: 'checkbox', checked: def === true });
    read = () => input.checked;
  } else if (type === 'integer' || type === 'number') {
    const bounds = {
      min: spec.minimum ?? spec.exclusive_minimum ?? null,
      max: spec.maximum ?? spec.exclusive_maximum ?? null,
    };
    input = h('input', { id, type: 'number', step: type === 'integer' ? 1 : 'any', min: bounds.min, max: bounds.max, value: def ?? '' });
    read = () => (input.value === '' ? undefined : Number(input.value));
  } else if (type === 'string') {
    input = h('input', { id, type: 'text', value: def ?? '' });
    read = () => input.value;
  } else {
    // Unions and objects: JSON in a text field, or a plain string.
    const text = typeof def === 'string' ? def : JSON.stringify(def);
    const multiline = text && text.length > 40;
    input = multiline ? h('textarea', { id, rows: 3 }, text) : h('input', { id, type: 'text', value: text });
    read = () => parseLoose(input.value);
  }
  input.dataset.field = path;
  return { id, input, read, def };
}

export function render(main) {
  const query = routeQuery();
  const form = h('form', { id: 'launch-form', novalidate: true });
  const general = h('p', { class: 'error', role: 'alert', id: 'launch-error' });
  const preview = h('pre', { id: 'launch-preview', hidden: true });
  main.append(h('h1', {}, 'Launch a run'), form, general, preview);

  (async () => {
    let envs;
    let agents;
    try {
      [envs, agents] = await Promise.all([api('/v1/catalog/envs'), api('/v1/catalog/agents')]);
    } catch (e) {
      general.textContent = `Could not read the catalogue: ${e.message}`;
      return;
    }
    envs = envs.envs.filter((e) => e.id !== 'external' && e.id !== 'remote');
    agents = agents.agents;
    const fields = new Map(); // path -> {input, read, def, error}

    const envSelect = h('select', { id: 'env-id', 'data-field': 'env.id' }, envs.map((e) => h('option', { value: e.id }, e.id)));
    const agentSelect = h('select', { id: 'agent-id', 'data-field': 'agent.id' }, agents.map((a) => h('option', { value: a.id }, a.id)));
    envSelect.value = query.get('env') || (envs.some((e) => e.id === 'gridworld/cliff-walking') ? 'gridworld/cliff-walking' : envs[0].id);
    agentSelect.value = query.get('agent') || (agents.some((a) => a.id === 'q-learning') ? 'q-learning' : agents[0].id);
    const envAbout = h('div', { class: 'muted', id: 'env-about' });
    const envFrame = h('img', { class: 'frame', id: 'env-frame', alt: 'the env\'s first frame after a reset with seed 0', style: 'max-height:160px' });
    let frameUrl = null;
    let frameFor = 0;
    const envFields = h('div', { class: 'form', id: 'env-fields' });
    const agentAbout = h('div', { class: 'muted', id: 'agent-about' });
    const agentFields = h('div', { class: 'form', id: 'agent-fields' });

    const run = {
      budgetKind: h('select', { id: 'budget-kind', 'aria-label': 'budget unit' }, h('option', { value: 'episodes' }, 'episodes'), h('option', { value: 'steps' }, 'steps')),
      budget: h('input', { id: 'budget', type: 'number', min: 1, step: 1, value: 500, 'data-field': 'budget' }),
      seed: h('input', { id: 'seed', type: 'number', min: 0, step: 1, value: 0, 'data-field': 'seed' }),
      numEnvs: h('input', { id: 'num-envs', type: 'number', min: 1, max: 256, step: 1, value: 1, 'data-field': 'env.num_envs' }),
      evalEpisodes: h('input', { id: 'eval-episodes', type: 'number', min: 0, step: 1, value: 10, 'data-field': 'eval.episodes' }),
      evalEvery: h('input', { id: 'eval-every', type: 'number', min: 1, step: 1, placeholder: 'never', 'data-field': 'eval.every_steps' }),
    };

    const row = (path, label, input, doc) => {
      const error = h('span', { class: 'field-error', id: `${input.id}-error`, role: 'alert' });
      input.setAttribute('aria-describedby', `${input.id}-error`);
      fields.set(path, { ...(fields.get(path) || {}), input, error });
      return [h('label', { for: input.id }, label), h('div', {}, input, error), h('div', { class: 'doc' }, doc || '')];
    };

    const showEnv = () => {
      const env = envs.find((e) => e.id === envSelect.value);
      for (const key of [...fields.keys()]) if (key.startsWith('env.config.')) fields.delete(key);
      const space = (s) => (s ? `${s.type}${s.n !== undefined ? `(${s.n})` : s.shape ? ` ${JSON.stringify(s.shape)}` : ''}` : '–');
      envAbout.replaceChildren(env.summary, h('br'), `observations ${space(env.observation_space)}, actions ${space(env.action_space)}`);
      const props = (env.config_schema && env.config_schema.properties) || {};
      const rows = Object.entries(env.defaults || {}).map(([name, def]) => {
        const p = props[name] || {};
        const type = Array.isArray(p.type) ? p.type.join(' | ') : p.type;
        const f = fieldInput(`env.config.${name}`, { type: type || (typeof def === 'number' ? 'number' : typeof def === 'boolean' ? 'boolean' : typeof def === 'string' ? 'string' : 'object'), default: def, minimum: p.minimum, maximum: p.maximum, enum: p.enum });
        fields.set(`env.config.${name}`, f);
        return row(`env.config.${name}`, name, f.input, p.description);
      });
      envFields.replaceChildren(...rows.flat());
      // Its first frame, under the default config.
      const asked = ++frameFor;
      envFrame.hidden = true;
      firstFrame(env.id).then((url) => {
        if (asked !== frameFor || !url) {
          if (url) URL.revokeObjectURL(url);
          return;
        }
        if (frameUrl) URL.revokeObjectURL(frameUrl);
        frameUrl = url;
        envFrame.src = url;
        envFrame.hidden = false;
      }).catch(() => {});
    };
    const showAgent = () => {
      const agent = agents.find((a) => a.id === agentSelect.value);
      for (const key of [...fields.keys()]) if (key.startsWith('agent.config.')) fields.delete(key);
      agentAbout.textContent = agent.summary + (agent.plans ? ' (plans from the env model: the budget does not apply)' : '');
      const rows = agent.hyperparameters.map((hp) => {
        const f = fieldInput(`agent.config.${hp.name}`, hp);
        fields.set(`agent.config.${hp.name}`, f);
        const bounds = [hp.minimum !== undefined && hp.minimum !== null ? `≥ ${hp.minimum}` : null, hp.exclusive_minimum != null ? `> ${hp.exclusive_minimum}` : null, hp.maximum != null ? `≤ ${hp.maximum}` : null, hp.exclusive_maximum != null ? `< ${hp.exclusive_maximum}` : null].filter(Boolean).join(', ');
        return row(`agent.config.${hp.name}`, hp.name, f.input, [h('span', { class: 'mono' }, `${hp.type}${bounds ? `, ${bounds}` : ''}; default ${JSON.stringify(hp.default)}`), h('br'), hp.doc]);
      });
      agentFields.replaceChildren(...rows.flat());
    };
    envSelect.addEventListener('change', showEnv);
    agentSelect.addEventListener('change', showAgent);

    /** The spec the form describes: only fields changed from their defaults. */
    const spec = (seed = null) => {
      const env = { id: envSelect.value, config: {} };
      const agent = { id: agentSelect.value, config: {} };
      for (const [path, f] of fields) {
        if (!f.read) continue;
        const v = f.read();
        if (v === undefined || same(v, f.def)) continue;
        const name = path.split('.').slice(2).join('.');
        (path.startsWith('env.') ? env.config : agent.config)[name] = v;
      }
      const numEnvs = Number(run.numEnvs.value || 1);
      if (numEnvs !== 1) env.num_envs = numEnvs;
      const out = { env, agent, budget: { [run.budgetKind.value]: Number(run.budget.value) }, seed: seed ?? Number(run.seed.value || 0), eval: { episodes: Number(run.evalEpisodes.value || 0) } };
      if (run.evalEvery.value) out.eval.every_steps = Number(run.evalEvery.value);
      return out;
    };

    const clearErrors = () => {
      general.textContent = '';
      for (const f of fields.values()) {
        f.error.textContent = '';
        f.input.removeAttribute('aria-invalid');
      }
    };
    /** Shows a refusal on the field it names (or its nearest named parent). */
    const showError = (e) => {
      let path = e.field;
      while (path && !fields.has(path)) path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : null;
      if (path) {
        const f = fields.get(path);
        f.error.textContent = e.message;
        f.input.setAttribute('aria-invalid', 'true');
        f.input.focus();
      } else {
        general.textContent = e.message;
      }
    };

    const submit = async (seeds) => {
      clearErrors();
      const ids = [];
      try {
        for (const seed of seeds) {
          const reply = await api('/v1/runs', { method: 'POST', body: spec(seed) });
          ids.push(reply.id);
        }
      } catch (e) {
        showError(e);
        return;
      }
      location.hash = ids.length === 1 ? `#/runs/${encodeURIComponent(ids[0])}` : `#/compare?ids=${ids.join(',')}`;
    };
    const showPreview = (kind) => {
      const body = JSON.stringify(spec());
      const origin = location.origin;
      const auth = token() ? " -H 'Authorization: Bearer $RL_LAB_TOKEN'" : '';
      preview.hidden = false;
      preview.textContent = kind === 'curl'
        ? `curl -X POST ${origin}/v1/runs -H 'Content-Type: application/json'${auth} -d '${body.replace(/'/g, "'\\''")}'`
        : JSON.stringify(spec(), null, 2);
      if (navigator.clipboard) navigator.clipboard.writeText(preview.textContent).catch(() => {});
    };

    const seedCount = h('input', { id: 'seed-count', type: 'number', min: 2, max: 20, step: 1, value: DEFAULT_SEEDS, 'aria-label': 'how many seeds', style: 'width:4em' });
    const seedsButton = h('button', { type: 'button', id: 'launch-seeds', onclick: () => {
      const n = Math.max(2, Math.min(20, Math.floor(Number(seedCount.value)) || DEFAULT_SEEDS));
      submit([...Array(n).keys()]);
    } }, `Launch ${DEFAULT_SEEDS} seeds`);
    seedCount.addEventListener('input', () => { seedsButton.textContent = `Launch ${seedCount.value} seeds`; });
    form.append(
      h('fieldset', {}, h('legend', {}, 'Environment'),
        h('div', { class: 'form' }, row('env.id', 'env', envSelect, [envAbout, envFrame]), row('env.num_envs', 'env copies', run.numEnvs, 'Copies the loop steps at once (1 to 256).')),
        envFields),
      h('fieldset', {}, h('legend', {}, 'Agent'),
        h('div', { class: 'form' }, row('agent.id', 'agent', agentSelect, agentAbout)),
        agentFields),
      h('fieldset', {}, h('legend', {}, 'Run'),
        h('div', { class: 'form' },
          row('budget', 'budget', run.budget, run.budgetKind),
          row('seed', 'seed', run.seed, 'Seeds every random stream of the run.'),
          row('eval.episodes', 'evaluation episodes', run.evalEpisodes, 'Greedy episodes played after training (0 skips).'),
          row('eval.every_steps', 'evaluate every', run.evalEvery, 'Env steps between periodic evaluations (empty: never).'))),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', id: 'launch' }, 'Launch'),
        seedsButton, seedCount,
        h('button', { type: 'button', id: 'copy-curl', onclick: () => showPreview('curl') }, 'Copy as curl'),
        h('button', { type: 'button', id: 'copy-json', onclick: () => showPreview('json') }, 'Copy as JSON')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submit([null]);
    });
    showEnv();
    showAgent();
  })();
}
