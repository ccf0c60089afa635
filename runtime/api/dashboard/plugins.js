// plugins.js: the Plugins page (#/plugins): the registry's plugin versions
// (name, version, world, size, sha256, uploaded, where used), uploading a
// component by file picker or drag-and-drop, and deleting unused versions.

import { api } from './api.js';
import { busy } from './actions.js';
import { h, text, replace } from './dom.js';
import * as fmt from './format.js';
import { confirmDialog } from './modal.js';
import { setLive, showError, showInfo } from './toast.js';

function uploadForm(onUploaded) {
  let file = null;
  const picker = h('input', { id: 'plugin-file', type: 'file', accept: '.wasm,application/wasm', class: 'visually-hidden', 'data-test': 'plugin-file' });
  const chosen = h('span', { class: 'chosen', 'data-test': 'plugin-selected' }, 'No file chosen');
  const zone = h(
    'div',
    { class: 'drop-zone', role: 'button', tabindex: 0, 'aria-describedby': 'drop-help', 'data-test': 'drop-zone' },
    h('strong', {}, 'Drop a .wasm component here'),
    h('span', { id: 'drop-help', class: 'muted' }, ' or '),
    h('label', { for: 'plugin-file', class: 'link' }, 'choose a file'),
    picker,
    h('div', {}, chosen),
  );
  const name = h('input', { id: 'plugin-name', name: 'name', required: true, pattern: '[A-Za-z0-9._+\\-]{1,64}', autocomplete: 'off', 'data-test': 'plugin-name' });
  const version = h('input', { id: 'plugin-version', name: 'version', required: true, pattern: '[A-Za-z0-9._+\\-]{1,64}', autocomplete: 'off', size: 10, 'data-test': 'plugin-version' });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'plugin-upload' }, 'Upload');
  const error = h('pre', { class: 'form-error', role: 'alert', hidden: true, 'data-test': 'upload-error' });
  const form = h(
    'form',
    { class: 'card upload', 'data-test': 'upload-form', 'aria-labelledby': 'upload-title' },
    h('h2', { id: 'upload-title' }, 'Upload a plugin version'),
    zone,
    h(
      'div',
      { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'plugin-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'plugin-version' }, 'Version'), version),
      h('div', { class: 'field end' }, submit),
    ),
    error,
  );

  function choose(f) {
    if (!f) return;
    file = f;
    text(chosen, `${f.name} (${fmt.bytes(f.size)})`);
    zone.classList.add('has-file');
    // The name defaults to the file's, without .wasm.
    name.value = f.name.replace(/\.wasm$/i, '').replace(/[^A-Za-z0-9._+-]/g, '-').slice(0, 64);
    error.hidden = true;
  }
  picker.addEventListener('change', () => choose(picker.files?.[0]));
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      picker.click();
    }
  });
  zone.addEventListener('click', (e) => {
    if (!e.target.closest('label, input')) picker.click();
  });
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      zone.classList.add('over');
    });
  }
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const f = e.dataTransfer?.files?.[0];
    if (f) choose(f);
    else showError('Nothing to upload in what was dropped: drop a .wasm file.');
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!file) {
      error.textContent = 'Choose or drop a .wasm component first.';
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Uploading…';
    try {
      const p = await api.upload(name.value.trim(), version.value.trim(), file);
      showInfo(`Uploaded ${p.name}@${p.version} (${p.world}).`);
      file = null;
      picker.value = '';
      text(chosen, 'No file chosen');
      zone.classList.remove('has-file');
      version.value = '';
      onUploaded();
    } catch (err) {
      // Not a component, another world, a version stored with other content...
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
      submit.textContent = 'Upload';
    }
  });
  return form;
}

export function mount(view) {
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true, 'data-test': 'plugins-empty' }, 'No plugins yet: upload a component.');
  const refreshB = h('button', { type: 'button', class: 'small', 'data-test': 'plugins-refresh' }, 'Refresh');
  const table = h(
    'table',
    { class: 'table', 'data-test': 'plugins-table', 'aria-label': 'Plugin versions' },
    h('thead', {}, h('tr', {}, ['Name', 'Version', 'World', 'Size', 'sha256', 'Uploaded', 'Used by', ''].map((t, i) => h('th', { scope: 'col', class: i === 3 ? 'num' : null }, t)))),
    tbody,
  );
  view.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Plugins'), h('span', { class: 'spacer' }), refreshB),
    uploadForm(() => load()),
    h('div', { class: 'card table-card' }, table, empty),
  );
  setLive('');

  function row(p) {
    const used = p.used_by || [];
    const del = h(
      'button',
      {
        type: 'button',
        class: 'small danger',
        disabled: used.length > 0,
        title: used.length ? `In use by ${used.join(', ')}: swap or delete those first` : null,
        'aria-label': `Delete ${p.name}@${p.version}`,
        'data-test': 'plugin-delete',
      },
      'Delete',
    );
    del.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: `Delete ${p.name}@${p.version}?`,
        message: 'The component is removed from the registry. Pipelines can no longer start or swap to it.',
        confirmLabel: 'Delete',
        danger: true,
      });
      if (!ok) return;
      const r = await busy(del, 'Deleting…', () => api.removePlugin(p.name, p.version));
      if (r) {
        showInfo(`Deleted ${p.name}@${p.version}.`);
        load();
      }
    });
    return h(
      'tr',
      { 'data-test': 'plugin-row', 'data-name': p.name, 'data-version': p.version },
      h('th', { scope: 'row', 'data-test': 'plugin-name-cell' }, p.name),
      h('td', { 'data-test': 'plugin-version-cell' }, p.version),
      h('td', { 'data-test': 'plugin-world' }, h('code', {}, p.world)),
      h('td', { class: 'num' }, fmt.bytes(p.size)),
      h('td', {}, h('code', { title: `sha256:${p.digest}`, 'data-test': 'plugin-digest' }, (p.digest || '').slice(0, 12))),
      h('td', { title: fmt.iso(p.uploaded_ms) }, fmt.dateTime(p.uploaded_ms)),
      h(
        'td',
        { 'data-test': 'plugin-used-by' },
        p.used_by == null
          ? h('span', { class: 'muted', title: 'This node does not report where plugins are used' }, fmt.DASH)
          : used.length
            ? used.map((u) => {
                const [pipeline, op] = u.split('/');
                return h('a', { class: 'chip', href: `#/pipelines/${encodeURIComponent(pipeline)}` }, pipeline, op ? h('span', { class: 'muted' }, ` / ${op}`) : null);
              })
            : h('span', { class: 'muted' }, 'unused'),
      ),
      h('td', { class: 'actions-cell' }, del),
    );
  }

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    try {
      const list = await api.plugins();
      list.sort((a, b) => a.name.localeCompare(b.name) || a.uploaded_ms - b.uploaded_ms);
      replace(tbody, list.map(row));
      empty.hidden = list.length > 0;
      table.hidden = list.length === 0;
    } catch (e) {
      showError(e);
    } finally {
      loading = false;
    }
  }
  refreshB.addEventListener('click', load);
  load();
  return { destroy() {} };
}
