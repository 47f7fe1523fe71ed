// Three embedded nodes in this test process, each with its own LevelDB and gRPC
// transport on loopback, replicating a small user state machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createNode, LeadershipLostError, type EmbeddedNode, type StateMachine, type Entry } from '../../src/index.js';
import { freePort, waitFor } from '../e2e/cluster.js';

class Counter implements StateMachine {
  total = 0;
  apply(e: Entry): number {
    this.total += Number(new TextDecoder().decode(e.data));
    return this.total;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.total));
  }
  restore(data: Uint8Array): void {
    this.total = Number(new TextDecoder().decode(data));
  }
}

let nodes: EmbeddedNode[] = [];
let dirs: string[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.close().catch(() => {})));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  nodes = [];
  dirs = [];
});

async function cluster(n = 3): Promise<{ nodes: EmbeddedNode[]; sms: Counter[] }> {
  const ids = Array.from({ length: n }, (_, i) => `e${i + 1}`);
  const peers: Record<string, string> = {};
  for (const id of ids) peers[id] = `127.0.0.1:${await freePort()}`;
  const sms = ids.map(() => new Counter());
  const dir = mkdtempSync(join(tmpdir(), 'leaderd-embed-'));
  dirs.push(dir);
  nodes = await Promise.all(
    ids.map((id, i) => createNode({ id, dataDir: join(dir, id), listenPeer: peers[id]!, peers, stateMachine: sms[i]! })),
  );
  return { nodes, sms };
}

const leaderOf = (ns: EmbeddedNode[]) => waitFor('a leader with a valid lease', () => ns.find((n) => n.isLeader()), 15_000);

describe('createNode: leaderd embedded in your process', () => {
  it('elects one leader whose lease is exclusive, and replicates your commands to every state machine', async () => {
    const { nodes: ns, sms } = await cluster();
    const leader = await leaderOf(ns);
    expect(ns.filter((n) => n.isLeader())).toEqual([leader]);
    for (const n of ns) expect(n.leader().leaderId).toBe(leader.id);
    const results = [];
    for (const v of [1, 2, 3]) results.push(await leader.propose(new TextEncoder().encode(String(v))));
    expect(results).toEqual([1, 3, 6]);
    await waitFor('every replica applied', () => (sms.every((s) => s.total === 6) ? true : undefined), 5000);
    const follower = ns.find((n) => n !== leader)!;
    await expect(follower.propose(new TextEncoder().encode('1'))).rejects.toMatchObject({ kind: 'not-leader', outcome: 'not-applied' });
  });

  it('runWhileLeader runs the work on the leader only, aborts it when leadership moves, and hands it to the new leader with a higher fencing token', async () => {
    const { nodes: ns } = await cluster();
    const runs: { id: string; token: number; abortedAt?: number; startedAt: number; reason?: unknown }[] = [];
    const stop = new AbortController();
    const loops = ns.map((n) =>
      n.runWhileLeader(async (signal, token) => {
        const run = { id: n.id, token, startedAt: performance.now() } as (typeof runs)[number];
        runs.push(run);
        await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
        run.abortedAt = performance.now();
        run.reason = signal.reason;
      }, stop.signal),
    );
    const first = await leaderOf(ns);
    await waitFor('work started on the leader', () => (runs.length === 1 ? true : undefined), 5000);
    expect(runs[0]!.id).toBe(first.id);
    const target = ns.find((n) => n !== first)!;
    await first.transferLeadership(target.id);
    await waitFor('work moved to the new leader', () => (runs.length === 2 ? true : undefined), 5000);
    expect(runs[1]!.id).toBe(target.id);
    expect(runs[1]!.token).toBeGreaterThan(runs[0]!.token);
    // The old leader's work was told to stop before the new one started.
    expect(runs[0]!.abortedAt).toBeDefined();
    expect(runs[0]!.abortedAt!).toBeLessThanOrEqual(runs[1]!.startedAt);
    // With the reason the client library's grants use: its term as the token, and why.
    expect(runs[0]!.reason).toBeInstanceOf(LeadershipLostError);
    expect(runs[0]!.reason).toMatchObject({ token: runs[0]!.token });
    expect(['lease-lost', 'superseded']).toContain((runs[0]!.reason as LeadershipLostError).reason);
    stop.abort();
    await Promise.all(loops);
    expect(runs[1]!.reason).toMatchObject({ reason: 'closed', token: runs[1]!.token });
  });

  it('leadershipChanges reports every change this node sees, in order', async () => {
    const { nodes: ns } = await cluster();
    const watcher = ns[0]!;
    const seen: string[] = [];
    const ac = new AbortController();
    const reading = (async () => {
      for await (const c of watcher.leadershipChanges(ac.signal)) seen.push(`${c.term}:${c.leaderId}`);
    })();
    let leader = await leaderOf(ns);
    const leaders = [leader.id];
    for (let i = 0; i < 2; i++) {
      const next = ns.find((n) => n !== leader)!;
      await leader.transferLeadership(next.id);
      leader = await leaderOf(ns);
      leaders.push(leader.id);
    }
    await waitFor('watcher saw the last leader', () => (seen.at(-1)?.endsWith(`:${leader.id}`) ? true : undefined), 5000);
    ac.abort();
    await reading;
    const named = seen.filter((s) => !s.endsWith(':')).map((s) => s.split(':')[1]);
    expect(named).toEqual(leaders);
    const terms = seen.map((s) => Number(s.split(':')[0]));
    expect([...terms].sort((a, b) => a - b)).toEqual(terms);
  });
});
