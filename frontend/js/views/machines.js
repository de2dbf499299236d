import { get, post, qs } from '../api.js';
import { actionButtons, onPendingChange, pendingLabel, setPending, track } from '../actions.js';
import { alertBox, field, formatMemory, h, replace, showAlert, showFieldErrors, stateBadge, toast } from '../dom.js';
import { debounce, subscribe } from '../live.js';

export function mount(root, ctx) {
  const tableError = alertBox('machines-error');
  const body = h('tbody', { testid: 'machines-body' });
  const count = h('span', { class: 'muted', testid: 'machines-count' });
  const table = h('table', { class: 'table table-machines', testid: 'machines-table' },
    h('caption', { class: 'visually-hidden' }, 'Machines and their state'),
    h('thead', {}, h('tr', {},
      ['Name', 'Provider', 'Image', 'CPUs', 'Memory', 'State'].map((t) => h('th', { scope: 'col' }, t)),
      ctx.isAdmin ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null)),
    body);
  let machines = [];

  function row(machine) {
    const label = pendingLabel(machine.id);
    return h('tr', { testid: `machine-row-${machine.name}`, 'data-machine-id': machine.id, 'aria-busy': label ? 'true' : 'false' },
      h('th', { scope: 'row', 'data-label': 'Name' }, h('a', { href: `/machines/${encodeURIComponent(machine.id)}` }, machine.name)),
      h('td', { 'data-label': 'Provider' }, machine.provider),
      h('td', { 'data-label': 'Image' }, machine.image),
      h('td', { 'data-label': 'CPUs', class: 'num' }, machine.cpus),
      h('td', { 'data-label': 'Memory', class: 'num' }, formatMemory(machine.memory_mb)),
      h('td', { 'data-label': 'State' },
        stateBadge(machine.state, { pending: label }),
        machine.state === 'error' && machine.error ? h('p', { class: 'row-error', testid: 'machine-error' }, machine.error) : null),
      ctx.isAdmin ? h('td', { class: 'cell-actions' }, actionButtons(machine, { canMutate: true })) : null);
  }

  function draw() {
    if (machines.length === 0) {
      replace(body, h('tr', {}, h('td', { colspan: ctx.isAdmin ? 7 : 6, class: 'empty', testid: 'machines-empty' },
        ctx.isAdmin ? 'No machines yet. Create one above.' : 'No machines yet.')));
    } else {
      replace(body, machines.map(row));
    }
    count.textContent = machines.length === 1 ? '1 machine' : `${machines.length} machines`;
  }

  async function load() {
    try {
      const page = await get(`/machines${qs({ limit: 500 })}`);
      if (!ctx.alive()) return;
      machines = page.items;
      showAlert(tableError, null, null);
      draw();
    } catch (error) {
      if (ctx.alive()) showAlert(tableError, 'Could not load the machines', error);
    }
  }

  const reload = debounce(load);
  const stopEvents = subscribe(() => reload());
  const stopPending = onPendingChange(() => {
    if (!ctx.alive()) return;
    draw();
    reload();
  });

  replace(root, h('section', { class: 'view' },
    h('header', { class: 'view-header' }, h('h1', {}, 'Machines'), count),
    ctx.isAdmin ? createForm(ctx, load) : null,
    h('div', { class: 'card card-flush' }, tableError, h('div', { class: 'table-wrap' }, table))));
  replace(body, h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'Loading…')));
  load();

  return {
    unmount() {
      stopEvents();
      stopPending();
      reload.cancel();
    },
  };
}

function createForm(ctx, reload) {
  const error = alertBox('create-error');
  const provider = h('select', { required: true });
  const image = h('select', { required: true });
  const start = h('input', { type: 'checkbox', id: 'create-start', name: 'start', checked: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'create-submit' }, 'Create machine');
  let providers = [];

  function fillImages() {
    const chosen = providers.find((p) => p.name === provider.value);
    replace(image, (chosen?.images ?? []).map((name) => h('option', { value: name }, name)));
  }
  provider.addEventListener('change', fillImages);

  get('/providers').then((list) => {
    if (!ctx.alive()) return;
    providers = list;
    replace(provider, list.map((p) => h('option', { value: p.name }, p.name)));
    fillImages();
  }).catch((problem) => ctx.alive() && showAlert(error, 'Could not load the providers', problem));

  const form = h('form', { class: 'card form-grid', testid: 'create-form', 'aria-labelledby': 'create-title', novalidate: true },
    h('h2', { id: 'create-title', class: 'card-title' }, 'New machine'),
    error,
    field({ id: 'create-name', label: 'Name', name: 'name', hint: 'Lowercase letters, digits and hyphens', attrs: { autocomplete: 'off', spellcheck: 'false', required: true } }),
    field({ id: 'create-provider', label: 'Provider', name: 'provider', control: provider }),
    field({ id: 'create-image', label: 'Image', name: 'image', control: image }),
    field({ id: 'create-cpus', label: 'CPUs', name: 'cpus', type: 'number', value: '1', attrs: { min: 1, max: 8, inputmode: 'numeric' } }),
    field({ id: 'create-memory', label: 'Memory (MiB)', name: 'memory_mb', type: 'number', value: '512', attrs: { min: 64, max: 16384, step: 64, inputmode: 'numeric' } }),
    h('div', { class: 'form-footer' },
      h('label', { class: 'check', for: 'create-start' }, start, 'Start after creating'),
      submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const toNumber = (value) => (value === '' || Number.isNaN(Number(value)) ? value : Number(value));
    const body = {
      name: String(data.get('name') ?? '').trim(),
      provider: data.get('provider'),
      image: data.get('image'),
      cpus: toNumber(data.get('cpus')),
      memory_mb: toNumber(data.get('memory_mb')),
      start: start.checked,
    };
    showFieldErrors(form, {});
    showAlert(error, null, null);
    submit.disabled = true;
    try {
      const { machine, operation } = await post('/machines', body);
      if (ctx.alive()) {
        form.elements.name.value = '';
        toast(`Creating ${machine.name}…`);
      }
      setPending(machine.id, body.start ? 'creating…' : 'provisioning…');
      await reload();
      track(machine.id, operation, body.start ? 'creating…' : 'provisioning…', `Create ${machine.name}`);
    } catch (problem) {
      if (!ctx.alive()) return;
      const shown = showFieldErrors(form, problem.fieldErrors ?? {});
      showAlert(error, shown ? 'Check the highlighted fields' : 'Could not create the machine', problem);
      form.querySelector('[aria-invalid="true"]')?.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

