// The line this tab waits in: the site-wide queue (`__global__`, joined at login) or the own
// line of one event (`queueMode: "event"`). One line at a time: joining another leaves the
// previous one, so its place or admission goes to the next buyer at once. Live over Socket.IO
// (namespace /queue, the access token in the handshake), with a polling fallback on
// GET /queue/status whenever the socket is down or silent. Joining is idempotent on the server,
// so a reload or a reconnect finds the same ticket again.

import { io } from '../vendor/socket.io.esm.min.js';
import { api, ApiError } from './api.js';
import * as session from './session.js';

export const GLOBAL = '__global__';
const KEY = 'flash-tickets-queue';
/** Poll period while the socket is unavailable. */
export const POLL_MS = 2000;
/** How long a join may go without any update before polling starts too. */
const SILENCE_MS = 4000;

const EMPTY = {
  /** The line: `__global__` or an event id. */
  eventId: GLOBAL,
  active: false,
  joining: false,
  ticketId: null,
  state: null,
  position: null,
  firstPosition: null,
  queueSize: null,
  readyCapacity: null,
  estimatedWaitSeconds: null,
  /** While PREQUEUE: when the sale starts and the pre-queue's order is drawn (ISO). */
  startsAt: null,
  /**
   * Set once, when the pre-queue's draw is seen: `{position}`, the place it gave this ticket
   * among those still waiting (null: let in at once).
   */
  drawn: null,
  gateToken: null,
  error: null,
  transport: 'idle',
  /** Socket connections made by this tab (shown to tests as `data-connections`). */
  connections: 0,
  updatedAt: null,
};

let state = restore();
let socket = null;
/** The access token the socket's current connection was authorised with. */
let connectedWith = null;
let pollTimer = null;
let silenceTimer = null;
const listeners = new Set();

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) ?? 'null');
    return saved ? { ...EMPTY, ...saved, transport: 'idle', joining: false, error: null } : { ...EMPTY };
  } catch {
    return { ...EMPTY };
  }
}

function persist() {
  const { transport, joining, error, connections, ...kept } = state;
  sessionStorage.setItem(KEY, JSON.stringify(kept));
}

function set(patch) {
  state = { ...state, ...patch };
  persist();
  for (const fn of [...listeners]) fn(state);
}

export function snapshot() {
  return state;
}

/** Calls `fn(state)` now and on every change; returns an unsubscribe. */
export function subscribe(fn) {
  listeners.add(fn);
  fn(state);
  return () => listeners.delete(fn);
}

/** The expiry (ms since epoch) written in a gate token `g1.<ticket>.<user>.<scope>.<ms>.<sig>`. */
export function gateExpiresAt(token) {
  const ms = Number(String(token ?? '').split('.')[4]);
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

/** The line an event is bought through: its own, or the site-wide one. */
export function lineOf(event) {
  return event?.queueMode === 'event' ? event.id : GLOBAL;
}

/** The admission to buy in `line` with: `{gateToken, expiresAt}` while READY there, else null. */
export function admission(line = GLOBAL) {
  if (state.eventId !== line || state.state !== 'READY' || !state.gateToken) return null;
  return { gateToken: state.gateToken, expiresAt: gateExpiresAt(state.gateToken) };
}

/** No further change will come to the ticket: a new one is needed to wait again. */
function isFinished(s) {
  return s === 'ORDERED' || s === 'EXPIRED' || s === 'CLOSED';
}

/** Applies a status (socket `queue:update` or REST) of our ticket. */
function applyStatus(u) {
  if (!u || typeof u !== 'object') return;
  if (state.ticketId && u.ticketId && u.ticketId !== state.ticketId && !state.joining) return;
  if (u.eventId && u.eventId !== state.eventId) return;
  const position = u.state === 'QUEUED' ? u.position ?? null : null;
  // The lottery moment: the first status after waiting in the pre-queue that is not PREQUEUE.
  const drawn = state.state === 'PREQUEUE' && u.state && u.state !== 'PREQUEUE' && state.drawn === null;
  set({
    ticketId: u.ticketId ?? state.ticketId,
    state: u.state ?? state.state,
    position,
    firstPosition:
      u.state === 'QUEUED' ? Math.max(state.firstPosition ?? 0, position ?? 0) || null : state.firstPosition,
    queueSize: u.queueSize ?? state.queueSize,
    readyCapacity: u.readyCapacity ?? state.readyCapacity,
    estimatedWaitSeconds: u.state === 'QUEUED' ? u.estimatedWaitSeconds ?? null : null,
    startsAt: u.state === 'PREQUEUE' ? u.startsAt ?? state.startsAt : null,
    drawn: drawn ? { position } : state.drawn,
    gateToken: u.state === 'READY' ? u.gateToken ?? state.gateToken : null,
    joining: false,
    error: null,
    updatedAt: Date.now(),
  });
  armSilenceTimer();
  if (isFinished(state.state)) stopPolling();
}

function ensureSocket() {
  if (socket) {
    if (!socket.connected && !socket.active) socket.connect();
    return;
  }
  set({ transport: 'connecting' });
  socket = io('/queue', {
    path: '/socket.io/',
    transports: ['websocket', 'polling'],
    // A function, so every (re)connection carries the current access token.
    auth: (cb) => {
      connectedWith = session.accessToken() ?? '';
      cb({ token: connectedWith });
    },
    reconnectionDelayMax: 5000,
    timeout: 5000,
  });
  socket.on('connect', () => {
    stopPolling();
    set({ transport: 'socket', connections: state.connections + 1 });
    if (state.active) socket.emit('queue/join', { eventId: state.eventId });
  });
  socket.on('connect_error', async (err) => {
    if (state.active) startPolling();
    // The server refused the token (expired): refresh it and connect again. Other errors are
    // retried by the client itself while polling covers the gap.
    if (!socket?.active && /unauthorized/i.test(String(err?.message))) {
      const ok = await session.refresh();
      if (ok && socket && state.active) socket.connect();
    }
  });
  socket.on('disconnect', (reason) => {
    if (!state.active) return set({ transport: 'idle' });
    startPolling();
    // The server closes a socket whose access token lapsed (or whose session was revoked), and
    // the client only reconnects by itself after a transport failure: connect again with the
    // current token, refreshing it first if it is still the one the server let lapse.
    if (reason === 'io server disconnect') reconnectWithFreshToken();
    return undefined;
  });
  socket.on('queue:config', (c) => {
    if (c?.readyCapacity !== undefined) set({ readyCapacity: c.readyCapacity });
  });
  socket.on('queue:update', (u) => {
    // The socket delivers again: the fallback can rest.
    if (pollTimer) stopPolling();
    applyStatus(u);
  });
  socket.on('queue:summary', (s) => {
    if (s?.eventId === state.eventId) set({ queueSize: s.queueSize, readyCapacity: s.readyCapacity });
  });
  socket.on('queue:joined', (j) => {
    if (j?.ticketId) set({ ticketId: j.ticketId, joining: false });
  });
  socket.on('queue:error', (e) => {
    // The token lapsed: the server closes the socket next and the page connects again.
    if (e?.message === 'Unauthorized') return;
    set({ error: e?.message ?? 'The queue reported an error.', joining: false });
    if (state.active) startPolling();
  });
}

async function reconnectWithFreshToken() {
  if (session.accessToken() === connectedWith && (await session.refresh()) === false) return;
  // Refused (false): the session is over and the page logs out. Unknown (null): try with the
  // token we have; a refusal comes back as connect_error and is handled there.
  if (socket && state.active && !socket.connected) socket.connect();
}

function armSilenceTimer() {
  clearTimeout(silenceTimer);
  silenceTimer = null;
  if (!state.active || isFinished(state.state)) return;
  // While queued the socket pushes an update every few seconds; if it goes quiet, poll.
  silenceTimer = setTimeout(() => {
    if (state.active && !isFinished(state.state)) startPolling();
  }, SILENCE_MS + (state.transport === 'socket' ? 4000 : 0));
}

async function pollOnce() {
  if (!state.active) return stopPolling();
  try {
    if (!state.ticketId || state.joining) {
      const { ticketId } = await api('/queue/enqueue', { method: 'POST', body: { eventId: state.eventId } });
      if (!state.active) return undefined;
      set({ ticketId, joining: true });
    }
    const status = await api(`/queue/status?ticketId=${encodeURIComponent(state.ticketId)}`, { auth: false });
    if (state.active) applyStatus(status);
  } catch (e) {
    if (!state.active) return undefined;
    if (e instanceof ApiError && e.status === 404) {
      // The ticket is gone (expired and cleaned up): join again.
      set({ ticketId: null, joining: true, error: null });
    } else {
      set({ error: e.message });
    }
  }
  return undefined;
}

function startPolling() {
  if (pollTimer || !state.active || isFinished(state.state)) return;
  set({ transport: socket?.connected ? 'socket+polling' : 'polling' });
  pollTimer = setInterval(pollOnce, POLL_MS);
  pollOnce();
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
  if (state.transport !== 'socket' && socket?.connected) set({ transport: 'socket' });
}

const FRESH = { ticketId: null, state: null, position: null, firstPosition: null, startsAt: null, drawn: null, gateToken: null, queueSize: null };

/**
 * Joins `line` (the site-wide queue by default; again after an order or an expiry: a new
 * ticket). Joining another line than the current one leaves the current one first.
 */
export function join(line = GLOBAL) {
  const previous = state.eventId !== line && state.active && state.ticketId && !isFinished(state.state) ? state.ticketId : null;
  if (previous) leaveTicket(previous).catch(() => {
    // The old place expires on its own.
  });
  const switching = state.eventId !== line;
  set({
    active: true,
    joining: true,
    error: null,
    eventId: line,
    ...(switching || isFinished(state.state) ? FRESH : {}),
  });
  ensureSocket();
  if (socket.connected) socket.emit('queue/join', { eventId: line });
  armSilenceTimer();
}

/** Picks the line up again after a reload, if this tab was in one. */
export function resume() {
  if (state.active && session.isLoggedIn() && !isFinished(state.state)) join(state.eventId);
}

/** The admission was spent on an order (the server says ORDERED soon; the page knows now). */
export function markOrdered() {
  set({ state: 'ORDERED', gateToken: null, position: null, estimatedWaitSeconds: null });
  stopPolling();
}

/** Leaves the queue (frees the place or the admission at once). */
export async function leave() {
  const ticketId = state.ticketId;
  const wasActive = state.active;
  clearTimeout(silenceTimer);
  stopPolling();
  if (socket?.connected) socket.emit('queue/leave', { clearTicket: false });
  set({ ...EMPTY, transport: socket?.connected ? 'socket' : 'idle' });
  if (wasActive && ticketId && session.isLoggedIn()) await leaveTicket(ticketId);
}

async function leaveTicket(ticketId) {
  try {
    await api('/queue/leave', { method: 'POST', body: { ticketId } });
  } catch (e) {
    // Already finished tickets cannot be left; nothing to undo.
    if (!(e instanceof ApiError) || e.status >= 500 || e.status === 0) throw e;
  }
}

/** Logout: leave, close the socket and forget everything. */
export async function stop() {
  try {
    await leave();
  } catch {
    // The place expires on its own.
  }
  socket?.disconnect();
  socket = null;
  state = { ...EMPTY };
  sessionStorage.removeItem(KEY);
  for (const fn of [...listeners]) fn(state);
}
