// route.js: what a location hash names: #/ (pipelines), #/pipelines/<id>
// with an optional tab (overview, checkpoints, swaps, logs), #/plugins.

/** The route of a hash. */
export function parse(hash) {
  const path = (hash || '').replace(/^#/, '') || '/';
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0) return { page: 'pipelines' };
  if (parts[0] === 'pipelines' && parts.length === 1) return { page: 'pipelines' };
  if (parts[0] === 'pipelines' && parts.length <= 3) return { page: 'pipeline', id: parts[1], tab: parts[2] || 'overview' };
  if (parts[0] === 'plugins' && parts.length === 1) return { page: 'plugins' };
  return { page: 'missing', path };
}
