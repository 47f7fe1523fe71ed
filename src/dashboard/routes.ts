// The dashboard on the node's HTTP listener (--listen-metrics): the page at `/`, its
// assets under /assets/, the event stream at /events and the same state as JSON at
// /api/cluster. Everything is read-only (the listener serves GET and HEAD only) and the
// listener has no authentication: it is meant for operators on a private address, like
// /metrics. What it shows beyond /metrics is each member's GetStatus answer and the
// members' addresses.
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { json, text, type HttpListener } from '../server/http-listener.js';
import type { LeadershipHistory } from '../server/leadership-history.js';
import type { LeaderView, MemberView, NodeStatusView } from '../server/node.js';
import { dashboardAssets, type Asset } from './assets.js';
import { ClusterView } from './cluster-view.js';
import { EventStreamHub } from './event-stream.js';
import { MetricsSampler, readHistogram } from './metrics-sampler.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './page.js';
import type { PeerStatusSource } from './peer-status.js';
import type { DrillRuns } from './drill-runs.js';
import { renderDrillReport } from './drill-report.js';

export interface DashboardDeps {
  readonly nodeId: string;
  readonly clusterId: string;
  status(): NodeStatusView;
  members(): readonly MemberView[];
  onLeaderChange?(listener: (l: LeaderView) => void): () => void;
  readonly history: LeadershipHistory;
  /** The node's metrics registry (NodeMetrics.registry). */
  readonly registry: Registry;
  readonly peers: PeerStatusSource;
  /** Saved drill results to list and render; none: the panel stays hidden. */
  readonly drills?: DrillRuns;
  readonly log: Logger;
  /** Event streams open at once (default 64); the next gets 503. */
  readonly maxSubscribers?: number;
  readonly probeTimeoutMs?: number;
  /** Where the page's files come from (default: the package's own; tests replace it). */
  readonly assets?: () => ReadonlyMap<string, Asset>;
}

export interface Dashboard {
  readonly view: ClusterView;
  readonly sampler: MetricsSampler;
  readonly streams: EventStreamHub;
  close(): void;
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

export function addDashboardRoutes(listener: HttpListener, deps: DashboardDeps): Dashboard {
  const view = new ClusterView({
    nodeId: deps.nodeId,
    clusterId: deps.clusterId,
    status: deps.status,
    members: deps.members,
    history: deps.history,
    peers: deps.peers,
    drills: () => deps.drills?.list() ?? [],
    ...(deps.onLeaderChange ? { onLeaderChange: deps.onLeaderChange } : {}),
    ...(deps.probeTimeoutMs !== undefined ? { probeTimeoutMs: deps.probeTimeoutMs } : {}),
  });
  const sampler = new MetricsSampler({
    appliedIndex: () => deps.status().appliedIndex,
    histogram: (name) => readHistogram(deps.registry, name),
  });
  const streams = new EventStreamHub(deps.maxSubscribers !== undefined ? { maxSubscribers: deps.maxSubscribers } : {});
  // One subscription to the view and one to the sampler feed every stream.
  let unsubscribeView: (() => void) | null = null;
  sampler.onPoint((p) => streams.broadcast('point', p));
  view.start();
  sampler.start();

  // A package that lost its static files still serves /metrics and health checks; the page
  // says what is missing instead of taking the node down with it.
  let assets: ReadonlyMap<string, Asset>;
  try {
    assets = (deps.assets ?? dashboardAssets)();
  } catch (err) {
    deps.log.warn({ node: deps.nodeId, err: (err as Error).message }, 'dashboard assets missing; / answers 503');
    assets = new Map();
  }
  listener.route('/', (_req, res) => {
    if (assets.size === 0) return text(res, 503, 'dashboard assets missing from this installation (see the node log)\n');
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': DASHBOARD_CSP,
      'X-Frame-Options': 'DENY',
      'Content-Length': Buffer.byteLength(DASHBOARD_HTML),
    });
    res.end(DASHBOARD_HTML);
  });
  for (const [name, asset] of assets) {
    listener.route(`/assets/${name}`, (_req, res) => {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': asset.contentType, 'Content-Length': asset.body.byteLength });
      res.end(asset.body);
    });
  }
  listener.route('/api/cluster', async (_req, res) => {
    json(res, 200, { snapshot: await view.current(), series: sampler.series() });
  });
  listener.route('/events', (req, res) => {
    const accepted = streams.accept(
      req,
      res,
      () => [
        ['snapshot', view.snapshot()],
        ['series', sampler.series()],
      ],
      () => {
        if (streams.size === 0) {
          unsubscribeView?.();
          unsubscribeView = null;
        }
      },
    );
    if (!accepted || req.method === 'HEAD') return;
    unsubscribeView ??= view.subscribe((s) => streams.broadcast('snapshot', s));
  });

  // A saved drill's report, rendered on request; only names the listing shows are served,
  // so the query cannot reach any other file.
  listener.route('/drill-report', (req, res) => {
    const name = new URL(req.url ?? '/', 'http://x').searchParams.get('name') ?? '';
    const result = deps.drills?.result(name) ?? null;
    if (result === null) return text(res, 404, `no drill result named ${JSON.stringify(name.slice(0, 200))}\n`);
    const html = renderDrillReport(result);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/html; charset=utf-8',
      'X-Frame-Options': 'DENY',
      'Content-Length': Buffer.byteLength(html),
    });
    res.end(html);
  });

  return {
    view,
    sampler,
    streams,
    close() {
      unsubscribeView?.();
      streams.close();
      view.stop();
      sampler.stop();
      deps.peers.close();
    },
  };
}
