// Log in and register. A buyer joins the site-wide queue as soon as they are signed in.

import { h, field, messageArea, setBusy, uid } from '../dom.js';
import { api } from '../api.js';
import * as session from '../session.js';
import * as queue from '../queue.js';

const LOGIN_PATTERN = /^[a-zA-Z0-9_-]+$/;

/** Signs in and goes on: admins to their events (or `next`), buyers into the queue. */
async function signIn(ctx, userId, password) {
  const pair = await api('/auth/login', { method: 'POST', body: { userId, password }, auth: false });
  session.setTokens(pair, 'login');
  const next = ctx.query.get('next');
  const safeNext = next && next.startsWith('/') && !next.startsWith('//') ? next : null;
  if (session.isAdmin()) {
    ctx.navigate(safeNext ?? '/admin', { replace: true });
    return;
  }
  queue.join();
  ctx.navigate('/waiting', { replace: true });
}

function passwordInput(autocomplete) {
  return h('input', { type: 'password', name: autocomplete === 'new-password' ? 'new-password' : 'password', autocomplete, required: true });
}

export function loginPage(ctx) {
  ctx.setTitle('Log in');
  const messages = messageArea();
  const user = field({
    label: 'User ID',
    id: uid('login-user'),
    control: h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' }),
  });
  const password = field({ label: 'Password', id: uid('login-password'), control: passwordInput('current-password') });
  const submit = h('button', { type: 'submit', class: 'button button-primary button-block' }, 'Log in');

  const form = h(
    'form',
    {
      class: 'card form',
      novalidate: true,
      onSubmit: async (e) => {
        e.preventDefault();
        messages.clear();
        const userId = user.input.value.trim();
        const pw = password.input.value;
        user.setError(userId ? '' : 'Enter your user ID.');
        password.setError(pw ? '' : 'Enter your password.');
        if (!userId) return user.input.focus();
        if (!pw) return password.input.focus();
        setBusy(submit, true, 'Logging in…');
        try {
          await signIn(ctx, userId, pw);
        } catch (err) {
          if (ctx.signal.aborted) return undefined;
          setBusy(submit, false);
          messages.show('error', `Could not log in: ${err.message}`);
          password.input.select();
          password.input.focus();
        }
        return undefined;
      },
    },
    messages.el,
    user.wrap,
    password.wrap,
    submit,
  );

  return h(
    'section',
    { class: 'page narrow' },
    h('h1', { tabindex: '-1' }, 'Log in'),
    h('p', { class: 'lead' }, 'Log in to join the queue. When it is your turn, you can buy tickets.'),
    form,
    h('p', { class: 'center' }, 'New here? ', h('a', { href: '/register', 'data-link': true }, 'Create an account')),
  );
}

export function registerPage(ctx) {
  ctx.setTitle('Create an account');
  const messages = messageArea();
  const user = field({
    label: 'User ID',
    id: uid('reg-user'),
    hint: '4 to 50 characters: letters, digits, - and _.',
    control: h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, minlength: 4, maxlength: 50, autocapitalize: 'none', spellcheck: 'false' }),
  });
  const password = field({ label: 'Password', id: uid('reg-password'), hint: 'At least 8 characters.', control: passwordInput('new-password') });
  const confirm = field({ label: 'Repeat the password', id: uid('reg-confirm'), control: passwordInput('new-password') });
  const adminBox = h('input', { type: 'checkbox', id: uid('reg-admin'), name: 'admin' });
  const secret = field({
    label: 'Administrator secret',
    id: uid('reg-secret'),
    hint: 'Given to you by the operator of this site.',
    control: h('input', { type: 'password', name: 'admin-secret', autocomplete: 'off' }),
  });
  secret.wrap.hidden = true;
  adminBox.addEventListener('change', () => {
    secret.wrap.hidden = !adminBox.checked;
    if (adminBox.checked) secret.input.focus();
  });
  const submit = h('button', { type: 'submit', class: 'button button-primary button-block' }, 'Create account');

  function check() {
    const userId = user.input.value.trim();
    const errors = [
      [user, !userId ? 'Enter a user ID.' : userId.length < 4 || userId.length > 50 ? 'The user ID must be 4 to 50 characters long.' : !LOGIN_PATTERN.test(userId) ? 'Use only letters, digits, - and _ in the user ID.' : ''],
      [password, password.input.value.length < 8 ? 'The password must be at least 8 characters long.' : ''],
      [confirm, confirm.input.value !== password.input.value ? 'The passwords do not match.' : ''],
      [secret, adminBox.checked && !secret.input.value ? 'Enter the administrator secret.' : ''],
    ];
    let first = null;
    for (const [f, message] of errors) {
      f.setError(message);
      if (message && !first) first = f;
    }
    return first;
  }

  const form = h(
    'form',
    {
      class: 'card form',
      novalidate: true,
      onSubmit: async (e) => {
        e.preventDefault();
        messages.clear();
        const invalid = check();
        if (invalid) {
          invalid.input.focus();
          return;
        }
        const userId = user.input.value.trim();
        const pw = password.input.value;
        setBusy(submit, true, 'Creating your account…');
        try {
          if (adminBox.checked) {
            await api('/auth/register/admin', { method: 'POST', body: { userId, password: pw, adminSecret: secret.input.value }, auth: false });
          } else {
            await api('/auth/register', { method: 'POST', body: { userId, password: pw }, auth: false });
          }
        } catch (err) {
          if (ctx.signal.aborted) return;
          setBusy(submit, false);
          messages.show('error', `Could not create the account: ${err.message}`);
          return;
        }
        try {
          await signIn(ctx, userId, pw);
        } catch (err) {
          if (ctx.signal.aborted) return;
          setBusy(submit, false);
          messages.show('error', `Your account was created, but logging in failed: ${err.message}`);
        }
      },
    },
    messages.el,
    user.wrap,
    password.wrap,
    confirm.wrap,
    h('div', { class: 'field field-check' }, adminBox, h('label', { for: adminBox.id }, 'Register as an administrator')),
    secret.wrap,
    submit,
  );

  return h(
    'section',
    { class: 'page narrow' },
    h('h1', { tabindex: '-1' }, 'Create an account'),
    h('p', { class: 'lead' }, 'One account per person. You will join the queue right after.'),
    form,
    h('p', { class: 'center' }, 'Already have an account? ', h('a', { href: '/login', 'data-link': true }, 'Log in')),
  );
}
