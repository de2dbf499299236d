// Small DOM helpers: build elements, show messages, format values.

/** h('button', {class: 'btn', onclick}, 'Text') — attributes, listeners and children in one call. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'testid') {
      el.dataset.testid = value;
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A message that quotes the server's text: `Could not start web-1: “…”`. */
export function errorText(what, error) {
  const text = error?.message ?? String(error);
  return what ? `${what}: “${text}”` : `“${text}”`;
}

/** An inline alert; `error` may be an ApiError, a string or null (clears it). */
export function showAlert(box, what, error) {
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.hidden = false;
  replace(box, typeof error === 'string' ? error : errorText(what, error));
}

export function alertBox(testid = 'error-message') {
  return h('p', { class: 'alert', role: 'alert', testid, hidden: true });
}

let toastHost = null;

/** A short note in the corner that goes away by itself (errors stay until dismissed). */
export function toast(text, { kind = 'info', testid = 'toast' } = {}) {
  toastHost ??= document.querySelector('.toasts');
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
  const note = h('div', { class: `toast toast-${kind}`, testid }, h('span', {}, text), close);
  close.addEventListener('click', () => note.remove());
  toastHost.append(note);
  if (kind !== 'error') setTimeout(() => note.remove(), 5000);
  return note;
}

export function formatTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function formatMemory(mb) {
  if (mb === null || mb === undefined) return '—';
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

const TRANSIENT = new Set(['provisioning', 'starting', 'stopping', 'restarting', 'deleting']);

export function isTransient(state) {
  return TRANSIENT.has(state);
}

/** The coloured state pill; transient states get a spinner. */
export function stateBadge(state, { pending = null, historic = false } = {}) {
  const label = pending ?? state ?? 'unknown';
  const busy = !historic && (pending !== null || isTransient(state));
  return h(
    'span',
    { class: `badge state-${state ?? 'unknown'}${busy ? ' is-busy' : ''}`, testid: 'machine-state', 'data-state': state ?? '' },
    busy ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null,
    label,
  );
}

/** A <dialog> with a form; resolves with the form's values, or null when cancelled. */
export function askDialog({ title, body = null, fields = [], confirm = 'OK', danger = false, testid = 'dialog' }) {
  return new Promise((resolve) => {
    const inputs = fields.map((field) => {
      const id = `dlg-${field.name}`;
      return {
        field,
        label: h('label', { for: id }, field.label),
        input: h('input', {
          id, name: field.name, type: field.type ?? 'text', value: field.value ?? '', required: true,
          autocomplete: 'off', 'aria-describedby': `${id}-hint`,
        }),
        hint: h('p', { class: 'hint', id: `${id}-hint` }, field.hint ?? ''),
      };
    });
    const cancel = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
    const ok = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}` }, confirm);
    const form = h('form', { method: 'dialog' },
      h('h2', { id: `${testid}-title` }, title),
      body ? h('p', {}, body) : null,
      inputs.map(({ label, input, hint }) => h('div', { class: 'field' }, label, input, hint)),
      h('div', { class: 'actions-row' }, cancel, ok));
    const dialog = h('dialog', { class: 'dialog', testid, 'aria-labelledby': `${testid}-title` }, form);
    let result = null;
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      result = Object.fromEntries(inputs.map(({ field, input }) => [field.name, input.value.trim()]));
      dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    (inputs[0]?.input ?? ok).focus();
  });
}

/** Put server-side field errors next to the inputs of a form; returns true when any was shown. */
export function showFieldErrors(form, errors) {
  let shown = false;
  for (const input of form.querySelectorAll('input, select')) {
    const hint = form.querySelector(`#${input.id}-error`);
    const message = errors[input.name];
    input.toggleAttribute('aria-invalid', Boolean(message));
    if (message) input.setAttribute('aria-invalid', 'true');
    if (hint) {
      hint.textContent = message ?? '';
      hint.hidden = !message;
    }
    shown ||= Boolean(message);
  }
  return shown;
}

/** A labelled input with a slot for its error, wired with aria-describedby. */
export function field({ id, label, name, type = 'text', value = '', hint = '', attrs = {}, control = null }) {
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const describedBy = [hint ? hintId : null, errorId].filter(Boolean).join(' ');
  const input = control ?? h('input', { id, name, type, value, ...attrs });
  input.id = id;
  input.name = name;
  input.setAttribute('aria-describedby', describedBy);
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, testid: `${name}-error`, hidden: true }));
}
