#!/usr/bin/env node
// The monitoring page while `flash rehearse` runs a sale against `flash up` (issue 17): an admin
// watches the live charts before, during and after the rehearsal, driving Debian's Chromium
// headless with playwright-core. Run by `cargo test -p flash-rehearse --test report_in_browser`
// (integration/rehearse/tests/report_in_browser.rs), which starts the system and names the
// rehearsal binary.
//
//   node web/tests/monitor.mjs http://127.0.0.1:PORT
//
// Environment: FLASH_ADMIN_SECRET (the server's ADMIN_REGISTER_SECRET), FLASH_REHEARSE_BIN (the
// flash-rehearse binary), FLASH_REHEARSE_OUT (where it writes its reports), all required;
// CHROMIUM_PATH (default /usr/bin/chromium), FLASH_SCREENSHOTS (default
// integration/artifacts/screenshots at the repository root).
//
// It checks that the charts of the rehearsed event's line gain arrivals and admissions while the
// rehearsal is still running, and that once it is over they show as many successful payments as
// report.json counts paid orders;
// screenshots before, during and after are saved. Any console error fails it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.argv[2] ?? '').replace(/\/+$/, '');
const ADMIN_SECRET = process.env.FLASH_ADMIN_SECRET ?? '';
const REHEARSE = process.env.FLASH_REHEARSE_BIN ?? '';
const OUT = process.env.FLASH_REHEARSE_OUT ?? '';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve(process.env.FLASH_SCREENSHOTS ?? path.join(here, '../../integration/artifacts/screenshots'));
const TOTAL_TIMEOUT_MS = 240_000;

if (!BASE || !ADMIN_SECRET || !REHEARSE || !OUT) {
  console.error('usage: FLASH_ADMIN_SECRET=… FLASH_REHEARSE_BIN=… FLASH_REHEARSE_OUT=… node web/tests/monitor.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`error: ${CHROMIUM} not found. Install Debian's Chromium: apt-get install -y chromium`);
  process.exit(1);
}
setTimeout(() => {
  console.error(`error: the monitoring test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS).unref();

async function call(method, urlPath, body) {
  const res = await fetch(`${BASE}${urlPath}`, {
    method,
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${urlPath} → ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Polls `check` until it returns something truthy; the deadline is only a safety net. */
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

/** A chart's drawn state, as the page writes it on the figure: seconds drawn, each line's sum. */
async function chartState(page, id) {
  const figure = page.locator(`figure.chart[data-chart="${id}"]`);
  const [points, sums] = await Promise.all([figure.getAttribute('data-points'), figure.getAttribute('data-sums')]);
  return { points: Number(points ?? 0), sums: JSON.parse(sums ?? '{}') };
}

/** The rehearsal as a child process: `exited` resolves with its code and everything it said. */
function rehearse(eventId) {
  const args = ['--url', BASE, '-n', '20', '--qty', '1..2', '--ramp', '10s', '--event', eventId];
  args.push('--think', '50ms..150ms', '--payment-retries', '6', '--payment-retry-delay', '50ms');
  args.push('--order-poll-interval', '20ms', '--deadline', '90s', '--settle', '10s', '--no-progress', '--out', OUT);
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const child = spawn(REHEARSE, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  child.stdout.on('data', (d) => (said += d));
  child.stderr.on('data', (d) => (said += d));
  const run = { running: true };
  run.exited = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      run.running = false;
      resolve({ code, said });
    });
  });
  return run;
}

await mkdir(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' })).newPage();
page.setDefaultTimeout(60_000);
const problems = [];
page.on('console', (m) => {
  if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
const shot = (name) => page.screenshot({ path: path.join(SHOTS, `monitoring-rehearsal-${name}.png`), fullPage: true });

let rehearsal = null;
try {
  await call('POST', '/auth/register/admin', { userId: 'watcher', password: 'watcher-password', adminSecret: ADMIN_SECRET });
  await page.goto(`${BASE}/`);
  await page.waitForURL('**/login');
  await page.getByLabel('User ID').fill('watcher');
  await page.getByLabel('Password').fill('watcher-password');
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL('**/admin');
  await page.getByRole('link', { name: 'Monitoring' }).first().click();
  await page.waitForURL('**/admin/monitoring');
  await page.locator('figure.chart[data-chart="http"] canvas').first().waitFor();
  await waitFor('the first samples on the charts', async () => (await chartState(page, 'http')).points > 0);
  await shot('before');

  const event = (await call('GET', '/events')).find((e) => e.status === 'ONSALE');
  assert.ok(event, 'an event on sale to rehearse');
  rehearsal = rehearse(event.id);

  // The rehearsed line shows up in the picker once it has figures; its charts fill while the
  // buyers are still arriving.
  const picker = page.getByLabel('Queue line');
  await waitFor('the rehearsed line in the picker', async () => (await picker.locator(`option[value="${event.id}"]`).count()) > 0).catch(async (e) => {
    const options = await picker.locator('option').evaluateAll((os) => os.map((o) => o.value));
    const note = await page.evaluate(async (id) => {
      const token = JSON.parse(localStorage.getItem('flash-tickets-auth') ?? '{}').accessToken;
      const get = async (line) => (await fetch(`/events/admin/timeline?line=${line}`, { headers: { Authorization: `Bearer ${token}` } })).json();
      const [own, site] = await Promise.all([get(id), get('__global__')]);
      return JSON.stringify({ ownLines: own.lines, ownArrivals: own.arrivalsPerSecond, ownQueued: own.queued, siteLines: site.lines, siteT: site.t?.length });
    }, event.id);
    throw new Error(`${e.message}\noptions: ${options.join(', ')}\nrehearsal running: ${rehearsal.running}\npage: ${note.slice(0, 300)}\nrehearsal said:\n${(await Promise.race([rehearsal.exited, new Promise((r) => setTimeout(() => r({ said: '(still running)' }), 1000))])).said}`);
  });
  await picker.selectOption(event.id);
  await waitFor('arrivals and admissions on the rehearsed line', async () => {
    const flow = await chartState(page, 'flow');
    return flow.sums.arrivalsPerSecond >= 5 && flow.sums.admissionsPerSecond >= 2;
  });
  assert.ok(rehearsal.running, 'the charts moved only after the rehearsal had ended: they are not live');
  await shot('during');

  const { code, said } = await rehearsal.exited;
  assert.equal(code, 0, `the rehearsal failed:\n${said}`);
  const report = JSON.parse(readFileSync(path.join(OUT, 'report.json'), 'utf8'));
  const paid = report.sale.outcomes.paid;
  assert.ok(paid > 0, `nobody paid:\n${said}`);
  // Every paid order has exactly one successful payment, and nothing else ran on this system.
  const orders = await waitFor(`the rehearsal's ${paid} paid orders on the charts`, async () => {
    const o = await chartState(page, 'orders');
    return (o.sums['paymentsPerSecond.ok'] ?? 0) >= paid ? o : null;
  });
  assert.equal(orders.sums['paymentsPerSecond.ok'], paid, 'the charts show report.json\'s paid orders');
  await shot('after');
  assert.deepEqual(problems, [], 'the page logged no error');
  console.log(`monitoring during a rehearsal: ok (${report.sale.arrivals} arrivals, ${paid} paid)`);
} catch (e) {
  console.log(`FAILED: ${e.stack ?? e}`);
  if (problems.length) console.log(problems.join('\n'));
  await shot('failure').catch(() => {});
  if (rehearsal?.running) console.log(`(the rehearsal was still running)`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
process.exit(process.exitCode ?? 0);
