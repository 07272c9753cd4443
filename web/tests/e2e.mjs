#!/usr/bin/env node
// Browser tests of the Flash Tickets page, driving Debian's Chromium headless with
// playwright-core. Run by `cargo test -p flash --test browser` (hosts/flash/tests/browser.rs),
// which starts the system on an ephemeral port with a ready capacity of 2, payments that always
// succeed, 12-second access tokens and demo users test0000…test0005.
//
//   node web/tests/e2e.mjs http://127.0.0.1:PORT
//
// Environment: FLASH_ADMIN_SECRET (the server's ADMIN_REGISTER_SECRET, required),
// FLASH_FAILING_BASE_URL (a system started with PAYMENT_SUCCESS_RATE=0, required),
// CHROMIUM_PATH (default /usr/bin/chromium), FLASH_SCREENSHOTS (default
// integration/artifacts/screenshots at the repository root).
//
// Scenarios:
//   1. a buyer logs in, waits in the queue (live over Socket.IO), buys and sees PAID; their
//      access token is refreshed while they shop;
//   2. with the socket blocked, a buyer still moves through the queue by polling;
//   3. two buyers race for the last ticket on phone-sized screens: exactly one gets it;
//   4. an admin registers, creates an event, puts it on sale, edits it and checks monitoring;
//   5. an admin schedules a sale with a pre-queue in the admin page;
//   6. a buyer waits in an event's pre-queue (a countdown), sees the draw at the start and buys;
//   7. a buyer in an event's own line sees "sold out" the moment the last ticket is held, and is
//      let in when tickets come back;
//   8. during a sale on an event's own line, the admin's monitoring charts render and move
//      (samples grow, arrivals, admissions, orders, payments and the sold-out marker appear),
//      the line picker is reached by keyboard, and the charts fit a phone;
//   9. on a second system whose payments always fail (FLASH_FAILING_BASE_URL), a buyer sees
//      FAIL, retries, and sees the retry's own outcome.
// Every page is screenshotted; any console error or uncaught exception fails its scenario.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.argv[2] ?? process.env.FLASH_BASE_URL ?? '').replace(/\/+$/, '');
const ADMIN_SECRET = process.env.FLASH_ADMIN_SECRET ?? '';
const FAILING = (process.env.FLASH_FAILING_BASE_URL ?? '').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve(process.env.FLASH_SCREENSHOTS ?? path.join(here, '../../integration/artifacts/screenshots'));
const TOTAL_TIMEOUT_MS = 480_000;
const DESKTOP = { viewport: { width: 1280, height: 860 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

if (!BASE || !ADMIN_SECRET || !FAILING) {
  console.error('usage: FLASH_ADMIN_SECRET=… FLASH_FAILING_BASE_URL=http://127.0.0.1:PORT2 node web/tests/e2e.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`error: ${CHROMIUM} not found. Install Debian's Chromium: apt-get install -y chromium`);
  process.exit(1);
}
setTimeout(() => {
  console.error(`error: the browser tests did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS).unref();

// ---------------------------------------------------------------------------------------------
// The API, for setting the scene and checking the outcome.

async function call(method, urlPath, { token, body, headers: extra = {} } = {}) {
  const headers = { Accept: 'application/json', ...extra };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${BASE}${urlPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON.
  }
  if (!res.ok) throw new Error(`${method} ${urlPath} → ${res.status}: ${text}`);
  return data;
}

/** A fresh access token (the server under test issues 12-second ones). */
async function login(userId, password = 'testtest') {
  const pair = await call('POST', '/auth/login', { body: { userId, password } });
  return pair.accessToken;
}

async function waitFor(what, check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}

/**
 * The public answer at `path` once `check` holds: the public event reads are served from a
 * memory up to a second old (EVENT_CACHE_TTL), so stock moved a moment ago shows a moment later.
 */
async function publicWhen(what, path, check) {
  return waitFor(what, async () => {
    const body = await call('GET', path);
    return check(body) ? body : null;
  });
}

/** Two other buyers take both admission slots, so the next buyer really waits. */
async function occupySlots() {
  const holders = [];
  for (const user of ['test0001', 'test0002']) {
    const token = await login(user);
    const { ticketId } = await call('POST', '/queue/enqueue', { token, body: { eventId: '__global__' } });
    holders.push({ user, ticketId });
  }
  await waitFor('both slots taken', async () => {
    const states = await Promise.all(holders.map((h) => call('GET', `/queue/status?ticketId=${h.ticketId}`)));
    return states.every((s) => s.state === 'READY');
  });
  return {
    async release() {
      // A fresh token each: the test may have outlived the 12-s ones it joined with.
      for (const h of holders) await call('POST', '/queue/leave', { token: await login(h.user), body: { ticketId: h.ticketId } });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Pages

let shotCount = 0;
/** Pages still open, screenshotted when a scenario fails. */
const openPages = new Set();
async function shot(page, name) {
  shotCount += 1;
  const file = path.join(SHOTS, `${String(shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${path.relative(process.cwd(), file)}`);
}

/**
 * A page whose console errors and uncaught exceptions are recorded. `allowStatus`: HTTP error
 * statuses the scenario provokes on purpose (Chromium logs each failed request as a console
 * error, "Failed to load resource: … status of 400").
 */
async function openPage(browser, options, allowStatus = []) {
  const context = await browser.newContext({ ...options, locale: 'en-US', timezoneId: 'Asia/Seoul' });
  const page = await context.newPage();
  openPages.add(page);
  page.on('close', () => openPages.delete(page));
  page.setDefaultTimeout(60_000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    const status = text.match(/status of (\d{3})/);
    if (status && allowStatus.includes(Number(status[1]))) return;
    problems.push(`console error: ${text} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
  page.assertClean = () => assert.deepEqual(problems, [], `the page reported errors:\n${problems.join('\n')}`);
  return { context, page };
}

async function text(locator) {
  return (await locator.textContent())?.replace(/\s+/g, ' ').trim() ?? '';
}

/** The page's own error wording: `message` as sent, a list of validation messages joined. */
async function checkErrorMessages(page) {
  const got = await page.evaluate(async () => {
    const base = document.querySelector('script[type="module"]').src.replace(/app\/main\.js$/, '');
    const { messageOf } = await import(`${base}app/api.js`);
    const response = (status, headers = {}) => ({ status, statusText: '', headers: new Headers(headers) });
    return [
      messageOf({ statusCode: 400, message: ['qty must be a positive number', 'event_id must be a UUID'], error: 'Bad Request' }, response(400)),
      messageOf({ statusCode: 404, message: 'Event not found', error: 'Not Found' }, response(404)),
      messageOf({ statusCode: 429, message: 'Too many login attempts', error: 'Too Many Requests' }, response(429, { 'Retry-After': '7' })),
      messageOf(null, { status: 502, statusText: 'Bad Gateway', headers: new Headers() }),
    ];
  });
  assert.deepEqual(got, [
    'qty must be a positive number; event_id must be a UUID',
    'Event not found',
    'Too many login attempts. Please try again in 7 s.',
    'The server answered 502 Bad Gateway',
  ]);
}

async function loginThroughPage(page, userId, password = 'testtest', base = BASE) {
  await page.goto(`${base}/`);
  await page.waitForURL('**/login');
  await page.getByLabel('User ID').fill(userId);
  await page.getByLabel('Password').fill(password);
  // The keyboard submits the form.
  await page.getByLabel('Password').press('Enter');
}

async function storedAccessToken(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('flash-tickets-auth') ?? '{}').accessToken);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async function buyerWaitsBuysAndSeesPaid(browser) {
  const slots = await occupySlots();
  const { context, page } = await openPage(browser, DESKTOP, [401]);

  await page.goto(`${BASE}/`);
  await page.waitForURL('**/login');
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  await shot(page, 'login');
  await checkErrorMessages(page);

  // A wrong password: the server's message is shown.
  await page.getByLabel('User ID').fill('test0000');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await text(alert), /Invalid credentials/);
  await shot(page, 'login-error');

  await page.getByLabel('Password').fill('testtest');
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL('**/waiting');
  const position = page.getByTestId('queue-position');
  await position.waitFor();
  assert.equal(await text(position), '#1');
  await page.getByText('Live updates').waitFor();
  assert.match(await text(page.locator('.stats')), /People in the queue\s*1/);
  assert.match(await text(page.locator('.stats')), /Estimated wait/);
  const firstToken = await storedAccessToken(page);
  await shot(page, 'waiting-room');

  // The socket outlives its 12-s access token: the server closes it when the token lapses and
  // the page connects again with the refreshed one, live again without a reload or an error.
  const connections = async () => Number(await page.locator('.live').getAttribute('data-connections'));
  const before = await connections();
  await waitFor('the access token to be refreshed', async () => (await storedAccessToken(page)) !== firstToken, 60_000);
  await waitFor('the socket to connect again after its token lapsed', async () => (await connections()) > before, 60_000);
  await page.getByText('Live updates').waitFor();
  assert.equal(await text(position), '#1');
  assert.equal(await page.getByRole('alert').count(), 0, 'no error when the socket reconnects');

  // The two slot holders leave: the admission is pushed and the shop opens.
  await slots.release();
  await page.waitForURL('**/shop', { timeout: 60_000 });
  await page.getByText('You are in!').waitFor();
  await page.getByRole('link', { name: 'Buy tickets for Flash Tickets Live' }).waitFor();
  assert.match(await text(page.locator('.event-card').first()), /1,000 of 1,000 left/);
  await shot(page, 'shop');

  await page.getByRole('link', { name: 'Buy tickets for Flash Tickets Live' }).click();
  await page.waitForURL('**/shop/*');
  const qty = page.getByLabel('Number of tickets');
  await page.getByRole('button', { name: 'Buy 1 ticket' }).waitFor();
  assert.equal(await qty.getAttribute('max'), '4', 'quantity limited by the per-user limit');
  await qty.fill('5');
  await page.getByRole('button', { name: 'Buy 5 tickets' }).click();
  assert.match(await text(page.locator('.field-error')), /from 1 to 4/);
  await qty.fill('2');
  assert.match(await text(page.locator('.total')), /₩100,000/);
  await shot(page, 'purchase');
  await qty.press('Enter');

  await page.waitForURL('**/checkout/*');
  await page.getByRole('button', { name: 'Pay ₩100,000' }).waitFor();
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'HOLD');
  await shot(page, 'checkout');
  await page.getByRole('button', { name: 'Pay ₩100,000' }).click();
  await page.getByText('Payment confirmed. Your tickets are booked!').waitFor({ timeout: 60_000 });
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'PAID');
  await shot(page, 'paid');

  await page.getByRole('link', { name: 'See my orders' }).click();
  await page.waitForURL('**/my-orders');
  const row = page.locator('tbody tr').first();
  await row.waitFor();
  assert.match(await text(row), /Flash Tickets Live.*2.*₩100,000.*Paid/);
  await shot(page, 'my-orders');

  // The access token lives 12 s: the page rotates it before it expires and keeps working.
  await waitFor('the access token to be refreshed', async () => (await storedAccessToken(page)) !== firstToken, 60_000);
  const claims = JSON.parse(Buffer.from(firstToken.split('.')[1], 'base64url').toString());
  const expiredIn = claims.exp * 1000 - Date.now();
  if (expiredIn > -1000) await page.waitForTimeout(expiredIn + 1000);
  await page.reload();
  await page.locator('tbody tr').first().waitFor();
  assert.equal(await page.getByRole('alert').count(), 0, 'no error after the first token expired');
  const demo = (e) => e.find((x) => x.name === 'Flash Tickets Live');
  await publicWhen('both paid tickets to show as sold', '/events', (e) => demo(e).soldQty === 2);

  page.assertClean();
  await context.close();
}

async function queuePollingWithoutTheSocket(browser) {
  const slots = await occupySlots();
  const { context, page } = await openPage(browser, PHONE);
  // No WebSocket and no Socket.IO long-polling: only the REST fallback is left.
  await context.routeWebSocket(/\/socket\.io\//, (ws) => ws.close());
  await context.route('**/socket.io/**', (route) => route.abort());

  await loginThroughPage(page, 'test0005');
  await page.waitForURL('**/waiting');
  await page.getByText(/Updating every \d+ s/).waitFor({ timeout: 60_000 });
  assert.equal(await text(page.getByTestId('queue-position')), '#1');
  await shot(page, 'waiting-room-polling-phone');

  await slots.release();
  await page.waitForURL('**/shop', { timeout: 60_000 });
  await page.getByText('You are in!').waitFor();
  // Log out: the admission is given back at once.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL('**/login');
  await page.getByText('You have logged out.').waitFor();
  page.assertClean();
  await context.close();
}

async function twoBuyersRaceForTheLastTicket(browser) {
  // An admin puts an event with one ticket on sale.
  await call('POST', '/auth/register/admin', { body: { userId: 'race-admin', password: 'race-admin-pw', adminSecret: ADMIN_SECRET } });
  const admin = await login('race-admin', 'race-admin-pw');
  const now = Date.now();
  const event = await call('POST', '/events', {
    token: admin,
    body: {
      name: 'Last Seat Standing',
      starts_at: new Date(now - 60_000).toISOString(),
      ends_at: new Date(now + 86_400_000).toISOString(),
      total_qty: 1,
      max_per_user: 1,
      price: 77000,
    },
  });
  await call('PATCH', `/events/${event.id}`, { token: admin, body: { status: 'ONSALE' } });

  const buyers = [];
  for (const user of ['test0003', 'test0004']) {
    const b = await openPage(browser, PHONE, [400]);
    await loginThroughPage(b.page, user);
    buyers.push({ user, ...b });
  }
  for (const b of buyers) {
    await b.page.waitForURL('**/shop', { timeout: 60_000 });
    await b.page.getByRole('link', { name: 'Buy tickets for Last Seat Standing' }).click();
    await b.page.waitForURL(`**/shop/${event.id}`);
    await b.page.getByRole('button', { name: 'Buy 1 ticket' }).waitFor();
    assert.equal(await b.page.getByLabel('Number of tickets').getAttribute('max'), '1');
  }
  await shot(buyers[0].page, 'race-purchase-phone');

  // Both press Buy at the same moment.
  await Promise.all(buyers.map((b) => b.page.getByRole('button', { name: 'Buy 1 ticket' }).click()));
  const outcomes = await Promise.all(
    buyers.map(async (b) => {
      // The other wait is left to time out quietly.
      const won = b.page.waitForURL('**/checkout/*', { timeout: 60_000 }).then(() => 'won', () => 'timeout');
      const lost = b.page.getByText('Not enough tickets remaining').waitFor({ timeout: 60_000 }).then(() => 'lost', () => 'timeout');
      return Promise.race([won, lost]);
    }),
  );
  assert.deepEqual([...outcomes].sort(), ['lost', 'won'], `exactly one buyer gets the ticket (got ${outcomes})`);
  const winner = buyers[outcomes.indexOf('won')];
  const loser = buyers[outcomes.indexOf('lost')];
  assert.match(await text(loser.page.getByRole('alert')), /Could not place the order: Not enough tickets remaining/);
  await loser.page.getByText('Sold out: there are no tickets left.').waitFor();
  await shot(loser.page, 'race-loser-phone');
  await winner.page.getByRole('button', { name: 'Pay ₩77,000' }).click();
  await winner.page.getByText('Payment confirmed. Your tickets are booked!').waitFor({ timeout: 60_000 });
  await shot(winner.page, 'race-winner-paid-phone');

  const after = await publicWhen('the paid ticket to show as sold', `/events/${event.id}`, (e) => e.soldQty === 1);
  assert.equal(after.availableQty, 0);
  const loserOrders = await call('GET', '/orders', { token: await login(loser.user) });
  assert.equal(loserOrders.filter((o) => o.eventId === event.id).length, 0, 'the loser has no order');

  await loser.page.getByRole('button', { name: 'Log out' }).click();
  await loser.page.waitForURL('**/login');
  for (const b of buyers) {
    b.page.assertClean();
    await b.context.close();
  }
}

async function adminCreatesAnEventAndPutsItOnSale(browser) {
  const { context, page } = await openPage(browser, DESKTOP, [401]);
  await page.goto(`${BASE}/register`);
  await page.getByLabel('User ID').fill('admin-e2e');
  await page.getByLabel('Password', { exact: true }).fill('admin-e2e-password');
  await page.getByLabel('Repeat the password').fill('admin-e2e-password');
  await page.getByLabel('Register as an administrator').check();
  await page.getByLabel('Administrator secret').fill('not-the-secret');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await text(page.getByRole('alert')), /Invalid admin secret/);
  await shot(page, 'admin-register-error');
  await page.getByLabel('Administrator secret').fill(ADMIN_SECRET);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL('**/admin');
  await page.getByRole('cell', { name: 'Flash Tickets Live', exact: true }).waitFor();

  await page.getByRole('link', { name: 'New event' }).click();
  await page.waitForURL('**/admin/new');
  await page.getByLabel('Name').fill('Spring Festival');
  await page.getByLabel('Tickets in total').fill('50');
  await page.getByLabel('Limit per person').fill('3');
  await page.getByLabel('Price per ticket (KRW)').fill('30000');
  await shot(page, 'admin-new-event');
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.waitForURL('**/admin');
  await page.getByText('Created “Spring Festival” as a draft.').waitFor();
  const row = page.locator('tr', { has: page.getByRole('cell', { name: 'Spring Festival', exact: true }) });
  assert.equal(await row.locator('td[data-status]').getAttribute('data-status'), 'DRAFT');
  let listed = await call('GET', '/events');
  assert.ok(!listed.some((e) => e.name === 'Spring Festival'), 'a draft is not public');

  await page.getByRole('button', { name: 'Put Spring Festival on sale' }).click();
  await page.getByText('“Spring Festival” is now on sale.').waitFor();
  await row.locator('td[data-status="ONSALE"]').waitFor();
  listed = await call('GET', '/events');
  const festival = listed.find((e) => e.name === 'Spring Festival');
  assert.equal(festival?.status, 'ONSALE');
  assert.equal(festival.totalQty, 50);
  assert.equal(festival.maxPerUser, 3);
  await shot(page, 'admin-events');

  await page.getByRole('link', { name: 'Edit Spring Festival' }).click();
  await page.waitForURL('**/admin/edit/*');
  await page.getByRole('heading', { name: 'Edit “Spring Festival”' }).waitFor();
  await page.getByLabel('Price per ticket (KRW)').fill('35000');
  await shot(page, 'admin-edit-event');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Saved “Spring Festival”.').waitFor();
  assert.equal((await call('GET', `/events/${festival.id}`)).price, 35000);

  // Closing a sale asks for a second press (no blocking dialog).
  const close = page.getByRole('button', { name: 'Close the sale of Spring Festival' });
  await close.click();
  await page.getByRole('button', { name: 'Confirm close: press again to confirm' }).click();
  await page.getByText('The sale of “Spring Festival” is closed.').waitFor();
  await row.locator('td[data-status="CLOSED"]').waitFor();
  assert.equal((await call('GET', `/events/${festival.id}`)).status, 'CLOSED');

  await page.getByRole('link', { name: 'Monitoring' }).first().click();
  await page.waitForURL('**/admin/monitoring');
  await page.getByText('All systems up').waitFor();
  const paid = page.locator('.tile[data-metric="orders_paid_total"] dd');
  await waitFor('paid orders on the monitoring page', async () => Number((await text(paid)).replace(/,/g, '')) >= 2);
  await shot(page, 'admin-monitoring');

  page.assertClean();
  await context.close();
}

async function adminPagesOnAPhone(browser) {
  const { context, page } = await openPage(browser, PHONE);
  await loginThroughPage(page, 'admin-e2e', 'admin-e2e-password');
  await page.waitForURL('**/admin');
  await page.getByRole('cell', { name: 'Spring Festival', exact: true }).waitFor();
  await shot(page, 'admin-events-phone');
  page.assertClean();
  await context.close();
}

async function anAdminSchedulesASaleWithAPreQueue(browser) {
  const { context, page } = await openPage(browser, DESKTOP);
  await loginThroughPage(page, 'admin-e2e', 'admin-e2e-password');
  await page.waitForURL('**/admin');
  await page.getByRole('link', { name: 'New event' }).click();
  await page.waitForURL('**/admin/new');
  await page.getByLabel('Name').fill('Winter Lottery');
  await page.getByLabel('Sale starts').fill('2099-01-02T10:00');
  await page.getByLabel('Sale ends').fill('2099-01-03T10:00');
  // The form refuses a pre-queue that opens after the start, and one without its own queue.
  await page.getByLabel('Pre-queue opens').fill('2099-01-02T11:00');
  await page.getByLabel('Buyers are let in from').selectOption('event');
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.getByText('The pre-queue must open before the sale starts.').waitFor();
  await page.getByLabel('Pre-queue opens').fill('2099-01-02T09:00');
  await page.getByLabel('Buyers are let in from').selectOption('global');
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.getByText('A pre-queue needs the event’s own queue.').waitFor();
  await shot(page, 'admin-prequeue-needs-its-own-queue');
  await page.getByLabel('Buyers are let in from').selectOption('event');
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.waitForURL('**/admin');
  await page.getByText('Created “Winter Lottery” as a draft.').waitFor();
  await page.getByRole('button', { name: 'Put Winter Lottery on sale' }).click();
  await page.getByText('“Winter Lottery” is now on sale.').waitFor();
  const lottery = (await call('GET', '/events')).find((e) => e.name === 'Winter Lottery');
  assert.equal(lottery?.queueMode, 'event');
  assert.equal(new Date(lottery.prequeueStartsAt).getTime() < new Date(lottery.startsAt).getTime(), true);

  // The edit form shows what was scheduled.
  await page.getByRole('link', { name: 'Edit Winter Lottery' }).click();
  await page.getByRole('heading', { name: 'Edit “Winter Lottery”' }).waitFor();
  assert.equal(await page.getByLabel('Buyers are let in from').inputValue(), 'event');
  assert.equal(await page.getByLabel('Pre-queue opens').inputValue(), '2099-01-02T09:00');
  page.assertClean();
  await context.close();
}

/** An admin's event with a line of its own, put on sale; `extra` overrides the defaults. */
async function eventWithItsOwnLine(name, extra) {
  const adminUser = 'line-admin';
  await call('POST', '/auth/register/admin', { body: { userId: adminUser, password: 'line-admin-pw', adminSecret: ADMIN_SECRET } }).catch((e) => {
    if (!/→ 409/.test(e.message)) throw e;
  });
  const admin = () => login(adminUser, 'line-admin-pw');
  const now = Date.now();
  const event = await call('POST', '/events', {
    token: await admin(),
    body: {
      name,
      starts_at: new Date(now - 60_000).toISOString(),
      ends_at: new Date(now + 86_400_000).toISOString(),
      total_qty: 10,
      max_per_user: 1,
      price: 30000,
      queue_mode: 'event',
      ...extra,
    },
  });
  await call('PATCH', `/events/${event.id}`, { token: await admin(), body: { status: 'ONSALE' } });
  return { event, admin };
}

/** A buyer who joins `eventId`'s line through the API. */
async function apiBuyer(user, eventId) {
  const token = () => login(user);
  const { ticketId } = await call('POST', '/queue/enqueue', { token: await token(), body: { eventId } });
  return {
    ticketId,
    status: () => call('GET', `/queue/status?ticketId=${ticketId}`),
    async leave() {
      await call('POST', '/queue/leave', { token: await token(), body: { ticketId } }).catch(() => {});
    },
    async order(gateToken) {
      return call('POST', '/orders', { token: await token(), body: { event_id: eventId, qty: 1 }, headers: { 'X-Gate-Token': gateToken, 'Idempotency-Key': crypto.randomUUID() } });
    },
  };
}

async function aBuyerWaitsInAPreQueueAndSeesTheDraw(browser) {
  // The pre-queue is open; the sale starts in an hour, until the admin brings it forward.
  const now = Date.now();
  const { event, admin } = await eventWithItsOwnLine('Midnight Drop', {
    prequeue_starts_at: new Date(now - 60_000).toISOString(),
    starts_at: new Date(now + 3_600_000).toISOString(),
  });
  const { context, page } = await openPage(browser, DESKTOP);
  await loginThroughPage(page, 'test0003');
  await page.waitForURL('**/shop', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Join the pre-queue for Midnight Drop' }).click();
  await page.waitForURL('**/waiting');
  const countdown = page.getByTestId('prequeue-countdown');
  await countdown.waitFor();
  assert.match(await text(countdown), /^(59|60):\d\d$/, 'the countdown to the start');
  await page.getByText('The line for Midnight Drop.').waitFor();
  await page.getByText('Live updates').waitFor();
  await shot(page, 'prequeue-countdown');

  // Four more buyers join the pre-queue: nobody has a place before the draw. With two let in at
  // a time, the draw puts this buyer in the line (3 in 5) or lets them in at once (2 in 5).
  const others = [];
  for (const user of ['test0000', 'test0001', 'test0002', 'test0005']) others.push(await apiBuyer(user, event.id));
  for (const b of others) {
    const st = await b.status();
    assert.equal(st.state, 'PREQUEUE');
    assert.equal(st.position, undefined);
    assert.equal(new Date(st.startsAt).getTime(), new Date(event.startsAt).getTime(), 'a pre-queue status says when the sale starts');
  }

  // The admin starts the sale now: the draw happens, and the page says what it gave this buyer
  // (a place in the line, or a turn at once).
  await call('PATCH', `/events/${event.id}`, { token: await admin(), body: { starts_at: new Date(Date.now() + 1000).toISOString() } });
  const drawn = page.getByTestId('lottery-result');
  await drawn.waitFor({ timeout: 60_000 });
  assert.match(await text(drawn), /draw/);
  await shot(page, 'prequeue-drawn');
  for (const b of others) assert.notEqual((await b.status()).state, 'PREQUEUE');

  // The others step aside if they were let in first; this buyer's turn comes and they buy.
  for (const b of others) await b.leave();
  await page.waitForURL(`**/shop/${event.id}`, { timeout: 60_000 });
  await page.getByText('You are in!').waitFor();
  await page.getByRole('button', { name: 'Buy 1 ticket' }).click();
  await page.waitForURL('**/checkout/*');
  await page.getByRole('button', { name: 'Pay ₩30,000' }).click();
  await page.getByText('Payment confirmed. Your tickets are booked!').waitFor({ timeout: 60_000 });
  page.assertClean();
  await context.close();
}

async function aWaitingBuyerIsToldSoldOutAndLetInWhenTicketsReturn(browser) {
  const { event, admin } = await eventWithItsOwnLine('Encore Night', { total_qty: 1 });
  // Someone else is let in first and holds the one ticket's admission.
  const first = await apiBuyer('test0001', event.id);
  const admitted = await waitFor('the first buyer let in', async () => {
    const st = await first.status();
    return st.state === 'READY' ? st : null;
  });

  const { context, page } = await openPage(browser, PHONE);
  await loginThroughPage(page, 'test0004');
  await page.waitForURL('**/shop', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Join the line for Encore Night' }).click();
  await page.waitForURL('**/waiting');
  await page.getByTestId('queue-position').waitFor();
  assert.equal(await text(page.getByTestId('queue-position')), '#1');
  await page.getByText('Live updates').waitFor();
  await shot(page, 'own-line-waiting-phone');

  // The last ticket is held: the waiting buyer is told at once, without reloading.
  const order = await first.order(admitted.gateToken);
  assert.equal(order.status, 'HOLD');
  const soldOut = page.getByTestId('sold-out');
  await soldOut.waitFor({ timeout: 60_000 });
  assert.match(await text(soldOut), /Sold out/);
  await page.getByRole('button', { name: 'Leave the line' }).waitFor();
  await shot(page, 'sold-out-phone');

  // The admin releases one more ticket: the line opens again and this buyer, next in it, is let in.
  await call('PATCH', `/events/${event.id}`, { token: await admin(), body: { total_qty: 2 } });
  await page.waitForURL(`**/shop/${event.id}`, { timeout: 60_000 });
  await page.getByRole('button', { name: 'Buy 1 ticket' }).click();
  await page.waitForURL('**/checkout/*');
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'HOLD');
  await shot(page, 'let-in-after-sold-out-phone');
  await publicWhen('the held ticket to show', `/events/${event.id}`, (e) => e.availableQty === 0);
  page.assertClean();
  await context.close();
}

async function aFailedPaymentCanBeRetried(browser) {
  const { context, page } = await openPage(browser, PHONE);
  await loginThroughPage(page, 'test0000', 'testtest', FAILING);
  await page.waitForURL('**/shop', { timeout: 60_000 });
  await page.getByRole('link', { name: 'Buy tickets for Flash Tickets Live' }).click();
  await page.getByRole('button', { name: 'Buy 1 ticket' }).click();
  await page.waitForURL('**/checkout/*');
  await page.getByRole('button', { name: 'Pay ₩50,000' }).click();
  await page.getByText('The payment failed.').waitFor({ timeout: 60_000 });
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'FAIL');
  assert.match(await text(page.getByRole('alert')), /declined/);
  await shot(page, 'payment-failed-phone');

  // The retry is a new payment; the page waits for its own result, not the old FAIL.
  const retried = page.waitForResponse((r) => r.url().endsWith('/payments') && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Try the payment again' }).click();
  const payment = await (await retried).json();
  assert.equal(payment.status, 'REQ');
  await page.getByText('Processing your payment…').waitFor();
  await page.getByText('The payment failed.').waitFor({ timeout: 60_000 });

  await page.getByRole('link', { name: 'My orders' }).first().click();
  await page.getByRole('link', { name: 'Retry the payment for Flash Tickets Live' }).waitFor();
  page.assertClean();
  await context.close();
}

// The monitoring charts during a sale: buyers join an event's own line and buy through the API
// while an admin watches the page. Self-contained: its own admin, event and helpers.

/** `call` with extra request headers (the order's Idempotency-Key and gate token). */
async function callWithHeaders(method, urlPath, { token, body, headers = {} }) {
  const res = await fetch(`${BASE}${urlPath}`, {
    method,
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${urlPath} → ${res.status}: ${JSON.stringify(data)}`);
  return data;
}

/** One buyer through the line: join, wait for READY, order one ticket, pay. */
async function buyThroughTheLine(userId, eventId) {
  const token = await login(userId);
  const { ticketId } = await call('POST', '/queue/enqueue', { token, body: { eventId } });
  const ready = await waitFor(`${userId} admitted`, async () => {
    const s = await call('GET', `/queue/status?ticketId=${ticketId}`);
    return s.state === 'READY' ? s : null;
  });
  const order = await callWithHeaders('POST', '/orders', {
    token,
    body: { event_id: eventId, qty: 1 },
    headers: { 'Idempotency-Key': crypto.randomUUID(), 'X-Gate-Token': ready.gateToken },
  });
  await call('POST', '/payments', { token, body: { orderId: order.orderId, method: 'MOCK' } });
  return order.orderId;
}

/** A chart's drawn state: seconds drawn, each line's sum over them, its markers. */
async function chartState(page, id) {
  const figure = page.locator(`figure.chart[data-chart="${id}"]`);
  const [points, sums, markers] = await Promise.all([figure.getAttribute('data-points'), figure.getAttribute('data-sums'), figure.getAttribute('data-markers')]);
  return { points: Number(points ?? 0), sums: JSON.parse(sums ?? '{}'), markers: (markers ?? '').split(' ').filter(Boolean) };
}

async function theMonitoringChartsMoveDuringASale(browser) {
  await call('POST', '/auth/register/admin', { body: { userId: 'monitor-admin', password: 'monitor-admin-pw', adminSecret: ADMIN_SECRET } });
  const admin = await login('monitor-admin', 'monitor-admin-pw');
  const now = Date.now();
  const event = await call('POST', '/events', {
    token: admin,
    body: {
      name: 'Charts Night',
      starts_at: new Date(now - 60_000).toISOString(),
      ends_at: new Date(now + 86_400_000).toISOString(),
      total_qty: 3,
      max_per_user: 1,
      price: 10000,
      queue_mode: 'event',
    },
  });
  await call('PATCH', `/events/${event.id}`, { token: admin, body: { status: 'ONSALE' } });

  const { context, page } = await openPage(browser, DESKTOP);
  await loginThroughPage(page, 'monitor-admin', 'monitor-admin-pw');
  await page.waitForURL('**/admin');
  await page.getByRole('link', { name: 'Monitoring' }).first().click();
  await page.waitForURL('**/admin/monitoring');
  // Every chart is drawn from the server's samples, and they keep coming.
  await page.locator('figure.chart[data-chart="http"] canvas').first().waitFor();
  assert.equal(await page.locator('figure.chart').count(), 6);
  const first = await waitFor('site-wide samples on the charts', async () => ((await chartState(page, 'http')).points > 0 ? chartState(page, 'http') : null));
  await waitFor('the site-wide charts growing', async () => (await chartState(page, 'http')).points > first.points);

  // The keyboard reaches the line picker.
  const picker = page.getByLabel('Queue line');
  let reached = false;
  for (let i = 0; i < 60 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await picker.evaluate((el) => el === document.activeElement);
  }
  assert.ok(reached, 'Tab reaches the queue line picker');
  await picker.selectOption({ label: 'Charts Night' });
  await page.getByText('Charts Night:', { exact: false }).waitFor();
  await shot(page, 'monitoring-charts-before');

  // The sale: three buyers for three tickets, two admitted at a time, then one too late.
  const buyers = ['test0002', 'test0003', 'test0004'].map((u) => buyThroughTheLine(u, event.id));
  await waitFor('arrivals and the queue on the line charts', async () => {
    const flow = await chartState(page, 'flow');
    return flow.sums.arrivalsPerSecond >= 1;
  });
  await shot(page, 'monitoring-charts-during');
  await Promise.all(buyers);
  const late = await login('test0005');
  const soldOut = await call('POST', '/queue/enqueue', { token: late, body: { eventId: event.id } });
  await waitFor('every order and payment, and the sold-out marker, on the charts', async () => {
    const [orders, flow, queue] = await Promise.all([chartState(page, 'orders'), chartState(page, 'flow'), chartState(page, 'queue')]);
    return (
      orders.sums['ordersPerSecond.created'] >= 3 &&
      orders.sums['paymentsPerSecond.ok'] >= 3 &&
      flow.sums.admissionsPerSecond >= 3 &&
      flow.sums.arrivalsPerSecond >= 4 &&
      queue.markers.includes('SOLD_OUT')
    );
  });
  assert.equal((await call('GET', `/queue/status?ticketId=${soldOut.ticketId}`)).state, 'SOLD_OUT');
  await page.getByText('line sold out', { exact: false }).waitFor();
  await shot(page, 'monitoring-charts-after');
  page.assertClean();
  await context.close();

  // On a phone the charts fit the screen's width.
  const phone = await openPage(browser, PHONE);
  await loginThroughPage(phone.page, 'monitor-admin', 'monitor-admin-pw');
  await phone.page.waitForURL('**/admin');
  await phone.page.goto(`${BASE}/admin/monitoring`);
  await waitFor('the charts on a phone', async () => (await chartState(phone.page, 'queue')).points > 0);
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the monitoring page is ${overflow}px wider than the phone`);
  await shot(phone.page, 'monitoring-charts-phone');
  phone.page.assertClean();
  await phone.context.close();
}

// ---------------------------------------------------------------------------------------------

const scenarios = [
  ['a buyer logs in, waits in the queue, buys and sees PAID', buyerWaitsBuysAndSeesPaid],
  ['without the socket, the queue still moves by polling', queuePollingWithoutTheSocket],
  ['two buyers race for the last ticket and exactly one gets it', twoBuyersRaceForTheLastTicket],
  ['an admin creates an event and puts it on sale', adminCreatesAnEventAndPutsItOnSale],
  ['the admin pages fit a phone', adminPagesOnAPhone],
  ['an admin schedules a sale with a pre-queue', anAdminSchedulesASaleWithAPreQueue],
  ['a buyer waits in a pre-queue and sees the draw at the start', aBuyerWaitsInAPreQueueAndSeesTheDraw],
  ['a waiting buyer is told sold out and let in when tickets return', aWaitingBuyerIsToldSoldOutAndLetInWhenTicketsReturn],
  ['the monitoring charts move during a sale', theMonitoringChartsMoveDuringASale],
  ['a failed payment can be retried', aFailedPaymentCanBeRetried],
];

await mkdir(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let passed = 0;
let failed = 0;
for (const [name, run] of scenarios) {
  const started = Date.now();
  console.log(`- ${name}`);
  try {
    await run(browser);
    passed += 1;
    console.log(`ok: ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED: ${name}\n${e.stack ?? e}`);
    for (const page of openPages) {
      console.log(`  page at ${page.url()}`);
      await shot(page, 'failure').catch(() => {});
    }
    // Later scenarios depend on the earlier ones' data; stop at the first failure.
    break;
  }
}
await browser.close();
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed || passed !== scenarios.length ? 1 : 0);
