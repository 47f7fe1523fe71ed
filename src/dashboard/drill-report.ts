// The drill report: one self-contained HTML file (`leaderd drill --html FILE`, and the
// dashboard's link to a saved run) with uPlot, the chart code and the data inlined, so it
// opens from a mail attachment or a CI artifact with no network at all. The tables are
// rendered here (readable without scripts); the leadership timeline and the write-latency
// plot are drawn by the same chart code as the live dashboard.
import { downsampleSamples, type DrillResult, type DrillStats } from '../drill/result.js';
import { assetText } from './assets.js';

/** Latency points drawn at most: a browser plot gains nothing from more. */
export const REPORT_MAX_SAMPLES = 20_000;

export function renderDrillReport(result: DrillResult): string {
  const s = result.summary;
  const title = `leaderd drill: ${result.fault}, ${s.trials} trial${s.trials === 1 ? '' : 's'}, ${result.nodes} nodes`;
  const data = { ...result, samples: downsampleSamples(result.samples, REPORT_MAX_SAMPLES) };
  const stat = (label: string, st: DrillStats | null) =>
    `<tr><td>${esc(label)}</td>${st === null ? '<td colspan="5">–</td>' : [st.min, st.median, st.p90, st.p99, st.max].map((v) => `<td>${ms(v)}</td>`).join('')}</tr>`;
  const verdict = (n: number, what: string) => `<span class="${n === 0 ? 'ok-text' : 'bad-text'}">${n} ${esc(what)}</span>`;
  const trials = result.trials
    .map(
      (t) =>
        `<tr${t.error !== undefined || t.writesLost > 0 || t.leaseOverlap ? ' class="health-unreachable"' : ''}><td>${t.index}</td><td>${esc(t.fault)}</td>` +
        `<td>${ms(t.startedAtMs)}</td><td>${esc(t.oldLeader ?? '–')} → ${esc(t.newLeader ?? '–')}</td>` +
        `<td>${msOrDash(t.detectionMs)}</td><td>${msOrDash(t.newLeaderMs)}</td><td>${msOrDash(t.rtoMs)}</td>` +
        `<td>${t.writesLost}</td><td>${t.leaseOverlap ? 'yes' : 'no'}</td><td>${esc(t.error ?? '')}</td></tr>`,
    )
    .join('\n');
  const settings = Object.entries(result.settings)
    .map(([k, v]) => `${esc(k)} ${esc(String(v))}`)
    .join(', ');
  const failed = result.samples.filter((x) => x.latencyMs === null).length;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>
${assetText('uPlot.min.css')}
${assetText('dashboard.css')}
</style>
</head>
<body>
<header>
  <h1>${esc(title)}</h1>
  <span class="muted">started ${esc(result.startedAt)}</span>
  <span>${verdict(s.writesLost, 'acknowledged writes lost')}, ${verdict(s.leaseOverlaps, 'trials with two leaders at once')}</span>
</header>
<section>
  <h2>Summary</h2>
  <table class="stats" id="summary">
    <thead><tr><th></th><th>min</th><th>median</th><th>p90</th><th>p99</th><th>max</th></tr></thead>
    <tbody>
${stat('fault → detected', s.detectionMs)}
${stat('fault → new leader', s.newLeaderMs)}
${stat('write unavailability (RTO)', s.rtoMs)}
    </tbody>
  </table>
  <p class="note">${result.samples.length} writes sampled, ${failed} failed (not acknowledged). Settings: ${settings || '–'}.
  Percentiles are nearest-rank: each figure is one a trial measured.</p>
</section>
<section>
  <h2>Leadership</h2>
  <div id="timeline-chart"></div>
  <p class="note">One row per member: a bar while it led, a gap while the cluster had no leader.</p>
</section>
<section>
  <h2>Write latency</h2>
  <div id="latency-chart"></div>
  <p class="note">Each dot is a write: its latency when acknowledged; failed writes in red along the top; faults injected in orange along the bottom.</p>
</section>
<section>
  <h2>Trials</h2>
  <div class="scroll">
  <table id="trials">
    <thead><tr><th>#</th><th>fault</th><th>at</th><th>leader</th><th>detected</th><th>new leader</th><th>RTO</th><th>writes lost</th><th>two leaders</th><th>error</th></tr></thead>
    <tbody>
${trials}
    </tbody>
  </table>
  </div>
</section>
<script type="application/json" id="drill-data">${jsonForScript(data)}</script>
<script>${scriptText(assetText('uPlot.iife.min.js'))}</script>
<script>${scriptText(assetText('charts.js'))}</script>
<script>${scriptText(assetText('report.js'))}</script>
</body>
</html>
`;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML content or a quoted attribute. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * JSON inside a <script> element: `<` escaped so that no string in the data (a trial's
 * error message, say) can close the element or open a comment; U+2028/2029 for old parsers.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A script inlined as it is, refusing what would end the element early. */
function scriptText(js: string): string {
  if (/<\/script/i.test(js)) throw new Error('an inlined script contains </script');
  return js;
}

function ms(v: number): string {
  return v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`;
}

function msOrDash(v: number | null): string {
  return v === null ? '–' : ms(v);
}
