import { get, qs } from '../api.js';
import { alertBox, formatTime, h, replace, showAlert, stateBadge } from '../dom.js';
import { subscribe } from '../live.js';

const PAGE = 50;

export function mount(root, ctx) {
  const error = alertBox('events-error');
  const body = h('tbody', { testid: 'events-body' });
  const more = h('button', { type: 'button', class: 'btn', testid: 'events-more', hidden: true }, 'Show older events');
  const seen = new Set();
  const names = new Map();
  let oldest = null;

  function row(event) {
    return h('tr', { testid: 'event-row', 'data-event-id': event.id },
      h('td', { 'data-label': 'Time' }, h('time', { datetime: event.created_at }, formatTime(event.created_at))),
      h('td', { 'data-label': 'Machine' }, event.machine_id ? h('a', { href: `/machines/${encodeURIComponent(event.machine_id)}` }, names.get(event.machine_id) ?? shortId(event.machine_id)) : '—'),
      h('td', { 'data-label': 'Kind' }, event.kind),
      h('td', { 'data-label': 'State' }, event.state ? stateBadge(event.state, { historic: true }) : '—'),
      h('td', { 'data-label': 'Message', class: 'cell-message' }, event.message ?? ''));
  }

  async function loadOlder() {
    more.disabled = true;
    try {
      const [list, machines] = await Promise.all([
        get(`/events/log${qs({ limit: PAGE, before: oldest })}`),
        names.size === 0 ? get(`/machines${qs({ limit: 500 })}`) : null,
      ]);
      if (!ctx.alive()) return;
      for (const machine of machines?.items ?? []) names.set(machine.id, machine.name);
      body.querySelector('.empty-row')?.remove();
      for (const event of list) {
        if (seen.has(event.id)) continue;
        seen.add(event.id);
        body.append(row(event));
        oldest = oldest === null ? event.id : Math.min(oldest, event.id);
      }
      if (seen.size === 0) replace(body, h('tr', { class: 'empty-row' }, h('td', { colspan: 5, class: 'empty' }, 'No events yet.')));
      more.hidden = list.length < PAGE;
    } catch (problem) {
      if (ctx.alive()) showAlert(error, 'Could not load the events', problem);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', loadOlder);

  const stop = subscribe((event) => {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    body.querySelector('.empty-row')?.remove();
    body.prepend(row(event));
  });

  replace(root, h('section', { class: 'view' },
    h('header', { class: 'view-header' }, h('h1', {}, 'Events'), h('span', { class: 'muted' }, 'Newest first, live')),
    error,
    h('div', { class: 'card card-flush' }, h('div', { class: 'table-wrap' },
      h('table', { class: 'table', testid: 'events-table' },
        h('caption', { class: 'visually-hidden' }, 'Events, newest first'),
        h('thead', {}, h('tr', {}, ['Time', 'Machine', 'Kind', 'State', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
        body))),
    h('div', { class: 'more-row' }, more)));
  replace(body, h('tr', { class: 'empty-row' }, h('td', { colspan: 5, class: 'empty' }, 'Loading…')));
  loadOlder();
  return { unmount: stop };
}

function shortId(value) {
  const text = String(value);
  return text.length > 12 ? `${text.slice(0, 8)}…` : text;
}
