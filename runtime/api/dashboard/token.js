// token.js: the node's bearer token: kept in sessionStorage ('weir-token')
// and asked for with a small form when the node answers 401. Every request
// that meets a 401 waits on the same form, then retries.

import { h } from './dom.js';

const KEY = 'weir-token';
let asking = null;

export function getToken() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
  document.getElementById('forget-token')?.toggleAttribute('hidden', !t);
}

/** Headers carrying the token, if one is set. */
export function authHeaders(extra = {}) {
  const t = getToken();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : { ...extra };
}

/**
 * Show the token form (once, however many requests wait) and resolve when
 * the user has entered a token. `message` is the node's 401 message.
 */
export function askToken(message) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const had = getToken();
    const input = h('input', {
      id: 'token-input',
      type: 'password',
      name: 'token',
      autocomplete: 'current-password',
      required: true,
      'data-test': 'token-input',
    });
    const form = h(
      'form',
      { method: 'dialog', 'data-test': 'token-form' },
      h('h2', { id: 'token-title' }, 'This node needs its token'),
      h(
        'p',
        { class: 'muted', id: 'token-why' },
        had ? 'The token you entered was refused. ' : '',
        message || 'Requests need Authorization: Bearer <token>.',
      ),
      h('label', { for: 'token-input' }, 'Token'),
      input,
      h('p', { class: 'hint' }, 'Kept in this tab only (sessionStorage).'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-test': 'token-submit' }, 'Continue')),
    );
    const dialog = h(
      'dialog',
      { class: 'modal token', 'aria-labelledby': 'token-title', 'aria-describedby': 'token-why', 'data-test': 'token-dialog' },
      form,
    );
    // The page cannot work without it: Escape does not close the form.
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    form.addEventListener('submit', (e) => {
      const t = input.value.trim();
      if (!t) {
        e.preventDefault();
        return;
      }
      setToken(t);
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      asking = null;
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return asking;
}
