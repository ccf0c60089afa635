// checkpoints.js: the Checkpoints tab of a pipeline: the counts and the
// history table (id, triggered at, duration, alignment, size, incremental
// size, status, failure reason). On nodes whose detail has no history it
// lists the stored checkpoints (GET .../checkpoints) instead.

import { api } from './api.js';
import { h, text, replace } from './dom.js';
import * as fmt from './format.js';
import { showError } from './toast.js';

function status(r) {
  if (r.failure) return 'failed';
  if (r.savepoint) return 'savepoint';
  return r.status || 'completed';
}

/** StoredCheckpoint (older nodes) -> CheckpointRecord-like rows. */
function fromStored(list) {
  const rows = (list?.checkpoints || []).map((c) => ({
    epoch: c.epoch,
    triggered_ms: c.created_ms,
    duration_ms: null,
    alignment_ms: null,
    bytes: c.bytes,
    incremental_bytes: null,
    failure: c.problem || null,
    savepoint: null,
    status: c.complete ? (c.finished ? 'finished' : 'completed') : 'incomplete',
    name: c.name,
  }));
  for (const sp of list?.savepoints || []) rows.push({ epoch: null, savepoint: sp, name: sp, bytes: null });
  return rows;
}

export function create(ctx) {
  const summary = h('p', { class: 'muted', 'data-test': 'checkpoint-summary' });
  const source = h('p', { class: 'hint', hidden: true });
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', 'data-test': 'checkpoints-empty', hidden: true }, 'No checkpoints yet.');
  const el = h(
    'div',
    { class: 'card table-card' },
    h('h2', {}, 'Checkpoints'),
    summary,
    source,
    h(
      'div',
      { class: 'scroll-x' },
      h(
        'table',
        { class: 'table', 'data-test': 'checkpoint-table', 'aria-label': 'Checkpoint history' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['ID', 'Triggered', 'Duration', 'Alignment', 'Size', 'Incremental', 'Status', 'Failure reason'].map((t, i) =>
              h('th', { scope: 'col', class: [2, 3, 4, 5].includes(i) ? 'num' : null }, t),
            ),
          ),
        ),
        tbody,
      ),
    ),
    empty,
  );

  let key = null;
  function draw(records) {
    const sorted = [...records].sort((a, b) => (b.epoch ?? -1) - (a.epoch ?? -1) || (b.triggered_ms ?? 0) - (a.triggered_ms ?? 0));
    const k = JSON.stringify(sorted);
    if (k === key) return;
    key = k;
    replace(
      tbody,
      sorted.map((r) => {
        const st = status(r);
        return h(
          'tr',
          { 'data-test': 'checkpoint-row', 'data-epoch': r.epoch, 'data-status': st },
          h('th', { scope: 'row', title: r.name || null }, r.epoch == null ? r.name || fmt.DASH : `#${r.epoch}`),
          h('td', { title: fmt.iso(r.triggered_ms) || null }, fmt.dateTime(r.triggered_ms)),
          h('td', { class: 'num' }, fmt.ms(r.duration_ms)),
          h('td', { class: 'num' }, fmt.ms(r.alignment_ms)),
          h('td', { class: 'num' }, fmt.bytes(r.bytes)),
          h('td', { class: 'num' }, fmt.bytes(r.incremental_bytes)),
          h('td', {}, h('span', { class: `badge ck-${st}`, 'data-test': 'checkpoint-status', title: r.savepoint || null }, st)),
          h('td', { class: 'reason', 'data-test': 'checkpoint-failure' }, r.failure || ''),
        );
      }),
    );
    empty.hidden = sorted.length > 0;
  }

  // Older nodes: the stored checkpoints, fetched again when the count moves.
  let storedFor = null;
  let fetching = false;
  let lastFetch = 0;
  async function fetchStored(completed) {
    if (fetching || (storedFor === completed && Date.now() - lastFetch < 10000) || Date.now() - lastFetch < 2000) return;
    fetching = true;
    try {
      const list = await api.checkpoints(ctx.id);
      storedFor = completed;
      lastFetch = Date.now();
      draw(fromStored(list));
    } catch (e) {
      lastFetch = Date.now();
      showError(e);
    } finally {
      fetching = false;
    }
  }

  function update(c) {
    const ck = c.detail.checkpoints;
    const last = ck?.last;
    text(
      summary,
      ck
        ? `${fmt.num(ck.completed)} completed, ${fmt.num(ck.failed)} failed this run` +
            (last ? `; last #${last.epoch} ${fmt.age(last.completed_ms, c.now())}, took ${fmt.ms(last.duration_ms)}.` : '.')
        : 'The pipeline is not running: the table lists its stored checkpoints.',
    );
    if (Array.isArray(ck?.history)) {
      source.hidden = true;
      draw(ck.history);
    } else {
      source.hidden = false;
      text(source, 'This node reports no checkpoint history: these are the stored checkpoints and savepoints (no durations).');
      fetchStored(ck?.completed ?? -1);
    }
  }
  return { el, update };
}
