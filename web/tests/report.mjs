#!/usr/bin/env node
// Browser test of the rehearsal's report.html, driving Debian's Chromium headless with
// playwright-core. Run by `cargo test -p flash-rehearse --test report_in_browser`
// (integration/rehearse/tests/report_in_browser.rs), which rehearses a small sale against
// `flash up` with the `flash-rehearse` binary and hands over the directory it wrote.
//
//   node web/tests/report.mjs DIRECTORY      (holding report.html and report.json)
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), FLASH_SCREENSHOTS (default
// integration/artifacts/screenshots at the repository root).
//
// It opens report.html from file:// (offline: any request for anything else fails the test), on
// a desktop and on a phone-sized screen, and checks that every chart is drawn on a canvas of
// real size, that the totals each chart's caption shows are report.json's totals, that the
// verdict and every audit check are shown as report.json has them, and that the page logged no
// console error and threw nothing. A screenshot of each is saved.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const DIR = process.argv[2] ? path.resolve(process.argv[2]) : '';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve(process.env.FLASH_SCREENSHOTS ?? path.join(here, '../../integration/artifacts/screenshots'));
const TOTAL_TIMEOUT_MS = 60_000;
const CHARTS = ['running', 'queue', 'rates', 'errors'];

if (!DIR || !existsSync(path.join(DIR, 'report.html')) || !existsSync(path.join(DIR, 'report.json'))) {
  console.error('usage: node web/tests/report.mjs DIRECTORY   (holding report.html and report.json)');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`error: ${CHROMIUM} not found. Install Debian's Chromium: apt-get install -y chromium`);
  process.exit(1);
}
setTimeout(() => {
  console.error(`error: the report's browser test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS).unref();

const json = JSON.parse(readFileSync(path.join(DIR, 'report.json'), 'utf8'));
const url = pathToFileURL(path.join(DIR, 'report.html')).href;

/** What each chart's caption must show: report.json's totals, counted apart from the timeline. */
const expectedTotals = {
  arrivals: json.sale.arrivals,
  admitted: json.sale.admissions,
  orders: json.sale.orders,
  tickets: json.sale.ticketsOrdered,
  paid: json.sale.outcomes.paid,
  // The timeline is the sale's; report.json's error count includes the setup's.
  errors: json.sale.errors - json.setup.errors,
};

async function checkReport(browser, name, options) {
  const context = await browser.newContext({ ...options, locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
  // Self-contained: the page asks for nothing but itself.
  page.on('request', (r) => {
    if (r.url() !== url) problems.push(`requested ${r.url()}`);
  });

  await page.goto(url);
  await page
    .waitForFunction((n) => document.documentElement.dataset.charts === String(n), CHARTS.length)
    .catch((e) => {
      throw new Error(`the charts were not drawn: ${e.message}\n${problems.join('\n')}`);
    });

  for (const id of CHARTS) {
    const canvas = page.locator(`#chart-${id} canvas`);
    assert.equal(await canvas.count(), 1, `chart ${id} has one canvas`);
    const size = await canvas.evaluate((c) => ({ width: c.width, height: c.height, box: c.getBoundingClientRect().toJSON() }));
    assert.ok(size.width > 0 && size.height > 0, `chart ${id}'s canvas is ${size.width}×${size.height}`);
    assert.ok(size.box.width > 100 && size.box.height > 100, `chart ${id} is shown ${size.box.width}×${size.box.height}`);
    assert.ok(size.box.right <= (options.viewport.width + 1), `chart ${id} fits the screen (right edge ${size.box.right})`);
  }

  const shown = await page.$$eval('[data-total]', (els) => els.map((e) => [e.dataset.total, Number(e.textContent)]));
  assert.ok(shown.length >= Object.keys(expectedTotals).length, `totals shown: ${JSON.stringify(shown)}`);
  for (const [key, value] of shown) {
    assert.ok(key in expectedTotals, `an unexpected total ${key}`);
    assert.equal(value, expectedTotals[key], `the charts show ${key} = ${value}, report.json says ${expectedTotals[key]}`);
  }
  for (const key of Object.keys(expectedTotals)) {
    assert.ok(shown.some(([k]) => k === key), `no chart shows the total of ${key}`);
  }
  const peak = Number(await page.locator('[data-peak="queueLength"]').textContent());
  assert.equal(peak, Math.max(0, ...json.series.queueLength), 'the queue chart shows the longest line');

  const verdict = await page.locator('#verdict').textContent();
  assert.equal(verdict, json.verdict.passed ? 'PASSED' : 'FAILED');
  const results = await page.$$eval('#checks-api tbody tr', (rows) =>
    rows.map((r) => [r.cells[0].textContent, r.cells[2].textContent]),
  );
  assert.deepEqual(
    results,
    json.audit.checks.map((c) => [c.name, c.passed === true ? 'PASS' : c.passed === false ? 'FAIL' : 'skip']),
    'every audit check is shown with its result',
  );
  const stepsShown = await page.$$eval('table.latency tbody th', (ths) => ths.map((t) => t.textContent).sort());
  assert.deepEqual(stepsShown, json.steps.map((s) => s.name).sort(), 'every step has its latency row');

  await mkdir(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `rehearsal-report-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${path.relative(process.cwd(), file)}`);
  assert.deepEqual(problems, [], `the page reported errors:\n${problems.join('\n')}`);
  await context.close();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let passed = 0;
let failed = 0;
const scenarios = [
  ['desktop', { viewport: { width: 1280, height: 900 } }],
  ['phone', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }],
];
try {
  for (const [name, options] of scenarios) {
    const started = Date.now();
    try {
      await checkReport(browser, name, options);
      passed += 1;
      console.log(`ok: report.html on a ${name} screen (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed += 1;
      console.log(`FAILED: report.html on a ${name} screen\n${e.stack ?? e}`);
    }
  }
} finally {
  await browser.close();
}
console.log(`report browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed === scenarios.length ? 0 : 1);
