// chart.js: small live SVG line charts: time on x over the last window
// (ending now), y from 0 to a rounded maximum with grid lines, one line per
// series (gaps where a value is unknown), a legend with the latest values.

import { h, s, text } from './dom.js';

const W = 440;
const H = 170;
const M = { left: 46, right: 10, top: 10, bottom: 22 };

/** 0 -> 1, 7 -> 10, 230 -> 250, 1800 -> 2000: a round top for the y axis. */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/**
 * A chart. series: [{key, label, cls}]; format(v) labels values.
 * Returns {el, update(points, nowMs)} where points are History points.
 */
export function lineChart({ id, title, series, format, windowMs = 5 * 60 * 1000 }) {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const grid = s('g', { class: 'grid' });
  const lines = series.map((sr) => s('path', { class: `line ${sr.cls}`, fill: 'none', 'data-series': sr.key }));
  const empty = s('text', { x: M.left + pw / 2, y: M.top + ph / 2, 'text-anchor': 'middle', class: 'empty' }, 'waiting for data…');
  const svg = s(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': title },
    grid,
    ...lines,
    empty,
  );
  const values = series.map((sr) =>
    h('span', { class: 'value', 'data-test': `chart-value-${sr.key}` }, '—'),
  );
  const legend = h(
    'div',
    { class: 'legend' },
    series.map((sr, i) => h('span', { class: `key ${sr.cls}` }, h('i', { 'aria-hidden': 'true' }), `${sr.label} `, values[i])),
  );
  const el = h('figure', { class: 'chart', 'data-test': `chart-${id}` }, h('figcaption', {}, title), legend, svg);

  function update(points, nowMs) {
    const from = nowMs - windowMs;
    const pts = points.filter((p) => p.t >= from);
    let max = 0;
    for (const p of pts) for (const sr of series) if (p[sr.key] != null) max = Math.max(max, p[sr.key]);
    const top = niceMax(max);
    const x = (t) => M.left + ((t - from) / windowMs) * pw;
    const y = (v) => M.top + ph - (v / top) * ph;
    grid.replaceChildren();
    for (const f of [0, 0.5, 1]) {
      const yy = y(top * f);
      grid.append(
        s('line', { x1: M.left, x2: M.left + pw, y1: yy, y2: yy }),
        s('text', { x: M.left - 5, y: yy + 4, 'text-anchor': 'end' }, format(top * f)),
      );
    }
    for (let m = 5; m >= 0; m--) {
      const t = nowMs - m * 60000;
      if (t < from) continue;
      grid.append(s('text', { x: x(t), y: H - 6, 'text-anchor': m === 0 ? 'end' : 'middle' }, m === 0 ? 'now' : `-${m}m`));
    }
    let any = false;
    series.forEach((sr, i) => {
      let d = '';
      let pen = false;
      for (const p of pts) {
        const v = p[sr.key];
        if (v == null) {
          pen = false;
          continue;
        }
        d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
        any = true;
      }
      lines[i].setAttribute('d', d);
      const last = [...pts].reverse().find((p) => p[sr.key] != null);
      text(values[i], last ? format(last[sr.key]) : '—');
    });
    empty.toggleAttribute('hidden', any);
    empty.setAttribute('visibility', any ? 'hidden' : 'visible');
  }

  return { el, update };
}
