// @ts-check
// The drill report's plots, drawn from the data inlined in the file (#drill-data) with the
// chart code the live dashboard uses. Runs from a file with no network.
'use strict';

/** @typedef {import('../../drill/result.js').DrillResult} DrillResult */

(function report() {
  const dataEl = document.getElementById('drill-data');
  if (!dataEl) return;
  /** @type {DrillResult} */
  const r = JSON.parse(dataEl.textContent ?? '{}');
  const t0 = Date.parse(r.startedAt) / 1000;
  const at = (/** @type {number} */ ms) => t0 + ms / 1000;
  const end = Math.max(0, ...r.samples.map((s) => s.atMs), ...r.leadership.map((l) => l.toMs), ...r.trials.map((t) => t.startedAtMs));
  const range = { from: t0, to: at(end) };
  const width = (/** @type {HTMLElement} */ el) => Math.max(300, el.clientWidth);

  const timeline = /** @type {HTMLElement} */ (document.getElementById('timeline-chart'));
  const leaders = [...new Set(r.leadership.map((l) => l.leader).filter((l) => l !== null))].sort();
  leaderTimelineChart(
    timeline,
    r.leadership.map((l) => ({ from: at(l.fromMs), to: at(l.toMs), leader: l.leader })),
    /** @type {string[]} */ (leaders),
    { width: width(timeline), ...range },
  );

  const latency = /** @type {HTMLElement} */ (document.getElementById('latency-chart'));
  const samples = [...r.samples].sort((a, b) => a.atMs - b.atMs);
  const max = Math.max(1, ...samples.map((s) => s.latencyMs ?? 0));
  // One x axis for writes and fault marks: merge both, each series null where it has no point.
  /** @type {{ x: number, ok: number | null, failed: number | null, fault: number | null }[]} */
  const rows = samples.map((s) => ({
    x: at(s.atMs),
    ok: s.latencyMs,
    failed: s.latencyMs === null ? max : null,
    fault: null,
  }));
  for (const t of r.trials) rows.push({ x: at(t.startedAtMs), ok: null, failed: null, fault: 0 });
  rows.sort((a, b) => a.x - b.x);
  lineChart(
    latency,
    rows.map((p) => p.x),
    [
      { label: 'write latency', values: rows.map((p) => p.ok), colour: '#2563eb', pointsOnly: true },
      { label: 'failed write', values: rows.map((p) => p.failed), colour: '#dc2626', pointsOnly: true },
      { label: 'fault injected', values: rows.map((p) => p.fault), colour: '#d97706', pointsOnly: true },
    ],
    { width: width(latency), height: 260, unit: 'ms', ...range },
  );
})();
