// pipeline.js: a pipeline's page (#/pipelines/<id>[/<tab>]): the header
// (status, uptime, restarts, records/s, last checkpoint, last error,
// start/stop/delete), the tabs, and the live data every tab reads: the
// /events stream of PipelineDetail snapshots and log lines (polling
// GET /pipelines/<id> every 2 s on nodes without the stream).

import { api } from './api.js';
import { canStart, canStop, deletePipeline, startPipeline, stopPipeline } from './actions.js';
import { h, text, attr, replace } from './dom.js';
import * as fmt from './format.js';
import { History, Snapshots, nodeNumbers, pipelineNumbers, roles, stamp } from './metrics.js';
import { statusBadge } from './pipelines.js';
import { liveFeed } from './sse.js';
import { setLive, showError } from './toast.js';
import * as overview from './overview.js';
import * as checkpoints from './checkpoints.js';
import * as swaps from './swaps.js';
import * as logs from './logs.js';

const TABS = [
  ['overview', 'Overview', overview],
  ['checkpoints', 'Checkpoints', checkpoints],
  ['swaps', 'Swaps', swaps],
  ['logs', 'Logs', logs],
];
const LOG_CAP = 1000;

function fact(label, testId) {
  const value = h('dd', { 'data-test': testId });
  return { el: h('div', { class: 'fact' }, h('dt', {}, label), value), value };
}

export function mount(view, route) {
  const id = route.id;
  const enc = encodeURIComponent(id);
  /** What the tabs read. */
  const ctx = {
    id,
    detail: null,
    receivedAt: 0,
    snaps: new Snapshots(),
    history: new History(),
    numbers: new Map(),
    pipe: {},
    roles: new Map(),
    swapLog: new Map(), // (operator, requested_ms) -> SwapInfo, for nodes without `swaps`
    logs: [],
    logSeqs: new Set(),
    logListeners: new Set(),
    logsUnavailable: null, // null: not known yet
    /** The node's time now, from the last snapshot's at_ms. */
    now() {
      return ctx.detail?.at_ms != null ? ctx.detail.at_ms + (Date.now() - ctx.receivedAt) : Date.now();
    },
    apply: (d) => onDetail(d),
  };

  // Header.
  const statusSlot = h('span', { class: 'status-slot' });
  const facts = {
    uptime: fact('Uptime', 'uptime'),
    restarts: fact('Restarts', 'restarts'),
    rateIn: fact('In', 'rate-in'),
    rateOut: fact('Out', 'rate-out'),
    backlog: fact('Backlog', 'backlog'),
    checkpoint: fact('Last checkpoint', 'last-checkpoint'),
    resumed: fact('Resumed from', 'resumed-from'),
  };
  const extra = h('p', { class: 'muted small', 'data-test': 'pipeline-extra' });
  const errorBox = h('div', { class: 'error-box', role: 'alert', hidden: true, 'data-test': 'pipeline-error' });
  const startB = h('button', { type: 'button', 'data-test': 'start-button', hidden: true }, 'Start');
  const stopB = h('button', { type: 'button', 'data-test': 'stop-button', hidden: true }, 'Stop');
  const deleteB = h('button', { type: 'button', class: 'danger', 'data-test': 'delete-button' }, 'Delete');
  startB.addEventListener('click', () => startPipeline(id, startB).then((d) => d && onDetail(d)));
  stopB.addEventListener('click', () => stopPipeline(id, stopB).then((d) => d && onDetail(d)));
  deleteB.addEventListener('click', () =>
    deletePipeline(id, deleteB).then((d) => {
      if (d) location.hash = '#/';
    }),
  );
  const missing = h('div', { class: 'card empty', hidden: true, 'data-test': 'pipeline-missing' });

  const tabLinks = new Map();
  const tablist = h(
    'nav',
    { class: 'tabs', role: 'tablist', 'aria-label': 'Pipeline views' },
    TABS.map(([key, label]) => {
      const a = h('a', { href: `#/pipelines/${enc}/${key}`, role: 'tab', id: `tab-${key}`, 'aria-controls': 'tab-panel', 'data-test': `tab-${key}` }, label);
      tabLinks.set(key, a);
      return a;
    }),
  );
  const panel = h('section', { id: 'tab-panel', class: 'tab-panel', role: 'tabpanel' });

  const body = h('div', {}, h('dl', { class: 'facts card' }, Object.values(facts).map((f) => f.el)), extra, errorBox, tablist, panel);
  view.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Pipelines'), ' / '),
    h(
      'div',
      { class: 'page-head' },
      h('h1', { 'data-test': 'pipeline-id' }, id),
      statusSlot,
      h('span', { class: 'spacer' }),
      startB,
      stopB,
      deleteB,
    ),
    missing,
    body,
  );

  let tab = null;
  let current = null;
  function showTab(key) {
    const entry = TABS.find(([k]) => k === key) || TABS[0];
    if (tab === entry[0]) return;
    current?.destroy?.();
    tab = entry[0];
    for (const [k, a] of tabLinks) {
      a.setAttribute('aria-selected', String(k === tab));
      a.classList.toggle('active', k === tab);
    }
    panel.setAttribute('aria-labelledby', `tab-${tab}`);
    current = entry[2].create(ctx);
    replace(panel, current.el);
    if (ctx.detail) current.update(ctx);
  }

  let lastStatus = null;
  function updateHeader() {
    const d = ctx.detail;
    if (d.status !== lastStatus) {
      lastStatus = d.status;
      replace(statusSlot, statusBadge(d.status, 'pipeline-status'));
    }
    text(facts.uptime.value, d.uptime_s == null ? fmt.DASH : fmt.seconds(d.uptime_s));
    text(facts.restarts.value, fmt.num(d.restarts));
    text(facts.rateIn.value, fmt.rate(ctx.pipe.inRate));
    attr(facts.rateIn.value, 'data-value', ctx.pipe.inRate ?? null);
    text(facts.rateOut.value, fmt.rate(ctx.pipe.outRate));
    attr(facts.rateOut.value, 'data-value', ctx.pipe.outRate ?? null);
    const backlog = d.backlog ?? ((d.nodes || []).some((n) => n.backlog != null) ? (d.nodes || []).reduce((a, n) => a + (n.backlog || 0), 0) : null);
    text(facts.backlog.value, fmt.num(backlog));
    const lastMs = d.last_checkpoint_ms ?? d.checkpoints?.last?.completed_ms;
    const epoch = d.checkpoints?.last?.epoch;
    text(facts.checkpoint.value, lastMs == null ? fmt.DASH : `${epoch != null ? `#${epoch}, ` : ''}${fmt.age(lastMs, ctx.now())}`);
    attr(facts.checkpoint.value, 'title', fmt.iso(lastMs) || null);
    text(facts.resumed.value, d.resumed_from || 'fresh start');
    const bits = [];
    if (d.savepoint) bits.push(`Savepoint taken at stop: ${d.savepoint}.`);
    if (d.retry) bits.push(`Failed ${d.retry.attempt} time(s) in a row; next attempt ${fmt.time(d.retry.next_retry_ms)} (backoff ${fmt.seconds(d.retry.backoff_s)}).`);
    if (d.checkpoints) bits.push(`Checkpoints: ${fmt.num(d.checkpoints.completed)} completed, ${fmt.num(d.checkpoints.failed)} failed.`);
    text(extra, bits.join(' '));
    errorBox.hidden = !d.error;
    if (d.error && errorBox.dataset.error !== d.error) {
      errorBox.dataset.error = d.error;
      replace(errorBox, h('strong', {}, 'Last error'), h('pre', { 'data-test': 'pipeline-error-message' }, d.error));
    }
    startB.hidden = !canStart(d.status);
    stopB.hidden = !canStop(d.status);
  }

  function onDetail(d) {
    if (!d || d.id !== id) return;
    stamp(d);
    ctx.receivedAt = Date.now();
    missing.hidden = true;
    ctx.snaps.push(d);
    ctx.detail = d;
    const prev = ctx.snaps.base();
    ctx.roles = roles(d);
    ctx.numbers = nodeNumbers(d, prev);
    ctx.pipe = prev ? pipelineNumbers(d, prev, ctx.numbers) : {};
    if (prev && d.nodes) {
      ctx.history.push(d._t, {
        srcOut: ctx.pipe.inRate,
        sinkIn: ctx.pipe.outRate,
        latencyMs: ctx.pipe.latencyMs,
        watermarkLagS: ctx.pipe.watermarkLagS,
      });
    }
    for (const s of [...(d.swaps || []), d.swap].filter(Boolean)) ctx.swapLog.set(`${s.operator}\u0000${s.requested_ms}`, s);
    updateHeader();
    current?.update(ctx);
  }

  // Logs: the backlog from GET /logs, then live lines, deduplicated by seq.
  function addLogs(lines, replaceAll) {
    let added = false;
    for (const l of lines) {
      if (l.seq != null && ctx.logSeqs.has(l.seq)) continue;
      if (l.seq != null) ctx.logSeqs.add(l.seq);
      ctx.logs.push(l);
      added = true;
    }
    if (!added) return;
    if (replaceAll) ctx.logs.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    while (ctx.logs.length > LOG_CAP) ctx.logSeqs.delete(ctx.logs.shift().seq);
    for (const f of ctx.logListeners) f(replaceAll ? null : lines);
  }
  const stop = new AbortController();
  async function fetchLogs() {
    try {
      const r = await api.logs(id, stop.signal);
      ctx.logsUnavailable = false;
      addLogs(r?.lines || [], true);
    } catch (e) {
      if (stop.signal.aborted) return;
      if (e.status === 404 && /no route/i.test(e.message)) ctx.logsUnavailable = true;
      else if (e.status !== 404) showError(e);
      else ctx.logsUnavailable = true;
      for (const f of ctx.logListeners) f(null);
    }
  }
  let logPoll = null;

  let gone = false;
  const feed = liveFeed({
    path: `/api/v1/pipelines/${enc}/events`,
    pollPath: `/api/v1/pipelines/${enc}`,
    pollEvent: 'pipeline',
    onEvent(type, data) {
      if (type === 'pipeline') onDetail(data);
      else if (type === 'log') addLogs([data], false);
      else if (type === 'lagged') fetchLogs(); // the stream dropped lines for a slow page
    },
    onState(state, detail) {
      setLive(state, detail);
      if (state === 'live') fetchLogs(); // the lines missed while disconnected
      if (state === 'polling' && !logPoll) {
        fetchLogs();
        logPoll = setInterval(() => ctx.logsUnavailable === false && fetchLogs(), 2000);
      }
    },
    onError(e) {
      if (e.status === 404 && !gone) {
        gone = true;
        missing.hidden = false;
        body.hidden = true;
        deleteB.hidden = true;
        replace(missing, h('p', {}, `No pipeline "${id}" on this node: ${e.message}`), h('a', { href: '#/' }, 'Back to pipelines'));
        showError(e);
        feed?.close();
        setLive('');
        return;
      }
      if (e.status !== 404) showError(e);
    },
  });

  showTab(route.tab);
  return {
    route(r) {
      if (r.page !== 'pipeline' || r.id !== id) return false;
      showTab(r.tab);
      return true;
    },
    destroy() {
      stop.abort();
      feed.close();
      clearInterval(logPoll);
      current?.destroy?.();
    },
  };
}
