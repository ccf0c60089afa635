// modal.js: the page's own confirmation dialog (a <dialog>, not
// window.confirm), used before stopping and deleting things.

import { h } from './dom.js';

/**
 * Ask the user to confirm. Resolves true on the confirm button, false on
 * cancel, Escape or a click outside.
 */
export function confirmDialog({ title, message, confirmLabel = 'OK', danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', value: 'ok', class: danger ? 'danger' : 'primary', 'data-test': 'confirm-ok' }, confirmLabel);
    const cancel = h('button', { type: 'submit', value: 'cancel', formnovalidate: true, 'data-test': 'confirm-cancel' }, 'Cancel');
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', { id: 'confirm-message' }, message),
      h('div', { class: 'actions' }, cancel, ok),
    );
    const dialog = h(
      'dialog',
      { class: 'modal', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-message', 'data-test': 'confirm-dialog' },
      form,
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog) dialog.close('cancel');
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
