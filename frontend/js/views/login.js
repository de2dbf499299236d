import { post } from '../api.js';
import { alertBox, h, replace, showAlert } from '../dom.js';

export function mount(root, ctx) {
  const query = new URLSearchParams(location.search);
  const error = alertBox('login-error');
  const username = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-wide', testid: 'login-submit' }, 'Sign in');
  const form = h('form', { class: 'card login-card', 'aria-labelledby': 'login-title', novalidate: true },
    h('div', { class: 'login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Hangar'),
    h('h1', { id: 'login-title' }, 'Sign in'),
    query.has('expired') ? h('p', { class: 'notice', role: 'status', testid: 'session-expired' }, 'Your session has expired. Sign in again to continue.') : null,
    error,
    h('div', { class: 'field' }, h('label', { for: 'login-username' }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
    submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!username.value.trim() || !password.value) {
      showAlert(error, null, 'Enter your username and password.');
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const answer = await post('/auth/login', { username: username.value.trim(), password: password.value }, { quiet401: true });
      if (!ctx.alive()) return;
      ctx.signedIn(answer.user, answer.csrf_token);
      const next = query.get('next');
      ctx.navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    } catch (problem) {
      if (!ctx.alive()) return;
      showAlert(error, 'Sign-in failed', problem);
      password.select();
      password.focus();
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });

  replace(root, h('section', { class: 'view view-login' }, form));
  username.focus();
  return {};
}
