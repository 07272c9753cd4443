// HTTP client of the API (same origin). Errors become ApiError with the server's `message`
// (a list of validation messages is joined), so every page can show exactly what went wrong.

import * as session from './session.js';

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, body = null, retryAfter = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

export const OFFLINE_MESSAGE = 'Cannot reach the server. Check your connection and try again.';
export const SESSION_EXPIRED_MESSAGE = 'Your session has expired. Please log in again.';

/** The text of an error body: `message` as sent, a list joined with "; ". */
export function messageOf(body, response) {
  const m = body && typeof body === 'object' ? body.message : null;
  let text;
  if (Array.isArray(m) && m.length) text = m.map(String).join('; ');
  else if (typeof m === 'string' && m.trim()) text = m;
  else if (typeof body === 'string' && body.trim() && body.length < 300) text = body.trim();
  else text = `The server answered ${response.status} ${response.statusText || ''}`.trim();
  if (response.status === 429) {
    const after = Number(response.headers.get('Retry-After'));
    text = text.replace(/[.!]?$/, '.');
    text += after > 0 ? ` Please try again in ${after} s.` : ' Please try again shortly.';
  }
  return text;
}

/**
 * Calls the API. Options: method, body (sent as JSON), auth (send the access token; default
 * true), idempotencyKey, gateToken, accept (statuses whose body is returned instead of thrown).
 * A 401 on an authenticated call refreshes the tokens once and retries.
 */
export async function api(path, options = {}) {
  const { method = 'GET', body, auth = true, idempotencyKey, gateToken, accept = [], signal } = options;
  const headers = { Accept: 'application/json, text/plain;q=0.9' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = auth ? session.accessToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  if (gateToken) headers['X-Gate-Token'] = gateToken;

  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(OFFLINE_MESSAGE);
  }

  if (response.status === 401 && token && !options.retried) {
    const refreshed = await session.refresh();
    if (refreshed) return api(path, { ...options, retried: true });
    if (refreshed === false) {
      throw new ApiError(SESSION_EXPIRED_MESSAGE, { status: 401, code: 'session_expired' });
    }
  }

  const text = await response.text();
  const type = response.headers.get('Content-Type') ?? '';
  let data = text;
  if (type.includes('json') && text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  } else if (!text) {
    data = null;
  }
  if (!response.ok && !accept.includes(response.status)) {
    throw new ApiError(messageOf(data, response), {
      status: response.status,
      code: data && typeof data === 'object' ? data.code ?? null : null,
      body: data,
      retryAfter: response.headers.get('Retry-After'),
    });
  }
  return data;
}

/** A random UUID (for Idempotency-Key), also where crypto.randomUUID is missing. */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
