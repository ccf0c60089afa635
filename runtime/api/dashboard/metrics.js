// metrics.js: what the page derives from successive snapshots of cumulative
// counters: records/s, back-pressure (share of time blocked), mean sink
// latency, watermark lag, the role of each node (also on nodes that do not
// report it), and the 5-minute history the live charts draw.

/** When a snapshot was taken: the node's at_ms, else when it arrived. */
export function stamp(obj) {
  if (obj && obj._t == null) Object.defineProperty(obj, '_t', { value: obj.at_ms ?? Date.now(), enumerable: false });
  return obj;
}

/** (cur - prev) / seconds, or null if unknown or the counter went back (a restart). */
export function perSecond(cur, prev, dtS) {
  if (cur == null || prev == null || !(dtS > 0)) return null;
  const d = cur - prev;
  return d < 0 ? null : d / dtS;
}

/**
 * A short ring of snapshots; `base()` is the newest at least `minGapMs`
 * older than the latest, so that rates span about a second or more.
 */
export class Snapshots {
  constructor(minGapMs = 900, keep = 12) {
    this.minGapMs = minGapMs;
    this.keep = keep;
    this.list = [];
  }
  push(obj) {
    stamp(obj);
    const last = this.list[this.list.length - 1];
    if (last && obj._t < last._t) this.list = [];
    this.list.push(obj);
    if (this.list.length > this.keep) this.list.shift();
  }
  latest() {
    return this.list[this.list.length - 1] || null;
  }
  base() {
    const cur = this.latest();
    if (!cur) return null;
    for (let i = this.list.length - 2; i >= 0; i--) {
      if (cur._t - this.list[i]._t >= this.minGapMs) return this.list[i];
    }
    return null;
  }
}

/**
 * Roles by node name: from the node's own `role`, else the graph's, else
 * guessed from the order (older nodes: sources come first, then operators,
 * which run plugins, then sinks).
 */
export function roles(detail) {
  const out = new Map();
  const graphRole = new Map((detail?.graph?.nodes || []).map((n) => [n.name, n.role]));
  const nodes = detail?.nodes || [];
  const firstOp = nodes.findIndex((n) => n.plugin);
  nodes.forEach((n, i) => {
    let r = n.role || graphRole.get(n.name);
    if (!r) {
      if (n.plugin) r = 'operator';
      else if (firstOp >= 0) r = i < firstOp ? 'source' : 'sink';
      else r = i === 0 ? 'source' : 'sink';
    }
    out.set(n.name, r);
  });
  for (const [name, r] of graphRole) if (!out.has(name)) out.set(name, r);
  return out;
}

/**
 * Per node numbers between `prev` and `cur` (PipelineDetail snapshots):
 * Map name -> {inRate, outRate, backPressure (%), latencyMs, watermarkLagS, ...}.
 */
export function nodeNumbers(cur, prev) {
  const out = new Map();
  if (!cur?.nodes) return out;
  const dtS = prev ? (cur._t - prev._t) / 1000 : 0;
  const before = new Map((prev?.nodes || []).map((n) => [n.name, n]));
  const now = cur.at_ms ?? cur._t;
  for (const n of cur.nodes) {
    const p = before.get(n.name);
    const blocked = perSecond(n.blocked_s, p?.blocked_s, dtS);
    const dSum = perSecond(n.latency_sum_s, p?.latency_sum_s, 1);
    const dCount = perSecond(n.latency_count, p?.latency_count, 1);
    out.set(n.name, {
      inRate: perSecond(n.records_in, p?.records_in, dtS),
      outRate: perSecond(n.records_out, p?.records_out, dtS),
      backPressure: blocked == null ? null : Math.min(100, (100 * blocked) / Math.max(1, n.parallelism || 1)),
      busy: perSecond(n.busy_s, p?.busy_s, dtS),
      latencySum: dSum,
      latencyCount: dCount,
      latencyMs: dCount > 0 && dSum != null ? (1000 * dSum) / dCount : null,
      watermarkLagS: n.watermark_ms == null ? null : Math.max(0, (now - n.watermark_ms) / 1000),
    });
  }
  return out;
}

const sum = (xs) => (xs.length && xs.every((x) => x != null) ? xs.reduce((a, b) => a + b, 0) : null);

/**
 * The pipeline's numbers between two snapshots: records/s in (its sources)
 * and out (its sinks), mean sink latency in ms, watermark lag in s.
 */
export function pipelineNumbers(cur, prev, perNode = nodeNumbers(cur, prev)) {
  const role = roles(cur);
  const of = (r) => (cur?.nodes || []).filter((n) => role.get(n.name) === r).map((n) => perNode.get(n.name));
  const dtS = prev ? (cur._t - prev._t) / 1000 : 0;
  const sources = of('source');
  const sinks = of('sink');
  let inRate = perSecond(cur?.records_in, prev?.records_in, dtS);
  if (inRate == null) inRate = sum(sources.map((x) => x?.outRate ?? null));
  let outRate = perSecond(cur?.records_out, prev?.records_out, dtS);
  if (outRate == null) outRate = sum(sinks.map((x) => x?.inRate ?? null));
  const lsum = sum(sinks.map((x) => x?.latencySum ?? null));
  const lcount = sum(sinks.map((x) => x?.latencyCount ?? null));
  const latencyMs = lcount > 0 && lsum != null ? (1000 * lsum) / lcount : null;
  const lags = sinks.map((x) => x?.watermarkLagS).filter((x) => x != null);
  const allLags = [...perNode.values()].map((x) => x.watermarkLagS).filter((x) => x != null);
  const pick = lags.length ? lags : allLags;
  const watermarkLagS = pick.length ? Math.max(...pick) : null;
  return { inRate, outRate, latencyMs, watermarkLagS };
}

/** Rates of a pipeline list entry (PipelineSummary) between two snapshots. */
export function summaryRates(cur, prev) {
  if (!cur || !prev) return { inRate: null, outRate: null };
  const dtS = (cur._t - prev._t) / 1000;
  return {
    inRate: perSecond(cur.records_in, prev.records_in, dtS),
    outRate: perSecond(cur.records_out, prev.records_out, dtS),
  };
}

/** Timestamped samples over the last `windowMs`, for the charts. */
export class History {
  constructor(windowMs = 5 * 60 * 1000) {
    this.windowMs = windowMs;
    this.points = [];
  }
  push(t, values) {
    const last = this.points[this.points.length - 1];
    if (last && t <= last.t) {
      if (t < last.t - 60000) this.points = []; // the clock went back
      else return;
    }
    this.points.push({ t, ...values });
    const from = t - this.windowMs;
    while (this.points.length && this.points[0].t < from) this.points.shift();
  }
  latest() {
    return this.points[this.points.length - 1] || null;
  }
}
