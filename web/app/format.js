// Formatting of money, dates and durations for people.

const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'KRW' });
const number = new Intl.NumberFormat('en-US');
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

/** Prices are whole won. */
export function formatMoney(amount) {
  return money.format(Number(amount) || 0);
}

export function formatNumber(n) {
  return number.format(Number(n) || 0);
}

export function formatDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '—' : dateTime.format(d);
}

export function formatTime(date) {
  return timeOnly.format(date);
}

/** "about 3 min", "about 40 s", "less than 5 s". */
export function formatWait(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(Number(seconds))) return 'calculating…';
  const s = Math.max(0, Math.round(Number(seconds)));
  if (s < 5) return 'less than 5 s';
  if (s < 60) return `about ${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `about ${min} min`;
  const hours = Math.floor(min / 60);
  const rest = min % 60;
  return rest ? `about ${hours} h ${rest} min` : `about ${hours} h`;
}

/** m:ss for a countdown in milliseconds (never negative). */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${String(s).padStart(2, '0')}`;
}

/** "1 ticket", "3 tickets". */
export function plural(n, one, many = `${one}s`) {
  return `${formatNumber(n)} ${Number(n) === 1 ? one : many}`;
}

/** ISO → the value of an <input type="datetime-local"> in local time. */
export function toLocalInput(iso) {
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The value of an <input type="datetime-local"> (local time) → ISO-8601 UTC, or null. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Uptime seconds → "2 h 5 min", "45 s". */
export function formatUptime(seconds) {
  const s = Math.floor(Number(seconds) || 0);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
