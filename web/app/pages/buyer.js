// The buyer's pages: the waiting room, the shop, buying, paying, and their orders.

import { h, replace, field, messageArea, badge, setBusy, uid, table } from '../dom.js';
import { api, uuid, ApiError } from '../api.js';
import * as queue from '../queue.js';
import {
  formatMoney,
  formatNumber,
  formatDateTime,
  formatWait,
  formatCountdown,
  plural,
} from '../format.js';

/** How often the shop and the purchase page re-read the stock. */
const STOCK_REFRESH_MS = 5000;
/** How often the checkout reads the order while a payment is in flight. */
const PAYMENT_POLL_MS = 1000;
/** After this long without a result the checkout stops polling and offers to check again. */
const PAYMENT_PATIENCE_MS = 90_000;
const PAYMENTS_KEY = 'flash-tickets-payments';

const STATUS_LABELS = {
  ONSALE: 'On sale',
  CLOSED: 'Sale closed',
  DRAFT: 'Draft',
  HOLD: 'Reserved, awaiting payment',
  PAID: 'Paid',
  FAIL: 'Payment failed',
  EXPIRED: 'Reservation expired',
  CANCELLED: 'Cancelled',
};

function statusBadge(status) {
  return badge(status, STATUS_LABELS[status] ?? status);
}

/** Runs `fn` every `ms` while the page is shown (paused while the tab is hidden). */
function every(ctx, ms, fn) {
  const id = setInterval(() => {
    if (document.visibilityState === 'visible') fn();
  }, ms);
  ctx.onCleanup(() => clearInterval(id));
}

/** Joins `line` (again) and shows the waiting room. */
function rejoin(ctx, line = queue.GLOBAL) {
  queue.join(line);
  ctx.navigate('/waiting');
}

function rejoinButton(ctx, label = 'Join the queue', line = queue.GLOBAL) {
  return h('button', { type: 'button', class: 'button button-primary', onClick: () => rejoin(ctx, line) }, label);
}

/** Where an admission of `line` is spent: the shop, or the page of the line's own event. */
function shopOf(line) {
  return line === queue.GLOBAL ? '/shop' : `/shop/${encodeURIComponent(line)}`;
}

// ---------------------------------------------------------------------------------------------
// Waiting room

function transportLine(q) {
  const line = (kind, text) =>
    h('p', { class: kind ? `live ${kind}` : 'live', 'data-connections': String(q.connections) }, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), text);
  if (q.transport === 'socket') return line('', 'Live updates');
  if (q.transport === 'polling' || q.transport === 'socket+polling') return line('live-polling', `Updating every ${queue.POLL_MS / 1000} s`);
  return line('live-off', 'Connecting…');
}

function stat(label, value, extraClass = '') {
  return h('div', { class: `stat ${extraClass}` }, h('dt', null, label), h('dd', null, value));
}

/** The queued view, built once and updated in place so that focus and screen readers keep up. */
function queuedPanel(ctx) {
  const error = h('div', { class: 'alert alert-warning', role: 'alert', hidden: true });
  const drawn = h('div', { class: 'alert alert-success lottery-result', 'data-testid': 'lottery-result', hidden: true });
  const number = h('span', { class: 'position-number', 'data-testid': 'queue-position' });
  const progress = h('progress', { class: 'queue-progress', 'aria-label': 'Progress through the queue' });
  const ahead = h('dd');
  const size = h('dd');
  const wait = h('dd');
  const capacity = h('dd');
  const transport = h('div');
  const el = h(
    'div',
    null,
    error,
    drawn,
    h('div', { class: 'position' }, h('span', { class: 'position-label' }, 'Your position'), number),
    progress,
    h(
      'dl',
      { class: 'stats' },
      h('div', { class: 'stat' }, h('dt', null, 'Ahead of you'), ahead),
      h('div', { class: 'stat stat-queue-size' }, h('dt', null, 'People in the queue'), size),
      h('div', { class: 'stat stat-wait' }, h('dt', null, 'Estimated wait'), wait),
      h('div', { class: 'stat' }, h('dt', null, 'Let in at a time'), capacity),
    ),
    transport,
    h('p', { class: 'muted' }, 'Keep this page open: you are let in automatically when it is your turn. Reloading keeps your place.'),
    h('p', null, h('button', { type: 'button', class: 'button button-ghost', onClick: () => leaveQueue(ctx) }, 'Leave the queue')),
  );
  let transportKey = null;
  return {
    el,
    update(q) {
      error.hidden = !q.error;
      error.textContent = q.error ?? '';
      drawn.hidden = !q.drawn?.position;
      drawn.textContent = q.drawn?.position
        ? `The sale has started and the draw is done: it gave you place #${formatNumber(q.drawn.position)} in the line.`
        : '';
      number.textContent = `#${formatNumber(q.position ?? 1)}`;
      progress.hidden = !(q.firstPosition > 1);
      if (q.firstPosition > 1) {
        progress.max = q.firstPosition - 1;
        progress.value = Math.max(0, q.firstPosition - (q.position ?? q.firstPosition));
      }
      ahead.textContent = formatNumber(Math.max(0, (q.position ?? 1) - 1));
      size.textContent = q.queueSize === null ? '—' : formatNumber(q.queueSize);
      wait.textContent = formatWait(q.estimatedWaitSeconds);
      capacity.textContent = q.readyCapacity === null ? '—' : formatNumber(q.readyCapacity);
      if (q.transport !== transportKey) {
        transportKey = q.transport;
        replace(transport, transportLine(q));
      }
    },
  };
}

/** The pre-queue: a countdown to the start, when everyone waiting is put in a random order. */
function prequeuePanel(ctx) {
  const count = h('strong', { class: 'countdown prequeue-countdown', 'data-testid': 'prequeue-countdown' });
  const when = h('span');
  const line = h('p', { class: 'big-message' }, 'The sale starts in ', count);
  const size = h('dd');
  const transport = h('div');
  const el = h(
    'div',
    null,
    h('p', { class: 'eyebrow' }, 'You are in the pre-queue'),
    line,
    h('p', null, 'At the start (', when, ') everyone in the pre-queue is given a place in a random draw, so joining early or refreshing gives no advantage. People who join after the start queue behind the pre-queue.'),
    h('dl', { class: 'stats' }, h('div', { class: 'stat stat-queue-size' }, h('dt', null, 'People in the line'), size)),
    transport,
    h('p', { class: 'muted' }, 'Keep this page open: it moves on by itself at the start.'),
    h('p', null, h('button', { type: 'button', class: 'button button-ghost', onClick: () => leaveQueue(ctx) }, 'Leave the pre-queue')),
  );
  let startsAt = null;
  let transportKey = null;
  function tick() {
    if (startsAt === null) return;
    const left = startsAt - Date.now();
    if (left > 0) {
      line.replaceChildren('The sale starts in ', count);
      count.textContent = formatCountdown(left);
    } else {
      line.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'The sale is starting: drawing the order…');
    }
  }
  const id = setInterval(tick, 1000);
  ctx.onCleanup(() => clearInterval(id));
  return {
    el,
    update(q) {
      const t = new Date(q.startsAt ?? '').getTime();
      startsAt = Number.isNaN(t) ? null : t;
      when.textContent = startsAt === null ? 'soon' : formatDateTime(q.startsAt);
      size.textContent = q.queueSize === null ? '—' : formatNumber(q.queueSize);
      if (q.transport !== transportKey) {
        transportKey = q.transport;
        replace(transport, transportLine(q));
      }
      tick();
    },
  };
}

/** Every view of the waiting room other than "queued" and "pre-queue": rebuilt only when the state changes. */
function otherView(ctx, q) {
  const error = q.error ? h('div', { class: 'alert alert-warning', role: 'alert' }, q.error) : null;
  if (!q.active && !q.state) {
    return [
      h('p', null, 'You are not in the queue. Join it to buy tickets: you will be let in when it is your turn.'),
      h('p', null, rejoinButton(ctx)),
    ];
  }
  if (q.state === 'READY') {
    return [
      h('p', { class: 'big-message' }, 'It is your turn!'),
      h('p', null, h('a', { href: '/shop', 'data-link': true, class: 'button button-primary' }, 'Choose your tickets')),
    ];
  }
  if (q.state === 'ORDERED' || q.state === 'USED') {
    return [
      h('p', null, 'You have used your turn for an order. To buy more tickets, join the queue again.'),
      h('p', null, rejoinButton(ctx, 'Join the queue again')),
    ];
  }
  if (q.state === 'EXPIRED') {
    return [
      error,
      h('div', { class: 'alert alert-warning' }, 'Your place in the queue has expired.'),
      h('p', null, rejoinButton(ctx, 'Join the queue again', q.eventId)),
    ];
  }
  if (q.state === 'SOLD_OUT') {
    return [
      h('div', { class: 'sold-out', 'data-testid': 'sold-out' }, h('p', { class: 'big-message failure' }, 'Sold out'), h('p', null, 'Every ticket has been taken.')),
      h('p', null, 'If tickets come back (a reservation is not paid in time), the line opens again and you keep your place: stay on this page to be told at once.'),
      transportLine(q),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'button button-ghost', onClick: () => leaveQueue(ctx) }, 'Leave the line'),
        h('a', { href: '/shop', 'data-link': true, class: 'button' }, 'See other events'),
      ),
    ];
  }
  if (q.state === 'CLOSED') {
    return [
      h('p', { class: 'big-message failure' }, 'The sale is closed'),
      h('p', null, 'This sale has ended: its line lets nobody in any more.'),
      h('p', null, h('a', { href: '/shop', 'data-link': true, class: 'button button-primary' }, 'See other events')),
    ];
  }
  return [error, h('p', { class: 'big-message' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Joining the queue…'), transportLine(q)];
}

/** What a screen reader hears: position changes and the turn, not every refresh. */
function announcement(q) {
  if (q.state === 'QUEUED' && q.drawn?.position && q.position === q.drawn.position) return `The draw is done: it gave you place ${formatNumber(q.drawn.position)}. Estimated wait ${formatWait(q.estimatedWaitSeconds)}.`;
  if (q.state === 'QUEUED') return `Your position in the queue: ${formatNumber(q.position ?? 1)}. Estimated wait ${formatWait(q.estimatedWaitSeconds)}.`;
  if (q.state === 'PREQUEUE') return 'You are in the pre-queue. Places are drawn at random when the sale starts.';
  if (q.state === 'SOLD_OUT') return 'Sold out. Stay on this page: if tickets come back you keep your place.';
  if (q.state === 'CLOSED') return 'The sale is closed.';
  if (q.state === 'READY') return 'It is your turn. Opening the shop.';
  if (q.state === 'EXPIRED') return 'Your place in the queue has expired.';
  if (q.state === 'ORDERED' || q.state === 'USED') return 'You have used your turn for an order.';
  if (q.active) return 'Joining the queue.';
  return 'You are not in the queue.';
}

async function leaveQueue(ctx) {
  try {
    await queue.leave();
    ctx.navigate('/waiting', { replace: true, notice: { kind: 'info', text: 'You have left the queue.' } });
  } catch (e) {
    ctx.navigate('/waiting', { replace: true, notice: { kind: 'error', text: `Could not leave the queue: ${e.message}` } });
  }
}

export function waitingPage(ctx) {
  ctx.setTitle('Waiting room');
  const body = h('div', { class: 'waiting-body' });
  const lineName = h('p', { class: 'line-name muted', 'data-testid': 'line-name' });
  let namedLine = null;
  const announcer = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
  let panel = null;
  let viewKey = null;
  let leaving = false;
  const unsubscribe = queue.subscribe((q) => {
    if (ctx.signal.aborted || leaving) return;
    if (q.state === 'READY' && q.active) {
      leaving = true;
      // After the current render: this callback may run while the page is being built.
      setTimeout(() => {
        if (!ctx.signal.aborted) ctx.navigate(shopOf(q.eventId), { replace: true });
      }, 0);
    }
    if (q.eventId !== namedLine) {
      namedLine = q.eventId;
      nameLine(q.eventId);
    }
    const queued = q.state === 'QUEUED' && q.active;
    const prequeued = q.state === 'PREQUEUE' && q.active;
    const key = queued ? 'queued' : prequeued ? 'prequeue' : `${q.active}-${q.state}-${q.joining}-${q.error ?? ''}-${q.transport}`;
    if (key !== viewKey) {
      viewKey = key;
      if (queued) {
        panel = queuedPanel(ctx);
        replace(body, panel.el);
      } else if (prequeued) {
        panel = prequeuePanel(ctx);
        replace(body, panel.el);
      } else {
        panel = null;
        replace(body, otherView(ctx, q));
      }
    }
    panel?.update(q);
    const text = announcement(q);
    if (announcer.textContent !== text && (q.state !== 'QUEUED' || !announcer.dataset.position || announcer.dataset.position !== String(q.position))) {
      announcer.textContent = text;
      announcer.dataset.position = String(q.position ?? '');
    }
  });
  ctx.onCleanup(unsubscribe);
  /** Says whose line this is: the site's, or one event's (its name read once). */
  async function nameLine(line) {
    if (line === queue.GLOBAL) {
      lineName.textContent = 'The queue for every sale without a line of its own.';
      return;
    }
    lineName.textContent = 'The line for one event.';
    try {
      const e = await api(`/events/${encodeURIComponent(line)}`, { signal: ctx.signal });
      if (!ctx.signal.aborted && namedLine === line) lineName.textContent = `The line for ${e.name}.`;
    } catch {
      // The generic text stays.
    }
  }
  return h(
    'section',
    { class: 'page narrow' },
    h('h1', { tabindex: '-1' }, 'Waiting room'),
    lineName,
    h('div', { class: 'card waiting' }, body),
    announcer,
  );
}

// ---------------------------------------------------------------------------------------------
// Admission banner (shop and purchase pages)

/**
 * Where the buyer stands in `line` (an event's page: the line it is bought through), or in
 * whichever line the buyer is in (the shop: `line` undefined).
 */
function admissionBanner(ctx, line) {
  const el = h('div', { class: 'admission' });
  const countdown = h('strong', { class: 'countdown' });
  let lastKind = null;
  function tick() {
    const a = queue.admission(line ?? queue.snapshot().eventId);
    if (a?.expiresAt) countdown.textContent = formatCountdown(a.expiresAt - Date.now());
  }
  const unsubscribe = queue.subscribe((q) => {
    const target = line ?? q.eventId;
    const inLine = q.eventId === target;
    const kind = !inLine ? `elsewhere-${q.active}` : q.state === 'READY' ? 'ready' : q.state === 'QUEUED' ? `queued-${q.position}` : `other-${q.state}-${q.active}`;
    if (kind === lastKind) return;
    lastKind = kind;
    if (!inLine) {
      replace(
        el,
        h(
          'div',
          { class: 'alert alert-info', role: 'status' },
          h('p', null, 'This event has a line of its own: join it to buy. You are let in when it is your turn.'),
          h('div', { class: 'alert-actions' }, rejoinButton(ctx, 'Join the line for this event', line)),
        ),
      );
    } else if (q.state === 'READY') {
      tick();
      // Let in from the pre-queue's draw: say so, it is the moment the buyer waited for. A draw
      // seen with a place (the line as drawn, before its first turns were let in) said so too.
      const drawnText = q.drawn?.position
        ? `The sale has started: the draw gave you place #${formatNumber(q.drawn.position)}, and your turn has come.`
        : 'The sale has started and the draw put you among the first.';
      const drawn = q.drawn ? h('p', { 'data-testid': 'lottery-result' }, drawnText) : null;
      replace(el, h('div', { class: 'alert alert-success', role: 'status' }, drawn, h('p', null, 'You are in! Your turn to buy ends in ', countdown, '.')));
    } else if (q.state === 'QUEUED' && q.active) {
      replace(
        el,
        h(
          'div',
          { class: 'alert alert-info', role: 'status' },
          h('p', null, `You are in ${target === queue.GLOBAL ? 'the queue' : 'the event’s own line'} at position ${formatNumber(q.position ?? 1)}. You can buy when it is your turn.`),
          h('div', { class: 'alert-actions' }, h('a', { href: '/waiting', 'data-link': true, class: 'button button-small' }, 'Go to the waiting room')),
        ),
      );
    } else if (['PREQUEUE', 'SOLD_OUT', 'CLOSED'].includes(q.state) && q.active) {
      const text = { PREQUEUE: 'You are in the pre-queue: places are drawn when the sale starts.', SOLD_OUT: 'Sold out: you keep your place in case tickets come back.', CLOSED: 'The sale is closed.' }[q.state];
      replace(
        el,
        h(
          'div',
          { class: 'alert alert-info', role: 'status' },
          h('p', null, text),
          h('div', { class: 'alert-actions' }, h('a', { href: '/waiting', 'data-link': true, class: 'button button-small' }, 'Go to the waiting room')),
        ),
      );
    } else {
      const text =
        q.state === 'ORDERED' || q.state === 'USED'
          ? 'Your last turn was used for an order. To buy more tickets, join the queue again.'
          : q.state === 'EXPIRED'
            ? 'Your turn has expired. Join the queue again to buy tickets.'
            : 'To buy tickets, join the queue first. You will be let in when it is your turn.';
      replace(el, h('div', { class: 'alert alert-warning', role: 'status' }, h('p', null, text), h('div', { class: 'alert-actions' }, rejoinButton(ctx, 'Join the queue', target))));
    }
  });
  const id = setInterval(tick, 1000);
  ctx.onCleanup(() => {
    unsubscribe();
    clearInterval(id);
  });
  return el;
}

// ---------------------------------------------------------------------------------------------
// Shop

function stockText(e) {
  if (e.availableQty <= 0) return 'Sold out';
  return `${formatNumber(e.availableQty)} of ${formatNumber(e.totalQty)} left`;
}

/**
 * What the buyer can do with an event now: for one with a line of its own that depends on the
 * pre-queue's dates and on where the buyer stands in that line.
 */
function eventAction(ctx, e, q) {
  const now = Date.now();
  const buy = (label = 'Buy tickets') => ({
    key: `buy-${e.id}-${label}`,
    el: () => h('a', { href: `/shop/${e.id}`, 'data-link': true, class: 'button button-primary', 'aria-label': `${label} for ${e.name}` }, label),
  });
  const text = (key, label) => ({ key, el: () => h('span', { class: 'muted' }, label) });
  if (e.status !== 'ONSALE') return text('closed', 'Sale closed');
  if (e.queueMode !== 'event') return e.availableQty > 0 ? buy() : text('soldout', 'Sold out');
  const inLine = q.active && q.eventId === e.id;
  if (inLine && q.state === 'READY') return buy();
  if (inLine && !['ORDERED', 'USED', 'EXPIRED', 'CLOSED'].includes(q.state)) {
    return { key: `waiting-${e.id}`, el: () => h('a', { href: '/waiting', 'data-link': true, class: 'button', 'aria-label': `Your place in the line for ${e.name}` }, 'See your place in the line') };
  }
  const opens = e.prequeueStartsAt ? new Date(e.prequeueStartsAt).getTime() : null;
  const starts = new Date(e.startsAt).getTime();
  if (opens !== null && now < opens) return text(`opens-${opens}`, `The line opens ${formatDateTime(e.prequeueStartsAt)}`);
  if (e.availableQty <= 0) return text('soldout', 'Sold out');
  const label = opens !== null && now < starts ? 'Join the pre-queue' : 'Join the line';
  return {
    key: `join-${e.id}-${label}`,
    el: () => h('button', { type: 'button', class: 'button button-primary', 'aria-label': `${label} for ${e.name}`, onClick: () => rejoin(ctx, e.id) }, label),
  };
}

function eventCard(ctx) {
  const title = h('h2', { class: 'event-name' });
  const status = h('span');
  const when = h('p', { class: 'muted event-when' });
  const price = h('p', { class: 'price' });
  const meter = h('meter', { min: 0, class: 'stock-meter' });
  const stock = h('p', { class: 'stock' });
  const limit = h('p', { class: 'muted' });
  const line = h('p', { class: 'muted event-line' });
  const action = h('div', { class: 'event-action' });
  const el = h('article', { class: 'card event-card' }, h('div', { class: 'event-head' }, title, status), when, price, meter, stock, limit, line, action);
  let actionKey = null;
  return {
    el,
    update(e, q) {
      title.textContent = e.name;
      replace(status, statusBadge(e.status));
      when.textContent = `${formatDateTime(e.startsAt)} – ${formatDateTime(e.endsAt)}`;
      price.textContent = `${formatMoney(e.price)} per ticket`;
      meter.max = Math.max(1, e.totalQty);
      meter.value = Math.max(0, e.availableQty);
      meter.setAttribute('aria-label', `Tickets left for ${e.name}`);
      stock.textContent = stockText(e);
      stock.classList.toggle('stock-out', e.availableQty <= 0);
      limit.textContent = `Up to ${plural(e.maxPerUser, 'ticket')} per person`;
      line.hidden = e.queueMode !== 'event';
      line.textContent = e.prequeueStartsAt
        ? `Its own line, with a pre-queue from ${formatDateTime(e.prequeueStartsAt)}: places are drawn at random at the start.`
        : 'Its own line: join it to buy.';
      const next = eventAction(ctx, e, q);
      if (next.key !== actionKey) {
        actionKey = next.key;
        replace(action, next.el());
      }
    },
  };
}

function sortEvents(events) {
  const rank = { ONSALE: 0, DRAFT: 1, CLOSED: 2 };
  return [...events].sort((a, b) => (rank[a.status] ?? 3) - (rank[b.status] ?? 3) || String(a.startsAt).localeCompare(String(b.startsAt)));
}

export function shopPage(ctx) {
  ctx.setTitle('Shop');
  const messages = messageArea();
  const grid = h('div', { class: 'event-grid' }, h('p', { class: 'muted' }, 'Loading events…'));
  const cards = new Map();
  let loaded = false;
  let events = [];

  async function load() {
    try {
      events = sortEvents(await api('/events', { signal: ctx.signal }));
      if (ctx.signal.aborted) return;
      messages.clear();
      if (!events.length) {
        cards.clear();
        replace(grid, h('p', { class: 'empty' }, 'No events are on sale right now. Please come back later.'));
        loaded = true;
        return;
      }
      if (!loaded || cards.size === 0) grid.replaceChildren();
      loaded = true;
      const seen = new Set();
      events.forEach((e, i) => {
        seen.add(e.id);
        let card = cards.get(e.id);
        if (!card) {
          card = eventCard(ctx);
          cards.set(e.id, card);
        }
        card.update(e, queue.snapshot());
        // Only move cards that are out of place, so a focused link keeps its focus.
        if (grid.children[i] !== card.el) grid.insertBefore(card.el, grid.children[i] ?? null);
      });
      for (const [id, card] of cards) {
        if (!seen.has(id)) {
          card.el.remove();
          cards.delete(id);
        }
      }
    } catch (e) {
      if (ctx.signal.aborted || e?.name === 'AbortError') return;
      messages.show('error', `Could not load the events: ${e.message}`);
    }
  }
  load();
  every(ctx, STOCK_REFRESH_MS, load);
  // The buttons follow the buyer's line (joined, let in) and the pre-queue's dates.
  const unsubscribe = queue.subscribe((q) => {
    for (const e of events) cards.get(e.id)?.update(e, q);
  });
  ctx.onCleanup(unsubscribe);
  every(ctx, 1000, () => {
    const q = queue.snapshot();
    for (const e of events) cards.get(e.id)?.update(e, q);
  });

  return h(
    'section',
    { class: 'page' },
    h('h1', { tabindex: '-1' }, 'Tickets on sale'),
    admissionBanner(ctx),
    messages.el,
    grid,
  );
}

// ---------------------------------------------------------------------------------------------
// Purchase

/** Tickets of this event the buyer already holds or bought (they count toward the limit). */
function alreadyMine(orders, eventId) {
  return (orders ?? [])
    .filter((o) => o.eventId === eventId && ['HOLD', 'FAIL', 'PAID'].includes(o.status))
    .reduce((sum, o) => sum + Number(o.qty || 0), 0);
}

export function purchasePage(ctx) {
  ctx.setTitle('Buy tickets');
  const eventId = ctx.params.id;
  const messages = messageArea();
  const note = messageArea();
  const heading = h('h1', { tabindex: '-1' }, 'Buy tickets');
  const details = h('div', { class: 'event-details' }, h('p', { class: 'muted' }, 'Loading the event…'));
  const qty = field({
    label: 'Number of tickets',
    id: uid('qty'),
    hint: ' ',
    control: h('input', { type: 'number', name: 'qty', min: 1, step: 1, value: 1, inputmode: 'numeric', required: true }),
  });
  const total = h('p', { class: 'total', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'button button-primary button-block' }, 'Buy');
  const form = h('form', { class: 'card form purchase-form', novalidate: true }, qty.wrap, total, submit);
  let event = null;
  let mine = 0;
  let submitting = false;
  let shownBlock = null;
  /** The line this event is bought through, known once the event is read. */
  let line = null;
  const banner = h('div');

  function maxQty() {
    if (!event) return 0;
    return Math.max(0, Math.min(event.maxPerUser - mine, event.availableQty));
  }

  function currentQty() {
    const n = Number(qty.input.value);
    return Number.isInteger(n) ? n : NaN;
  }

  function refreshForm() {
    if (!event) return;
    const max = maxQty();
    qty.input.max = String(Math.max(1, max));
    const n = currentQty();
    const parts = [`Up to ${plural(event.maxPerUser, 'ticket')} per person`];
    if (mine > 0) parts.push(`you already have ${formatNumber(mine)}`);
    parts.push(`${formatNumber(event.availableQty)} left`);
    qty.hint.textContent = `${parts.join(' · ')}.`;
    const admitted = Boolean(queue.admission(line));
    let blocked = null;
    if (event.status !== 'ONSALE') blocked = event.status === 'DRAFT' ? 'This event is not on sale yet.' : 'The sale of this event has closed.';
    else if (event.availableQty <= 0) blocked = 'Sold out: there are no tickets left.';
    else if (event.maxPerUser - mine <= 0) blocked = `You have reached the limit of ${plural(event.maxPerUser, 'ticket')} per person for this event.`;
    total.textContent = !blocked && Number.isInteger(n) && n > 0 ? `Total: ${formatMoney(n * event.price)}` : '';
    qty.input.disabled = Boolean(blocked);
    if (!submitting) submit.disabled = Boolean(blocked) || !admitted;
    if (!submitting) submit.textContent = blocked ? 'Not available' : Number.isInteger(n) && n > 0 ? `Buy ${plural(n, 'ticket')}` : 'Buy';
    form.dataset.blocked = blocked ? 'true' : 'false';
    if (blocked !== shownBlock) {
      if (blocked) note.show('warning', blocked);
      else note.clear();
      shownBlock = blocked;
    }
  }

  async function load() {
    try {
      const [e, orders] = await Promise.all([
        api(`/events/${encodeURIComponent(eventId)}`, { signal: ctx.signal }),
        api('/orders', { signal: ctx.signal }).catch(() => null),
      ]);
      if (ctx.signal.aborted) return;
      event = e;
      if (line !== queue.lineOf(e)) {
        line = queue.lineOf(e);
        replace(banner, admissionBanner(ctx, line));
      }
      if (orders) mine = alreadyMine(orders, eventId);
      heading.textContent = e.name;
      ctx.setTitle(`Buy tickets: ${e.name}`);
      replace(
        details,
        h(
          'dl',
          { class: 'details' },
          h('div', null, h('dt', null, 'Status'), h('dd', null, statusBadge(e.status))),
          h('div', null, h('dt', null, 'When'), h('dd', null, `${formatDateTime(e.startsAt)} – ${formatDateTime(e.endsAt)}`)),
          h('div', null, h('dt', null, 'Price'), h('dd', null, `${formatMoney(e.price)} per ticket`)),
          h('div', null, h('dt', null, 'Tickets left'), h('dd', { class: 'stock' }, stockText(e))),
        ),
      );
      refreshForm();
    } catch (err) {
      if (ctx.signal.aborted || err?.name === 'AbortError') return;
      if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
        heading.textContent = 'Event not found';
        replace(details, h('p', null, 'This event does not exist or is not on sale.'));
        form.hidden = true;
      }
      messages.show('error', `Could not load the event: ${err.message}`);
    }
  }

  qty.input.addEventListener('input', () => {
    qty.setError('');
    refreshForm();
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submitting || !event) return;
    messages.clear();
    const n = currentQty();
    const max = maxQty();
    if (!Number.isInteger(n) || n < 1 || n > max) {
      qty.setError(max >= 1 ? `Choose a whole number from 1 to ${max}.` : 'No tickets can be bought right now.');
      qty.input.focus();
      return;
    }
    const admission = queue.admission(line);
    if (!admission) {
      messages.show('error', 'It is not your turn yet: join the queue and wait to be let in before buying.', rejoinButton(ctx, 'Join the queue', line));
      return;
    }
    submitting = true;
    setBusy(submit, true, 'Placing your order…');
    try {
      const order = await api('/orders', {
        method: 'POST',
        body: { event_id: eventId, qty: n },
        // A new key for every submit: the server keeps the same key's result for a retry.
        idempotencyKey: uuid(),
        gateToken: admission.gateToken,
      });
      queue.markOrdered();
      ctx.navigate(`/checkout/${order.orderId}`);
    } catch (err) {
      if (ctx.signal.aborted) return;
      submitting = false;
      setBusy(submit, false);
      const extra = err instanceof ApiError && err.status === 403 ? [rejoinButton(ctx, 'Join the queue again', line)] : [];
      messages.show('error', `Could not place the order: ${err.message}`, ...extra);
      await load();
    }
  });

  const unsubscribe = queue.subscribe(() => refreshForm());
  ctx.onCleanup(unsubscribe);
  load();
  every(ctx, STOCK_REFRESH_MS, () => {
    if (!submitting) load();
  });

  return h(
    'section',
    { class: 'page narrow' },
    h('p', { class: 'breadcrumb' }, h('a', { href: '/shop', 'data-link': true }, '← All events')),
    heading,
    banner,
    details,
    messages.el,
    note.el,
    form,
  );
}

// ---------------------------------------------------------------------------------------------
// Checkout

function pendingPayments() {
  try {
    return JSON.parse(sessionStorage.getItem(PAYMENTS_KEY) ?? '{}') ?? {};
  } catch {
    return {};
  }
}

function setPending(orderId, baseline) {
  const all = pendingPayments();
  if (baseline === null) delete all[orderId];
  else all[orderId] = { baseline, since: Date.now() };
  sessionStorage.setItem(PAYMENTS_KEY, JSON.stringify(all));
}

export function checkoutPage(ctx) {
  ctx.setTitle('Checkout');
  const orderId = ctx.params.id;
  const messages = messageArea();
  const summary = h('div', { class: 'card order-summary' }, h('p', { class: 'muted' }, 'Loading your order…'));
  const panel = h('div', { class: 'card payment-panel', role: 'status', 'aria-live': 'polite' });
  const heading = h('h1', { tabindex: '-1' }, 'Checkout');
  let order = null;
  let pollTimer = null;
  let polling = null; // { baseline, started }
  const countdown = h('span', { class: 'countdown' });

  function tick() {
    if (!order || !['HOLD', 'FAIL'].includes(order.status)) return;
    countdown.textContent = ` (${formatCountdown(new Date(order.holdExpiresAt).getTime() - Date.now())} left)`;
  }
  const clock = setInterval(tick, 1000);
  ctx.onCleanup(() => {
    clearInterval(clock);
    clearTimeout(pollTimer);
  });

  function renderSummary() {
    const o = order;
    const payable = ['HOLD', 'FAIL'].includes(o.status);
    heading.textContent = payable ? 'Checkout' : 'Order details';
    ctx.setTitle(payable ? 'Checkout' : 'Order details');
    const reserved = ['HOLD', 'FAIL'].includes(o.status)
      ? h('div', null, h('dt', null, 'Reserved until'), h('dd', null, formatDateTime(o.holdExpiresAt), countdown))
      : null;
    tick();
    replace(
      summary,
      h('h2', null, o.eventName ?? 'Your order'),
      h(
        'dl',
        { class: 'details' },
        h('div', null, h('dt', null, 'Tickets'), h('dd', null, formatNumber(o.qty))),
        h('div', null, h('dt', null, 'Amount'), h('dd', { class: 'price' }, formatMoney(o.amount))),
        h('div', null, h('dt', null, 'Status'), h('dd', { 'data-testid': 'order-status', 'data-status': o.status }, statusBadge(o.status))),
        reserved,
        h('div', null, h('dt', null, 'Order number'), h('dd', { class: 'mono' }, o.id)),
      ),
    );
  }

  function payButton(label) {
    const b = h('button', { type: 'button', class: 'button button-primary button-block' }, label);
    b.addEventListener('click', () => pay(b));
    return b;
  }

  function buyMoreButton() {
    // Back into the line the last admission came from.
    return h('button', { type: 'button', class: 'button', onClick: () => rejoin(ctx, queue.snapshot().eventId) }, 'Buy more tickets');
  }

  let panelKey = null;
  function renderPanel() {
    const o = order;
    // The panel is a live region: rebuild it only when what it says changes.
    const key = polling ? 'polling' : `${o.status}-${o.holdExpiresAt}-${o.amount}`;
    if (key === panelKey) return;
    panelKey = key;
    if (polling) {
      replace(panel, h('p', { class: 'big-message' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Processing your payment…'), h('p', { class: 'muted' }, 'This usually takes a few seconds. You can leave this page: the result appears in My orders.'));
      return;
    }
    switch (o.status) {
      case 'PAID':
        replace(
          panel,
          h('p', { class: 'big-message success' }, 'Payment confirmed. Your tickets are booked!'),
          h('div', { class: 'actions' }, h('a', { href: '/my-orders', 'data-link': true, class: 'button button-primary' }, 'See my orders'), buyMoreButton()),
        );
        return;
      case 'FAIL':
        replace(
          panel,
          h('p', { class: 'big-message failure' }, 'The payment failed.'),
          h('p', null, 'Your tickets are still reserved until ', formatDateTime(o.holdExpiresAt), '. You can try again.'),
          payButton('Try the payment again'),
        );
        return;
      case 'HOLD':
        replace(
          panel,
          h('p', null, 'Your tickets are reserved. Pay now to confirm them.'),
          payButton(`Pay ${formatMoney(o.amount)}`),
          h('p', { class: 'muted small' }, 'Test payment: no real money is charged.'),
        );
        return;
      case 'EXPIRED':
        replace(panel, h('p', { class: 'big-message failure' }, 'Your reservation expired before it was paid, so the tickets were released.'), h('div', { class: 'actions' }, buyMoreButton()));
        return;
      default:
        replace(panel, h('p', null, `This order is ${STATUS_LABELS[o.status] ?? o.status}.`), h('div', { class: 'actions' }, buyMoreButton()));
    }
  }

  function settled(o) {
    if (o.status === 'PAID') return true;
    if (['FAIL', 'EXPIRED', 'CANCELLED'].includes(o.status)) return o.updatedAt !== polling.baseline;
    return false;
  }

  async function poll() {
    if (ctx.signal.aborted || !polling) return;
    try {
      const o = await api(`/orders/${encodeURIComponent(orderId)}`, { signal: ctx.signal });
      if (ctx.signal.aborted) return;
      order = o;
      if (settled(o)) {
        polling = null;
        setPending(orderId, null);
        messages.clear();
        if (o.status === 'FAIL') messages.show('error', 'The payment was declined. Your tickets are still reserved: you can try again.');
      } else if (Date.now() - polling.started > PAYMENT_PATIENCE_MS) {
        polling = null;
        const check = h('button', { type: 'button', class: 'button button-small', onClick: () => startPolling(pendingPayments()[orderId]?.baseline ?? o.updatedAt) }, 'Check again');
        messages.show('warning', 'The payment service has not answered yet. Your order is safe; check again in a moment.', check);
      }
      renderSummary();
      renderPanel();
    } catch (err) {
      if (ctx.signal.aborted || err?.name === 'AbortError') return;
      messages.show('warning', `Could not read the payment status (${err.message}). Retrying…`);
    }
    if (polling) pollTimer = setTimeout(poll, PAYMENT_POLL_MS);
  }

  function startPolling(baseline) {
    polling = { baseline, started: Date.now() };
    renderPanel();
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, PAYMENT_POLL_MS);
  }

  async function pay(button) {
    messages.clear();
    setBusy(button, true, 'Sending the payment…');
    const baseline = order.updatedAt;
    try {
      await api('/payments', { method: 'POST', body: { orderId, method: 'MOCK' } });
      setPending(orderId, baseline);
      startPolling(baseline);
    } catch (err) {
      if (ctx.signal.aborted) return;
      setBusy(button, false);
      messages.show('error', `Could not start the payment: ${err.message}`);
      // The order may have changed (paid elsewhere, expired): show it as it is now.
      try {
        order = await api(`/orders/${encodeURIComponent(orderId)}`);
        renderSummary();
        renderPanel();
      } catch {
        // Keep what is shown.
      }
    }
  }

  (async () => {
    try {
      order = await api(`/orders/${encodeURIComponent(orderId)}`, { signal: ctx.signal });
      if (ctx.signal.aborted) return;
      renderSummary();
      const pending = pendingPayments()[orderId];
      if (pending && ['HOLD', 'FAIL'].includes(order.status) && (order.status === 'HOLD' || order.updatedAt === pending.baseline)) {
        // A payment sent before a reload: keep waiting for its result.
        startPolling(pending.baseline);
      } else {
        if (pending) setPending(orderId, null);
        renderPanel();
      }
    } catch (err) {
      if (ctx.signal.aborted || err?.name === 'AbortError') return;
      replace(summary, h('p', null, 'This order could not be shown.'));
      panel.hidden = true;
      messages.show('error', `Could not load the order: ${err.message}`, h('a', { href: '/my-orders', 'data-link': true, class: 'button button-small' }, 'My orders'));
    }
  })();

  return h(
    'section',
    { class: 'page narrow' },
    h('p', { class: 'breadcrumb' }, h('a', { href: '/my-orders', 'data-link': true }, '← My orders')),
    heading,
    messages.el,
    summary,
    panel,
  );
}

// ---------------------------------------------------------------------------------------------
// My orders

export function ordersPage(ctx) {
  ctx.setTitle('My orders');
  const messages = messageArea();
  const list = h('div', { class: 'orders' }, h('p', { class: 'muted' }, 'Loading your orders…'));

  function action(o) {
    if (o.status === 'HOLD') return h('a', { href: `/checkout/${o.id}`, 'data-link': true, class: 'button button-small button-primary', 'aria-label': `Pay for ${o.eventName ?? 'this order'}` }, 'Pay');
    if (o.status === 'FAIL') return h('a', { href: `/checkout/${o.id}`, 'data-link': true, class: 'button button-small', 'aria-label': `Retry the payment for ${o.eventName ?? 'this order'}` }, 'Retry payment');
    return h('a', { href: `/checkout/${o.id}`, 'data-link': true, class: 'link-small', 'aria-label': `Details of the order for ${o.eventName ?? 'this event'}` }, 'Details');
  }

  async function load() {
    try {
      const orders = await api('/orders', { signal: ctx.signal });
      if (ctx.signal.aborted) return;
      messages.clear();
      if (!orders.length) {
        replace(list, h('p', { class: 'empty' }, 'You have no orders yet. ', h('a', { href: '/shop', 'data-link': true }, 'Find tickets')));
        return;
      }
      // Orders that need the buyer first, then the newest.
      const rank = { HOLD: 0, FAIL: 0 };
      const sorted = [...orders].sort((a, b) => (rank[a.status] ?? 1) - (rank[b.status] ?? 1) || String(b.createdAt).localeCompare(String(a.createdAt)));
      replace(
        list,
        table({
          caption: 'Your orders, those waiting for payment first',
          columns: [
            { label: 'Event', className: 'cell-name' },
            { label: 'Tickets' },
            { label: 'Amount' },
            { label: 'Status' },
            { label: 'Ordered' },
            { label: 'Action', className: 'cell-action', inline: false },
          ],
          rows: sorted.map((o) => ({
            attrs: { 'data-order-id': o.id },
            cells: [
              o.eventName ?? '—',
              formatNumber(o.qty),
              formatMoney(o.amount),
              { content: statusBadge(o.status), attrs: { 'data-status': o.status } },
              formatDateTime(o.createdAt),
              action(o),
            ],
          })),
        }),
      );
    } catch (e) {
      if (ctx.signal.aborted || e?.name === 'AbortError') return;
      messages.show('error', `Could not load your orders: ${e.message}`);
    }
  }
  load();
  // Keep payments in flight up to date, unless the buyer is using the table.
  every(ctx, STOCK_REFRESH_MS, () => {
    if (list.querySelector('[data-status="HOLD"]') && !list.contains(document.activeElement)) load();
  });

  return h(
    'section',
    { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'My orders'), h('a', { href: '/shop', 'data-link': true, class: 'button' }, 'Shop')),
    messages.el,
    list,
  );
}
