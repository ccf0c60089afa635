// unit.test.mjs: node:test tests of the dashboard's pure modules (no
// browser): the SSE parser, rates and derived numbers, the graph layout,
// the chart scale, formatting and routing.
//   node --test tests/dashboard/unit.test.mjs

import assert from 'node:assert/strict';
import test from 'node:test';

const dir = '../../runtime/api/dashboard';
const { readEvents } = await import(`${dir}/sse.js`);
const { perSecond, Snapshots, stamp, nodeNumbers, pipelineNumbers, roles, summaryRates, History } = await import(`${dir}/metrics.js`);
const { layout, graphOf } = await import(`${dir}/graph.js`);
const { niceMax } = await import(`${dir}/chart.js`);
const fmt = await import(`${dir}/format.js`);
const { parse } = await import(`${dir}/route.js`);

function body(chunks) {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

test('readEvents: events split across chunks, CRLF, comments, multi-line data', async () => {
  const got = [];
  await readEvents(
    body([': hello\n', 'event: pipel', 'ine\ndata: {"a":', '1}\n\n', 'event: log\r', '\ndata: x\r\ndata: y\r\n\r\n', 'data: plain\n\n', 'event: empty\n\n']),
    (type, data) => got.push([type, data]),
  );
  assert.deepEqual(got, [
    ['pipeline', '{"a":1}'],
    ['log', 'x\ny'],
    ['message', 'plain'],
  ]);
});

test('perSecond: deltas, restarts and unknowns', () => {
  assert.equal(perSecond(300, 100, 2), 100);
  assert.equal(perSecond(100, 300, 2), null); // counters reset: a restart
  assert.equal(perSecond(undefined, 1, 1), null);
  assert.equal(perSecond(5, 1, 0), null);
});

test('Snapshots.base: the newest snapshot at least 0.9 s older', () => {
  const s = new Snapshots();
  for (const t of [1000, 2000, 2500, 3000]) s.push({ at_ms: t });
  assert.equal(s.latest().at_ms, 3000);
  assert.equal(s.base().at_ms, 2000);
});

const snap = (at, nodes, extra = {}) => stamp({ id: 'p', at_ms: at, nodes, ...extra });
const node = (name, role, o = {}) => ({ name, role, parallelism: 2, records_in: 0, records_out: 0, blocked_s: 0, latency_sum_s: 0, latency_count: 0, plugin: null, ...o });

test('nodeNumbers and pipelineNumbers: rates, back-pressure, latency, watermark lag', () => {
  const a = snap(10_000, [node('src', 'source', { records_out: 1000, blocked_s: 1 }), node('op', 'operator'), node('sink', 'sink', { records_in: 500, latency_sum_s: 1, latency_count: 10 })]);
  const b = snap(12_000, [
    node('src', 'source', { records_out: 5000, blocked_s: 3, watermark_ms: 11_000 }),
    node('op', 'operator'),
    node('sink', 'sink', { records_in: 4500, latency_sum_s: 1.5, latency_count: 20, watermark_ms: 9_000 }),
  ]);
  const n = nodeNumbers(b, a);
  assert.equal(n.get('src').outRate, 2000);
  assert.equal(n.get('src').backPressure, 50); // 2 s blocked over 2 s, parallelism 2
  assert.equal(n.get('sink').latencyMs, 50); // 0.5 s over 10 batches
  assert.equal(n.get('src').watermarkLagS, 1);
  const p = pipelineNumbers(b, a, n);
  assert.equal(p.inRate, 2000);
  assert.equal(p.outRate, 2000);
  assert.equal(p.latencyMs, 50);
  assert.equal(p.watermarkLagS, 3); // the sinks' lag
});

test('pipelineNumbers prefers the pipeline counters', () => {
  const a = snap(0, [], { records_in: 0, records_out: 0 });
  const b = snap(1000, [], { records_in: 70, records_out: 60 });
  assert.deepEqual([pipelineNumbers(b, a).inRate, pipelineNumbers(b, a).outRate], [70, 60]);
  assert.deepEqual(summaryRates(b, a), { inRate: 70, outRate: 60 });
});

test('roles: guessed on nodes that do not say', () => {
  const r = roles({ nodes: [{ name: 'e' }, { name: 'c', plugin: 'x@1' }, { name: 'o' }] });
  assert.deepEqual([...r], [['e', 'source'], ['c', 'operator'], ['o', 'sink']]);
});

test('layout: layers by inputs, chained nodes on one row', () => {
  const nodes = [
    { name: 'a', chain: 0, inputs: [] },
    { name: 'b', chain: 1, inputs: [] },
    { name: 'j', chain: 2, inputs: [{ from: 'a', partitioning: 'key_by' }, { from: 'b', partitioning: 'key_by' }] },
    { name: 'k', chain: 2, inputs: [{ from: 'j', partitioning: 'forward' }] },
    { name: 'dl', chain: 3, inputs: [{ from: 'j', output: 'errors', partitioning: 'forward' }] },
  ];
  const pos = layout(nodes, false);
  const x = (n) => pos.get(n).x;
  const y = (n) => pos.get(n).y;
  assert.equal(x('a'), x('b'));
  assert.ok(x('j') > x('a'));
  assert.equal(x('k'), x('dl'));
  assert.ok(x('k') > x('j'));
  assert.equal(y('k'), y('j')); // chained: same row
  assert.notEqual(y('dl'), y('k'));
  const g = graphOf({ nodes: [{ name: 'e', parallelism: 1 }, { name: 'c', plugin: 'x@1', parallelism: 2 }] }, new Map([['e', 'source'], ['c', 'operator']]));
  assert.equal(g.synthetic, true);
  assert.equal(g.nodes[1].plugin, 'x@1');
});

test('History keeps 5 minutes', () => {
  const h = new History(300_000);
  for (let t = 0; t <= 400_000; t += 1000) h.push(t, { v: t });
  assert.equal(h.points[0].t, 100_000);
  assert.equal(h.latest().t, 400_000);
});

test('niceMax and formatting', () => {
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(7), 8);
  assert.equal(niceMax(2000), 2000);
  assert.equal(niceMax(2001), 2500);
  assert.equal(fmt.rate(2000), '2.00k/s');
  assert.equal(fmt.rate(null), '—');
  assert.equal(fmt.bytes(1536), '1.5 KiB');
  assert.equal(fmt.seconds(125), '2m 05s');
  assert.equal(fmt.ms(1500), '1.5 s');
  assert.equal(fmt.percent(4.25), '4.3%');
});

test('routes', () => {
  assert.deepEqual(parse(''), { page: 'pipelines' });
  assert.deepEqual(parse('#/'), { page: 'pipelines' });
  assert.deepEqual(parse('#/pipelines/my%20p'), { page: 'pipeline', id: 'my p', tab: 'overview' });
  assert.deepEqual(parse('#/pipelines/x/swaps'), { page: 'pipeline', id: 'x', tab: 'swaps' });
  assert.deepEqual(parse('#/plugins'), { page: 'plugins' });
  assert.equal(parse('#/nope').page, 'missing');
});
