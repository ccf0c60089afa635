// toast.js: messages to the user: error toasts (they stay until closed, so
// no error is missed; a repeated message counts up instead of stacking),
// short-lived notices, and the live-update indicator in the header.

import { h, text } from './dom.js';

const area = () => document.getElementById('toasts');
const open = new Map(); // message -> {el, count}

function toast(kind, message, timeoutMs) {
  const key = `${kind}:${message}`;
  const seen = open.get(key);
  if (seen) {
    seen.count++;
    text(seen.badge, `×${seen.count}`);
    seen.badge.hidden = false;
    return;
  }
  const badge = h('span', { class: 'count', hidden: true });
  const close = h('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss', 'data-test': 'toast-close' }, '×');
  const el = h(
    'div',
    { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-test': kind === 'error' ? 'toast-error' : 'toast' },
    h('span', { class: 'msg', 'data-test': 'toast-message' }, message),
    badge,
    close,
  );
  const remove = () => {
    open.delete(key);
    el.remove();
  };
  close.addEventListener('click', remove);
  open.set(key, { el, badge, count: 1 });
  area().append(el);
  if (timeoutMs) setTimeout(remove, timeoutMs);
}

/** An error the user must see (an API error's message, as the node said it). */
export function showError(err) {
  const message = typeof err === 'string' ? err : err?.message || String(err);
  toast('error', message, 0);
}

/** A notice that goes away by itself. */
export function showInfo(message) {
  toast('info', message, 4000);
}

/** The header's live indicator: "live", "polling", or a problem (null clears). */
export function setLive(state, detail) {
  const el = document.getElementById('live');
  if (!el) return;
  el.className = state ? `live is-${state}` : 'live';
  const label = { live: 'Live', polling: 'Polling every 2 s', down: 'Reconnecting…' }[state] || '';
  text(el, detail ? `${label}: ${detail}` : label);
  el.title = detail || label;
}
