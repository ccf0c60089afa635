// pipelines.js: the Pipelines page (#/): a live table of the node's
// pipelines (status, records/s in and out, backlog, last checkpoint age,
// operator plugin versions, restarts, start/stop/delete) fed by the
// /api/v1/events stream, and the "New pipeline" form.

import { api } from './api.js';
import { canStart, canStop, deletePipeline, startPipeline, stopPipeline } from './actions.js';
import { h, text, attr, replace } from './dom.js';
import * as fmt from './format.js';
import { Snapshots, stamp, summaryRates } from './metrics.js';
import { liveFeed } from './sse.js';
import { setLive, showError } from './toast.js';

const EXAMPLE = `name: example
sources:
  - {name: events, type: generator, seed: 7, rate: 1000, keys: 20}
operators:
  - {name: count, plugin: counter@1, input: events, key_by: key}
sinks:
  - {name: out, type: file, path: /path/to/out, input: count}
checkpoint: {interval: 1s}`;

export function statusBadge(status, testId = 'status') {
  return h('span', { class: `badge st-${status}`, 'data-test': testId, 'data-status': status }, status);
}

function newPipelineForm(onClose) {
  const spec = h('textarea', {
    id: 'spec-input',
    name: 'spec',
    rows: 14,
    spellcheck: 'false',
    placeholder: EXAMPLE,
    required: true,
    'data-test': 'spec-input',
    'aria-describedby': 'spec-help spec-error',
  });
  const error = h('pre', { id: 'spec-error', class: 'form-error', role: 'alert', hidden: true, 'data-test': 'spec-error' });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'spec-submit' }, 'Create and start');
  const cancel = h('button', { type: 'button', 'data-test': 'spec-cancel' }, 'Cancel');
  const form = h(
    'form',
    { class: 'card new-pipeline', 'data-test': 'new-pipeline-form', 'aria-labelledby': 'new-title' },
    h('h2', { id: 'new-title' }, 'New pipeline'),
    h('label', { for: 'spec-input' }, 'Pipeline spec (YAML or JSON)'),
    spec,
    h('p', { id: 'spec-help', class: 'hint' }, 'Operators name registry plugins as name@version. The pipeline starts when created; Ctrl+Enter submits.'),
    error,
    h('div', { class: 'actions' }, cancel, submit),
  );
  cancel.addEventListener('click', onClose);
  spec.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    spec.removeAttribute('aria-invalid');
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const d = await api.create(spec.value);
      location.hash = `#/pipelines/${encodeURIComponent(d.id)}`;
    } catch (err) {
      // The node's message names the line and field of the spec.
      error.textContent = err.message;
      error.hidden = false;
      spec.setAttribute('aria-invalid', 'true');
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create and start';
    }
  });
  return { form, focus: () => spec.focus() };
}

function makeRow(id) {
  const link = h('a', { href: `#/pipelines/${encodeURIComponent(id)}`, 'data-test': 'row-link' }, id);
  const err = h('div', { class: 'row-error', 'data-test': 'row-error', hidden: true });
  const c = {
    status: h('td', { 'data-test': 'row-status' }),
    rateIn: h('td', { class: 'num', 'data-test': 'row-rate-in' }),
    rateOut: h('td', { class: 'num', 'data-test': 'row-rate-out' }),
    backlog: h('td', { class: 'num', 'data-test': 'row-backlog' }),
    checkpoint: h('td', { 'data-test': 'row-checkpoint' }),
    plugins: h('td', { class: 'plugins', 'data-test': 'row-plugins' }),
    restarts: h('td', { class: 'num', 'data-test': 'row-restarts' }),
  };
  const start = h('button', { type: 'button', class: 'small', 'data-test': 'row-start', 'aria-label': `Start ${id}` }, 'Start');
  const stop = h('button', { type: 'button', class: 'small', 'data-test': 'row-stop', 'aria-label': `Stop ${id}` }, 'Stop');
  const del = h('button', { type: 'button', class: 'small danger', 'data-test': 'row-delete', 'aria-label': `Delete ${id}` }, 'Delete');
  const tr = h(
    'tr',
    { 'data-test': 'pipeline-row', 'data-id': id },
    h('th', { scope: 'row' }, link, err),
    c.status,
    c.rateIn,
    c.rateOut,
    c.backlog,
    c.checkpoint,
    c.plugins,
    c.restarts,
    h('td', { class: 'actions-cell' }, start, stop, del),
  );
  return { tr, c, err, start, stop, del, status: null, pluginsKey: null };
}

export function mount(view) {
  const snapshots = new Map(); // id -> Snapshots
  const rows = new Map(); // id -> row
  let formOpen = false;
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', 'data-test': 'pipelines-empty', hidden: true }, 'No pipelines yet. Create one with "New pipeline".');
  const newButton = h('button', { type: 'button', class: 'primary', 'data-test': 'new-pipeline', 'aria-expanded': 'false' }, 'New pipeline');
  const formSlot = h('div');
  const { form, focus } = newPipelineForm(() => toggle(false));
  function toggle(open) {
    formOpen = open;
    newButton.setAttribute('aria-expanded', String(open));
    replace(formSlot, open ? form : null);
    if (open) focus();
  }
  newButton.addEventListener('click', () => toggle(!formOpen));

  const table = h(
    'table',
    { class: 'table', 'data-test': 'pipelines-table', 'aria-label': 'Pipelines' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Pipeline', 'Status', 'In', 'Out', 'Backlog', 'Last checkpoint', 'Operator plugins', 'Restarts', ''].map((t, i) =>
          h('th', { scope: 'col', class: [2, 3, 4, 7].includes(i) ? 'num' : null }, t),
        ),
      ),
    ),
    tbody,
  );
  view.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Pipelines'), h('span', { class: 'spacer' }), newButton),
    formSlot,
    h('div', { class: 'card table-card' }, table, empty),
  );

  const refresh = () => api.pipelines().then((list) => render(list, true)).catch(showError);

  function render(list, fromPoll) {
    if (!Array.isArray(list)) return;
    const seen = new Set();
    for (const p of list) {
      stamp(p);
      seen.add(p.id);
      let snaps = snapshots.get(p.id);
      if (!snaps) snapshots.set(p.id, (snaps = new Snapshots()));
      if (!fromPoll || p.at_ms != null) snaps.push(p);
      let row = rows.get(p.id);
      if (!row) {
        row = makeRow(p.id);
        row.start.addEventListener('click', () => startPipeline(p.id, row.start).then((d) => d && refresh()));
        row.stop.addEventListener('click', () => stopPipeline(p.id, row.stop).then((d) => d && refresh()));
        row.del.addEventListener('click', () => deletePipeline(p.id, row.del).then((d) => d && refresh()));
        rows.set(p.id, row);
      }
      updateRow(row, p, summaryRates(snaps.latest(), snaps.base()));
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
        snapshots.delete(id);
      }
    }
    const order = [...list].sort((a, b) => a.id.localeCompare(b.id));
    order.forEach((p, i) => {
      const tr = rows.get(p.id).tr;
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    empty.hidden = list.length > 0;
    table.hidden = list.length === 0;
  }

  function updateRow(row, p, rates) {
    if (row.status !== p.status) {
      row.status = p.status;
      replace(row.c.status, statusBadge(p.status, 'row-status-badge'));
    }
    text(row.c.rateIn, fmt.rate(rates.inRate));
    attr(row.c.rateIn, 'data-value', rates.inRate);
    text(row.c.rateOut, fmt.rate(rates.outRate));
    attr(row.c.rateOut, 'data-value', rates.outRate);
    text(row.c.backlog, fmt.num(p.backlog));
    text(row.c.checkpoint, p.last_checkpoint_ms == null ? fmt.DASH : fmt.age(p.last_checkpoint_ms, p.at_ms ?? Date.now()));
    attr(row.c.checkpoint, 'title', fmt.iso(p.last_checkpoint_ms) || null);
    const pluginsKey = JSON.stringify(p.plugins || {});
    if (row.pluginsKey !== pluginsKey) {
      row.pluginsKey = pluginsKey;
      const entries = Object.entries(p.plugins || {});
      replace(
        row.c.plugins,
        entries.length
          ? entries.map(([op, pv]) => h('span', { class: 'chip', title: `operator ${op} runs ${pv}` }, h('span', { class: 'muted' }, `${op} `), pv))
          : h('span', { class: 'muted' }, 'none'),
      );
    }
    text(row.c.restarts, fmt.num(p.restarts));
    row.err.hidden = !p.error;
    text(row.err, p.error || '');
    attr(row.err, 'title', p.error || null);
    row.start.hidden = !canStart(p.status);
    row.stop.hidden = !canStop(p.status);
  }

  const feed = liveFeed({
    path: '/api/v1/events',
    pollPath: '/api/v1/pipelines',
    pollEvent: 'pipelines',
    onEvent: (type, data) => {
      if (type === 'pipelines') render(data);
    },
    onState: setLive,
    onError: showError,
  });
  return {
    destroy() {
      feed.close();
    },
  };
}
