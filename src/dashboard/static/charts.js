// @ts-check
// Charts shared by the live dashboard and the drill report (a classic script: its functions
// are globals for dashboard.js and report.js). uPlot draws everything; nothing here reaches
// the network, so the drill report renders from a file with the network off.
'use strict';

/** One colour per member, in member order; a leaderless span is drawn as a gap. */
const LEADERD_COLOURS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4b5563'];

/**
 * @typedef {{ from: number, to: number, leader: string | null }} LeaderSpan
 * A span of time (unix seconds) during which `leader` led, or nobody did (null).
 */

/**
 * Leadership as a Gantt-like chart: one row per member, a bar while it led, nothing while
 * the cluster had no leader.
 * @param {HTMLElement} el
 * @param {readonly LeaderSpan[]} spans
 * @param {readonly string[]} members row order (every leader in spans is added if missing)
 * @param {{ width: number, height?: number, from?: number, to?: number }} size
 * @returns {uPlot}
 */
function leaderTimelineChart(el, spans, members, size) {
  const ids = [...members];
  for (const s of spans) if (s.leader !== null && !ids.includes(s.leader)) ids.push(s.leader);
  /** @type {number[]} */
  const xs = [];
  /** @type {(number | null)[][]} */
  const ys = ids.map(() => []);
  const push = (/** @type {number} */ x, /** @type {number} */ row) => {
    xs.push(x);
    ys.forEach((y, i) => y.push(i === row ? i : null));
  };
  const sorted = [...spans].sort((a, b) => a.from - b.from);
  for (const s of sorted) {
    if (s.leader === null || s.to < s.from) continue;
    const row = ids.indexOf(s.leader);
    push(s.from, row);
    push(s.to, row);
    // A null right after each bar keeps the next leader's bar from joining this one.
    push(s.to, -1);
  }
  if (xs.length === 0) push(size.from ?? Date.now() / 1000, -1);
  /** @type {uPlot.Series[]} */
  const series = [{}];
  ids.forEach((id, i) =>
    series.push({
      label: id,
      stroke: LEADERD_COLOURS[i % LEADERD_COLOURS.length],
      width: 10,
      points: { show: false },
      spanGaps: false,
      value: (_u, v) => (v === null ? '' : 'leader'),
    }),
  );
  const pad = 0.5;
  /** @type {uPlot.Options} */
  const opts = {
    width: size.width,
    height: size.height ?? 60 + 28 * ids.length,
    series,
    scales: {
      x: { time: true, range: (_u, min, max) => [size.from ?? min, size.to ?? max] },
      y: { range: () => [-pad, ids.length - 1 + pad] },
    },
    axes: [
      {},
      {
        splits: () => ids.map((_, i) => i),
        values: (_u, splits) => splits.map((i) => ids[i] ?? ''),
        size: 60,
      },
    ],
    legend: { show: false },
    cursor: { show: true, y: false, drag: { x: false, y: false } },
  };
  return new uPlot(opts, [xs, ...ys], el);
}

/**
 * @typedef {{ label: string, values: readonly (number | null)[], colour: string, dash?: number[], pointsOnly?: boolean }} LineSeries
 */

/**
 * A time series chart (x in unix seconds) with one or more lines.
 * @param {HTMLElement} el
 * @param {readonly number[]} xs
 * @param {readonly LineSeries[]} lines
 * @param {{ width: number, height?: number, unit: string, from?: number, to?: number }} opts
 * @returns {uPlot}
 */
function lineChart(el, xs, lines, opts) {
  /** @type {uPlot.Series[]} */
  const series = [{}];
  for (const l of lines)
    series.push({
      label: l.label,
      stroke: l.colour,
      width: l.pointsOnly ? 0 : 1.5,
      ...(l.dash ? { dash: l.dash } : {}),
      spanGaps: false,
      points: l.pointsOnly ? { show: true, size: 4, fill: l.colour, stroke: l.colour } : { show: false },
      ...(l.pointsOnly ? { paths: () => null } : {}),
      value: (_u, v) => (v === null || v === undefined ? '-' : `${fmtNumber(v)} ${opts.unit}`),
    });
  /** @type {uPlot.Options} */
  const o = {
    width: opts.width,
    height: opts.height ?? 180,
    series,
    scales: {
      x: { time: true, range: (_u, min, max) => [opts.from ?? min, opts.to ?? max] },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [{}, { size: 60, values: (_u, splits) => splits.map((v) => fmtNumber(v)) }],
    cursor: { drag: { x: false, y: false } },
  };
  return new uPlot(o, [[...xs], ...lines.map((l) => [...l.values])], el);
}

/**
 * @param {number} v
 * @returns {string}
 */
function fmtNumber(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

/**
 * A duration in milliseconds as "850 ms", "1.4 s", "3 min 5 s".
 * @param {number} ms
 * @returns {string}
 */
function fmtDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * Replace the rows of a table body; every cell is text (never HTML), so nothing a member
 * reports (an id, an error message) can inject markup.
 * @param {HTMLElement} tbody
 * @param {readonly { cells: readonly (string | number | null)[], attrs?: Record<string, string>, className?: string }[]} rows
 */
function fillRows(tbody, rows) {
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement('tr');
    if (r.className) tr.className = r.className;
    for (const [k, v] of Object.entries(r.attrs ?? {})) tr.setAttribute(k, v);
    for (const c of r.cells) {
      const td = document.createElement('td');
      td.textContent = c === null ? '–' : String(c);
      // Long cells (an error message) are cut by the stylesheet; the whole text is in the tooltip.
      if (td.textContent.length > 40) td.title = td.textContent;
      tr.appendChild(td);
    }
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
}
