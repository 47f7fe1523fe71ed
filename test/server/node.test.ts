// The node runtime on its own: one real node (LevelDB in a temp dir, gRPC transport on
// loopback), and small embedded clusters for snapshots.
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LevelStorage } from '../../src/storage/leveldb-storage.js';
import { LeaderdNode, type StateMachine } from '../../src/server/node.js';
import { createNode, type EmbeddedNode, type Entry } from '../../src/index.js';
import { KvStore } from '../../src/statemachine/kv-store.js';
import { encodeCommand } from '../../src/statemachine/commands.js';
import { freePort, waitFor } from '../e2e/cluster.js';
import { perTestResources, singleNodeOptions } from './single-node.js';

class Counter implements StateMachine {
  total = 0;
  applied = 0;
  apply(e: Entry): number {
    this.total += Number(new TextDecoder().decode(e.data));
    this.applied++;
    return this.total;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.total));
  }
  restore(data: Uint8Array): void {
    this.total = Number(new TextDecoder().decode(data));
  }
}

const { tempDir, cleanups } = perTestResources('leaderd-node-');

async function single(dataDir: string, sm: StateMachine, snapshotEntries?: number): Promise<{ node: LeaderdNode; fatal: Error[] }> {
  const fatal: Error[] = [];
  const peer = `127.0.0.1:${await freePort()}`;
  const node = await LeaderdNode.start(
    singleNodeOptions(dataDir, peer, { stateMachine: sm, onFatal: (e) => fatal.push(e), ...(snapshotEntries ? { snapshotEntries } : {}) }),
  );
  cleanups.push(() => node.stop({ transfer: false }));
  await waitFor('leader', () => (node.isLeader() ? true : undefined), 5000);
  return { node, fatal };
}

const cmd = (n: number) => new TextEncoder().encode(String(n));

describe('LeaderdNode', () => {
  it('a linearizable read issued right behind two proposals resolves at once (the entries it waits for may apply in the same batch)', async () => {
    const { node } = await single(tempDir(), new Counter());
    const pa = node.propose(cmd(1));
    const pb = node.propose(cmd(2));
    const t0 = performance.now();
    await node.readBarrier(AbortSignal.timeout(3000));
    const ms = performance.now() - t0;
    await Promise.all([pa, pb]);
    expect(ms).toBeLessThan(1000);
  });

  it('group commit: many concurrent proposals share a few synced writes', async () => {
    const { node } = await single(tempDir(), new Counter());
    const persist = vi.spyOn(LevelStorage.prototype, 'persist');
    try {
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => node.propose(cmd(i))));
      expect(new Set(results.map((r) => r.index)).size).toBe(200);
      const synced = persist.mock.calls.filter(([, sync]) => sync).length;
      console.log(`200 concurrent proposals: ${synced} synced writes`);
      expect(synced).toBeLessThan(50);
    } finally {
      persist.mockRestore();
    }
  });

  it('takes snapshots as it applies, keeps running, and restarts from the snapshot with the same state', async () => {
    const dir = tempDir();
    const sm = new Counter();
    const { node, fatal } = await single(dir, sm, 5);
    for (let i = 1; i <= 23; i++) await node.propose(cmd(i));
    expect(fatal).toEqual([]);
    expect(sm.total).toBe((23 * 24) / 2);
    await node.stop({ transfer: false });
    cleanups.length = 0;
    const sm2 = new Counter();
    const { node: again, fatal: fatal2 } = await single(dir, sm2, 5);
    await again.readBarrier(AbortSignal.timeout(3000));
    expect(fatal2).toEqual([]);
    expect(sm2.total).toBe((23 * 24) / 2);
    // Restored from a snapshot: far fewer than 23 commands were re-applied.
    expect(sm2.applied).toBeLessThan(10);
  });
});

describe('snapshots by bytes, with a trailing tail', () => {
  it('large entries trigger a snapshot long before the entry count, the log keeps a tail, and a restart restores the state', async () => {
    const dir = tempDir();
    const peer = `127.0.0.1:${await freePort()}`;
    const options = (sm: StateMachine) =>
      singleNodeOptions(dir, peer, { stateMachine: sm, snapshotEntries: 1_000_000, snapshotBytes: 8 << 10, snapshotTail: { entries: 3 } });
    const compact = vi.spyOn(LevelStorage.prototype, 'compact');
    const kib = new TextEncoder().encode('1'.padStart(1024, '0')); // the number 1, in 1 KiB
    try {
      const sm = new Counter();
      const node = await LeaderdNode.start(options(sm));
      cleanups.push(() => node.stop({ transfer: false }));
      await waitFor('leader', () => (node.isLeader() ? true : undefined), 5000);
      for (let i = 0; i < 20; i++) await node.propose(kib);
      expect(sm.total).toBe(20);
      // Every 8 KiB of applied entries: a snapshot, and entries up to 3 before it are dropped.
      expect(compact.mock.calls.length).toBeGreaterThanOrEqual(2);
      for (const [snap, compactTo] of compact.mock.calls) expect(compactTo).toBe(snap.meta.index - 3);
      await node.stop({ transfer: false });
      cleanups.length = 0;
      const sm2 = new Counter();
      const again = await LeaderdNode.start(options(sm2));
      cleanups.push(() => again.stop({ transfer: false }));
      await waitFor('leader', () => (again.isLeader() ? true : undefined), 5000);
      await again.readBarrier(AbortSignal.timeout(3000));
      expect(sm2.total).toBe(20);
      expect(sm2.applied).toBeLessThan(10);
    } finally {
      compact.mockRestore();
    }
  });
});

describe('the log byte trigger counts what the log holds alone', () => {
  it('values the store keeps as views of their entries do not trigger a snapshot; the same bytes written over one key do', async () => {
    const dir = tempDir();
    const peer = `127.0.0.1:${await freePort()}`;
    const store = new KvStore();
    const compact = vi.spyOn(LevelStorage.prototype, 'compact');
    try {
      const node = await LeaderdNode.start(
        singleNodeOptions(dir, peer, {
          stateMachine: store,
          snapshotEntries: 1_000_000,
          snapshotBytes: 64 << 10,
          snapshotTail: { entries: 0 },
        }),
      );
      cleanups.push(() => node.stop({ transfer: false }));
      await waitFor('leader', () => (node.isLeader() ? true : undefined), 5000);
      const put = (key: string, i: number) =>
        node.propose(encodeCommand({ cmd: { type: 'put', key, value: new Uint8Array(16 << 10).fill(i), lease: 0 } }));
      // 320 KiB of values, 5x the trigger, each kept by the store as a view of its entry.
      let lastDistinct = 0;
      for (let i = 0; i < 20; i++) lastDistinct = (await put(`k${i}`, i)).index;
      // The same over one key: each value replaced leaves its entry to the log alone.
      for (let i = 0; i < 20; i++) await put('same', i);
      await waitFor('a snapshot', () => (compact.mock.calls.length > 0 ? true : undefined), 5000);
      expect(compact.mock.calls[0]![0].meta.index).toBeGreaterThan(lastDistinct);
      expect(store.get('k19')?.value).toEqual(new Uint8Array(16 << 10).fill(19));
    } finally {
      compact.mockRestore();
    }
  });
});

describe('snapshots between nodes', () => {
  it('a node that was down while the others compacted their logs catches up from a snapshot of their state', async () => {
    const ids = ['s1', 's2', 's3'];
    const peers: Record<string, string> = {};
    for (const id of ids) peers[id] = `127.0.0.1:${await freePort()}`;
    const dir = tempDir();
    const sms = new Map(ids.map((id) => [id, new Counter()]));
    const nodes = new Map<string, EmbeddedNode>();
    const open = async (id: string, sm: Counter) => {
      const n = await createNode({ id, dataDir: join(dir, id), listenPeer: peers[id]!, peers, stateMachine: sm, snapshotEntries: 10 });
      nodes.set(id, n);
      cleanups.push(() => n.close());
      return n;
    };
    for (const id of ids) await open(id, sms.get(id)!);
    const leader = await waitFor('leader', () => [...nodes.values()].find((n) => n.isLeader()), 15_000);
    const lagger = ids.find((id) => id !== leader.id)!;
    await nodes.get(lagger)!.close();
    for (let i = 1; i <= 60; i++) await leader.propose(cmd(1));
    expect(leader.status().appliedIndex).toBeGreaterThan(60);
    // Restart the lagging node with an empty state machine: it can only get the state
    // from a snapshot (the others compacted their logs every 10 entries).
    const fresh = new Counter();
    const back = await open(lagger, fresh);
    await waitFor('lagging node caught up', () => (fresh.total === 60 ? true : undefined), 15_000);
    expect(back.status().commitIndex).toBeGreaterThanOrEqual(leader.status().commitIndex - 1);
    // Fewer commands applied one by one than were proposed: the rest came in the snapshot.
    expect(fresh.applied).toBeLessThan(60);
  });
});
