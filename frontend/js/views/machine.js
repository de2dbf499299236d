import { ApiError, del, get, post } from '../api.js';
import { actionButtons, onPendingChange, pendingLabel, track } from '../actions.js';
import { alertBox, askDialog, errorText, field, formatMemory, formatTime, h, replace, showAlert, showFieldErrors, stateBadge, toast } from '../dom.js';
import { debounce, subscribe } from '../live.js';

export function mount(root, ctx) {
  const [id] = ctx.params;
  const base = `/machines/${encodeURIComponent(id)}`;
  const heading = h('h1', {}, 'Machine');
  const headState = h('span', { testid: 'detail-state' });
  const headActions = h('div', { class: 'header-actions' });
  const topError = alertBox('detail-error');
  const facts = h('dl', { class: 'facts', testid: 'machine-facts' });
  const disks = h('div', { testid: 'disks' });
  const snapshots = h('div', { testid: 'snapshots' });
  const consoleText = h('pre', { class: 'console', testid: 'console', tabindex: '0', 'aria-label': 'Serial log' }, '…');
  const guest = h('div', { class: 'guest', testid: 'guest-panel' });
  let machine = null;
  let guestOpen = false;
  let gone = false;

  const canMutate = ctx.isAdmin;
  const busy = () => pendingLabel(id) !== null;

  function drawMachine() {
    if (!machine) return;
    heading.textContent = machine.name;
    document.title = `${machine.name} · Hangar`;
    replace(headState, stateBadge(machine.state, { pending: pendingLabel(id) }));
    replace(headActions, actionButtons(machine, { canMutate, afterDelete: () => ctx.alive() && ctx.navigate('/machines') }));
    replace(facts,
      fact('Provider', machine.provider), fact('Image', machine.image), fact('CPUs', machine.cpus),
      fact('Memory', formatMemory(machine.memory_mb)),
      fact('Endpoint', machine.endpoint ? h('code', { testid: 'endpoint' }, machine.endpoint) : 'none'),
      ...Object.entries(machine.details || {}).map(([label, value]) =>
        fact(DETAIL_TERMS[label] || label, h('code', { testid: `detail-${label}` }, value))),
      fact('Created', formatTime(machine.created_at)), fact('Updated', formatTime(machine.updated_at)),
      machine.error ? fact('Error', h('span', { class: 'text-error', testid: 'machine-error' }, machine.error)) : null);
    drawGuest();
  }

  function drawGuest() {
    if (!machine) return;
    if (!machine.endpoint) {
      guestOpen = false;
      replace(guest, h('p', { class: 'muted', testid: 'guest-no-endpoint' },
        machine.state === 'running' ? 'This machine offers no web page.' : 'The guest’s web page is available while the machine runs and has an endpoint.'));
      return;
    }
    const toggle = h('button', { type: 'button', class: 'btn', testid: 'guest-toggle', 'aria-expanded': String(guestOpen), 'aria-controls': 'guest-frame-box' },
      guestOpen ? 'Close guest page' : 'Open guest page');
    toggle.addEventListener('click', () => {
      guestOpen = !guestOpen;
      drawGuest();
      guest.querySelector('[data-testid="guest-toggle"]').focus();
    });
    replace(guest,
      h('div', { class: 'guest-bar' }, toggle,
        h('a', { href: machine.endpoint, target: '_blank', rel: 'noopener noreferrer', class: 'muted' }, 'Open in a new tab ↗')),
      guestOpen ? h('div', { id: 'guest-frame-box', class: 'guest-frame-box' },
        h('iframe', { src: machine.endpoint, title: `Web page of ${machine.name}`, testid: 'guest-frame', sandbox: 'allow-scripts allow-forms', referrerpolicy: 'no-referrer' })) : null);
  }

  async function loadMachine() {
    try {
      const answer = await get(base);
      if (!ctx.alive()) return;
      machine = answer;
      showAlert(topError, null, null);
      drawMachine();
    } catch (error) {
      if (!ctx.alive()) return;
      if (error.status === 404) {
        gone = true;
        machine = null;
        heading.textContent = 'Machine not found';
        replace(headState);
        replace(headActions);
        showAlert(topError, null, `There is no machine with id ${id}; it may have been deleted.`);
        replace(body, h('p', {}, h('a', { href: '/machines' }, 'Back to the machines')));
        return;
      }
      showAlert(topError, 'Could not load the machine', error);
    }
  }

  // ---------------------------------------------------------------- disks
  const diskError = alertBox('disk-error');
  async function loadDisks() {
    try {
      const list = await get(`${base}/disks`);
      if (!ctx.alive()) return;
      replace(disks, list.length === 0 ? h('p', { class: 'muted', testid: 'disks-empty' }, 'No disks.') :
        h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('caption', { class: 'visually-hidden' }, 'Disks'),
          h('thead', {}, h('tr', {}, ['Name', 'Size', 'Attached'].map((t) => h('th', { scope: 'col' }, t)),
            canMutate ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null)),
          h('tbody', {}, list.map(diskRow)))));
    } catch (error) {
      if (ctx.alive() && error.status !== 404) showAlert(diskError, 'Could not load the disks', error);
    }
  }

  function diskRow(disk) {
    const act = (label, action, danger = false) => h('button', {
      type: 'button', class: `btn btn-small${danger ? ' btn-danger-quiet' : ''}`, 'aria-label': `${label} disk ${disk.name}`,
      testid: `disk-${action}`, disabled: busy(), onclick: () => diskAction(disk, action),
    }, label);
    return h('tr', { testid: `disk-row-${disk.name}` },
      h('th', { scope: 'row', 'data-label': 'Name' }, disk.name),
      h('td', { 'data-label': 'Size', class: 'num' }, formatMemory(disk.size_mb)),
      h('td', { 'data-label': 'Attached', testid: 'disk-attached' }, disk.attached ? 'attached' : 'detached'),
      canMutate ? h('td', { class: 'cell-actions' }, h('div', { class: 'btn-group' },
        disk.attached ? act('Detach', 'detach') : act('Attach', 'attach'),
        act('Delete', 'delete', true))) : null);
  }

  async function diskAction(disk, action) {
    const path = `${base}/disks/${encodeURIComponent(disk.id)}`;
    showAlert(diskError, null, null);
    try {
      if (action === 'delete') {
        const ok = await askDialog({ title: `Delete disk ${disk.name}?`, body: 'Its data is lost.', confirm: 'Delete disk', danger: true, testid: 'confirm-dialog' });
        if (!ok) return;
      }
      const answer = action === 'delete' ? await del(path) : await post(`${path}/${action}`);
      const done = await track(id, answer.operation, `${action === 'delete' ? 'deleting' : action + 'ing'} disk…`, `${action} disk ${disk.name}`);
      if (done?.status === 'failed' && ctx.alive()) showAlert(diskError, `${action} disk ${disk.name} failed`, new ApiError(0, 'failed', done.error));
    } catch (error) {
      if (ctx.alive()) showAlert(diskError, `Could not ${action} disk ${disk.name}`, error);
    }
    refresh();
  }

  function diskForm() {
    const form = h('form', { class: 'inline-form', testid: 'disk-form', 'aria-label': 'New disk', novalidate: true },
      field({ id: 'disk-name', label: 'Disk name', name: 'name', attrs: { autocomplete: 'off', required: true } }),
      field({ id: 'disk-size', label: 'Size (MiB)', name: 'size_mb', type: 'number', value: '1024', attrs: { min: 1, max: 65536 } }),
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'disk-create' }, 'Create disk'));
    form.addEventListener('submit', (event) => submitChild(event, form, diskError, `${base}/disks`,
      (data) => ({ name: data.name, size_mb: Number(data.size_mb) || data.size_mb }), 'creating disk…', 'Create disk'));
    return form;
  }

  // ---------------------------------------------------------------- snapshots
  const snapError = alertBox('snapshot-error');
  async function loadSnapshots() {
    try {
      const list = await get(`${base}/snapshots`);
      if (!ctx.alive()) return;
      replace(snapshots, list.length === 0 ? h('p', { class: 'muted', testid: 'snapshots-empty' }, 'No snapshots.') :
        h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('caption', { class: 'visually-hidden' }, 'Snapshots'),
          h('thead', {}, h('tr', {}, ['Name', 'Taken'].map((t) => h('th', { scope: 'col' }, t)),
            canMutate ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null)),
          h('tbody', {}, list.map(snapshotRow)))));
    } catch (error) {
      if (ctx.alive() && error.status !== 404) showAlert(snapError, 'Could not load the snapshots', error);
    }
  }

  function snapshotRow(snap) {
    const act = (label, action, danger = false) => h('button', {
      type: 'button', class: `btn btn-small${danger ? ' btn-danger-quiet' : ''}`, 'aria-label': `${label} snapshot ${snap.name}`,
      testid: `snapshot-${action}`, disabled: busy(), onclick: () => snapshotAction(snap, action),
    }, label);
    return h('tr', { testid: `snapshot-row-${snap.name}` },
      h('th', { scope: 'row', 'data-label': 'Name' }, snap.name),
      h('td', { 'data-label': 'Taken' }, formatTime(snap.created_at)),
      canMutate ? h('td', { class: 'cell-actions' }, h('div', { class: 'btn-group' },
        act('Roll back', 'rollback'), act('Delete', 'delete', true))) : null);
  }

  async function snapshotAction(snap, action) {
    const path = `${base}/snapshots/${encodeURIComponent(snap.id)}`;
    showAlert(snapError, null, null);
    try {
      const ok = await askDialog(action === 'delete'
        ? { title: `Delete snapshot ${snap.name}?`, confirm: 'Delete snapshot', danger: true, testid: 'confirm-dialog' }
        : { title: `Roll back to ${snap.name}?`, body: 'Changes made since this snapshot are lost.', confirm: 'Roll back', danger: true, testid: 'confirm-dialog' });
      if (!ok) return;
      const answer = action === 'delete' ? await del(path) : await post(`${path}/rollback`);
      const label = action === 'delete' ? 'deleting snapshot…' : 'rolling back…';
      const done = await track(id, answer.operation, label, `${action} snapshot ${snap.name}`);
      if (done?.status === 'succeeded' && action === 'rollback') toast(`Rolled back to ${snap.name}.`, { testid: 'rollback-done' });
      if (done?.status === 'failed' && ctx.alive()) showAlert(snapError, `${action} snapshot ${snap.name} failed`, new ApiError(0, 'failed', done.error));
    } catch (error) {
      if (ctx.alive()) showAlert(snapError, `Could not ${action === 'rollback' ? 'roll back' : 'delete'} snapshot ${snap.name}`, error);
    }
    refresh();
  }

  function snapshotForm() {
    const form = h('form', { class: 'inline-form', testid: 'snapshot-form', 'aria-label': 'New snapshot', novalidate: true },
      field({ id: 'snapshot-name', label: 'Snapshot name', name: 'name', attrs: { autocomplete: 'off', required: true } }),
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'snapshot-create' }, 'Take snapshot'));
    form.addEventListener('submit', (event) => submitChild(event, form, snapError, `${base}/snapshots`,
      (data) => ({ name: data.name }), 'taking snapshot…', 'Take snapshot'));
    return form;
  }

  async function submitChild(event, form, errorBox, path, toBody, label, what) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    for (const key of Object.keys(data)) data[key] = String(data[key]).trim();
    showFieldErrors(form, {});
    showAlert(errorBox, null, null);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const answer = await post(path, toBody(data));
      form.elements.name.value = '';
      refresh();
      const done = await track(id, answer.operation, label, what);
      if (done?.status === 'failed' && ctx.alive()) showAlert(errorBox, `${what} failed`, new ApiError(0, 'failed', done.error));
    } catch (error) {
      if (!ctx.alive()) return;
      const shown = showFieldErrors(form, error.fieldErrors ?? {});
      showAlert(errorBox, shown ? 'Check the highlighted fields' : `Could not ${what.toLowerCase()}`, error);
    } finally {
      button.disabled = false;
    }
    refresh();
  }

  // ---------------------------------------------------------------- console
  async function loadConsole() {
    try {
      const answer = await get(`${base}/console${'?lines=200'}`);
      if (!ctx.alive()) return;
      const atBottom = consoleText.scrollTop + consoleText.clientHeight >= consoleText.scrollHeight - 8;
      consoleText.textContent = answer.text || '(the serial log is empty)';
      if (atBottom) consoleText.scrollTop = consoleText.scrollHeight;
    } catch (error) {
      if (!ctx.alive()) return;
      consoleText.textContent = error.status === 404 ? '(no serial log)' : errorText('Could not read the serial log', error);
    }
  }

  function refresh() {
    if (!ctx.alive() || gone) return;
    loadMachine();
    loadDisks();
    loadSnapshots();
    loadConsole();
  }

  const reload = debounce(refresh, 150);
  const stopEvents = subscribe((event) => {
    if (String(event.machine_id) === String(id)) reload();
  });
  const stopPending = onPendingChange((machineId) => {
    if (String(machineId) === String(id) && ctx.alive()) {
      drawMachine();
      reload();
    }
  });

  const body = h('div', { class: 'detail-grid' },
    h('section', { class: 'card', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title', class: 'card-title' }, 'Details'), facts),
    h('section', { class: 'card', 'aria-labelledby': 'guest-title' }, h('h2', { id: 'guest-title', class: 'card-title' }, 'Guest web page'), guest),
    h('section', { class: 'card', 'aria-labelledby': 'disks-title', testid: 'disks-section' },
      h('h2', { id: 'disks-title', class: 'card-title' }, 'Disks'),
      canMutate ? h('p', { class: 'hint section-hint' }, 'Create and delete disks while the machine is stopped; attach and detach them any time.') : null, diskError, disks, canMutate ? diskForm() : null),
    h('section', { class: 'card', 'aria-labelledby': 'snaps-title', testid: 'snapshots-section' },
      h('h2', { id: 'snaps-title', class: 'card-title' }, 'Snapshots'),
      canMutate ? h('p', { class: 'hint section-hint' }, 'Snapshots are taken, rolled back and deleted while the machine is stopped.') : null, snapError, snapshots, canMutate ? snapshotForm() : null),
    h('section', { class: 'card span-2', 'aria-labelledby': 'console-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'console-title', class: 'card-title' }, 'Serial log'),
        h('button', { type: 'button', class: 'btn btn-small', testid: 'console-refresh', onclick: loadConsole }, 'Refresh')),
      consoleText));

  replace(root, h('section', { class: 'view' },
    h('p', { class: 'crumbs' }, h('a', { href: '/machines' }, '← Machines')),
    h('header', { class: 'view-header' }, h('div', { class: 'title-row' }, heading, headState), headActions),
    topError, body));
  refresh();

  return {
    unmount() {
      stopEvents();
      stopPending();
      reload.cancel();
    },
  };
}

// How a provider's placement labels (the machine's `details`) read on the page; others as they are.
const DETAIL_TERMS = { kind: 'Guest kind', node: 'Node', vmid: 'VMID', sandbox: 'Sandbox', template: 'Template' };

function fact(term, value) {
  return [h('dt', {}, term), h('dd', {}, value)];
}
