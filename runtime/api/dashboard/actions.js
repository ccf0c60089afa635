// actions.js: the pipeline actions shared by the list and the pipeline
// page: start, stop (after confirmation: it takes a savepoint) and delete
// (after confirmation), each reporting the node's error if it fails.

import { api } from './api.js';
import { confirmDialog } from './modal.js';
import { showError, showInfo } from './toast.js';

export const canStart = (status) => ['stopped', 'finished', 'failed'].includes(status);
export const canStop = (status) => ['running', 'starting', 'restarting'].includes(status);

/** Run `work` with `button` disabled; errors go to a toast. Resolves to its result or null. */
export async function busy(button, label, work) {
  const before = button?.textContent;
  if (button) {
    button.disabled = true;
    if (label) button.textContent = label;
  }
  try {
    return await work();
  } catch (e) {
    showError(e);
    return null;
  } finally {
    if (button) {
      button.disabled = false;
      button.textContent = before;
    }
  }
}

export async function startPipeline(id, button) {
  const d = await busy(button, 'Starting…', () => api.start(id));
  if (d) showInfo(`Pipeline ${id} started (${d.status}).`);
  return d;
}

export async function stopPipeline(id, button) {
  const ok = await confirmDialog({
    title: `Stop pipeline ${id}?`,
    message: 'It takes a savepoint, then stops. It stays stopped until started again, and resumes from the savepoint.',
    confirmLabel: 'Stop',
    danger: true,
  });
  if (!ok) return null;
  const d = await busy(button, 'Stopping…', () => api.stop(id));
  if (d) showInfo(`Pipeline ${id} stopped${d.savepoint ? ` (savepoint ${d.savepoint})` : ''}.`);
  return d;
}

export async function deletePipeline(id, button) {
  const ok = await confirmDialog({
    title: `Delete pipeline ${id}?`,
    message: 'It is stopped without a savepoint and deleted with all its checkpoints. This cannot be undone.',
    confirmLabel: 'Delete',
    danger: true,
  });
  if (!ok) return null;
  const d = await busy(button, 'Deleting…', () => api.remove(id));
  if (d) showInfo(`Pipeline ${id} deleted.`);
  return d;
}
