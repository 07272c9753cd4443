// The administrator's pages: events (create, edit, put on sale, close, delete) and monitoring.

import { h, replace, field, messageArea, badge, setBusy, uid, table } from '../dom.js';
import { api, ApiError } from '../api.js';
import { formatMoney, formatNumber, formatDateTime, formatUptime, formatTime, toLocalInput, fromLocalInput } from '../format.js';
import { loadUplot, Series, timelineCharts } from '../charts.js';

const STATUS_LABELS = { DRAFT: 'Draft', ONSALE: 'On sale', CLOSED: 'Closed' };
/** The status model: DRAFT → ONSALE → CLOSED. */
const NEXT_STATUS = { DRAFT: 'ONSALE', ONSALE: 'CLOSED' };
const MAX_TOTAL_QTY = 1_000_000;
const MAX_PER_USER = 100;
const CONFIRM_MS = 4000;
const MONITOR_REFRESH_MS = 5000;
/** The charts' refresh: the server samples once a second. */
const TIMELINE_REFRESH_MS = 2000;
const GLOBAL_LINE = '__global__';

function statusBadge(status) {
  return badge(status, STATUS_LABELS[status] ?? status);
}

/**
 * A button that asks for a second click within a few seconds before doing something that
 * cannot be undone (no blocking dialog, so it works the same with a keyboard).
 */
function confirmButton({ label, confirmLabel, ariaLabel, className = 'button button-small', onConfirm }) {
  const b = h('button', { type: 'button', class: className, 'aria-label': ariaLabel }, label);
  let armed = null;
  b.addEventListener('click', async () => {
    if (!armed) {
      b.textContent = confirmLabel;
      b.setAttribute('aria-label', `${confirmLabel}: press again to confirm`);
      b.classList.add('button-danger');
      armed = setTimeout(() => {
        armed = null;
        b.textContent = label;
        b.setAttribute('aria-label', ariaLabel);
        b.classList.remove('button-danger');
      }, CONFIRM_MS);
      return;
    }
    clearTimeout(armed);
    armed = null;
    await onConfirm(b);
  });
  return b;
}

// ---------------------------------------------------------------------------------------------
// Events

export function adminEventsPage(ctx) {
  ctx.setTitle('Events');
  const messages = messageArea();
  const wrap = h('div', { class: 'admin-events' }, h('p', { class: 'muted' }, 'Loading events…'));

  async function changeStatus(e, next, button) {
    messages.clear();
    setBusy(button, true, 'Saving…');
    try {
      await api(`/events/${e.id}`, { method: 'PATCH', body: { status: next } });
      if (ctx.signal.aborted) return;
      await load();
      messages.show('success', next === 'ONSALE' ? `“${e.name}” is now on sale.` : `The sale of “${e.name}” is closed.`);
    } catch (err) {
      if (ctx.signal.aborted) return;
      setBusy(button, false);
      messages.show('error', `Could not change the status of “${e.name}”: ${err.message}`);
    }
  }

  async function remove(e, button) {
    messages.clear();
    setBusy(button, true, 'Deleting…');
    try {
      await api(`/events/${e.id}`, { method: 'DELETE' });
      if (ctx.signal.aborted) return;
      await load();
      messages.show('success', `“${e.name}” was deleted.`);
    } catch (err) {
      if (ctx.signal.aborted) return;
      setBusy(button, false);
      messages.show('error', `Could not delete “${e.name}”: ${err.message}`);
    }
  }

  function actions(e) {
    const items = [h('a', { href: `/admin/edit/${e.id}`, 'data-link': true, class: 'button button-small', 'aria-label': `Edit ${e.name}` }, 'Edit')];
    if (e.status === 'DRAFT') {
      const b = h('button', { type: 'button', class: 'button button-small button-primary', 'aria-label': `Put ${e.name} on sale` }, 'Put on sale');
      b.addEventListener('click', () => changeStatus(e, 'ONSALE', b));
      items.push(b);
    } else if (e.status === 'ONSALE') {
      items.push(
        confirmButton({
          label: 'Close sale',
          confirmLabel: 'Confirm close',
          ariaLabel: `Close the sale of ${e.name}`,
          onConfirm: (b) => changeStatus(e, 'CLOSED', b),
        }),
      );
    }
    items.push(
      confirmButton({
        label: 'Delete',
        confirmLabel: 'Confirm delete',
        ariaLabel: `Delete ${e.name}`,
        className: 'button button-small button-ghost',
        onConfirm: (b) => remove(e, b),
      }),
    );
    return h('div', { class: 'row-actions' }, items);
  }

  async function load() {
    try {
      const events = await api('/events/admin/all', { signal: ctx.signal });
      if (ctx.signal.aborted) return;
      if (!events.length) {
        replace(wrap, h('p', { class: 'empty' }, 'No events yet. ', h('a', { href: '/admin/new', 'data-link': true }, 'Create the first one')));
        return;
      }
      replace(
        wrap,
        table({
          caption: 'All events, newest first',
          columns: [
            { label: 'Event', className: 'cell-name' },
            { label: 'Status' },
            { label: 'Sold / held / total' },
            { label: 'Price' },
            { label: 'Per person' },
            { label: 'Sale' },
            { label: 'Actions', className: 'cell-action', inline: false },
          ],
          rows: events.map((e) => ({
            attrs: { 'data-event-id': e.id },
            cells: [
              e.name,
              { content: statusBadge(e.status), attrs: { 'data-status': e.status } },
              `${formatNumber(e.soldQty)} / ${formatNumber(e.heldQty)} / ${formatNumber(e.totalQty)}`,
              formatMoney(e.price),
              formatNumber(e.maxPerUser),
              `${formatDateTime(e.startsAt)} – ${formatDateTime(e.endsAt)}`,
              actions(e),
            ],
          })),
        }),
      );
    } catch (err) {
      if (ctx.signal.aborted || err?.name === 'AbortError') return;
      messages.show('error', `Could not load the events: ${err.message}`);
    }
  }
  load();

  return h(
    'section',
    { class: 'page' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Events'),
      h('div', { class: 'actions' }, h('a', { href: '/admin/monitoring', 'data-link': true, class: 'button' }, 'Monitoring'), h('a', { href: '/admin/new', 'data-link': true, class: 'button button-primary' }, 'New event')),
    ),
    messages.el,
    wrap,
  );
}

// ---------------------------------------------------------------------------------------------
// Create / edit

function intOf(input) {
  const raw = input.value.trim();
  if (!/^-?\d+$/.test(raw)) return NaN;
  return Number(raw);
}

export function eventFormPage(ctx) {
  const editing = Boolean(ctx.params.id);
  ctx.setTitle(editing ? 'Edit event' : 'New event');
  const messages = messageArea();
  const heading = h('h1', { tabindex: '-1' }, editing ? 'Edit event' : 'New event');
  const now = new Date();
  now.setSeconds(0, 0);
  const week = new Date(now.getTime() + 7 * 24 * 3600 * 1000);

  const name = field({ label: 'Name', id: uid('ev-name'), hint: '2 to 120 characters.', control: h('input', { type: 'text', name: 'name', required: true, minlength: 2, maxlength: 120 }) });
  const starts = field({ label: 'Sale starts', id: uid('ev-starts'), hint: 'Your local time.', control: h('input', { type: 'datetime-local', name: 'starts_at', required: true, value: toLocalInput(now) }) });
  const ends = field({ label: 'Sale ends', id: uid('ev-ends'), control: h('input', { type: 'datetime-local', name: 'ends_at', required: true, value: toLocalInput(week) }) });
  const total = field({ label: 'Tickets in total', id: uid('ev-total'), hint: `1 to ${formatNumber(MAX_TOTAL_QTY)}.`, control: h('input', { type: 'number', name: 'total_qty', min: 1, max: MAX_TOTAL_QTY, step: 1, inputmode: 'numeric', required: true, value: 100 }) });
  const perUser = field({ label: 'Limit per person', id: uid('ev-max'), hint: `1 to ${MAX_PER_USER}.`, control: h('input', { type: 'number', name: 'max_per_user', min: 1, max: MAX_PER_USER, step: 1, inputmode: 'numeric', required: true, value: 2 }) });
  const price = field({ label: 'Price per ticket (KRW)', id: uid('ev-price'), hint: 'Whole won, 0 for free.', control: h('input', { type: 'number', name: 'price', min: 0, step: 1, inputmode: 'numeric', required: true, value: 100000 }) });
  const modeSelect = h(
    'select',
    { name: 'queue_mode' },
    h('option', { value: 'global' }, 'The site-wide queue'),
    h('option', { value: 'event' }, 'Its own queue'),
  );
  const mode = field({ label: 'Buyers are let in from', id: uid('ev-mode'), hint: 'Its own queue: only buyers admitted from this event’s line can buy it.', control: modeSelect });
  const prequeue = field({ label: 'Pre-queue opens', id: uid('ev-prequeue'), hint: 'Optional, before the sale starts; needs its own queue. Everyone who joins before the start is put in a random order at the start.', control: h('input', { type: 'datetime-local', name: 'prequeue_starts_at' }) });
  const statusSelect = h('select', { name: 'status' });
  const status = field({ label: 'Status', id: uid('ev-status'), hint: 'Draft → On sale → Closed. Buyers see events on sale and closed ones.', control: statusSelect });
  status.wrap.hidden = !editing;
  const submit = h('button', { type: 'submit', class: 'button button-primary' }, editing ? 'Save changes' : 'Create event');
  const form = h(
    'form',
    { class: 'card form', novalidate: true },
    messages.el,
    name.wrap,
    h('div', { class: 'field-row' }, starts.wrap, ends.wrap),
    h('div', { class: 'field-row' }, total.wrap, perUser.wrap, price.wrap),
    h('div', { class: 'field-row' }, mode.wrap, prequeue.wrap),
    status.wrap,
    h('div', { class: 'actions' }, submit, h('a', { href: '/admin', 'data-link': true, class: 'button button-ghost' }, 'Cancel')),
  );
  let original = null;

  function collect() {
    const values = {
      name: name.input.value.trim(),
      starts_at: fromLocalInput(starts.input.value),
      ends_at: fromLocalInput(ends.input.value),
      total_qty: intOf(total.input),
      max_per_user: intOf(perUser.input),
      price: intOf(price.input),
      queue_mode: modeSelect.value,
    };
    const opens = fromLocalInput(prequeue.input.value);
    // A pre-queue is set, or moved, never cleared here (the API keeps it once set).
    if (opens) values.prequeue_starts_at = opens;
    if (editing) values.status = statusSelect.value;
    const checks = [
      [name, values.name.length < 2 || values.name.length > 120 ? 'The name must be 2 to 120 characters long.' : ''],
      [starts, !values.starts_at ? 'Enter when the sale starts.' : ''],
      [ends, !values.ends_at ? 'Enter when the sale ends.' : values.starts_at && values.ends_at <= values.starts_at ? 'The sale must end after it starts.' : ''],
      [total, !Number.isInteger(values.total_qty) || values.total_qty < 1 || values.total_qty > MAX_TOTAL_QTY ? `Enter a whole number from 1 to ${formatNumber(MAX_TOTAL_QTY)}.` : ''],
      [perUser, !Number.isInteger(values.max_per_user) || values.max_per_user < 1 || values.max_per_user > MAX_PER_USER ? `Enter a whole number from 1 to ${MAX_PER_USER}.` : ''],
      [price, !Number.isSafeInteger(values.price) || values.price < 0 ? 'Enter a whole number of won, 0 or more.' : ''],
      [
        prequeue,
        opens && values.starts_at && opens >= values.starts_at
          ? 'The pre-queue must open before the sale starts.'
          : opens && values.queue_mode !== 'event'
            ? 'A pre-queue needs the event’s own queue.'
            : '',
      ],
    ];
    let first = null;
    for (const [f, message] of checks) {
      f.setError(message);
      if (message && !first) first = f;
    }
    return { values, first };
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    messages.clear();
    const { values, first } = collect();
    if (first) {
      first.input.focus();
      return;
    }
    let body = values;
    if (editing) {
      // Only what changed: a PATCH never overwrites what another admin just saved.
      body = {};
      for (const [k, v] of Object.entries(values)) {
        const before = original[k];
        // Dates are edited to the minute: unchanged inputs keep the stored seconds.
        const same = k.endsWith('_at') ? before != null && toLocalInput(before) === toLocalInput(v) : before === v;
        if (!same) body[k] = v;
      }
      if (!Object.keys(body).length) {
        messages.show('info', 'Nothing has changed.');
        return;
      }
    }
    setBusy(submit, true, editing ? 'Saving…' : 'Creating…');
    try {
      const saved = editing
        ? await api(`/events/${ctx.params.id}`, { method: 'PATCH', body })
        : await api('/events', { method: 'POST', body });
      ctx.navigate('/admin', {
        notice: {
          kind: 'success',
          text: editing ? `Saved “${saved.name}”.` : `Created “${saved.name}” as a draft. Put it on sale when you are ready.`,
        },
      });
    } catch (err) {
      if (ctx.signal.aborted) return;
      setBusy(submit, false);
      messages.show('error', `Could not ${editing ? 'save' : 'create'} the event: ${err.message}`);
    }
  });

  if (editing) {
    submit.disabled = true;
    (async () => {
      try {
        const ev = await api(`/events/${encodeURIComponent(ctx.params.id)}`, { signal: ctx.signal });
        if (ctx.signal.aborted) return;
        original = {
          name: ev.name,
          starts_at: ev.startsAt,
          ends_at: ev.endsAt,
          total_qty: ev.totalQty,
          max_per_user: ev.maxPerUser,
          price: ev.price,
          status: ev.status,
          queue_mode: ev.queueMode ?? 'global',
          prequeue_starts_at: ev.prequeueStartsAt ?? null,
        };
        heading.textContent = `Edit “${ev.name}”`;
        name.input.value = ev.name;
        starts.input.value = toLocalInput(ev.startsAt);
        ends.input.value = toLocalInput(ev.endsAt);
        total.input.value = String(ev.totalQty);
        perUser.input.value = String(ev.maxPerUser);
        price.input.value = String(ev.price);
        modeSelect.value = ev.queueMode ?? 'global';
        prequeue.input.value = ev.prequeueStartsAt ? toLocalInput(ev.prequeueStartsAt) : '';
        const options = [ev.status, NEXT_STATUS[ev.status]].filter(Boolean);
        replace(statusSelect, options.map((s) => h('option', { value: s }, STATUS_LABELS[s] ?? s)));
        statusSelect.value = ev.status;
        const committed = ev.soldQty + ev.heldQty;
        total.hint.textContent = committed > 0
          ? `At least ${formatNumber(committed)} (sold and reserved), at most ${formatNumber(MAX_TOTAL_QTY)}.`
          : `1 to ${formatNumber(MAX_TOTAL_QTY)}.`;
        submit.disabled = false;
      } catch (err) {
        if (ctx.signal.aborted || err?.name === 'AbortError') return;
        const missing = err instanceof ApiError && err.status === 404;
        messages.show('error', missing ? 'This event does not exist (it may have been deleted).' : `Could not load the event: ${err.message}`);
      }
    })();
  }

  return h(
    'section',
    { class: 'page narrow' },
    h('p', { class: 'breadcrumb' }, h('a', { href: '/admin', 'data-link': true }, '← Events')),
    heading,
    form,
  );
}

// ---------------------------------------------------------------------------------------------
// Monitoring

/** Prometheus text → Map(name → [{labels, value}]). */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of String(text).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

function sum(metrics, name, filter = () => true) {
  const samples = metrics.get(name);
  if (!samples) return null;
  return samples.filter((s) => filter(s.labels)).reduce((a, s) => a + s.value, 0);
}

function tile(label, value, hint, metric) {
  return h(
    'div',
    { class: 'tile', dataset: metric ? { metric } : undefined },
    h('dt', null, label),
    h('dd', null, value === null || value === undefined || Number.isNaN(value) ? '—' : typeof value === 'number' ? formatNumber(value) : value),
    hint ? h('p', { class: 'muted small' }, hint) : null,
  );
}

/** A tile showing the sum of one metric (marked with its name for tests and scripts). */
function metricTile(metrics, label, name, hint) {
  return tile(label, sum(metrics, name), hint, name);
}

export function monitoringPage(ctx) {
  ctx.setTitle('Monitoring');
  const messages = messageArea();
  const updated = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const healthSection = h('section', { class: 'card', 'aria-labelledby': 'mon-health' }, h('h2', { id: 'mon-health' }, 'Health'), h('p', { class: 'muted' }, 'Loading…'));
  const queueSection = h('section', { class: 'card', 'aria-labelledby': 'mon-queue' }, h('h2', { id: 'mon-queue' }, 'Queue'));
  const ordersSection = h('section', { class: 'card', 'aria-labelledby': 'mon-orders' }, h('h2', { id: 'mon-orders' }, 'Orders by status'));
  const paymentsSection = h('section', { class: 'card', 'aria-labelledby': 'mon-payments' }, h('h2', { id: 'mon-payments' }, 'Payments'));
  const httpSection = h('section', { class: 'card', 'aria-labelledby': 'mon-http' }, h('h2', { id: 'mon-http' }, 'HTTP'));
  const refreshButton = h('button', { type: 'button', class: 'button' }, 'Refresh');
  const autoBox = h('input', { type: 'checkbox', id: uid('mon-auto'), checked: true });
  let names = new Map();

  // The live charts of the last 15 minutes, for one queue line and the site.
  const lineSelect = h('select', { id: uid('mon-line'), name: 'line' }, h('option', { value: GLOBAL_LINE }, 'Site-wide queue'));
  const chartsBox = h('div', { class: 'charts' }, h('p', { class: 'muted' }, 'Loading the charts…'));
  const timelineNote = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const timelineSection = h(
    'section',
    { class: 'card timeline', 'aria-labelledby': 'mon-timeline' },
    h('h2', { id: 'mon-timeline' }, 'Last 15 minutes'),
    h('div', { class: 'field' }, h('label', { for: lineSelect.id }, 'Queue line'), lineSelect),
    timelineNote,
    chartsBox,
  );
  let series = new Series();
  let charts = null;
  let chartLib = null;
  let timelineLoading = false;

  function lineLabel(line) {
    return line === GLOBAL_LINE ? 'Site-wide queue' : names.get(line) ?? line;
  }

  /** Every line with figures, and every event with its own line, stays selectable. */
  function syncLines(lines, events) {
    const known = new Set([...lineSelect.options].map((o) => o.value));
    const wanted = [...(lines ?? []), ...(events ?? []).filter((e) => e.queueMode === 'event').map((e) => e.id)];
    for (const line of wanted) {
      if (known.has(line)) continue;
      known.add(line);
      lineSelect.append(h('option', { value: line }, lineLabel(line)));
    }
    for (const o of lineSelect.options) o.textContent = lineLabel(o.value);
  }

  async function loadTimeline() {
    if (timelineLoading) return;
    timelineLoading = true;
    const line = lineSelect.value;
    try {
      if (!chartLib) chartLib = await loadUplot();
      const since = series.until === null ? '' : `&since=${series.until}`;
      const doc = await api(`/events/admin/timeline?line=${encodeURIComponent(line)}${since}`, { signal: ctx.signal });
      if (ctx.signal.aborted || line !== lineSelect.value) return;
      series.add(doc);
      syncLines(doc.lines);
      if (!charts) {
        replace(chartsBox);
        charts = timelineCharts(chartLib, chartsBox, series);
      } else {
        charts.update();
      }
      const phase = series.phase ? ` · line ${series.phase.replace('_', ' ').toLowerCase()}` : '';
      timelineNote.textContent = `${lineLabel(line)}: ${formatNumber(series.t.length)} seconds of samples${phase}`;
    } catch (err) {
      if (ctx.signal.aborted || err?.name === 'AbortError') return;
      timelineNote.textContent = `Could not read the timeline: ${err.message}`;
    } finally {
      timelineLoading = false;
    }
  }

  lineSelect.addEventListener('change', () => {
    charts?.destroy();
    charts = null;
    series = new Series();
    replace(chartsBox, h('p', { class: 'muted' }, 'Loading the charts…'));
    loadTimeline();
  });
  const timelineTimer = setInterval(() => {
    if (autoBox.checked && document.visibilityState === 'visible') loadTimeline();
  }, TIMELINE_REFRESH_MS);
  ctx.onCleanup(() => {
    clearInterval(timelineTimer);
    charts?.destroy();
  });

  function renderHealth(health) {
    const ok = health?.status === 'ok';
    const checks = Object.entries(health?.checks ?? {});
    replace(
      healthSection,
      h('h2', { id: 'mon-health' }, 'Health'),
      h('p', { class: 'health-line' }, badge(ok ? 'up' : 'down', ok ? 'All systems up' : 'Degraded'), ` Up for ${formatUptime(health?.uptime)}`),
      checks.length
        ? table({
            caption: 'Dependency checks',
            className: 'table table-compact',
            columns: [{ label: 'Dependency' }, { label: 'Status' }, { label: 'Response time' }],
            rows: checks.map(([name, c]) => ({
              cells: [name, badge(c.status === 'up' ? 'up' : 'down', c.status), c.responseTime === undefined ? '—' : `${c.responseTime} ms`],
            })),
          })
        : null,
    );
  }

  function renderMetrics(m) {
    const queues = (m.get('flash_queue_length') ?? []).map((s) => ({
      label: s.labels.event === 'global' ? 'Site-wide queue' : names.get(s.labels.event) ?? s.labels.event,
      value: s.value,
    }));
    replace(
      queueSection,
      h('h2', { id: 'mon-queue' }, 'Queue'),
      h(
        'dl',
        { class: 'tiles' },
        metricTile(m, 'Waiting', 'queue_waiting_users_total'),
        metricTile(m, 'Admitted, not entered', 'queue_ready_users_total'),
        metricTile(m, 'Entered', 'queue_used_users_total'),
        metricTile(m, 'Admitted since start', 'queue_admissions_total'),
      ),
      queues.length
        ? table({
            caption: 'Waiting tickets per queue',
            className: 'table table-compact',
            columns: [{ label: 'Queue' }, { label: 'Waiting' }],
            rows: queues.map((q) => ({ cells: [q.label, formatNumber(q.value)] })),
          })
        : h('p', { class: 'muted' }, 'No queue has anyone in it.'),
    );
    replace(
      ordersSection,
      h('h2', { id: 'mon-orders' }, 'Orders by status'),
      h(
        'dl',
        { class: 'tiles' },
        metricTile(m, 'Created', 'orders_created_total'),
        metricTile(m, 'Reserved (HOLD)', 'orders_hold_total'),
        metricTile(m, 'Paid', 'orders_paid_total'),
        metricTile(m, 'Payment failed', 'orders_failed_total'),
        metricTile(m, 'Expired', 'orders_expired_total'),
        metricTile(m, 'Cancelled', 'orders_cancelled_total'),
      ),
    );
    replace(
      paymentsSection,
      h('h2', { id: 'mon-payments' }, 'Payments'),
      h(
        'dl',
        { class: 'tiles' },
        metricTile(m, 'In progress', 'payments_pending_total'),
        metricTile(m, 'Successful', 'payments_successful_total'),
        metricTile(m, 'Failed', 'payments_failed_total'),
        metricTile(m, 'Refund required', 'orders_refund_required_total', 'Charged for an order that could not be paid.'),
        metricTile(m, 'Outbox backlog', 'outbox_backlog', 'Payment messages not yet published.'),
      ),
    );
    const requests = sum(m, 'http_requests_total');
    const errors = sum(m, 'http_requests_total', (l) => String(l.status ?? '').startsWith('5'));
    const rejected = sum(m, 'http_requests_total', (l) => String(l.status ?? '').startsWith('4'));
    replace(
      httpSection,
      h('h2', { id: 'mon-http' }, 'HTTP'),
      h('dl', { class: 'tiles' }, tile('Requests', requests), tile('Client errors (4xx)', rejected), tile('Server errors (5xx)', errors)),
    );
  }

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    setBusy(refreshButton, true, 'Refreshing…');
    const failures = [];
    const [health, metrics, events] = await Promise.all([
      api('/health', { auth: false, accept: [503], signal: ctx.signal }).catch((e) => failures.push(`health: ${e.message}`)),
      api('/metrics', { auth: false, signal: ctx.signal }).catch((e) => failures.push(`metrics: ${e.message}`)),
      api('/events/admin/all', { signal: ctx.signal }).catch(() => null),
    ]);
    loading = false;
    if (ctx.signal.aborted) return;
    setBusy(refreshButton, false);
    if (Array.isArray(events)) {
      names = new Map(events.map((e) => [e.id, e.name]));
      syncLines([], events);
    }
    if (health && typeof health === 'object') renderHealth(health);
    if (typeof metrics === 'string') renderMetrics(parseMetrics(metrics));
    if (failures.length) messages.show('error', `Could not read ${failures.join('; ')}`);
    else messages.clear();
    updated.textContent = `Updated at ${formatTime(new Date())}`;
  }

  refreshButton.addEventListener('click', () => {
    load();
    loadTimeline();
  });
  const timer = setInterval(() => {
    if (autoBox.checked && document.visibilityState === 'visible') load();
  }, MONITOR_REFRESH_MS);
  ctx.onCleanup(() => clearInterval(timer));
  load();
  loadTimeline();

  return h(
    'section',
    { class: 'page' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Monitoring'),
      h('div', { class: 'actions' }, h('div', { class: 'field-check' }, autoBox, h('label', { for: autoBox.id }, `Live (charts every ${TIMELINE_REFRESH_MS / 1000} s, figures every ${MONITOR_REFRESH_MS / 1000} s)`)), refreshButton),
    ),
    updated,
    messages.el,
    timelineSection,
    h('div', { class: 'monitor-grid' }, healthSection, queueSection, ordersSection, paymentsSection, httpSection),
  );
}
