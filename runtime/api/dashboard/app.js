// app.js: the dashboard's entry point: hash routing (#/ pipelines,
// #/pipelines/<id>[/<tab>], #/plugins), mounting and unmounting pages (a
// page stops its streams when it goes), the header's navigation and the
// "Forget token" button.

import { h } from './dom.js';
import { parse } from './route.js';
import { getToken, setToken } from './token.js';
import { setLive } from './toast.js';
import * as pipelines from './pipelines.js';
import * as pipeline from './pipeline.js';
import * as plugins from './plugins.js';

const PAGES = { pipelines, pipeline, plugins };
const TITLES = { pipelines: 'Pipelines', plugins: 'Plugins' };

let current = null;

function notFound(view, route) {
  view.append(h('div', { class: 'card empty', 'data-test': 'not-found' }, h('h1', {}, 'Not found'), h('p', {}, `Nothing at #${route.path}. `, h('a', { href: '#/' }, 'Go to the pipelines.'))));
  return { destroy() {} };
}

function navigate() {
  const route = parse(location.hash);
  if (current?.route?.(route)) return;
  current?.destroy?.();
  setLive('');
  const view = document.getElementById('view');
  view.replaceChildren();
  for (const a of document.querySelectorAll('[data-nav]')) {
    const on = a.dataset.nav === (route.page === 'pipeline' ? 'pipelines' : route.page);
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${route.page === 'pipeline' ? route.id : TITLES[route.page] || 'Not found'} · Weir`;
  const page = PAGES[route.page];
  try {
    current = page ? page.mount(view, route) : notFound(view, route);
  } catch (e) {
    console.error(e);
    view.append(h('pre', { class: 'form-error' }, `The page failed: ${e.message}`));
    current = null;
  }
}

const forget = document.getElementById('forget-token');
forget.hidden = !getToken();
forget.addEventListener('click', () => {
  setToken('');
  location.reload();
});
window.addEventListener('hashchange', navigate);
navigate();
