// graph.js: the dataflow graph as SVG: nodes laid out left to right in
// layers by their inputs, chained nodes (same `chain`) grouped in one
// rounded box, edges labeled with their partitioning (and side output).
// Each node shows name, type, parallelism, plugin version, records/s in and
// out, back-pressure, watermark with its lag, and state size; the numbers
// update in place on every snapshot.

import { s, text, attr } from './dom.js';
import * as fmt from './format.js';

const W = 210;
const H = 132;
const GX = 90;
const GY = 30;
const PAD = 22;

/** The graph of a detail; nodes without `graph` get a column each, without edges. */
export function graphOf(detail, roleOf) {
  if (detail?.graph?.nodes?.length) return { nodes: detail.graph.nodes, synthetic: false };
  const nodes = (detail?.nodes || []).map((n, i) => ({
    name: n.name,
    role: n.role || roleOf.get(n.name) || 'operator',
    type: null,
    parallelism: n.parallelism,
    plugin: n.plugin,
    chain: -1 - i,
    inputs: [],
  }));
  return { nodes, synthetic: true };
}

function structureKey(g) {
  return JSON.stringify(g.nodes.map((n) => [n.name, n.role, n.type, n.parallelism, n.chain, n.inputs, g.synthetic]));
}

/** Layer (column) and row of every node. */
export function layout(nodes, synthetic) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const layer = new Map();
  const visiting = new Set();
  const depth = (n) => {
    if (layer.has(n.name)) return layer.get(n.name);
    if (visiting.has(n.name)) return 0; // a cycle: should not happen
    visiting.add(n.name);
    let l = 0;
    for (const i of n.inputs || []) {
      const f = byName.get(i.from);
      if (f) l = Math.max(l, depth(f) + 1);
    }
    visiting.delete(n.name);
    layer.set(n.name, l);
    return l;
  };
  nodes.forEach((n, i) => (synthetic ? layer.set(n.name, i) : depth(n)));
  const cols = [];
  nodes.forEach((n) => (cols[layer.get(n.name)] ||= []).push(n));
  const row = new Map();
  for (const col of cols) {
    if (!col) continue;
    const want = col.map((n, i) => {
      const ins = (n.inputs || []).filter((x) => row.has(x.from));
      const chained = ins.find((x) => byName.get(x.from)?.chain === n.chain);
      const rows = ins.map((x) => row.get(x.from));
      const d = chained ? row.get(chained.from) : rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : i;
      return { n, d, i };
    });
    want.sort((a, b) => a.d - b.d || a.i - b.i);
    let next = 0;
    for (const w of want) {
      const r = Math.max(next, Math.round(w.d));
      row.set(w.n.name, r);
      next = r + 1;
    }
  }
  const pos = new Map();
  for (const n of nodes) pos.set(n.name, { x: PAD + layer.get(n.name) * (W + GX), y: PAD + 14 + row.get(n.name) * (H + GY) });
  return pos;
}

const clip = (v, max) => (v && v.length > max ? `${v.slice(0, max - 1)}…` : v || '');

function buildNode(n, p) {
  const t = (y, cls, extra = {}) => s('text', { x: p.x + 10, y: p.y + y, class: cls, ...extra });
  const el = {
    title: s('title'),
    name: t(19, 'n-name'),
    role: s('text', { x: p.x + W - 10, y: p.y + 19, class: 'n-role', 'text-anchor': 'end' }, n.role || ''),
    type: t(37, 'n-type'),
    plugin: t(54, 'n-plugin', { 'data-test': 'graph-node-plugin' }),
    rates: t(71, 'n-rates', { 'data-test': 'graph-node-rates' }),
    bp: t(88, 'n-bp', { 'data-test': 'graph-node-bp' }),
    wm: t(105, 'n-wm', { 'data-test': 'graph-node-watermark' }),
    state: t(122, 'n-state', { 'data-test': 'graph-node-state' }),
    bar: s('rect', { x: p.x + 1, y: p.y + H - 4, width: 0, height: 3, class: 'n-bar' }),
  };
  text(el.name, clip(n.name, 22));
  el.box = s('rect', { x: p.x, y: p.y, width: W, height: H, rx: 7, class: `n-box role-${n.role}` });
  el.g = s(
    'g',
    { class: 'g-node', 'data-test': 'graph-node', 'data-name': n.name, tabindex: 0, role: 'group', 'aria-label': `${n.role || 'node'} ${n.name}` },
    el.title,
    el.box,
    el.bar,
    el.name,
    el.role,
    el.type,
    el.plugin,
    el.rates,
    el.bp,
    el.wm,
    el.state,
  );
  return el;
}

/** The graph view: {el, update(detail, numbers, roleOf)}. */
export function graphView() {
  const wrap = document.createElement('div');
  wrap.className = 'graph-wrap';
  wrap.setAttribute('data-test', 'graph-wrap');
  let key = null;
  let parts = new Map();

  function build(g) {
    const pos = layout(g.nodes, g.synthetic);
    let width = 0;
    let height = 0;
    for (const p of pos.values()) {
      width = Math.max(width, p.x + W + PAD);
      height = Math.max(height, p.y + H + PAD);
    }
    const defs = s(
      'defs',
      {},
      s(
        'marker',
        { id: 'graph-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }),
      ),
    );
    const chains = s('g', { class: 'chains' });
    const groups = new Map();
    for (const n of g.nodes) if (n.chain != null) (groups.get(n.chain) || groups.set(n.chain, []).get(n.chain)).push(n);
    for (const [chain, members] of groups) {
      if (members.length < 2) continue;
      const ps = members.map((m) => pos.get(m.name));
      const x0 = Math.min(...ps.map((p) => p.x)) - 10;
      const y0 = Math.min(...ps.map((p) => p.y)) - 22;
      const x1 = Math.max(...ps.map((p) => p.x + W)) + 10;
      const y1 = Math.max(...ps.map((p) => p.y + H)) + 10;
      chains.append(
        s('rect', { x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 16, class: 'chain', 'data-test': 'graph-chain', 'data-chain': chain }),
        s('text', { x: x0 + 12, y: y0 + 14, class: 'chain-label' }, `chained in one task: ${members.map((m) => m.name).join(' → ')}`),
      );
    }
    const edges = s('g', { class: 'edges' });
    for (const n of g.nodes) {
      for (const input of n.inputs || []) {
        const from = pos.get(input.from);
        const to = pos.get(n.name);
        if (!from || !to) continue;
        const x1 = from.x + W;
        const y1 = from.y + H / 2;
        const x2 = to.x - 2;
        const y2 = to.y + H / 2;
        const dx = Math.max(30, (x2 - x1) / 2);
        const label = input.output ? `${input.output}: ${input.partitioning}` : input.partitioning || '';
        const lw = label.length * 6.4 + 10;
        const [mx, my] = [(x1 + x2) / 2, (y1 + y2) / 2];
        edges.append(
          s(
            'g',
            { class: `edge p-${input.partitioning}`, 'data-test': 'graph-edge', 'data-from': input.from, 'data-to': n.name },
            s('path', { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, 'marker-end': 'url(#graph-arrow)' }),
            label && s('rect', { x: mx - lw / 2, y: my - 9, width: lw, height: 16, rx: 4, class: 'edge-label-bg' }),
            label && s('text', { x: mx, y: my + 3, 'text-anchor': 'middle', class: 'edge-label', 'data-test': 'graph-edge-label' }, label),
          ),
        );
      }
    }
    const nodesG = s('g', { class: 'nodes' });
    parts = new Map();
    for (const n of g.nodes) {
      const el = buildNode(n, pos.get(n.name));
      parts.set(n.name, { el, n, x: pos.get(n.name).x });
      nodesG.append(el.g);
    }
    const svg = s(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, width, height, class: width > 1900 ? 'graph wide' : 'graph', role: 'img', 'aria-label': 'Dataflow graph', 'data-test': 'graph' },
      defs,
      chains,
      edges,
      nodesG,
    );
    const note = g.synthetic
      ? Object.assign(document.createElement('p'), { className: 'hint', textContent: 'This node does not report the graph\'s edges: nodes are shown in order, unconnected.' })
      : null;
    wrap.replaceChildren(svg, ...(note ? [note] : []));
  }

  function update(detail, numbers, roleOf) {
    const g = graphOf(detail, roleOf);
    if (!g.nodes.length) {
      if (key !== '') wrap.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'The graph shows while the pipeline runs.' }));
      key = '';
      return;
    }
    const k = structureKey(g);
    if (k !== key) {
      key = k;
      build(g);
    }
    const status = new Map((detail.nodes || []).map((n) => [n.name, n]));
    const now = detail.at_ms ?? detail._t ?? Date.now();
    for (const n of g.nodes) {
      const part = parts.get(n.name);
      if (!part) continue;
      const { el } = part;
      const st = status.get(n.name) || {};
      const num = numbers.get(n.name) || {};
      const plugin = st.plugin ?? n.plugin;
      text(el.type, `${clip(n.type || (n.role === 'operator' && plugin ? 'wasm' : '—'), 20)} · par. ${st.parallelism ?? n.parallelism ?? '?'}`);
      text(el.plugin, plugin ? `plugin ${plugin}` : 'built in');
      attr(el.plugin, 'data-plugin', plugin || null);
      attr(el.plugin, 'class', plugin ? 'n-plugin' : 'n-plugin none');
      text(el.rates, `in ${fmt.rate(num.inRate)} · out ${fmt.rate(num.outRate)}`);
      const bp = num.backPressure;
      text(el.bp, `back-pressure ${fmt.percent(bp)}`);
      attr(el.bar, 'width', bp == null ? 0 : Math.max(0, ((W - 2) * bp) / 100).toFixed(1));
      attr(el.box, 'class', `n-box role-${n.role} ${bp == null ? '' : bp >= 50 ? 'bp-high' : bp >= 10 ? 'bp-mid' : 'bp-low'}`);
      const wm = st.watermark_ms;
      text(el.wm, wm == null ? 'watermark —' : `watermark ${fmt.time(wm)} · lag ${fmt.seconds(Math.max(0, (now - wm) / 1000))}`);
      text(el.state, `state ${st.state_bytes == null ? '—' : fmt.bytes(st.state_bytes)}`);
      text(
        el.title,
        [
          `${n.name} (${n.role})`,
          `type ${n.type || '—'}, parallelism ${st.parallelism ?? n.parallelism}`,
          plugin ? `plugin ${plugin}` : null,
          `records in ${fmt.num(st.records_in)}, out ${fmt.num(st.records_out)}`,
          `backlog ${fmt.num(st.backlog)}, dead letters ${fmt.num(st.dead_letters)}`,
        ]
          .filter(Boolean)
          .join('\n'),
      );
    }
  }

  return { el: wrap, update };
}
