// Entry point: who is signed in, which view is shown, the top bar.
import { get, post, onUnauthorized, setCsrfToken } from './api.js';
import { replace, h, toast, errorText } from './dom.js';
import { connect, disconnect } from './live.js';
import { match, navigate, route, start } from './router.js';
import * as dashboard from './views/dashboard.js';
import * as events from './views/events.js';
import * as login from './views/login.js';
import * as machine from './views/machine.js';
import * as machines from './views/machines.js';
import * as settings from './views/settings.js';

route(/^\/$/, 'dashboard');
route(/^\/login\/?$/, 'login');
route(/^\/machines\/?$/, 'machines');
route(/^\/machines\/([^/]+)\/?$/, 'machine');
route(/^\/events\/?$/, 'events');
route(/^\/settings\/?$/, 'settings');

const VIEWS = { dashboard, login, machines, machine, events, settings };
const NAV = { dashboard: 'nav-dashboard', machines: 'nav-machines', machine: 'nav-machines', events: 'nav-events', settings: 'nav-settings' };

const main = document.getElementById('main');
const topbar = document.querySelector('.topbar');
const session = { user: null };
let mounted = null;
let generation = 0;

function signedIn(user, csrfToken) {
  session.user = user;
  setCsrfToken(csrfToken);
  document.querySelector('[data-testid="current-user"]').textContent = `${user.username} · ${user.role}`;
  document.body.dataset.role = user.role;
  topbar.hidden = false;
  connect();
}

function signedOut() {
  session.user = null;
  setCsrfToken(null);
  disconnect();
  topbar.hidden = true;
  delete document.body.dataset.role;
}

function loginUrl(extra = '') {
  const here = location.pathname + location.search;
  const next = here.startsWith('/login') ? '' : `next=${encodeURIComponent(here)}`;
  const query = [next, extra].filter(Boolean).join('&');
  return query ? `/login?${query}` : '/login';
}

function notFound(root) {
  replace(root, h('section', { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Page not found'),
    h('p', {}, 'There is nothing at ', h('code', {}, location.pathname), '. ', h('a', { href: '/' }, 'Go to the dashboard'), '.')));
  return {};
}

function render() {
  const gen = ++generation;
  mounted?.unmount?.();
  mounted = null;
  const { view, params } = match(location.pathname);
  if (view === 'login' && session.user) return navigate(new URLSearchParams(location.search).get('next') || '/', { replace: true });
  if (view !== 'login' && !session.user) return navigate(loginUrl(), { replace: true });

  for (const link of document.querySelectorAll('.mainnav a')) {
    if (link.dataset.testid === NAV[view]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  main.replaceChildren();
  main.dataset.view = view;
  const ctx = {
    user: session.user,
    isAdmin: session.user?.role === 'admin',
    params,
    alive: () => gen === generation,
    navigate,
    signedIn: (user, csrf) => {
      signedIn(user, csrf);
    },
  };
  const module = VIEWS[view];
  mounted = module ? module.mount(main, ctx) : notFound(main);
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Hangar` : 'Hangar';
  if (heading && !main.contains(document.activeElement)) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

onUnauthorized(() => {
  if (!session.user) return;
  signedOut();
  navigate(loginUrl('expired=1'), { replace: true });
});

document.querySelector('[data-testid="logout"]').addEventListener('click', async () => {
  try {
    await post('/auth/logout');
  } catch (error) {
    if (error.status !== 401) {
      toast(errorText('Could not sign out', error), { kind: 'error', testid: 'error-message' });
      return;
    }
  }
  signedOut();
  navigate('/login', { replace: false });
});

async function boot() {
  try {
    const me = await get('/auth/me', { quiet401: true });
    signedIn(me.user, me.csrf_token);
  } catch (error) {
    if (error.status !== 401) toast(errorText('Could not load your session', error), { kind: 'error', testid: 'error-message' });
  }
  document.documentElement.dataset.ready = 'true';
  start(render);
}

boot();
