// The dashboard's HTML shell; dashboard.js fills it from the event stream. Served with a
// Content-Security-Policy that allows scripts only from this listener and requests only
// back to it, so nothing a member reports can run as script in an operator's browser.

export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leaderd</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/dashboard.css">
</head>
<body>
<header>
  <h1 id="title">leaderd</h1>
  <span id="leader" class="leader" data-leader="">connecting…</span>
  <span id="served-by" class="muted"></span>
  <span id="conn" data-state="connecting">connecting</span>
</header>
<section id="members">
  <h2>Members</h2>
  <div class="scroll">
  <table>
    <thead><tr>
      <th>member</th><th>client address</th><th>peer address</th><th>role</th><th>term</th>
      <th>commit</th><th>applied</th><th>lag</th><th>lease</th><th>health</th>
      <th class="col-extra" hidden>priority</th><th class="col-extra" hidden>drain</th>
    </tr></thead>
    <tbody id="members-body"></tbody>
  </table>
  </div>
  <pre id="refused" hidden></pre>
  <p class="note">Other members' state is what this node got from their status RPC (each asked every 500 ms, 800 ms deadline).
  Lag: entries the member has yet to apply of what the leader knows committed. Lease: only a leader holds one.</p>
</section>
<section id="timeline">
  <h2>Leadership, last hour</h2>
  <div id="timeline-chart"></div>
  <p id="timeline-empty" class="note">No leader change seen by this node in the last hour.</p>
  <div class="timeline-list">
  <table>
    <thead><tr><th>when</th><th>change</th><th>term</th><th>cause</th><th>without a leader</th></tr></thead>
    <tbody id="timeline-body"></tbody>
  </table>
  </div>
</section>
<div class="grid">
  <section><h2>Writes per second</h2><div id="chart-writes"></div>
    <p class="note">Entries applied per second on this node: every write of the cluster.</p></section>
  <section><h2>Proposal → commit (ms)</h2><div id="chart-commit"></div>
    <p id="commit-note" class="note">Timed on the leader only: this node has not led in the window shown.</p></section>
  <section><h2>fsync (ms)</h2><div id="chart-fsync"></div>
    <p class="note">Each synced LevelDB write of this node (p99 estimated from histogram buckets).</p></section>
</div>
<section id="drills" hidden>
  <h2>Recent drills</h2>
  <div class="scroll">
  <table>
    <thead><tr><th>started</th><th>fault</th><th>trials</th><th>writes lost</th><th>lease overlaps</th>
      <th>RTO median</th><th>RTO max</th><th>new leader median</th><th></th></tr></thead>
    <tbody id="drills-body"></tbody>
  </table>
  </div>
</section>
<script src="/assets/uPlot.iife.min.js"></script>
<script src="/assets/charts.js"></script>
<script src="/assets/dashboard.js"></script>
</body>
</html>
`;
