// The monitoring page's live charts: the server's timeline (GET /events/admin/timeline, one
// sample a second, the last 15 minutes, the same on every instance) drawn with the vendored
// uPlot. uPlot's browser build is a classic script, loaded on first use from beside this module
// (the buyer pages never load it). Each chart has a text summary of its latest values, so
// nothing is only in the picture; DOM text only, never HTML.

import { h, replace } from './dom.js';
import { formatNumber } from './format.js';

const VENDOR = new URL('../vendor/', import.meta.url);
const WINDOW_S = 900;

let loading = null;
/** uPlot, loaded once (script and stylesheet from web/vendor). */
export function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = new URL('uPlot.min.css', VENDOR).href;
      document.head.append(css);
      const script = document.createElement('script');
      script.src = new URL('uPlot.iife.min.js', VENDOR).href;
      script.onload = () => (window.uPlot ? resolve(window.uPlot) : reject(new Error('uPlot did not load')));
      script.onerror = () => {
        loading = null;
        reject(new Error('Could not load the chart library'));
      };
      document.head.append(script);
    });
  }
  return loading;
}

const PHASE_LABELS = { PREQUEUE: 'pre-queue', OPEN: 'sale open', SOLD_OUT: 'sold out', CLOSED: 'closed' };

/** What each chart draws: [path into the timeline document, label, colour, dash]. */
export const CHARTS = [
  {
    id: 'queue',
    title: 'Queue: waiting and admitted',
    unit: 'tickets',
    lines: [
      ['queued', 'waiting', '#2563eb'],
      ['admitted', 'admitted', '#059669'],
    ],
  },
  {
    id: 'flow',
    title: 'Arrivals vs admissions per second',
    unit: 'per second',
    lines: [
      ['arrivalsPerSecond', 'arrivals', '#6b7280', [6, 4]],
      ['admissionsPerSecond', 'admissions', '#2563eb'],
    ],
  },
  {
    id: 'wait',
    title: 'Estimated wait for the last in line',
    unit: 'seconds',
    lines: [['estimatedWaitSeconds', 'estimated wait', '#7c3aed']],
  },
  {
    id: 'orders',
    title: 'Orders and payments per second (this event; every event for the site-wide queue)',
    unit: 'per second',
    lines: [
      ['ordersPerSecond.created', 'orders', '#d97706'],
      ['ordersPerSecond.expired', 'holds expired', '#9ca3af', [2, 3]],
      ['paymentsPerSecond.ok', 'payments OK', '#059669'],
      ['paymentsPerSecond.failed', 'payments failed', '#dc2626', [6, 4]],
    ],
  },
  {
    id: 'http',
    title: 'Requests per second and p99 latency (site-wide)',
    unit: 'per second',
    unit2: 'p99 ms',
    lines: [
      ['requestsPerSecond', 'requests', '#4338ca'],
      ['p99Ms', 'p99 latency (ms)', '#db2777', null, 'ms'],
    ],
  },
  {
    id: 'errors',
    title: 'Client (4xx) and server (5xx) errors per second (site-wide)',
    unit: 'per second',
    lines: [
      ['clientErrorsPerSecond', '4xx', '#d97706'],
      ['serverErrorsPerSecond', '5xx', '#b91c1c'],
    ],
  },
];

function pick(doc, path) {
  if (path === 'p99Ms') return (doc.p99Seconds ?? []).map((v) => (v === null ? null : Math.round(v * 1000)));
  return path.split('.').reduce((o, k) => o?.[k], doc) ?? [];
}

/**
 * The series kept by the page: the server's columns appended second by second and cut to the
 * last 15 minutes (the server's own window), plus the phase markers.
 */
export class Series {
  constructor() {
    this.t = [];
    this.columns = new Map(CHARTS.flatMap((c) => c.lines.map(([path]) => [path, []])));
    this.markers = [];
    this.until = null;
    this.phase = null;
    this.lines = [];
  }

  /** Adds a timeline answer (all of it, or the seconds after the last `since`). */
  add(doc) {
    const seen = this.t.length ? this.t[this.t.length - 1] : -Infinity;
    const fresh = doc.t.map((t, i) => [t, i]).filter(([t]) => t > seen);
    for (const [path, column] of this.columns) {
      const values = pick(doc, path);
      for (const [, i] of fresh) column.push(values[i] ?? null);
    }
    for (const [t] of fresh) this.t.push(t);
    for (const m of doc.markers ?? []) if (m.t > seen) this.markers.push(m);
    this.until = doc.until;
    if (doc.phase) this.phase = doc.phase;
    this.lines = doc.lines ?? this.lines;
    const oldest = (this.until ?? 0) - WINDOW_S + 1;
    let cut = 0;
    while (cut < this.t.length && this.t[cut] < oldest) cut += 1;
    if (cut) {
      this.t.splice(0, cut);
      for (const column of this.columns.values()) column.splice(0, cut);
    }
    this.markers = this.markers.filter((m) => m.t >= oldest);
    return fresh.length;
  }

  data(chart) {
    return [this.t, ...chart.lines.map(([path]) => this.columns.get(path))];
  }

  sum(path) {
    return this.columns.get(path).reduce((a, v) => a + (v ?? 0), 0);
  }

  latest(path) {
    const column = this.columns.get(path);
    for (let i = column.length - 1; i >= 0; i -= 1) if (column[i] !== null) return column[i];
    return null;
  }
}

/** Dashed vertical lines at the phase changes, labelled. */
function markerPlugin(series) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx, bbox } = u;
          const px = window.devicePixelRatio || 1;
          ctx.save();
          ctx.strokeStyle = '#374151';
          ctx.fillStyle = '#111827';
          ctx.lineWidth = px;
          ctx.setLineDash([4 * px, 4 * px]);
          ctx.font = `${11 * px}px system-ui, sans-serif`;
          ctx.textBaseline = 'top';
          series.markers.forEach((m, i) => {
            const x = Math.round(u.valToPos(m.t, 'x', true));
            if (x < bbox.left || x > bbox.left + bbox.width) return;
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
            ctx.fillText(PHASE_LABELS[m.phase] ?? m.phase, x + 4 * px, bbox.top + (4 + 14 * (i % 3)) * px);
          });
          ctx.restore();
        },
      ],
    },
  };
}

/** uPlot's point filter: the indices of values with no neighbour to draw a line to. */
function isolatedPoints(u, seriesIdx) {
  const ys = u.data[seriesIdx];
  const empty = (i) => ys[i] === null || ys[i] === undefined;
  const out = [];
  for (let i = 0; i < ys.length; i += 1) if (!empty(i) && empty(i - 1) && empty(i + 1)) out.push(i);
  return out.length ? out : null;
}

function format(v) {
  if (v === null || v === undefined) return '—';
  return Number.isInteger(v) ? formatNumber(v) : v.toFixed(1);
}

/**
 * Builds the charts into `container` for `series`; returns { update(), destroy() }. Widths
 * follow the container (phone-sized screens included).
 */
export function timelineCharts(uPlot, container, series) {
  const plots = [];
  const heightOf = () => (window.innerWidth < 600 ? 180 : 220);
  for (const chart of CHARTS) {
    const summary = h('p', { class: 'chart-summary muted small', 'aria-live': 'off' });
    const plot = h('div', { class: 'plot', 'aria-hidden': 'true' });
    const figure = h(
      'figure',
      { class: 'chart', dataset: { chart: chart.id, points: '0' } },
      h('figcaption', null, h('span', { class: 'chart-title' }, chart.title), summary),
      plot,
    );
    container.append(figure);
    const twoScales = Boolean(chart.unit2);
    const opts = {
      width: Math.max(260, plot.clientWidth || container.clientWidth),
      height: heightOf(),
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] },
        ...(twoScales ? { ms: { range: (u, min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] } } : {}),
      },
      axes: [
        {},
        { label: chart.unit, size: 56 },
        ...(twoScales ? [{ scale: 'ms', side: 1, label: chart.unit2, size: 56, grid: { show: false } }] : []),
      ],
      series: [
        {},
        ...chart.lines.map(([, label, color, dash, scale]) => ({
          label,
          stroke: color,
          width: 2,
          spanGaps: false,
          // A value between two gaps (a line active for one second) is a dot, not nothing.
          points: { show: false, filter: isolatedPoints },
          ...(dash ? { dash } : {}),
          ...(scale ? { scale } : {}),
        })),
      ],
      // The labels only: the values are in the summary above each chart.
      legend: { live: false },
      plugins: [markerPlugin(series)],
    };
    plots.push({ chart, figure, summary, plot, u: new uPlot(opts, series.data(chart), plot) });
  }

  const resize = () => {
    for (const p of plots) p.u.setSize({ width: Math.max(260, p.plot.clientWidth || container.clientWidth), height: heightOf() });
  };
  const observer = new ResizeObserver(resize);
  observer.observe(container);

  function update() {
    for (const p of plots) {
      p.u.setData(series.data(p.chart));
      // For scripts and tests: how many seconds are drawn, each line's sum over them, the markers.
      p.figure.dataset.points = String(series.t.length);
      p.figure.dataset.sums = JSON.stringify(Object.fromEntries(p.chart.lines.map(([path]) => [path, series.sum(path)])));
      p.figure.dataset.markers = series.markers.map((m) => m.phase).join(' ');
      const parts = p.chart.lines.map(([path, label]) => `${label} ${format(series.latest(path))}`);
      replace(p.summary, `Now: ${parts.join(' · ')}`);
    }
  }
  update();
  return {
    update,
    destroy() {
      observer.disconnect();
      for (const p of plots) p.u.destroy();
      container.replaceChildren();
    },
  };
}
