// The dashboard's cluster view: what one node shows about the others. A member that is
// dead, or that accepts connections and never answers, must show as unreachable after one
// deadline, without piling calls up; lag and health come from the members' own answers.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterView } from '../../src/dashboard/cluster-view.js';
import { GrpcPeerStatusSource, type PeerStatus, type PeerStatusError, type PeerStatusSource } from '../../src/dashboard/peer-status.js';
import { LeadershipHistory } from '../../src/server/leadership-history.js';
import type { MemberView, NodeStatusView } from '../../src/server/node.js';
import { freePort } from '../e2e/cluster.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const members: MemberView[] = [
  { id: 'a', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:11', learner: false, priority: 1, drained: false },
  { id: 'b', peerAddress: '127.0.0.1:2', clientAddress: '127.0.0.1:12', learner: false, priority: 1, drained: false },
  { id: 'c', peerAddress: '127.0.0.1:3', clientAddress: '127.0.0.1:13', learner: false, priority: 1, drained: false },
];

const selfStatus = (over: Partial<NodeStatusView> = {}): NodeStatusView => ({
  nodeId: 'a',
  role: 'follower',
  term: 4,
  leaderId: 'b',
  commitIndex: 90,
  appliedIndex: 85,
  lastLogIndex: 90,
  leaseValid: false,
  refusedPeers: [],
  ...over,
});

const peerStatus = (over: Partial<PeerStatus>): PeerStatus => ({
  nodeId: 'x',
  role: 'follower',
  term: 4,
  leaderId: 'b',
  commitIndex: 100,
  appliedIndex: 100,
  lastLogIndex: 100,
  leaseValid: false,
  version: '0.1.0',
  refusedPeers: [],
  storeBytes: 0,
  quotaBytes: 0,
  ...over,
});

function view(peers: PeerStatusSource, status = selfStatus()): ClusterView {
  const v = new ClusterView({
    nodeId: 'a',
    clusterId: 'test',
    status: () => status,
    members: () => members,
    history: new LeadershipHistory(),
    peers,
    drills: () => [],
    probeTimeoutMs: 300,
    pollMs: 50,
  });
  cleanups.push(() => v.stop());
  return v;
}

describe('cluster view', () => {
  it('computes each member’s lag behind the leader’s commit index and its health from its own status', async () => {
    const answers: Record<string, PeerStatus | PeerStatusError> = {
      '127.0.0.1:12': peerStatus({ nodeId: 'b', role: 'leader', leaseValid: true, commitIndex: 100, appliedIndex: 100 }),
      '127.0.0.1:13': { kind: 'unreachable', message: 'connect ECONNREFUSED 127.0.0.1:13' },
    };
    const v = view({ getStatus: async (addr) => answers[addr]!, close: () => {} });
    const s = await v.current();
    const row = (id: string) => s.members.find((m) => m.id === id)!;
    expect(s.leader).toMatchObject({ id: 'b', term: 4 });
    expect(row('b')).toMatchObject({ reach: 'ok', role: 'leader', leaseValid: true, lag: 0, health: 'ready' });
    // The serving node has applied 85 of the leader's 100.
    expect(row('a')).toMatchObject({ reach: 'self', lag: 15, health: 'not-ready', healthReason: 'applied 85 of 90 committed' });
    expect(row('c')).toMatchObject({ reach: 'unreachable', role: null, lag: null, health: 'unreachable' });
    expect(row('c').error).toContain('ECONNREFUSED');
  });

  it('a refused status call (auth) shows as refused, not as a dead member', async () => {
    const v = view({ getStatus: async () => ({ kind: 'refused', message: 'authentication required' }), close: () => {} });
    const s = await v.current();
    expect(s.members.find((m) => m.id === 'b')).toMatchObject({ reach: 'refused', health: 'unreachable' });
  });

  it('asks a member that has not answered yet no second time: one call in flight per member, however often it polls', async () => {
    const calls = new Map<string, number>();
    const pending: (() => void)[] = [];
    const v = view({
      getStatus: (addr) => {
        calls.set(addr, (calls.get(addr) ?? 0) + 1);
        return new Promise((resolve) => pending.push(() => resolve({ kind: 'unreachable', message: 'deadline exceeded' })));
      },
      close: () => {},
    });
    v.start();
    const unsubscribe = v.subscribe(() => {});
    cleanups.push(unsubscribe);
    await new Promise((r) => setTimeout(r, 400)); // 8 polls
    expect(calls.get('127.0.0.1:12')).toBe(1);
    expect(calls.get('127.0.0.1:13')).toBe(1);
    for (const p of pending.splice(0)) p();
    await new Promise((r) => setTimeout(r, 120));
    expect(calls.get('127.0.0.1:12')).toBeGreaterThanOrEqual(2);
  });

  it('a member that accepts connections and never answers shows as unreachable after the deadline (real gRPC channel)', async () => {
    // A TCP listener that never speaks HTTP/2: the worst case, a hung process or a black hole behind a proxy.
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => sockets.add(s));
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const source = new GrpcPeerStatusSource();
    cleanups.push(() => source.close());
    const t0 = performance.now();
    const answer = await source.getStatus(`127.0.0.1:${port}`, 300);
    const ms = performance.now() - t0;
    expect(answer).toMatchObject({ kind: 'unreachable' });
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2000);
  });

  it('tells its subscribers of a change and stays quiet while nothing changes', async () => {
    let status = selfStatus();
    const v = new ClusterView({
      nodeId: 'a',
      clusterId: 'test',
      status: () => status,
      members: () => members.slice(0, 1),
      history: new LeadershipHistory(),
      peers: { getStatus: async () => ({ kind: 'unreachable', message: 'x' }), close: () => {} },
      drills: () => [],
      pollMs: 30,
    });
    cleanups.push(() => v.stop());
    const seen: (string | undefined)[] = [];
    v.start();
    cleanups.push(v.subscribe((s) => seen.push(s.leader?.id)));
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual(['b']);
    status = selfStatus({ leaderId: 'c', term: 5 });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['b', 'c']);
  });
});
