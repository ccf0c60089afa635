// logs.js: the Logs tab of a pipeline: a live tail of its plugins' log
// lines (tagged name@version/operator[task]), a level filter and a text
// filter, following the end; at most the last 1000 lines are in the DOM.

import { h, text, replace } from './dom.js';
import * as fmt from './format.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const CAP = 1000;

function lineEl(l) {
  return h(
    'div',
    { class: `log-line lv-${l.level}`, 'data-test': 'log-line', 'data-level': l.level, 'data-seq': l.seq },
    h('time', { datetime: fmt.iso(l.at_ms) }, fmt.timeMs(l.at_ms)),
    h('span', { class: 'lv' }, (l.level || '').toUpperCase()),
    h('span', { class: 'tag', title: 'plugin@version/operator[task]' }, l.plugin || ''),
    l.stream ? h('span', { class: 'stream' }, l.stream) : null,
    h('span', { class: 'msg' }, l.message ?? ''),
  );
}

export function create(ctx) {
  const level = h(
    'select',
    { id: 'log-level', 'data-test': 'log-level' },
    LEVELS.map((lv) => h('option', { value: lv, selected: lv === 'info' }, `${lv} and above`)),
  );
  const filter = h('input', { id: 'log-filter', type: 'search', placeholder: 'plugin, operator or text', 'data-test': 'log-filter' });
  const follow = h('input', { id: 'log-follow', type: 'checkbox', checked: true, 'data-test': 'log-follow' });
  const count = h('span', { class: 'muted', 'data-test': 'log-count' });
  const list = h('div', { class: 'log-list', role: 'log', 'aria-label': 'Plugin log lines', tabindex: 0, 'data-test': 'log-list' });
  const note = h('p', { class: 'muted', 'data-test': 'logs-note' });
  const el = h(
    'div',
    { class: 'card logs' },
    h(
      'div',
      { class: 'toolbar' },
      h('h2', {}, 'Logs'),
      h('label', { for: 'log-level' }, 'Level'),
      level,
      h('label', { for: 'log-filter' }, 'Filter'),
      filter,
      h('label', { class: 'check' }, follow, ' Follow'),
      h('span', { class: 'spacer' }),
      count,
    ),
    note,
    list,
  );

  const passes = (l) => {
    if (LEVELS.indexOf(l.level) < LEVELS.indexOf(level.value)) return false;
    const q = filter.value.trim().toLowerCase();
    return !q || `${l.plugin} ${l.message}`.toLowerCase().includes(q);
  };
  const scroll = () => {
    if (follow.checked) list.scrollTop = list.scrollHeight;
  };
  const counts = () => {
    text(count, `${list.childElementCount} shown of ${ctx.logs.length} (last ${CAP} kept)`);
    list.hidden = ctx.logsUnavailable === true;
    if (ctx.logsUnavailable) text(note, 'This node does not serve plugin logs (no /logs endpoint).');
    else if (ctx.logs.length === 0) text(note, ctx.logsUnavailable === null ? 'Loading…' : 'No log lines yet: plugins log through wasi:logging, stdout and stderr.');
    else text(note, '');
  };
  function redraw() {
    replace(list, ctx.logs.filter(passes).slice(-CAP).map(lineEl));
    counts();
    scroll();
  }
  function onLines(lines) {
    if (!lines) return redraw();
    for (const l of lines) if (passes(l)) list.append(lineEl(l));
    while (list.childElementCount > CAP) list.firstElementChild.remove();
    counts();
    scroll();
  }
  level.addEventListener('change', redraw);
  filter.addEventListener('input', redraw);
  follow.addEventListener('change', scroll);
  list.addEventListener('scroll', () => {
    // Scrolling up pauses following; back at the end resumes it.
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    if (follow.checked !== atEnd) follow.checked = atEnd;
  });
  ctx.logListeners.add(onLines);
  redraw();
  return {
    el,
    update() {
      counts();
    },
    destroy() {
      ctx.logListeners.delete(onLines);
    },
  };
}
