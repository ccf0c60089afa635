// api.js: talking to the node's REST API under /api/v1: JSON in and out,
// the token (asking for it on a 401 and retrying), and errors as ApiError
// carrying the node's own {"error": "..."} message.

import { askToken, authHeaders } from './token.js';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The message of an error answer: its {"error"} field, else its text. */
export async function errorMessage(res) {
  const body = await res.text().catch(() => '');
  try {
    const j = JSON.parse(body);
    if (j && typeof j.error === 'string') return j.error;
  } catch {
    // not JSON
  }
  const t = body.trim();
  return t ? `${res.status} ${res.statusText}: ${t.slice(0, 300)}` : `${res.status} ${res.statusText || 'error'}`;
}

/**
 * A request. `body` may be a string, FormData or an object (sent as JSON).
 * Resolves with the parsed JSON answer; rejects with ApiError.
 */
export async function request(method, path, { body, type, signal } = {}) {
  let payload = body;
  let contentType = type;
  if (body != null && typeof body === 'object' && !(body instanceof FormData) && !(body instanceof Blob)) {
    payload = JSON.stringify(body);
    contentType = contentType || 'application/json';
  }
  for (;;) {
    const headers = authHeaders({ Accept: 'application/json' });
    if (contentType) headers['Content-Type'] = contentType;
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store' });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, `cannot reach the node (${method} ${path}): ${e.message}`);
    }
    if (res.status === 401) {
      await askToken(await errorMessage(res));
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
    const t = await res.text();
    if (!t) return null;
    try {
      return JSON.parse(t);
    } catch {
      throw new ApiError(res.status, `${method} ${path}: the node answered something that is not JSON`);
    }
  }
}

const enc = encodeURIComponent;

export const api = {
  pipelines: () => request('GET', '/api/v1/pipelines'),
  pipeline: (id, signal) => request('GET', `/api/v1/pipelines/${enc(id)}`, { signal }),
  create: (yaml) => request('POST', '/api/v1/pipelines', { body: yaml, type: 'application/yaml' }),
  stop: (id) => request('POST', `/api/v1/pipelines/${enc(id)}/stop`),
  start: (id) => request('POST', `/api/v1/pipelines/${enc(id)}/start`),
  remove: (id) => request('DELETE', `/api/v1/pipelines/${enc(id)}`),
  checkpoints: (id) => request('GET', `/api/v1/pipelines/${enc(id)}/checkpoints`),
  logs: (id, signal) => request('GET', `/api/v1/pipelines/${enc(id)}/logs`, { signal }),
  swap: (id, op, plugin, probation) =>
    request('POST', `/api/v1/pipelines/${enc(id)}/operators/${enc(op)}/swap`, { body: probation ? { plugin, probation } : { plugin } }),
  plugins: () => request('GET', '/api/v1/plugins'),
  upload: (name, version, file) => {
    const form = new FormData();
    form.append('name', name);
    form.append('version', version);
    form.append('file', file, file.name || `${name}.wasm`);
    return request('POST', '/api/v1/plugins', { body: form });
  },
  removePlugin: (name, version) => request('DELETE', `/api/v1/plugins/${enc(name)}/${enc(version)}`),
};
