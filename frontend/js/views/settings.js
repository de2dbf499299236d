import { del, get, post } from '../api.js';
import { alertBox, field, formatTime, h, replace, showAlert, showFieldErrors, toast } from '../dom.js';

export function mount(root, ctx) {
  replace(root, h('section', { class: 'view' },
    h('header', { class: 'view-header' }, h('h1', {}, 'Settings'), h('span', { class: 'muted', testid: 'settings-user' }, `Signed in as ${ctx.user.username} (${ctx.user.role})`)),
    h('div', { class: 'settings-grid' }, tokensCard(ctx), passwordCard(ctx))));
  return {};
}

function tokensCard(ctx) {
  const error = alertBox('tokens-error');
  const list = h('div', { testid: 'tokens' });
  const secret = h('div', { class: 'secret', testid: 'new-token', hidden: true });

  async function load() {
    try {
      const tokens = await get('/tokens');
      if (!ctx.alive()) return;
      replace(list, tokens.length === 0 ? h('p', { class: 'muted', testid: 'tokens-empty' }, 'No API tokens.') :
        h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('caption', { class: 'visually-hidden' }, 'API tokens'),
          h('thead', {}, h('tr', {}, ['Name', 'Created', 'Last used', 'Status'].map((t) => h('th', { scope: 'col' }, t)),
            h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
          h('tbody', {}, tokens.map(row)))));
    } catch (problem) {
      if (ctx.alive()) showAlert(error, 'Could not load the tokens', problem);
    }
  }

  function row(token) {
    const revoked = Boolean(token.revoked_at);
    return h('tr', { testid: `token-row-${token.name}`, 'data-token-id': token.id },
      h('th', { scope: 'row', 'data-label': 'Name' }, token.name),
      h('td', { 'data-label': 'Created' }, formatTime(token.created_at)),
      h('td', { 'data-label': 'Last used' }, token.last_used_at ? formatTime(token.last_used_at) : 'never'),
      h('td', { 'data-label': 'Status', testid: 'token-status' }, revoked ? h('span', { class: 'badge state-stopped' }, 'revoked') : h('span', { class: 'badge state-running' }, 'active')),
      h('td', { class: 'cell-actions' }, revoked ? null : h('button', {
        type: 'button', class: 'btn btn-small btn-danger-quiet', 'aria-label': `Revoke token ${token.name}`, testid: 'token-revoke',
        onclick: async () => {
          try {
            await del(`/tokens/${encodeURIComponent(token.id)}`);
            toast(`Token ${token.name} revoked.`);
          } catch (problem) {
            showAlert(error, `Could not revoke ${token.name}`, problem);
          }
          load();
        },
      }, 'Revoke')));
  }

  const form = h('form', { class: 'inline-form', testid: 'token-form', 'aria-label': 'New API token', novalidate: true },
    field({ id: 'token-name', label: 'Token name', name: 'name', hint: 'What the token is for, e.g. ci', attrs: { autocomplete: 'off', required: true } }),
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'token-create' }, 'Create token'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showFieldErrors(form, {});
    showAlert(error, null, null);
    try {
      const created = await post('/tokens', { name: form.elements.name.value.trim() });
      if (!ctx.alive()) return;
      form.elements.name.value = '';
      const value = h('code', { testid: 'new-token-value' }, created.token);
      const copy = h('button', { type: 'button', class: 'btn btn-small' }, 'Copy');
      copy.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(created.token);
          copy.textContent = 'Copied';
        } catch {
          window.getSelection().selectAllChildren(value);
        }
      });
      secret.hidden = false;
      replace(secret, h('p', {}, h('strong', {}, `Token “${created.name}” created. `), 'Copy it now: it is shown only once.'), h('div', { class: 'secret-value' }, value, copy));
      load();
    } catch (problem) {
      if (!ctx.alive()) return;
      const shown = showFieldErrors(form, problem.fieldErrors ?? {});
      showAlert(error, shown ? 'Check the token name' : 'Could not create the token', problem);
    }
  });

  load();
  return h('section', { class: 'card', 'aria-labelledby': 'tokens-title', testid: 'tokens-section' },
    h('h2', { id: 'tokens-title', class: 'card-title' }, 'API tokens'),
    h('p', { class: 'muted' }, 'Scripts use a token as ', h('code', {}, 'Authorization: Bearer hgr_…'), '.'),
    error, secret, list, form);
}

function passwordCard(ctx) {
  const error = alertBox('password-error');
  const done = h('p', { class: 'notice', role: 'status', testid: 'password-changed', hidden: true }, 'Your password has been changed.');
  const form = h('form', { class: 'stack-form', testid: 'password-form', 'aria-labelledby': 'password-title', novalidate: true },
    // Lets password managers know whose password this is.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: ctx.user.username, hidden: true, readonly: true, tabindex: '-1' }),
    field({ id: 'current-password', label: 'Current password', name: 'current_password', type: 'password', attrs: { autocomplete: 'current-password' } }),
    field({ id: 'new-password', label: 'New password', name: 'new_password', type: 'password', hint: 'At least 8 characters', attrs: { autocomplete: 'new-password' } }),
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'password-submit' }, 'Change password'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    done.hidden = true;
    showFieldErrors(form, {});
    showAlert(error, null, null);
    try {
      await post('/auth/password', { current_password: form.elements.current_password.value, new_password: form.elements.new_password.value });
      if (!ctx.alive()) return;
      form.reset();
      done.hidden = false;
    } catch (problem) {
      if (!ctx.alive()) return;
      const shown = showFieldErrors(form, problem.fieldErrors ?? {});
      showAlert(error, shown ? 'Check the highlighted fields' : 'Could not change the password', problem);
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'password-title' },
    h('h2', { id: 'password-title', class: 'card-title' }, 'Password'), error, done, form);
}
