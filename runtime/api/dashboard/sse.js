// sse.js: live data. Reads a text/event-stream over fetch (EventSource
// cannot send the token), parses its events, reconnects with a short
// backoff, and when the node has no such stream (404) falls back to polling
// a JSON endpoint every 2 s. Everything stops on close().

import { ApiError, errorMessage, request } from './api.js';
import { askToken, authHeaders } from './token.js';

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * Parse an event stream body, calling onEvent(type, data) per event.
 * Resolves when the body ends; `idleMs` without a byte aborts via `onIdle`.
 */
export async function readEvents(body, onEvent, { idleMs = 15000, onIdle } = {}) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let type = '';
  let data = [];
  let idle = null;
  const arm = () => {
    clearTimeout(idle);
    if (onIdle) idle = setTimeout(onIdle, idleMs);
  };
  const line = (l) => {
    if (l === '') {
      if (data.length) onEvent(type || 'message', data.join('\n'));
      type = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const i = l.indexOf(':');
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? '' : l.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  };
  arm();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      arm();
      buf += decoder.decode(value, { stream: true });
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buf);
        if (!m) break;
        // A lone \r at the end may be the first half of \r\n: wait.
        if (m[0] === '\r' && m.index === buf.length - 1) break;
        line(buf.slice(0, m.index));
        buf = buf.slice(m.index + m[0].length);
      }
    }
  } finally {
    clearTimeout(idle);
    reader.releaseLock?.();
  }
}

/**
 * A live feed: the stream `path` (events handled by onEvent(type, json)),
 * or, if the node has no such stream, GET `pollPath` every 2 s, each answer
 * given to onEvent(pollEvent, json). onState(state, detail) reports
 * 'live' | 'polling' | 'down'. Returns {close()}.
 */
export function liveFeed({ path, pollPath, pollEvent, onEvent, onState = () => {}, onError = () => {} }) {
  const stop = new AbortController();
  let conn = null;
  const deliver = (type, raw) => {
    let obj;
    try {
      obj = JSON.parse(raw);
    } catch {
      onError(new ApiError(0, `the node sent a ${type} event that is not JSON`));
      return;
    }
    try {
      onEvent(type, obj);
    } catch (e) {
      console.error(e);
    }
  };

  async function poll() {
    onState('polling');
    while (!stop.signal.aborted) {
      try {
        const obj = await request('GET', pollPath, { signal: stop.signal });
        if (stop.signal.aborted) return;
        onState('polling');
        onEvent(pollEvent, obj);
      } catch (e) {
        if (stop.signal.aborted) return;
        onState('down', e.message);
        onError(e);
      }
      await sleep(2000, stop.signal);
    }
  }

  async function stream() {
    let backoff = 500;
    while (!stop.signal.aborted) {
      conn = new AbortController();
      const abortConn = () => conn.abort();
      stop.signal.addEventListener('abort', abortConn, { once: true });
      try {
        const res = await fetch(path, {
          headers: authHeaders({ Accept: 'text/event-stream' }),
          signal: conn.signal,
          cache: 'no-store',
        });
        if (res.status === 401) {
          await askToken(await errorMessage(res));
          continue;
        }
        const isStream = (res.headers.get('content-type') || '').includes('text/event-stream');
        if (res.status === 404 || res.status === 405 || (res.ok && !isStream)) {
          res.body?.cancel().catch(() => {});
          if (pollPath) return poll();
          onState('down', 'this node has no live stream');
          return;
        }
        if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
        onState('live');
        backoff = 500;
        const c = conn;
        await readEvents(res.body, deliver, { onIdle: () => c.abort() });
        if (!stop.signal.aborted) onState('down', 'the stream ended; reconnecting');
      } catch (e) {
        if (stop.signal.aborted) return;
        onState('down', e.name === 'AbortError' ? 'no data for 15 s; reconnecting' : e.message);
        if (e instanceof ApiError && e.status >= 400) onError(e);
      } finally {
        stop.signal.removeEventListener('abort', abortConn);
      }
      await sleep(backoff, stop.signal);
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  stream();
  return {
    close() {
      stop.abort();
    },
  };
}
