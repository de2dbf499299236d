import { get, qs } from '../api.js';
import { alertBox, formatTime, h, replace, showAlert, stateBadge } from '../dom.js';
import { debounce, subscribe } from '../live.js';

const STATE_ORDER = ['running', 'starting', 'restarting', 'provisioning', 'stopping', 'stopped', 'deleting', 'error'];

export function mount(root, ctx) {
  const error = alertBox('dashboard-error');
  const total = h('p', { class: 'stat-number', testid: 'total-machines', 'aria-busy': 'true' }, '–');
  const byState = h('ul', { class: 'tally', testid: 'machines-by-state', 'aria-label': 'Machines by state' });
  const byProvider = h('ul', { class: 'tally', testid: 'machines-by-provider', 'aria-label': 'Machines by provider' });
  const recent = h('ol', { class: 'event-list', testid: 'recent-events', 'aria-label': 'Recent events' });

  async function load() {
    try {
      const [page, events] = await Promise.all([get(`/machines${qs({ limit: 500 })}`), get(`/events/log${qs({ limit: 8 })}`)]);
      if (!ctx.alive()) return;
      showAlert(error, null, null);
      total.textContent = String(page.total);
      total.setAttribute('aria-busy', 'false');
      const states = countBy(page.items, 'state');
      const providers = countBy(page.items, 'provider');
      replace(byState, page.items.length === 0 ? h('li', { class: 'muted' }, 'No machines yet.') :
        Object.entries(states).sort(([a], [b]) => rank(a) - rank(b)).map(([state, n]) =>
          h('li', { testid: `state-count-${state}` }, stateBadge(state), h('span', { class: 'tally-count' }, n))));
      replace(byProvider, page.items.length === 0 ? h('li', { class: 'muted' }, 'No machines yet.') :
        Object.entries(providers).sort().map(([provider, n]) =>
          h('li', { testid: `provider-count-${provider}` }, h('span', { class: 'provider-name' }, provider), h('span', { class: 'tally-count' }, n))));
      const names = new Map(page.items.map((m) => [m.id, m.name]));
      replace(recent, events.length === 0 ? h('li', { class: 'muted' }, 'Nothing has happened yet.') : events.map((e) => eventItem(e, names)));
    } catch (problem) {
      if (ctx.alive()) showAlert(error, 'Could not load the dashboard', problem);
    }
  }

  const reload = debounce(load, 200);
  const stop = subscribe(() => reload());

  replace(root, h('section', { class: 'view' },
    h('header', { class: 'view-header' }, h('h1', {}, 'Dashboard'),
      ctx.isAdmin ? h('a', { class: 'btn btn-primary', href: '/machines' }, 'New machine') : null),
    error,
    h('div', { class: 'dash-grid' },
      h('section', { class: 'card stat', 'aria-labelledby': 'total-title' }, h('h2', { id: 'total-title', class: 'card-title' }, 'Machines'), total,
        h('a', { href: '/machines', class: 'muted' }, 'See all machines →')),
      h('section', { class: 'card', 'aria-labelledby': 'state-title' }, h('h2', { id: 'state-title', class: 'card-title' }, 'By state'), byState),
      h('section', { class: 'card', 'aria-labelledby': 'provider-title' }, h('h2', { id: 'provider-title', class: 'card-title' }, 'By provider'), byProvider),
      h('section', { class: 'card span-3', 'aria-labelledby': 'recent-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'recent-title', class: 'card-title' }, 'Recent events'), h('a', { href: '/events', class: 'muted' }, 'All events →')),
        recent))));
  load();
  return { unmount: () => { stop(); reload.cancel(); } };
}

function rank(state) {
  const i = STATE_ORDER.indexOf(state);
  return i === -1 ? STATE_ORDER.length : i;
}

function countBy(items, key) {
  const out = {};
  for (const item of items) out[item[key]] = (out[item[key]] ?? 0) + 1;
  return out;
}

export function eventItem(event, names = new Map()) {
  const name = names.get(event.machine_id);
  const message = event.message || (event.state ? `→ ${event.state}` : '');
  // Operation messages ("create succeeded") do not name the machine; say which one.
  const prefix = name && !message.includes(name) ? h('a', { href: `/machines/${encodeURIComponent(event.machine_id)}` }, name) : null;
  return h('li', { class: 'event', testid: 'event' },
    h('span', { class: 'event-kind' }, event.kind),
    h('span', { class: 'event-message' }, prefix, prefix ? ': ' : '', message),
    h('time', { class: 'muted', datetime: event.created_at }, formatTime(event.created_at)));
}
