// Client-side routing with the History API: links inside the app change the page
// without a reload, Back and Forward work, and every path is a deep link (the
// server answers the editor's page for it, see api/editor.py).
import { signal, computed } from './lib.js';
import { routes } from './routes.js';

function parse(href) {
  const url = new URL(href, location.origin);
  return { path: url.pathname.replace(/\/+$/, '') || '/', query: url.searchParams };
}

/** {path, query: URLSearchParams} of the page shown now. */
export const location$ = signal(parse(location.href));

function compile(pattern) {
  const names = [];
  const source = pattern.replace(/:([A-Za-z]+)/g, (_, name) => {
    names.push(name);
    return '([^/]+)';
  });
  return { regex: new RegExp(`^${source}$`), names };
}

const compiled = routes.map((route) => ({ route, ...compile(route.path) }));

/** The route matching `path` and its params ({projectId: ...}), or null. */
export function match(path) {
  for (const { route, regex, names } of compiled) {
    const found = regex.exec(path);
    if (found) {
      const params = {};
      try {
        names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
      } catch {
        return null; // a malformed escape (%E0%A4%A): no page of ours, so "not found"
      }
      return { route, params };
    }
  }
  return null;
}

export const current = computed(() => match(location$.value.path));

/** Shows `href` (a path of ours); `replace` leaves no history entry behind. */
export function navigate(href, { replace = false } = {}) {
  const next = parse(href);
  const url = next.path + (next.query.toString() ? `?${next.query}` : '');
  try {
    if (replace) history.replaceState(null, '', url);
    else history.pushState(null, '', url);
  } catch {
    // A path the browser will not put in the history (one that reads as another
    // origin, "//host"): go to the projects instead.
    history.replaceState(null, '', '/projects');
    location$.value = parse('/projects');
    return;
  }
  location$.value = next;
}

/** Changes the query string of the current page (filters, tabs) without a history entry. */
export function setQuery(update, { replace = true } = {}) {
  const query = new URLSearchParams(location$.value.query);
  for (const [key, value] of Object.entries(update)) {
    if (value === null || value === undefined || value === '') query.delete(key);
    else query.set(key, value);
  }
  const search = query.toString();
  navigate(location$.value.path + (search ? `?${search}` : ''), { replace });
}

window.addEventListener('popstate', () => {
  location$.value = parse(location.href);
});

// Plain left clicks on links to our own paths stay in the app.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest?.('a[href]');
  if (!link || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href, location.origin);
  if (url.origin !== location.origin) return;
  // A link within this page (the skip link's "#main") does what the browser does.
  if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
  const first = url.pathname.split('/')[1];
  if (['graphql', 'static', 'media', 'healthz', 'readyz', 'webhooks'].includes(first)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
