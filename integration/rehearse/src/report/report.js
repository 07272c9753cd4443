// The charts of report.html (inlined by html.rs after uPlot): the sale's timeline, drawn from
// the report's own data, the JSON blob #report-data (the same document as report.json). Each
// chart's caption gives the totals of what it plots, summed from the plotted data, so a reader
// (and the browser test) can hold them against the report's totals. DOM text only, never HTML.
(() => {
  'use strict';
  const report = JSON.parse(document.getElementById('report-data').textContent);
  const s = report.series;
  const intervalS = s.intervalMs / 1000;

  // x: the end of each interval (seconds since the sale clock started), after a point at 0.
  const xs = [0, ...s.arrivals.map((_, i) => Number(((i + 1) * intervalS).toFixed(3)))];
  const sum = (column) => column.reduce((a, v) => a + v, 0);
  const running = (column) => {
    let total = 0;
    return [0, ...column.map((v) => (total += v))];
  };
  const perSecond = (column) => [0, ...column.map((v) => v / intervalS)];
  const atEnd = (column) => [0, ...column];

  const CHARTS = [
    {
      id: 'running',
      title: 'Running totals: buyers through the sale',
      unit: 'count',
      shape: running,
      stepped: false,
      lines: [
        ['arrivals', 'arrived', '#9ca3af', [6, 4]],
        ['admitted', 'admitted', '#2563eb'],
        ['orders', 'orders placed', '#d97706'],
        ['tickets', 'tickets sold', '#9333ea'],
        ['paid', 'paid', '#059669'],
      ],
    },
    {
      id: 'queue',
      title: 'Queue length: buyers waiting for an admission',
      unit: 'buyers',
      shape: atEnd,
      stepped: false,
      lines: [['queueLength', 'waiting', '#2563eb']],
      level: true,
    },
    {
      id: 'rates',
      title: 'Arrivals, admissions, orders and payments per second',
      unit: 'per second',
      shape: perSecond,
      stepped: true,
      lines: [
        ['arrivals', 'arrivals', '#6b7280'],
        ['admitted', 'admissions', '#2563eb'],
        ['orders', 'orders', '#d97706'],
        ['paid', 'paid', '#059669'],
      ],
    },
    {
      id: 'errors',
      title: 'Failed requests per second',
      unit: 'per second',
      shape: perSecond,
      stepped: true,
      lines: [['errors', 'errors', '#dc2626']],
    },
  ];

  const t = report.timeline;
  const MOMENTS = [
    ['first admission', t.firstAdmissionS],
    ['sold out', t.soldOutS],
    ['all paid', t.allPaidS],
  ].filter(([, at]) => at !== null && at !== undefined);

  /** Dashed vertical lines at the sale's moments. */
  function moments() {
    return {
      hooks: {
        draw: [
          (u) => {
            const { ctx, bbox } = u;
            const px = window.devicePixelRatio || 1;
            ctx.save();
            ctx.strokeStyle = '#6b7280';
            ctx.fillStyle = '#374151';
            ctx.lineWidth = px;
            ctx.setLineDash([4 * px, 4 * px]);
            ctx.font = `${11 * px}px system-ui, sans-serif`;
            ctx.textAlign = 'left';
            ctx.textBaseline = 'top';
            MOMENTS.forEach(([name, at], i) => {
              const x = Math.round(u.valToPos(at, 'x', true));
              if (x < bbox.left || x > bbox.left + bbox.width) return;
              ctx.beginPath();
              ctx.moveTo(x, bbox.top);
              ctx.lineTo(x, bbox.top + bbox.height);
              ctx.stroke();
              ctx.fillText(name, x + 4 * px, bbox.top + (4 + 14 * i) * px);
            });
            ctx.restore();
          },
        ],
      },
    };
  }

  function element(tag, attrs = {}, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** The caption's totals: what each plotted column adds up to (its peak for a level). */
  function totals(chart) {
    const p = element('p', { class: 'chart-totals' });
    for (const [key, label, color] of chart.lines) {
      const item = element('span', { class: 'chart-total' });
      const swatch = element('i', { class: 'swatch' });
      swatch.style.background = color;
      item.append(swatch, `${label} `);
      if (chart.level) {
        item.append('peak ', element('b', { 'data-peak': key }, String(Math.max(0, ...s[key]))));
      } else {
        item.append(element('b', { 'data-total': key }, String(sum(s[key]))));
        if (chart.shape === perSecond) item.append(' in all');
      }
      p.append(item);
    }
    return p;
  }

  const container = document.getElementById('charts');
  const plots = [];
  const heightOf = () => (window.innerWidth < 600 ? 200 : 240);
  for (const chart of CHARTS) {
    const figure = element('figure', { class: 'chart', id: `chart-${chart.id}` });
    const caption = element('figcaption');
    caption.append(element('span', { class: 'chart-title' }, chart.title), totals(chart));
    const plot = element('div', { class: 'plot' });
    figure.append(caption, plot);
    container.append(figure);
    const opts = {
      width: Math.max(280, plot.clientWidth),
      height: heightOf(),
      scales: {
        x: { time: false },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.08)] },
      },
      axes: [{ label: 'seconds since the sale started' }, { label: chart.unit, size: 56 }],
      series: [
        { label: 'time (s)' },
        ...chart.lines.map(([, label, color, dash]) => ({
          label,
          stroke: color,
          width: 2,
          ...(dash ? { dash } : {}),
          points: { show: false },
          ...(chart.stepped ? { paths: uPlot.paths.stepped({ align: -1 }) } : {}),
        })),
      ],
      plugins: [moments()],
    };
    const data = [xs, ...chart.lines.map(([key]) => chart.shape(s[key]))];
    plots.push({ u: new uPlot(opts, data, plot), plot });
  }

  window.addEventListener('resize', () => {
    for (const { u, plot } of plots) u.setSize({ width: Math.max(280, plot.clientWidth), height: heightOf() });
  });
  // The browser test waits for this.
  document.documentElement.dataset.charts = String(plots.length);
})();
