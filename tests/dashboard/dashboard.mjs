#!/usr/bin/env node
// dashboard.mjs: the browser test of the Weir web dashboard. Drives Debian's
// Chromium (playwright-core, headless) against a running `weir serve`, through
// the page only: enters the token, uploads two plugin versions (file picker
// and drag-and-drop), creates a pipeline with the New pipeline form, waits for
// live rates and the graph, hot-swaps an operator, checks checkpoints, stops
// the pipeline, and screenshots every page and tab.
//
//   node tests/dashboard/dashboard.mjs --url http://127.0.0.1:PORT --token TOKEN \
//     --v1 counter_v1.wasm --v2 counter_v2.wasm --out DIR [--spec-out DIR] [--timeout 60]
//
// Every wait has a timeout; on failure it prints what it waited for and the
// page's visible text, saves DIR/failure.png and exits 1.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.includes('=') ? a.slice(2).split(/=(.*)/s) : [a.slice(2), argv[++i]];
    if (v === undefined) throw new Error(`${a} needs a value`);
    out[k] = v;
  }
  return out;
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
  for (const k of ['url', 'v1', 'v2', 'out']) if (!args[k]) throw new Error(`--${k} is required`);
} catch (e) {
  console.error(`${e.message}\nusage: node dashboard.mjs --url URL [--token TOKEN] --v1 V1.wasm --v2 V2.wasm --out DIR [--spec-out DIR] [--timeout SECONDS]`);
  process.exit(2);
}
const OUT = path.resolve(args.out);
const SPEC_OUT = path.resolve(args['spec-out'] || path.join(OUT, 'sink'));
const TIMEOUT = Number(args.timeout || 60) * 1000;
const PIPELINE = 'dash';
const WORLD = 'weir:operator/operator@0.1.0';
const SPEC = `name: ${PIPELINE}
sources:
  - {name: events, type: generator, seed: 7, rate: 2000, keys: 20}
operators:
  - {name: count, plugin: counter@1, input: events, key_by: key, parallelism: 2}
sinks:
  - {name: out, type: file, path: ${SPEC_OUT}, input: count}
checkpoint: {interval: 500ms}
`;
fs.mkdirSync(OUT, { recursive: true });

const t0 = Date.now();
const log = (m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${m}`);
const sel = (test, extra = '') => `[data-test="${test}"]${extra}`;

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-dash-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] || (await context.newPage());
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(`CSP: ${m.text()}`);
});
// Record every error toast the page shows, to report (and fail on) them.
await page.addInitScript(() => {
  window.__toastErrors = [];
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType === 1 && n.matches?.('[data-test="toast-error"]')) window.__toastErrors.push(n.querySelector('.msg')?.textContent || n.textContent);
      }
    }
  }).observe(document, { childList: true, subtree: true });
});

async function cleanup() {
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

async function fail(what, err) {
  console.error(`\nFAILED while waiting for: ${what}`);
  if (err) console.error(`  ${String(err.message || err).split('\n')[0]}`);
  const visible = await page.evaluate(() => document.body.innerText).catch((e) => `(cannot read the page: ${e.message})`);
  console.error(`--- the page's visible text (${page.url()}) ---\n${visible.slice(0, 10000)}\n--- end of page text ---`);
  const toasts = await page.evaluate(() => window.__toastErrors || []).catch(() => []);
  if (toasts.length) console.error(`error toasts shown: ${JSON.stringify(toasts)}`);
  if (pageErrors.length) console.error(pageErrors.join('\n'));
  await page.screenshot({ path: path.join(OUT, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`screenshot: ${path.join(OUT, 'failure.png')}`);
  await cleanup();
  process.exit(1);
}

const deadline = setTimeout(() => fail('the whole test to finish within 15 minutes'), 15 * 60 * 1000);

/** Wait until fn(arg) in the page is truthy; answers its value. */
async function until(what, fn, arg, timeout = TIMEOUT) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling: 200 });
    return await handle.jsonValue();
  } catch (e) {
    return fail(what, e);
  }
}

async function shot(name) {
  await page.screenshot({ path: path.join(OUT, name), fullPage: true });
  log(`screenshot ${name}`);
}

async function click(what, selector) {
  try {
    await page.locator(selector).first().click({ timeout: TIMEOUT });
  } catch (e) {
    await fail(what, e);
  }
}

async function fill(what, selector, value) {
  try {
    await page.locator(selector).first().fill(value, { timeout: TIMEOUT });
  } catch (e) {
    await fail(what, e);
  }
}

const dialogOpen = (test) => `${sel(test)}[open]`;

// 1. Open the dashboard; give the token when asked.
log(`opening ${args.url}`);
try {
  await page.goto(args.url, { waitUntil: 'load', timeout: TIMEOUT });
} catch (e) {
  await fail(`the dashboard to load from ${args.url}`, e);
}
const first = await until(
  'the token form or the pipelines page',
  // The live indicator says Live or Polling once data came (on a node with a
  // token, its first answer is the 401 that opens the form).
  (dialog) => (document.querySelector(dialog) ? 'token' : document.querySelector('[data-test="live-status"]')?.textContent ? 'page' : null),
  dialogOpen('token-dialog'),
);
if (first === 'token') {
  log('the page asks for the token');
  await shot('token.png');
  if (!args.token) await fail('a token to give (the node asks for one: pass --token)');
  await fill('the token input', sel('token-input'), args.token);
  await click('the token form\'s Continue button', sel('token-submit'));
} else {
  log('the node asked for no token (token.png not taken)');
}
await until(
  'the pipelines page, with the token accepted',
  (dialog) => !document.querySelector(dialog) && document.querySelector('[data-test="live-status"]')?.textContent,
  dialogOpen('token-dialog'),
);

// 2. Plugins: counter@1 with the file picker, counter@2 by drag-and-drop.
await click('the Plugins link', sel('nav-plugins'));
await until('the upload form', (s) => document.querySelector(s), sel('upload-form'));

async function waitPluginRow(name, version) {
  const world = await until(
    `the plugins table to list ${name}@${version} with its world`,
    ([n, v]) => document.querySelector(`[data-test="plugin-row"][data-name="${n}"][data-version="${v}"] [data-test="plugin-world"]`)?.textContent,
    [name, version],
  );
  if (world !== WORLD) await fail(`${name}@${version} to have world ${WORLD}`, new Error(`the table says ${world}`));
  log(`plugin ${name}@${version} listed, world ${world}`);
}
async function upload(name, version) {
  await fill('the plugin version input', sel('plugin-version'), version);
  await fill('the plugin name input', sel('plugin-name'), name);
  await click('the Upload button', sel('plugin-upload'));
  const r = await until(
    `the upload of ${name}@${version} to finish`,
    ([n, v]) => {
      const err = document.querySelector('[data-test="upload-error"]');
      if (err && !err.hidden) return { error: err.textContent };
      return document.querySelector(`[data-test="plugin-row"][data-name="${n}"][data-version="${v}"]`) ? { ok: true } : null;
    },
    [name, version],
  );
  if (r.error) await fail(`the upload of ${name}@${version}`, new Error(`the page says: ${r.error}`));
  await waitPluginRow(name, version);
}

try {
  await page.setInputFiles(sel('plugin-file'), path.resolve(args.v1));
} catch (e) {
  await fail(`choosing ${args.v1} with the file picker`, e);
}
const v1Default = path.basename(args.v1).replace(/\.wasm$/i, '');
await until(`the name field to default to the file's name ${v1Default}`, ([s, v]) => document.querySelector(s)?.value === v, [sel('plugin-name'), v1Default]);
await upload('counter', '1');

const v2 = fs.readFileSync(path.resolve(args.v2));
await page.evaluate(
  ({ b64, name, zone }) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: 'application/wasm' }));
    const target = document.querySelector(zone);
    for (const type of ['dragenter', 'dragover', 'drop']) {
      target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    }
  },
  { b64: v2.toString('base64'), name: path.basename(args.v2), zone: sel('drop-zone') },
);
await until(
  'the dropped file to be chosen',
  ([s, n]) => document.querySelector(s)?.textContent.includes(n),
  [sel('plugin-selected'), path.basename(args.v2)],
);
await upload('counter', '2');
await shot('plugins.png');

// 3. A pipeline through the New pipeline form.
await click('the Pipelines link', sel('nav-pipelines'));
await click('the New pipeline button', sel('new-pipeline'));
await fill('the spec textarea', sel('spec-input'), SPEC);
await click('the Create button', sel('spec-submit'));
const created = await until(
  `the pipeline page of ${PIPELINE} after creating it`,
  (id) => {
    const err = document.querySelector('[data-test="spec-error"]');
    if (err && !err.hidden) return { error: err.textContent };
    return location.hash === `#/pipelines/${id}` && document.querySelector('[data-test="pipeline-id"]')?.textContent === id ? { ok: true } : null;
  },
  PIPELINE,
);
if (created.error) await fail('the pipeline to be created', new Error(`the form says: ${created.error}`));
log(`pipeline ${PIPELINE} created`);

const rateAbove0 = (test) => {
  const v = Number(document.querySelector(`[data-test="${test}"]`)?.getAttribute('data-value'));
  return v > 0 ? v : null;
};
const graphPlugin = ([node, plugin]) =>
  document.querySelector(`[data-test="graph-node"][data-name="${node}"] [data-test="graph-node-plugin"]`)?.getAttribute('data-plugin') === plugin;

await until('the status running', () => document.querySelector('[data-test="pipeline-status"]')?.dataset.status === 'running');
const rin = await until('the input rate above 0', rateAbove0, 'rate-in');
const rout = await until('the output rate above 0', rateAbove0, 'rate-out');
log(`rates: in ${rin.toFixed(0)}/s, out ${rout.toFixed(0)}/s`);
await until('the graph to show node count running counter@1', graphPlugin, ['count', 'counter@1']);

// The list, with the pipeline running.
await click('the Pipelines link', sel('nav-pipelines'));
await until(`the row of ${PIPELINE} running`, (id) => document.querySelector(`[data-test="pipeline-row"][data-id="${id}"] [data-test="row-status-badge"]`)?.dataset.status === 'running', PIPELINE);
// Rates in the list need the node's records_in/records_out: best effort.
await page
  .waitForFunction((id) => Number(document.querySelector(`[data-test="pipeline-row"][data-id="${id}"] [data-test="row-rate-in"]`)?.dataset.value) > 0, PIPELINE, { timeout: 6000 })
  .then(() => log('the list shows an input rate'))
  .catch(() => log('the list shows no input rate (a node without records_in)'));
await shot('pipelines.png');
await click(`the link to ${PIPELINE}`, `${sel('pipeline-row')}[data-id="${PIPELINE}"] ${sel('row-link')}`);
await until('the pipeline page again', (id) => document.querySelector('[data-test="pipeline-id"]')?.textContent === id, PIPELINE);
await until('the input rate above 0 again', rateAbove0, 'rate-in');
// Some seconds of chart lines for the screenshot.
await until(
  'the throughput chart to draw a few seconds',
  () => ((document.querySelector('[data-test="chart-throughput"] path.line')?.getAttribute('d') || '').match(/L/g) || []).length >= 4,
);
await shot('pipeline.png');

// 4. Hot swap count to counter@2 with a 2 s probation.
await click('the Swaps tab', sel('tab-swaps'));
await until('the swap form', (s) => document.querySelector(s), sel('swap-form'));
try {
  await page.selectOption(sel('swap-operator'), 'count', { timeout: TIMEOUT });
} catch (e) {
  await fail('the operator select to offer count', e);
}
await until('counter@2 among the versions to swap to', (s) => {
  const o = document.querySelector(`${s} option[value="counter@2"]`);
  return o && !o.disabled;
}, sel('swap-plugin'));
try {
  await page.selectOption(sel('swap-plugin'), 'counter@2', { timeout: TIMEOUT });
} catch (e) {
  await fail('choosing counter@2', e);
}
await fill('the probation input', sel('swap-probation'), '2s');
// The last swap shown before this one (none on a fresh pipeline).
const before = await page.evaluate((s) => document.querySelector(s)?.dataset.requested || '', sel('last-swap'));
await click('the Swap button', sel('swap-submit'));
let probationShot = false;
const swapped = await until(
  'the swap of count to counter@2 to be confirmed',
  (prev) => {
    const err = document.querySelector('[data-test="swap-error"]');
    if (err && !err.hidden) return { error: err.textContent };
    const card = document.querySelector('[data-test="last-swap"]');
    if (!card || !card.dataset.requested || card.dataset.requested === prev || card.dataset.operator !== 'count') return null;
    const st = document.querySelector('[data-test="swap-status"]');
    const to = document.querySelector('[data-test="swap-to"]')?.textContent;
    if (!st || to !== 'counter@2') return null;
    const s = st.dataset.status;
    if (s === 'rolled-back' || s === 'refused') return { error: `the swap was ${s}: ${document.querySelector('[data-test="swap-reason"]')?.textContent || ''}` };
    if (s === 'confirmed') return { ok: true };
    if (!window.__probationSeen && document.querySelector('[data-test="probation-bar"]')) {
      window.__probationSeen = true;
      return { probation: true };
    }
    return null;
  },
  before,
);
if (swapped.probation) {
  await shot('swaps-probation.png');
  probationShot = true;
  const r = await until('the swap of count to counter@2 to be confirmed', () => {
    const st = document.querySelector('[data-test="swap-status"]')?.dataset.status;
    if (st === 'rolled-back' || st === 'refused') return { error: `the swap was ${st}: ${document.querySelector('[data-test="swap-reason"]')?.textContent || ''}` };
    return st === 'confirmed' && document.querySelector('[data-test="swap-to"]')?.textContent === 'counter@2' ? { ok: true } : null;
  });
  if (r.error) await fail('the swap to be confirmed', new Error(r.error));
} else if (swapped.error) {
  await fail('the swap to be confirmed', new Error(swapped.error));
}
log(`swap confirmed${probationShot ? ' (probation bar seen)' : ''}`);
await until('the swap history to list the swap', (s) => document.querySelector(s), `${sel('swap-row')}[data-status="confirmed"]`);
await shot('swaps.png');

await click('the Overview tab', sel('tab-overview'));
await until('the graph to show node count running counter@2', graphPlugin, ['count', 'counter@2']);
log('the graph shows count on counter@2');

// 5. Checkpoints.
await click('the Checkpoints tab', sel('tab-checkpoints'));
const completed = await until(
  'completed checkpoints in the Checkpoints tab',
  (s) => document.querySelectorAll(s).length || null,
  `${sel('checkpoint-row')}[data-status="completed"]`,
);
log(`${completed} completed checkpoint(s) listed`);
await shot('checkpoints.png');

// 6. Logs.
await click('the Logs tab', sel('tab-logs'));
await until('the log view', (s) => document.querySelector(s), sel('log-list'));
await page
  .waitForFunction((s) => document.querySelector(s), sel('log-line'), { timeout: 5000 })
  .then(() => log('log lines shown'))
  .catch(() => log('no log lines (the plugins logged nothing, or the node serves no logs)'));
await shot('logs.png');

// 7. Stop through the button and the confirmation.
await click('the Stop button', sel('stop-button'));
await until('the confirmation dialog', (s) => document.querySelector(s), dialogOpen('confirm-dialog'));
await click('the confirmation\'s Stop button', sel('confirm-ok'));
await until('the status stopped', () => document.querySelector('[data-test="pipeline-status"]')?.dataset.status === 'stopped');
log('pipeline stopped');

const toasts = await page.evaluate(() => window.__toastErrors || []);
if (toasts.length || pageErrors.length) {
  await fail('a run without errors shown', new Error(`the page showed: ${JSON.stringify([...toasts, ...pageErrors])}`));
}
clearTimeout(deadline);
await cleanup();
log(`passed; screenshots in ${OUT}`);
console.log('1 passed, 0 failed');
process.exit(0);
