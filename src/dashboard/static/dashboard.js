// @ts-check
// The live dashboard page: one event stream (/events) brings the cluster snapshot whenever
// it changes and one metrics point a second; everything on the page is drawn from those.
// Read-only by design: the page has no action, so an unauthenticated listener can never
// change the cluster through it.
'use strict';

/** @typedef {import('../snapshot.js').ClusterSnapshot} ClusterSnapshot */
/** @typedef {import('../snapshot.js').SeriesPoint} SeriesPoint */
/** @typedef {import('../snapshot.js').MemberRow} MemberRow */

(function dashboard() {
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  /** @type {ClusterSnapshot | null} */
  let snap = null;
  /** @type {SeriesPoint[]} */
  let points = [];
  /** The browser's clock minus the node's, so running durations tick from the node's numbers. */
  let skewMs = 0;
  /** @type {Record<string, uPlot | null>} */
  const charts = { timeline: null, writes: null, commit: null, fsync: null };
  const SERIES_WINDOW_S = 300;

  const width = (/** @type {HTMLElement} */ el) => Math.max(200, el.clientWidth);
  const time = (/** @type {number} */ ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

  function setConnection(/** @type {'live' | 'reconnecting'} */ state, /** @type {string} */ text) {
    const el = $('conn');
    el.dataset.state = state;
    el.textContent = text;
  }

  function renderLeader() {
    if (!snap) return;
    const el = $('leader');
    const now = Date.now() - skewMs;
    if (snap.leader) {
      el.dataset.leader = snap.leader.id;
      const since = snap.leader.since === null ? '' : `, for ${fmtDuration(now - snap.leader.since)}`;
      el.textContent = `${snap.leader.id} leads (term ${snap.leader.term}${since})`;
      el.className = 'leader ok';
    } else {
      el.dataset.leader = '';
      el.textContent = `no leader known for ${fmtDuration(snap.leaderlessMs + (now - snap.at))}`;
      el.className = 'leader bad';
    }
  }

  function renderMembers() {
    if (!snap) return;
    const extra = snap.members.some((m) => m.priority !== undefined || m.drained !== undefined);
    for (const th of document.querySelectorAll('.col-extra')) /** @type {HTMLElement} */ (th).hidden = !extra;
    fillRows(
      $('members-body'),
      snap.members.map((m) => ({
        attrs: { 'data-id': m.id, 'data-role': m.role ?? '', 'data-health': m.health },
        className: `${m.role === 'leader' ? 'is-leader' : ''} health-${m.health}`,
        cells: [
          m.id + (m.reach === 'self' ? ' (this node)' : ''),
          m.clientAddress || null,
          m.peerAddress || null,
          m.reach === 'ok' || m.reach === 'self'
            ? `${m.role}${m.learner ? ' (learner)' : ''}`
            : m.reach === 'refused'
              ? 'not allowed to ask'
              : 'unreachable',
          m.term,
          m.commitIndex,
          m.appliedIndex,
          m.lag,
          m.role === 'leader' ? (m.leaseValid ? 'valid' : 'expired') : m.leaseValid === null ? null : '–',
          m.health === 'ready' ? 'ready' : `${m.health}: ${m.healthReason ?? ''}`,
          ...(extra ? [m.priority ?? null, m.drained === undefined ? null : m.drained ? 'drained' : 'no'] : []),
        ],
      })),
    );
    const refused = snap.members.flatMap((m) =>
      m.refusedPeers.map((p) => `${m.id} ${p.byPeer ? 'is refused by' : 'refuses'} ${p.peerId}: ${p.reason}`),
    );
    $('refused').textContent = refused.join('\n');
    $('refused').hidden = refused.length === 0;
  }

  function renderTimeline() {
    if (!snap) return;
    const changes = snap.timeline;
    const nowS = (Date.now() - skewMs) / 1000;
    /** @type {LeaderSpan[]} */
    const spans = [];
    changes.forEach((c, i) => {
      const next = changes[i + 1];
      const end = next
        ? (next.at - next.leaderlessMs) / 1000
        : snap && snap.leader
          ? nowS
          : (snap ? snap.at - snap.leaderlessMs : 0) / 1000;
      spans.push({ from: c.at / 1000, to: Math.max(c.at / 1000, end), leader: c.leader });
    });
    const el = $('timeline-chart');
    charts.timeline?.destroy();
    // The last hour, or less when the node has not run that long: a young cluster's changes
    // would otherwise be a sliver at the right edge.
    const first = spans.length > 0 ? spans[0].from - (changes[0]?.leaderlessMs ?? 0) / 1000 : nowS;
    const from = Math.max(nowS - 3600, Math.min(first - 30, nowS - 120));
    charts.timeline = leaderTimelineChart(
      el,
      spans,
      snap.members.map((m) => m.id),
      { width: width(el), from, to: nowS },
    );
    fillRows(
      $('timeline-body'),
      [...changes].reverse().map((c) => ({
        attrs: { 'data-leader': c.leader, 'data-cause': c.cause },
        cells: [time(c.at), `${c.previous ?? '–'} → ${c.leader}`, c.term, c.cause, fmtDuration(c.leaderlessMs)],
      })),
    );
    $('timeline-empty').hidden = changes.length > 0;
  }

  let drillsShown = '';
  function renderDrills() {
    if (!snap) return;
    // Rebuilt only when the list changed: a link replaced under the pointer loses the click.
    const key = JSON.stringify(snap.drills);
    if (key === drillsShown) return;
    drillsShown = key;
    $('drills').hidden = snap.drills.length === 0;
    const body = $('drills-body');
    fillRows(
      body,
      snap.drills.map((d) => ({
        attrs: { 'data-name': d.name },
        cells: [
          d.startedAt ? new Date(d.startedAt).toLocaleString() : d.name,
          d.fault,
          d.trials,
          d.writesLost,
          d.leaseOverlaps,
          d.rtoMedianMs === null ? null : fmtDuration(d.rtoMedianMs),
          d.rtoMaxMs === null ? null : fmtDuration(d.rtoMaxMs),
          d.newLeaderMedianMs === null ? null : fmtDuration(d.newLeaderMedianMs),
          d.error ?? 'report',
        ],
      })),
    );
    // The last cell links to the report (an element built here, never markup from the file).
    body.querySelectorAll('tr').forEach((tr, i) => {
      const d = snap?.drills[i];
      const td = tr.lastElementChild;
      if (!d || d.error !== null || !td) return;
      const a = document.createElement('a');
      a.href = `/drill-report?name=${encodeURIComponent(d.name)}`;
      a.textContent = 'report';
      td.replaceChildren(a);
    });
  }

  function renderCharts() {
    const xs = points.map((p) => p.t);
    const to = xs.length > 0 ? xs[xs.length - 1] : Date.now() / 1000;
    const range = { from: to - SERIES_WINDOW_S, to };
    const draw = (/** @type {string} */ key, /** @type {LineSeries[]} */ lines, /** @type {string} */ unit) => {
      const el = $(`chart-${key}`);
      const existing = charts[key];
      if (existing && existing.width === width(el)) {
        existing.setData([xs, ...lines.map((l) => [...l.values])]);
        return;
      }
      existing?.destroy();
      charts[key] = lineChart(el, xs, lines, { width: width(el), unit, ...range });
    };
    draw('writes', [{ label: 'writes/s', values: points.map((p) => p.writesPerSec), colour: '#2563eb' }], '/s');
    draw(
      'commit',
      [
        { label: 'mean', values: points.map((p) => p.commitMeanMs), colour: '#16a34a' },
        { label: 'p99', values: points.map((p) => p.commitP99Ms), colour: '#dc2626', dash: [4, 3] },
      ],
      'ms',
    );
    draw(
      'fsync',
      [
        { label: 'mean', values: points.map((p) => p.fsyncMeanMs), colour: '#16a34a' },
        { label: 'p99', values: points.map((p) => p.fsyncP99Ms), colour: '#dc2626', dash: [4, 3] },
      ],
      'ms',
    );
    const leads = snap?.members.find((m) => m.reach === 'self')?.role === 'leader';
    $('commit-note').hidden = leads || points.some((p) => p.commitMeanMs !== null);
  }

  function render() {
    if (!snap) return;
    $('title').textContent = `leaderd — cluster ${snap.clusterId}`;
    $('served-by').textContent = `served by ${snap.node}`;
    document.title = `leaderd ${snap.clusterId} — ${snap.leader ? `${snap.leader.id} leads` : 'no leader'}`;
    renderLeader();
    renderMembers();
    renderTimeline();
    renderDrills();
  }

  function connect() {
    const es = new EventSource('/events');
    es.addEventListener('open', () => setConnection('live', 'live'));
    es.addEventListener('error', () => setConnection('reconnecting', 'connection lost, reconnecting…'));
    es.addEventListener('snapshot', (e) => {
      snap = JSON.parse(/** @type {MessageEvent<string>} */ (e).data);
      if (snap) skewMs = Date.now() - snap.at;
      render();
    });
    es.addEventListener('series', (e) => {
      points = JSON.parse(/** @type {MessageEvent<string>} */ (e).data);
      renderCharts();
    });
    es.addEventListener('point', (e) => {
      points.push(JSON.parse(/** @type {MessageEvent<string>} */ (e).data));
      if (points.length > SERIES_WINDOW_S) points.shift();
      renderCharts();
    });
  }

  setInterval(renderLeader, 250);
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => {
      renderTimeline();
      renderCharts();
    }, 150);
  });
  connect();
})();
