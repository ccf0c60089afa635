// format.js: how numbers, sizes, rates, durations and times read on the
// page. Every function takes null/undefined and answers an em dash.

export const DASH = '—';
const none = (v) => v == null || Number.isNaN(v);

export function num(v) {
  if (none(v)) return DASH;
  return Math.round(v).toLocaleString('en-US');
}

/** 1234 -> "1.23k", compact, for graph labels and rates. */
export function compact(v) {
  if (none(v)) return DASH;
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(a >= 1e10 ? 1 : 2)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(a >= 1e4 ? 1 : 2)}k`;
  if (a >= 10 || v === 0) return String(Math.round(v));
  return v.toFixed(1);
}

export function rate(v) {
  return none(v) ? DASH : `${compact(v)}/s`;
}

export function bytes(v) {
  if (none(v)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? `${x} B` : `${x.toFixed(x >= 100 ? 0 : 1)} ${units[i]}`;
}

export function percent(v) {
  if (none(v)) return DASH;
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)}%`;
}

/** Milliseconds as "12 ms", "1.5 s". */
export function ms(v) {
  if (none(v)) return DASH;
  if (Math.abs(v) < 1000) return `${v >= 10 ? Math.round(v) : Number(v.toFixed(1))} ms`;
  return seconds(v / 1000);
}

/** Seconds as "0.4 s", "42 s", "3m 05s", "2h 10m", "3d 4h". */
export function seconds(v) {
  if (none(v)) return DASH;
  const a = Math.abs(v);
  const sign = v < 0 ? '-' : '';
  if (a < 10) return `${sign}${a.toFixed(1)} s`;
  if (a < 60) return `${sign}${Math.round(a)} s`;
  const m = Math.floor(a / 60);
  if (m < 60) return `${sign}${m}m ${String(Math.floor(a % 60)).padStart(2, '0')}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${sign}${hrs}h ${String(m % 60).padStart(2, '0')}m`;
  return `${sign}${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** How long ago `thenMs` was, seen at `nowMs`: "12 s ago". */
export function age(thenMs, nowMs = Date.now()) {
  if (none(thenMs)) return DASH;
  return `${seconds(Math.max(0, (nowMs - thenMs) / 1000))} ago`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time "14:03:07". */
export function time(msSinceEpoch) {
  if (none(msSinceEpoch)) return DASH;
  const d = new Date(msSinceEpoch);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time with milliseconds, for log lines. */
export function timeMs(msSinceEpoch) {
  if (none(msSinceEpoch)) return DASH;
  return `${time(msSinceEpoch)}.${pad(new Date(msSinceEpoch).getMilliseconds(), 3)}`;
}

/** Local date and time "2026-01-31 14:03:07". */
export function dateTime(msSinceEpoch) {
  if (none(msSinceEpoch)) return DASH;
  const d = new Date(msSinceEpoch);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time(msSinceEpoch)}`;
}

/** The ISO time, for title attributes. */
export function iso(msSinceEpoch) {
  return none(msSinceEpoch) ? '' : new Date(msSinceEpoch).toISOString();
}
