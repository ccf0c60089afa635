// swaps.js: the Swaps tab of a pipeline: the form that hot-swaps an
// operator to another plugin version, the last swap with its live
// probation bar, and the swap history per operator.

import { api } from './api.js';
import { h, text, attr, replace } from './dom.js';
import * as fmt from './format.js';
import { showError, showInfo } from './toast.js';

const LIVE = ['pending', 'switched'];
const splitPlugin = (pv) => {
  const i = (pv || '').lastIndexOf('@');
  return i < 0 ? [pv, ''] : [pv.slice(0, i), pv.slice(i + 1)];
};

/** Compare versions numerically where they are numbers ("1.10" > "1.9"). */
function versionCmp(a, b) {
  const pa = String(a).split(/[.+-]/);
  const pb = String(b).split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c) return c;
  }
  return 0;
}

function swapBadge(status, testId) {
  return h('span', { class: `badge sw-${status}`, 'data-test': testId, 'data-status': status }, status);
}

/** The swaps of the detail, oldest first (from `swaps`, else those seen so far). */
function history(ctx) {
  const d = ctx.detail;
  // The swaps seen so far (answers to requests included), the node's own
  // records taking precedence.
  const all = new Map(ctx.swapLog);
  for (const s of d?.swaps || []) all.set(`${s.operator}\u0000${s.requested_ms}`, s);
  return [...all.values()].sort((a, b) => a.requested_ms - b.requested_ms);
}

export function create(ctx) {
  let registry = null;
  const operator = h('select', { id: 'swap-operator', name: 'operator', required: true, 'data-test': 'swap-operator' });
  const plugin = h('select', { id: 'swap-plugin', name: 'plugin', required: true, 'data-test': 'swap-plugin' });
  const probation = h('input', {
    id: 'swap-probation',
    name: 'probation',
    value: '5s',
    size: 8,
    pattern: '\\s*[0-9.]+\\s*(ms|s|m|h)?\\s*',
    title: 'A duration, e.g. 5s, 500ms, 1m',
    'data-test': 'swap-probation',
    'aria-describedby': 'swap-help',
  });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'swap-submit' }, 'Swap');
  const formError = h('pre', { class: 'form-error', role: 'alert', hidden: true, 'data-test': 'swap-error' });
  const running = h('span', { class: 'muted', 'data-test': 'swap-running' });
  const form = h(
    'form',
    { class: 'swap-form', 'data-test': 'swap-form', 'aria-labelledby': 'swap-title' },
    h('h2', { id: 'swap-title' }, 'Hot swap an operator'),
    h(
      'div',
      { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'swap-operator' }, 'Operator'), operator),
      h('div', { class: 'field' }, h('label', { for: 'swap-plugin' }, 'New version'), plugin),
      h('div', { class: 'field' }, h('label', { for: 'swap-probation' }, 'Probation'), probation),
      h('div', { class: 'field end' }, submit),
    ),
    h('p', { id: 'swap-help', class: 'hint' }, running, ' The new version switches in at a checkpoint barrier; a failure during probation rolls it back.'),
    formError,
  );

  const lastCard = h('div', { class: 'last-swap', 'data-test': 'last-swap' });
  const groups = h('div', { class: 'swap-groups', 'data-test': 'swap-history' });
  const el = h('div', { class: 'swaps' }, h('div', { class: 'card' }, form), h('div', { class: 'card' }, h('h2', {}, 'Last swap'), lastCard), h('div', { class: 'card table-card' }, h('h2', {}, 'History'), groups));

  // The operators that run a plugin, and the registry versions of it.
  let opsKey = null;
  function fillOperators(plugins) {
    const ops = Object.entries(plugins || {});
    const k = JSON.stringify(ops);
    if (k === opsKey) return;
    opsKey = k;
    const before = operator.value;
    replace(operator, ops.length ? ops.map(([op, pv]) => h('option', { value: op, 'data-plugin': pv }, `${op} (${pv})`)) : h('option', { value: '' }, 'no operator runs a plugin'));
    if (ops.some(([op]) => op === before)) operator.value = before;
    fillVersions();
  }
  let versionsKey = null;
  function fillVersions() {
    const current = ctx.detail?.plugins?.[operator.value] || '';
    const [name, version] = splitPlugin(current);
    text(running, current ? `${operator.value} runs ${current}.` : '');
    const versions = (registry || []).filter((p) => p.name === name).sort((a, b) => versionCmp(b.version, a.version));
    const k = JSON.stringify([current, versions.map((v) => v.version), registry == null]);
    if (k === versionsKey) return;
    versionsKey = k;
    const before = plugin.value;
    if (registry == null) {
      replace(plugin, h('option', { value: '' }, 'loading…'));
      return;
    }
    replace(
      plugin,
      versions.length
        ? versions.map((v) =>
            h('option', { value: `${v.name}@${v.version}`, disabled: v.version === version }, `${v.name}@${v.version}${v.version === version ? ' (running)' : ''}`),
          )
        : h('option', { value: '' }, `no versions of ${name || 'the plugin'} in the registry`),
    );
    const choices = versions.filter((v) => v.version !== version).map((v) => `${v.name}@${v.version}`);
    plugin.value = choices.includes(before) ? before : choices[0] || '';
  }
  async function loadRegistry() {
    try {
      registry = await api.plugins();
    } catch (e) {
      registry = [];
      showError(e);
    }
    versionsKey = null;
    fillVersions();
  }
  operator.addEventListener('change', fillVersions);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.hidden = true;
    const op = operator.value;
    const pv = plugin.value;
    if (!op || !pv) {
      formError.textContent = 'Choose an operator and a plugin version to swap to.';
      formError.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Swapping…';
    try {
      const r = await api.swap(ctx.id, op, pv, probation.value.trim());
      // A SwapInfo; older nodes answer the PipelineDetail with `swap`.
      const info = r && r.operator && r.status ? r : r?.swap;
      if (info) {
        ctx.swapLog.set(`${info.operator}\u0000${info.requested_ms}`, info);
        showInfo(`${info.operator}: ${info.from} → ${info.to} ${info.status}${info.switch_ms != null ? ` in ${fmt.ms(info.switch_ms)}` : ''}.`);
        pendingShown = info;
      }
      if (r && r.id && r.status && !r.operator) ctx.apply(r);
      else if (ctx.detail) update(ctx);
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
      showError(err);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Swap';
    }
  });

  // The last swap, with its probation bar updated between snapshots.
  let pendingShown = null;
  let bar = null;
  let shown = null;
  function drawLast(s) {
    const k = JSON.stringify(s);
    if (k === shown) return;
    shown = k;
    bar = null;
    lastCard.dataset.requested = s?.requested_ms ?? '';
    lastCard.dataset.operator = s?.operator ?? '';
    if (!s) {
      replace(lastCard, h('p', { class: 'muted', 'data-test': 'swap-none' }, 'No swap yet.'));
      return;
    }
    const live = LIVE.includes(s.status);
    const parts = [
      h(
        'p',
        { class: 'swap-line' },
        h('strong', {}, s.operator),
        `: ${s.from} → `,
        h('strong', { 'data-test': 'swap-to' }, s.to),
        ' ',
        swapBadge(s.status, 'swap-status'),
      ),
      h(
        'p',
        { class: 'muted small' },
        `Requested ${fmt.time(s.requested_ms)}`,
        s.switch_ms != null ? `; switched in ${fmt.ms(s.switch_ms)}` : '',
        s.epoch != null ? ` at checkpoint #${s.epoch}` : '',
        s.probation_ms != null ? `; probation ${fmt.ms(s.probation_ms)}` : '',
        '.',
      ),
      s.reason ? h('pre', { class: 'form-error', 'data-test': 'swap-reason' }, s.reason) : null,
    ];
    if (live) {
      const label = h('span', { id: 'probation-label', class: 'small muted' }, 'Probation live');
      if (s.switched_at_ms != null && s.probation_ms > 0) {
        bar = { el: h('progress', { max: s.probation_ms, value: 0, 'aria-labelledby': 'probation-label', 'data-test': 'probation-bar' }), label, s };
      } else {
        // Not switched yet, or a node that does not say when: indeterminate.
        bar = { el: h('progress', { 'aria-labelledby': 'probation-label', 'data-test': 'probation-bar' }), label, s: null };
        text(label, s.status === 'pending' ? 'Waiting for the checkpoint barrier…' : 'Probation live: waiting for the confirming checkpoint…');
      }
      parts.push(h('div', { class: 'probation' }, bar.el, label));
    }
    replace(lastCard, ...parts);
    tickBar();
  }
  function tickBar() {
    if (!bar?.s) return;
    const elapsed = Math.max(0, ctx.now() - bar.s.switched_at_ms);
    const total = bar.s.probation_ms;
    bar.el.value = Math.min(total, elapsed);
    text(
      bar.label,
      elapsed < total
        ? `Probation live: ${fmt.seconds(elapsed / 1000)} of ${fmt.seconds(total / 1000)}`
        : 'Probation over: waiting for the confirming checkpoint…',
    );
  }
  const timer = setInterval(tickBar, 200);

  let historyKey = null;
  function drawHistory(list) {
    const k = JSON.stringify(list);
    if (k === historyKey) return;
    historyKey = k;
    if (!list.length) {
      replace(groups, h('p', { class: 'muted' }, 'No swaps yet.'));
      return;
    }
    const byOp = new Map();
    for (const s of list) (byOp.get(s.operator) || byOp.set(s.operator, []).get(s.operator)).push(s);
    replace(
      groups,
      [...byOp].map(([op, swaps]) =>
        h(
          'section',
          { class: 'swap-group', 'data-test': 'swap-group', 'data-operator': op },
          h('h3', {}, `Operator ${op}`),
          h(
            'table',
            { class: 'table swap-table', 'aria-label': `Swaps of ${op}` },
            h('thead', {}, h('tr', {}, ['From', 'To', 'Requested', 'Switched', 'Status', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              [...swaps].reverse().map((s) =>
                h(
                  'tr',
                  { 'data-test': 'swap-row', 'data-status': s.status },
                  h('td', {}, s.from),
                  h('td', {}, s.to),
                  h('td', { title: fmt.iso(s.requested_ms) }, fmt.dateTime(s.requested_ms)),
                  h(
                    'td',
                    {},
                    s.switch_ms != null ? `after ${fmt.ms(s.switch_ms)}` : fmt.DASH,
                    s.switched_at_ms != null ? ` (${fmt.time(s.switched_at_ms)})` : '',
                    s.epoch != null ? `, checkpoint #${s.epoch}` : '',
                  ),
                  h('td', {}, swapBadge(s.status, 'swap-row-status')),
                  h('td', { class: 'reason' }, s.reason || ''),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  let lastStatusSeen = null;
  function update(c) {
    fillOperators(c.detail.plugins);
    fillVersions();
    const list = history(c);
    const last = c.detail.swap || list[list.length - 1] || null;
    // Right after a request, show its answer until a snapshot has the swap.
    const s = last && (!pendingShown || last.requested_ms >= pendingShown.requested_ms) ? last : pendingShown;
    if (s === last) pendingShown = null;
    drawLast(s);
    drawHistory(list);
    // A swap that ended: versions in use changed, refresh the registry.
    if (s && s.status !== lastStatusSeen) {
      if (lastStatusSeen && !LIVE.includes(s.status)) loadRegistry();
      lastStatusSeen = s.status;
    }
    attr(submit, 'disabled', s && LIVE.includes(s.status) && s.operator === operator.value ? true : null);
  }
  loadRegistry();
  return {
    el,
    update,
    destroy() {
      clearInterval(timer);
    },
  };
}
