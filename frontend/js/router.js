// History-API routing: links are ordinary <a href>, the view follows location.pathname.

const routes = [];
let onChange = () => {};

export function route(pattern, view) {
  routes.push({ pattern, view });
}

/** The view and its params for a path, or the not-found view. */
export function match(pathname) {
  for (const { pattern, view } of routes) {
    const found = pattern.exec(pathname);
    if (found) return { view, params: found.slice(1).map(decodeURIComponent) };
  }
  return { view: 'not-found', params: [] };
}

export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.origin);
  const same = target.pathname + target.search === location.pathname + location.search;
  if (replace || same) history.replaceState(null, '', target.pathname + target.search);
  else history.pushState(null, '', target.pathname + target.search);
  onChange();
}

export function start(handler) {
  onChange = handler;
  window.addEventListener('popstate', () => onChange());
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest('a[href]');
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  onChange();
}
