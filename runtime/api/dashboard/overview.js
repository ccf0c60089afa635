// overview.js: the Overview tab of a pipeline: the live dataflow graph, the
// 5-minute charts (throughput, sink latency, watermark lag) and the table
// of nodes with the same numbers as the graph.

import { lineChart } from './chart.js';
import { h, text, attr } from './dom.js';
import * as fmt from './format.js';
import { graphView } from './graph.js';

// [header, class, test id, title]
const COLS = [
  ['Node', null, 'name'],
  ['Role', null, 'role'],
  ['Plugin', null, 'plugin'],
  ['Par.', 'num', 'parallelism', 'parallelism: tasks running the node'],
  ['In/s', 'num', 'rate-in', 'records in per second'],
  ['Out/s', 'num', 'rate-out', 'records out per second'],
  ['In', 'num', 'records-in', 'records in since the run started'],
  ['Out', 'num', 'records-out', 'records out since the run started'],
  ['Backlog', 'num', 'backlog', 'records sent to it not taken yet'],
  ['Blocked', 'num', 'back-pressure', 'back-pressure: share of time blocked sending downstream'],
  ['WM lag', 'num', 'watermark-lag', 'now minus the event-time watermark'],
  ['State', 'num', 'state', 'keyed state size in the last completed checkpoint'],
  ['Latency', 'num', 'latency', 'mean time from source read to sink write (sinks)'],
  ['Dead', 'num', 'dead-letters', 'dead letters: records failed on and skipped'],
];

function nodeRow(name) {
  const cells = COLS.map(([, cls, test], i) => h(i === 0 ? 'th' : 'td', { class: cls, scope: i === 0 ? 'row' : null, 'data-test': `node-${test}` }));
  return { tr: h('tr', { 'data-test': 'node-row', 'data-name': name }, cells), cells };
}

export function create(ctx) {
  const graph = graphView();
  const nodeCount = h('span', { class: 'muted', 'data-test': 'node-count' });
  const charts = [
    lineChart({
      id: 'throughput',
      title: 'Throughput (records/s)',
      series: [
        { key: 'srcOut', label: 'sources out', cls: 's1' },
        { key: 'sinkIn', label: 'sinks in', cls: 's2' },
      ],
      format: (v) => fmt.compact(v),
    }),
    lineChart({
      id: 'latency',
      title: 'Latency at sinks (mean, ms)',
      series: [{ key: 'latencyMs', label: 'mean', cls: 's3' }],
      format: (v) => fmt.compact(v),
    }),
    lineChart({
      id: 'watermark',
      title: 'Watermark lag (s)',
      series: [{ key: 'watermarkLagS', label: 'lag', cls: 's4' }],
      format: (v) => (v < 10 ? v.toFixed(1) : fmt.compact(v)),
    }),
  ];
  const tbody = h('tbody');
  const rows = new Map();
  const el = h(
    'div',
    { class: 'overview' },
    h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Dataflow'), nodeCount), graph.el),
    h('div', { class: 'charts' }, charts.map((c) => h('div', { class: 'card' }, c.el))),
    h(
      'div',
      { class: 'card table-card' },
      h('h2', {}, 'Nodes'),
      h(
        'div',
        { class: 'scroll-x' },
        h(
          'table',
          { class: 'table compact', 'data-test': 'node-table', 'aria-label': 'Nodes' },
          h('thead', {}, h('tr', {}, COLS.map(([label, cls, , title]) => h('th', { scope: 'col', class: cls, title }, label)))),
          tbody,
        ),
      ),
    ),
  );

  let tick = null;
  function update(c) {
    const d = c.detail;
    graph.update(d, c.numbers, c.roles);
    const nodes = d.nodes || [];
    const count = nodes.length || d.graph?.nodes?.length || 0;
    text(nodeCount, `${count} node${count === 1 ? '' : 's'}`);
    attr(nodeCount, 'data-value', count);
    const now = d.at_ms ?? d._t;
    const graphNode = new Map((d.graph?.nodes || []).map((n) => [n.name, n]));
    const seen = new Set();
    nodes.forEach((n, i) => {
      seen.add(n.name);
      let row = rows.get(n.name);
      if (!row) rows.set(n.name, (row = nodeRow(n.name)));
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
      const num = c.numbers.get(n.name) || {};
      const role = c.roles.get(n.name);
      const values = [
        n.name,
        role,
        n.plugin ?? graphNode.get(n.name)?.plugin ?? '—',
        n.parallelism,
        fmt.rate(num.inRate),
        fmt.rate(num.outRate),
        fmt.num(n.records_in),
        fmt.num(n.records_out),
        fmt.num(n.backlog),
        fmt.percent(num.backPressure),
        n.watermark_ms == null ? fmt.DASH : fmt.seconds(Math.max(0, (now - n.watermark_ms) / 1000)),
        n.state_bytes == null ? fmt.DASH : fmt.bytes(n.state_bytes),
        role === 'sink' ? fmt.ms(num.latencyMs) : fmt.DASH,
        fmt.num(n.dead_letters),
      ];
      values.forEach((v, j) => text(row.cells[j], v));
      attr(row.cells[4], 'data-value', num.inRate ?? null);
      attr(row.cells[5], 'data-value', num.outRate ?? null);
    });
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.tr.remove();
        rows.delete(name);
      }
    }
    drawCharts();
  }
  function drawCharts() {
    const now = ctx.now();
    for (const chart of charts) chart.update(ctx.history.points, now);
  }
  // The time axis moves on between snapshots too.
  tick = setInterval(drawCharts, 1000);
  drawCharts();
  return {
    el,
    update,
    destroy() {
      clearInterval(tick);
    },
  };
}
