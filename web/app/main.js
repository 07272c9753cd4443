// The page: a small router over the History API, the navigation bar, and the session and
// queue wiring shared by every page.

import { h, replace } from './dom.js';
import { api } from './api.js';
import * as session from './session.js';
import * as queue from './queue.js';
import { loginPage, registerPage } from './pages/auth.js';
import { waitingPage, shopPage, purchasePage, checkoutPage, ordersPage } from './pages/buyer.js';
import { adminEventsPage, eventFormPage, monitoringPage } from './pages/admin.js';

const routes = [
  { path: '/login', page: loginPage, guest: true },
  { path: '/register', page: registerPage, guest: true },
  { path: '/waiting', page: waitingPage, auth: true },
  { path: '/shop', page: shopPage, auth: true },
  { path: '/shop/:id', page: purchasePage, auth: true },
  { path: '/checkout/:id', page: checkoutPage, auth: true },
  { path: '/my-orders', page: ordersPage, auth: true },
  { path: '/admin', page: adminEventsPage, admin: true },
  { path: '/admin/new', page: eventFormPage, admin: true },
  { path: '/admin/edit/:id', page: eventFormPage, admin: true },
  { path: '/admin/monitoring', page: monitoringPage, admin: true },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let current = null; // { controller, cleanups }
let pendingNotice = null;
let firstRender = true;

function match(pathname) {
  const parts = pathname.replace(/\/+$/, '').split('/').filter(Boolean);
  for (const route of routes) {
    const pattern = route.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    const ok = pattern.every((p, i) => {
      if (p.startsWith(':')) {
        params[p.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      }
      return p === parts[i];
    });
    if (ok) return { route, params };
  }
  return null;
}

/** Where "/" leads: the login, the admin's events, the shop when admitted, else the queue. */
function home() {
  if (!session.isLoggedIn()) return '/login';
  if (session.isAdmin()) return '/admin';
  const q = queue.snapshot();
  if (q.state === 'READY' && q.eventId !== queue.GLOBAL) return `/shop/${encodeURIComponent(q.eventId)}`;
  if (q.state === 'READY' || !q.active) return '/shop';
  return '/waiting';
}

/** Goes to `path`; `notice` = {kind, text} shown once on the next page. */
export function navigate(path, { replace: replaceEntry = false, notice = null } = {}) {
  if (notice) pendingNotice = notice;
  if (replaceEntry) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function link(href, label) {
  return h('a', { href, 'data-link': true }, label);
}

/** Marks the link of the current section: the longest href that prefixes the path. */
function markCurrent(links) {
  const path = location.pathname;
  const best = links
    .filter((a) => {
      const href = a.getAttribute('href');
      return path === href || path.startsWith(`${href}/`);
    })
    .sort((a, b) => b.getAttribute('href').length - a.getAttribute('href').length)[0];
  if (best) best.setAttribute('aria-current', 'page');
}

function renderNav() {
  const s = session.current();
  if (!s) {
    const links = [link('/login', 'Log in'), link('/register', 'Register')];
    markCurrent(links);
    replace(nav, links);
    return;
  }
  const links = [link('/shop', 'Shop'), link('/my-orders', 'My orders')];
  if (s.role === 'ADMIN') links.push(link('/admin', 'Events'), link('/admin/monitoring', 'Monitoring'));
  markCurrent(links);
  const items = [...links];
  items.push(
    h('span', { class: 'nav-user', title: 'Signed in' }, s.userId, s.role === 'ADMIN' ? ' (admin)' : ''),
    h('button', { type: 'button', class: 'button button-small button-ghost', onClick: logout }, 'Log out'),
  );
  replace(nav, items);
}

export async function logout() {
  const s = session.current();
  await queue.stop();
  if (s) {
    try {
      await api('/auth/logout', { method: 'POST', body: { refreshToken: s.refreshToken }, auth: false });
    } catch {
      // The refresh token expires on its own; the page forgets it either way.
    }
  }
  session.clear('logout');
  navigate('/login', { notice: { kind: 'info', text: 'You have logged out.' } });
}

function notFound() {
  return h(
    'section',
    { class: 'page narrow' },
    h('h1', { tabindex: '-1' }, 'Page not found'),
    h('p', null, 'There is nothing at this address.'),
    h('p', null, h('a', { href: '/', 'data-link': true, class: 'button' }, 'Go to the start page')),
  );
}

function forbidden() {
  return h(
    'section',
    { class: 'page narrow' },
    h('h1', { tabindex: '-1' }, 'Administrators only'),
    h('p', null, 'This page needs an administrator account. You are signed in as a buyer.'),
    h('p', null, h('a', { href: '/shop', 'data-link': true, class: 'button' }, 'Go to the shop')),
  );
}

function render() {
  if (current) {
    current.controller.abort();
    for (const fn of current.cleanups) fn();
  }
  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  renderNav();

  const path = location.pathname;
  if (path === '/' || path === '') {
    history.replaceState(null, '', home());
    return render();
  }
  const found = match(path);
  let view;
  if (!found) {
    document.title = 'Page not found · Flash Tickets';
    view = notFound();
  } else if ((found.route.auth || found.route.admin) && !session.isLoggedIn()) {
    const next = encodeURIComponent(location.pathname + location.search);
    history.replaceState(null, '', `/login?next=${next}`);
    return render();
  } else if (found.route.guest && session.isLoggedIn()) {
    history.replaceState(null, '', home());
    return render();
  } else if (found.route.admin && !session.isAdmin()) {
    document.title = 'Administrators only · Flash Tickets';
    view = forbidden();
  } else {
    const ctx = {
      params: found.params,
      query: new URLSearchParams(location.search),
      signal: controller.signal,
      navigate,
      onCleanup: (fn) => cleanups.push(fn),
      notice: pendingNotice,
      setTitle: (t) => {
        document.title = `${t} · Flash Tickets`;
      },
    };
    view = found.route.page(ctx);
  }
  const notice = pendingNotice;
  pendingNotice = null;
  replace(main, view);
  if (notice) {
    // Under the page's heading, where the eye lands after a navigation.
    const box = h('div', { class: `alert alert-${notice.kind} page-notice`, role: notice.kind === 'error' ? 'alert' : 'status' }, notice.text);
    const heading = view.querySelector('h1');
    const anchor = heading?.parentElement?.classList.contains('page-head') ? heading.parentElement : heading;
    if (anchor) anchor.after(box);
    else view.prepend(box);
  }
  if (!firstRender) {
    const heading = main.querySelector('h1');
    (heading ?? main).focus({ preventScroll: false });
    window.scrollTo(0, 0);
  }
  firstRender = false;
  return undefined;
}

// Same-origin links marked data-link navigate without a reload (modifier keys still open tabs).
document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});

window.addEventListener('popstate', render);

session.subscribe((s, reason) => {
  if (reason === 'expired') {
    queue.stop();
    navigate('/login', { notice: { kind: 'warning', text: 'Your session has expired. Please log in again.' } });
  } else if (reason === 'logout-elsewhere' && !s) {
    queue.stop();
    navigate('/login', { notice: { kind: 'info', text: 'You have logged out.' } });
  } else {
    renderNav();
  }
});

queue.resume();
render();
