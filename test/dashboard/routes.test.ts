// The dashboard's routes on a real HTTP listener, without a cluster: the page and its
// assets with their security headers, the JSON state, drill reports only by listed name,
// and a node whose package lost the page's files still answering everything else.
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { addDashboardRoutes, type DashboardDeps } from '../../src/dashboard/routes.js';
import { HttpListener } from '../../src/server/http-listener.js';
import { LeadershipHistory } from '../../src/server/leadership-history.js';
import type { NodeStatusView } from '../../src/server/node.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const status: NodeStatusView = {
  nodeId: 'a',
  role: 'leader',
  term: 2,
  leaderId: 'a',
  commitIndex: 5,
  appliedIndex: 5,
  lastLogIndex: 5,
  leaseValid: true,
  refusedPeers: [],
};

async function serve(over: Partial<DashboardDeps> = {}): Promise<string> {
  const listener = new HttpListener(pino({ level: 'silent' }));
  const dash = addDashboardRoutes(listener, {
    nodeId: 'a',
    clusterId: 'test',
    status: () => status,
    members: () => [{ id: 'a', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2', learner: false, priority: 1, drained: false }],
    history: new LeadershipHistory(),
    registry: new Registry(),
    peers: { getStatus: async () => ({ kind: 'unreachable', message: 'x' }), close: () => {} },
    log: pino({ level: 'silent' }),
    ...over,
  });
  listener.route('/healthz', (_req, res) => void res.end('ok'));
  const port = await listener.listen('127.0.0.1:0');
  cleanups.push(() => listener.close());
  cleanups.push(() => dash.close());
  return `http://127.0.0.1:${port}`;
}

const get = (url: string, init: RequestInit = {}) => fetch(url, { ...init, signal: AbortSignal.timeout(5000) });

describe('dashboard routes', () => {
  it('serves the page with a CSP that allows only its own scripts, its assets, and the state as JSON', async () => {
    const base = await serve();
    const page = await get(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    for (const src of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) {
      const a = await get(`${base}${src[1]}`);
      expect(a.status, src[1]).toBe(200);
      expect(a.headers.get('x-content-type-options')).toBe('nosniff');
      expect(a.headers.get('content-type')).toMatch(/^text\/(javascript|css)/);
    }
    const state = (await (await get(`${base}/api/cluster`)).json()) as { snapshot: { leader: { id: string }; members: unknown[] } };
    expect(state.snapshot.leader.id).toBe('a');
    expect(state.snapshot.members).toHaveLength(1);
    // Read-only: nothing but GET and HEAD.
    expect((await get(`${base}/api/cluster`, { method: 'POST' })).status).toBe(405);
    expect((await get(`${base}/drill-report?name=x.json`)).status).toBe(404);
  });

  it("without the page's files: / answers 503 naming the problem, and everything else still works", async () => {
    const base = await serve({
      assets: () => {
        throw new Error('dashboard assets not found');
      },
    });
    const page = await get(`${base}/`);
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('assets missing');
    expect((await get(`${base}/api/cluster`)).status).toBe(200);
    expect((await get(`${base}/healthz`)).status).toBe(200);
  });
});
