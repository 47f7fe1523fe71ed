// The handshake's incarnation and timing checks: a peer with other timing, or a member
// that comes back as another incarnation (wiped or replaced data dir), is refused in both
// directions before a single Raft message passes; both sides log it with both values.
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeId } from '../../src/raft/types.js';
import type { PeerTiming } from '../../src/transport/codec.js';
import { checkHello, type HandshakePolicy, type Refusal } from '../../src/transport/handshake.js';
import { heartbeat, mesh, Nodes, sleep, waitFor, type TestNode } from './helpers.js';

const nodes = new Nodes();
afterEach(() => nodes.closeAll());

const TIMING: PeerTiming = { heartbeatMs: 100, electionTimeoutMs: 1000, tickMs: 10, leaseDriftMs: 100 };

class Policy implements HandshakePolicy {
  readonly known = new Map<NodeId, string>();
  readonly refusedBy: { id: NodeId; refusal: Refusal }[] = [];
  constructor(
    readonly incarnation: string,
    readonly timing: PeerTiming = TIMING,
  ) {}
  knownIncarnation(id: NodeId): string | undefined {
    return this.known.get(id);
  }
  learnIncarnation(id: NodeId, incarnation: string): void {
    this.known.set(id, incarnation);
  }
  knownIncarnations(): ReadonlyMap<NodeId, string> {
    return this.known;
  }
  heardIncarnation(id: NodeId, incarnation: string): void {
    this.known.set(id, incarnation);
  }
  refusedByPeer(id: NodeId, refusal: Refusal): void {
    this.refusedBy.push({ id, refusal });
  }
}

async function start(id: NodeId, policy: Policy): Promise<TestNode> {
  const n = await nodes.start(id, { minBackoffMs: 20, maxBackoffMs: 100 });
  n.transport.setHandshake(policy);
  return n;
}

async function exchange(a: TestNode, b: TestNode, rounds: number): Promise<void> {
  for (let i = 1; i <= rounds; i++) {
    a.transport.send(heartbeat(a.id, b.id, i));
    b.transport.send(heartbeat(b.id, a.id, i));
    await sleep(20);
  }
}

describe('checkHello', () => {
  const hello = { clusterId: 'c', nodeId: 'n3', peerAddress: 'x:1', clientAddress: 'x:2' };

  it('admits the same timing and a known incarnation, learns an unknown one, refuses another', () => {
    const p = new Policy('self');
    expect(checkHello('n1', p, { ...hello, incarnation: 'i1', timing: TIMING })).toBeNull();
    expect(p.known.get('n3')).toBe('i1');
    expect(checkHello('n1', p, { ...hello, incarnation: 'i1', timing: TIMING })).toBeNull();
    const r = checkHello('n1', p, { ...hello, incarnation: 'i2', timing: TIMING });
    expect(r?.kind).toBe('incarnation');
    expect(r?.reason).toMatch(/n3 is incarnation i2, but n1 knows member n3 as incarnation i1/);
    expect(p.known.get('n3')).toBe('i1');
  });

  it('adopts what an admitted peer knows of third members, never over what it knows itself, never from a refused peer', () => {
    const p = new Policy('self');
    p.known.set('n4', 'mine');
    const gossip = new Map([
      ['n2', 'i2'], // unknown here: adopted
      ['n4', 'theirs'], // known here: kept as it is
      ['n1', 'not-me'], // this node itself: ignored
    ]);
    expect(checkHello('n1', p, { ...hello, incarnation: 'i3', timing: TIMING, knownIncarnations: gossip })).toBeNull();
    expect(p.known.get('n2')).toBe('i2');
    expect(p.known.get('n4')).toBe('mine');
    expect(p.known.has('n1')).toBe(false);
    // A wiped n2 (new incarnation) is now refused here, though this node never met it.
    expect(checkHello('n1', p, { ...hello, nodeId: 'n2', incarnation: 'i2-new', timing: TIMING })?.kind).toBe('incarnation');

    const q = new Policy('self');
    q.known.set('n3', 'old');
    const refused = checkHello('n1', q, { ...hello, incarnation: 'new', timing: TIMING, knownIncarnations: new Map([['n5', 'x']]) });
    expect(refused?.kind).toBe('incarnation');
    expect(q.known.has('n5')).toBe(false);
  });

  it('refuses any timing difference, naming both sides, before learning the incarnation', () => {
    for (const diff of [{ heartbeatMs: 300 }, { electionTimeoutMs: 3000 }, { tickMs: 5 }, { leaseDriftMs: 50 }]) {
      const p = new Policy('self');
      const r = checkHello('n1', p, { ...hello, incarnation: 'i1', timing: { ...TIMING, ...diff } });
      expect(r?.kind).toBe('timing');
      expect(r?.reason).toContain('n1 has heartbeat 100 ms, election timeout 1000 ms, tick 10 ms, lease drift margin 100 ms');
      expect(p.known.size).toBe(0);
    }
  });

  it('admits a Hello from an older node that sends neither', () => {
    const p = new Policy('self');
    expect(checkHello('n1', p, { ...hello })).toBeNull();
    expect(p.known.size).toBe(0);
  });
});

describe('GrpcTransport handshake', () => {
  it('a peer with other timing is refused both ways: no message passes, both log both values, both list it as refused', async () => {
    const a = await start('n1', new Policy('ia'));
    const b = await start('n2', new Policy('ib', { heartbeatMs: 300, electionTimeoutMs: 3000, tickMs: 10, leaseDriftMs: 300 }));
    mesh([a, b]);
    await exchange(a, b, 15);
    expect(a.received).toEqual([]);
    expect(b.received).toEqual([]);
    for (const n of [a, b]) {
      const line = n.lines.find((l) => l.level === 40 && l['kind'] === 'timing');
      expect(line?.['reason']).toMatch(
        /election timeout 1000 ms.*election timeout 3000 ms|election timeout 3000 ms.*election timeout 1000 ms/,
      );
      expect(n.transport.refusedPeers().map((r) => r.kind)).toContain('timing');
    }
  });

  it('a member that comes back as another incarnation is refused both ways and told why; the same incarnation is admitted again', async () => {
    const pa = new Policy('ia');
    const a = await start('n1', pa);
    let b = await start('n2', new Policy('ib-1'));
    mesh([a, b]);
    a.transport.send(heartbeat('n1', 'n2', 1));
    await waitFor('first contact', () => b.received.length > 0 && pa.known.get('n2') === 'ib-1');

    // n2's data dir is wiped: same id and address, new incarnation.
    const port = b.port;
    await b.transport.close();
    const pb = new Policy('ib-2');
    b = await nodes.start('n2', { listenPeer: `127.0.0.1:${port}`, minBackoffMs: 20, maxBackoffMs: 100 });
    b.transport.setHandshake(pb);
    mesh([a, b]);
    await exchange(a, b, 20);
    expect(a.received.filter((m) => m.from === 'n2')).toEqual([]);
    expect(b.received).toEqual([]);
    expect(pb.refusedBy.map((r) => r.refusal.kind)).toContain('incarnation');
    expect(pb.refusedBy[0]?.refusal.reason).toMatch(/n2 is incarnation ib-2, but n1 knows member n2 as incarnation ib-1/);
    expect(a.transport.refusedPeers()).toContainEqual(expect.objectContaining({ peerId: 'n2', kind: 'incarnation', byPeer: false }));
    expect(b.transport.refusedPeers()).toContainEqual(expect.objectContaining({ peerId: 'n1', kind: 'incarnation', byPeer: true }));
    expect(pa.known.get('n2')).toBe('ib-1');
  });
});
