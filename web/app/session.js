// The signed-in user: tokens in localStorage, refreshed before the access token expires.
//
// Refresh tokens rotate (the server revokes the one used, and reusing a revoked one revokes
// the whole family), so one refresh runs at a time: across tabs through a Web Lock, and a tab
// that finds the tokens already rotated by another tab adopts them instead of refreshing.

const KEY = 'flash-tickets-auth';
const LOCK = 'flash-tickets-refresh';
/** Retry delay after a refresh that failed for a reason other than a refused token. */
const RETRY_MS = 5000;

let state = load();
let timer = null;
let inflight = null;
const listeners = new Set();

/** The payload of a JWT (not verified: the server does that). */
export function decodeJwt(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? 'null');
    return s && s.accessToken && s.refreshToken ? s : null;
  } catch {
    return null;
  }
}

function save() {
  if (state) localStorage.setItem(KEY, JSON.stringify(state));
  else localStorage.removeItem(KEY);
}

function notify(reason) {
  for (const fn of [...listeners]) fn(state, reason);
}

/** Calls `fn(session, reason)` on login, refresh, logout and expiry; returns an unsubscribe. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function current() {
  return state;
}

export function accessToken() {
  return state?.accessToken ?? null;
}

export function isLoggedIn() {
  return Boolean(state);
}

export function isAdmin() {
  return state?.role === 'ADMIN';
}

/** Stores a fresh `{accessToken, refreshToken}` pair from login or refresh. */
export function setTokens(pair, reason = 'login') {
  const claims = decodeJwt(pair.accessToken) ?? {};
  const lifetimeMs = Math.max(1, (Number(claims.exp) - Number(claims.iat)) * 1000 || 15 * 60 * 1000);
  state = {
    accessToken: pair.accessToken,
    refreshToken: pair.refreshToken,
    userId: claims.userId ?? '',
    userUuid: claims.sub ?? '',
    role: claims.role ?? 'USER',
    // Measured on this device's clock from the token's own lifetime, so a skewed clock does
    // not make the page refresh too late.
    expiresAt: Date.now() + lifetimeMs,
    lifetimeMs,
  };
  save();
  schedule();
  notify(reason);
}

/** Forgets the session (logout, or a refresh token the server refused). */
export function clear(reason = 'logout') {
  state = null;
  clearTimeout(timer);
  timer = null;
  save();
  notify(reason);
}

/** When to refresh: a fifth of the lifetime before expiry, between 2 s and 60 s ahead. */
function refreshDelay(s) {
  const margin = Math.min(60_000, Math.max(2_000, s.lifetimeMs * 0.2));
  return Math.max(0, s.expiresAt - margin - Date.now());
}

function schedule(delay) {
  clearTimeout(timer);
  timer = null;
  if (!state) return;
  timer = setTimeout(async () => {
    const ok = await refresh();
    if (ok === null && state) schedule(RETRY_MS);
  }, delay ?? refreshDelay(state));
}

/**
 * Rotates the tokens. Resolves true when the session has fresh tokens, false when the server
 * refused the refresh token (the session is then cleared), null when it could not tell
 * (network or server trouble: the session is kept and retried later).
 */
export function refresh() {
  if (!inflight) {
    inflight = withLock(rotate).finally(() => {
      inflight = null;
    });
  }
  return inflight;
}

function withLock(fn) {
  if (navigator.locks?.request) return navigator.locks.request(LOCK, fn);
  return fn();
}

async function rotate() {
  const before = state;
  const stored = load();
  if (!before && !stored) return false;
  // Another tab rotated the pair while we waited for the lock: use its tokens.
  if (stored && before && stored.refreshToken !== before.refreshToken) {
    state = stored;
    schedule();
    notify('refresh');
    return true;
  }
  const token = (stored ?? before).refreshToken;
  let response;
  try {
    response = await fetch('/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ refreshToken: token }),
    });
  } catch {
    return null;
  }
  if (response.ok) {
    try {
      setTokens(await response.json(), 'refresh');
      return true;
    } catch {
      return null;
    }
  }
  if (response.status === 401 || response.status === 400) {
    clear('expired');
    return false;
  }
  return null;
}

// Another tab logged in, refreshed or logged out.
window.addEventListener('storage', (e) => {
  if (e.key !== KEY && e.key !== null) return;
  const next = load();
  const changed = (next?.refreshToken ?? null) !== (state?.refreshToken ?? null);
  if (!changed) return;
  const wasLoggedIn = Boolean(state);
  state = next;
  schedule();
  notify(state ? (wasLoggedIn ? 'refresh' : 'login') : 'logout-elsewhere');
});

// A laptop waking up: timers did not run while it slept.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state && refreshDelay(state) === 0) refresh();
});

schedule();
