// What survives on disk: a follower that crashed rejoins and catches up from its own
// data dir, a whole cluster comes back after a clean stop, and a data dir is never
// adopted by another cluster or another node.
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeStatus } from '../../src/client/cluster-client.js';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import type { KeyValue } from '../../src/client/types.js';
import { dumpStore } from '../storage/helpers.js';
import { LocalCluster, dirDigest, freePort, lines, runCli, waitFor } from './cluster.js';

let cluster: LocalCluster | null = null;
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  await cluster?.stop();
  cluster = null;
});

/**
 * Hand leadership from the current leader to `to`; each new term appends a no-op entry
 * (Raft thesis §6.4). Retried: on a loaded machine the leader may change under us.
 */
async function transferTo(c: LocalCluster, to: string): Promise<void> {
  const before = await c.waitForLeader();
  const after = await waitFor(
    `leadership to move to ${to}`,
    async () => {
      const current = await c.waitForLeader();
      if (current.leaderId === to && current.term > before.term) return current;
      const r = await c.client(to).transferLeader(to);
      return r.leaderId === to ? r : undefined;
    },
    15_000,
    100,
  );
  expect(after.term).toBeGreaterThan(before.term);
  await c.waitForLeader();
}

describe('persistence across crashes and restarts', () => {
  it('a killed follower, restarted on its data dir while the others went on, rejoins and catches up with the leader', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const first = await c.waitForLeader();
    const follower = c.specs.map((s) => s.id).find((id) => id !== first.leaderId)!;
    const other = c.specs.map((s) => s.id).find((id) => id !== first.leaderId && id !== follower)!;
    const atKill = await c.status(follower);
    await c.kill(follower, 'SIGKILL');

    // The two survivors go on without it: two new terms, each with its no-op entry.
    await transferTo(c, other);
    await transferTo(c, first.leaderId);
    const leader = await c.waitForLeader();
    const leaderStatus = await c.status(leader.leaderId);
    expect(leaderStatus.lastLogIndex).toBeGreaterThan(atKill.lastLogIndex);
    expect(leaderStatus.commitIndex).toBeGreaterThan(atKill.commitIndex);

    c.start(follower);
    const t0 = performance.now();
    const caughtUp = await waitFor(
      `${follower} to catch up with the leader`,
      async () => {
        const now = await c.waitForLeader({ timeoutMs: 5000 });
        const [f, l] = await Promise.all([c.status(follower), c.status(now.leaderId)]);
        return f.lastLogIndex === l.lastLogIndex && f.commitIndex === l.commitIndex && f.term === l.term && f.leaderId === l.nodeId
          ? { f, l }
          : undefined;
      },
      20_000,
    );
    console.log(
      `[e2e] follower ${follower} killed at last_log_index ${atKill.lastLogIndex}, commit ${atKill.commitIndex} (term ${atKill.term}); ` +
        `restarted and caught up to last_log_index ${caughtUp.f.lastLogIndex}, commit ${caughtUp.f.commitIndex} (term ${caughtUp.f.term}) ` +
        `${Math.round(performance.now() - t0)} ms after restart; leader before restart ${leader.leaderId} (term ${leader.term}), after ${caughtUp.l.nodeId} (term ${caughtUp.l.term})`,
    );
    // On a loaded machine the restarted node may win an election after it caught up;
    // what this test is about is that it came back with its log and caught up.
    expect(['follower', 'leader']).toContain(caughtUp.f.role);
    expect(caughtUp.f.lastLogIndex).toBe(caughtUp.l.lastLogIndex);
    expect(caughtUp.f.lastLogIndex).toBeGreaterThanOrEqual(leaderStatus.lastLogIndex);
    expect(caughtUp.f.commitIndex).toBeGreaterThanOrEqual(leaderStatus.commitIndex);
  });

  it('data survives a full-cluster restart: each node exits 0 on SIGTERM, and comes back with every key, term, log, commit and members intact', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const first = await c.waitForLeader();
    await transferTo(
      c,
      c.specs.map((s) => s.id).find((id) => id !== first.leaderId)!,
    );
    // Data written before the restart: plain values, a binary one, a key overwritten
    // twice (version 3) and a deleted key that must stay deleted.
    const writer = new LeaderdClient({ endpoints: c.endpoints(), timeoutMs: 10_000 });
    let kvsBefore: KeyValue[];
    try {
      for (let i = 0; i < 30; i++) await writer.put(`persist/k${String(i).padStart(2, '0')}`, `value ${i}`);
      await writer.put('persist/binary', new Uint8Array([0, 255, 1, 254, 10, 13]));
      for (const v of ['v1', 'v2', 'v3']) await writer.put('persist/overwritten', v);
      await writer.put('persist/deleted', 'gone');
      await writer.delete('persist/deleted');
      kvsBefore = (await writer.range('persist/')).kvs;
    } finally {
      writer.close();
    }
    expect(kvsBefore).toHaveLength(32);
    expect(kvsBefore.find((kv) => kv.key === 'persist/overwritten')).toMatchObject({ version: 3, value: Buffer.from('v3') });
    const leader = await c.waitForLeader();
    // Let every follower learn the latest commit index before taking the picture.
    const before = await waitFor(
      'every node to agree on the commit index',
      async () => {
        const all = await Promise.all(c.specs.map((s) => c.status(s.id)));
        return all.every((s) => s.commitIndex === all[0]!.commitIndex && s.lastLogIndex === all[0]!.lastLogIndex) ? all : undefined;
      },
      10_000,
    );
    const membersBefore = await c.client(leader.leaderId).listMembers();

    const exits = await Promise.all(c.specs.map((s) => c.terminate(s.id, 'SIGTERM')));
    expect(exits).toEqual(c.specs.map(() => ({ code: 0, signal: null })));
    expect(c.running()).toEqual([]);

    c.startAll();
    const again = await c.waitForLeader();
    // Terms were kept: the first leader after the restart was elected in a later term.
    expect(again.term).toBeGreaterThan(leader.term);
    const prevCommit = Math.max(...before.map((s) => s.commitIndex));
    const after = await waitFor(
      'every node to reach the commit index it had before the restart',
      async () => {
        const all = await Promise.all(c.specs.map((s) => c.status(s.id)));
        return all.every((s) => s.commitIndex >= prevCommit) ? all : undefined;
      },
      10_000,
    );
    const byId = (xs: NodeStatus[]) => new Map(xs.map((s) => [s.nodeId, s]));
    const b = byId(before);
    for (const s of after) {
      const was = b.get(s.nodeId)!;
      expect(s.term, `${s.nodeId} term`).toBeGreaterThan(was.term);
      // The new term's leader appended its no-op after the log it had: nothing was lost.
      expect(s.lastLogIndex, `${s.nodeId} last_log_index`).toBeGreaterThan(was.lastLogIndex);
      expect(s.commitIndex, `${s.nodeId} commit_index`).toBeGreaterThanOrEqual(was.commitIndex);
    }
    // Every key, value and revision is exactly as before, through the leader and on each
    // node's own state machine (rebuilt from its data dir).
    const shapeKv = (kvs: readonly KeyValue[]) => kvs.map((kv) => ({ ...kv, value: kv.value.toString('base64') }));
    const reader = new LeaderdClient({ endpoints: c.endpoints(), timeoutMs: 10_000 });
    try {
      expect(shapeKv((await reader.range('persist/')).kvs)).toEqual(shapeKv(kvsBefore));
      expect((await reader.get('persist/deleted')).kv).toBeNull();
    } finally {
      reader.close();
    }
    for (const s of c.specs) {
      const local = new LeaderdClient({ endpoints: [c.endpoint(s.id)], timeoutMs: 10_000 });
      try {
        const kvs = await waitFor(
          `${s.id} to serve the data it had before the restart`,
          async () => {
            const r = await local.range('persist/', { serializable: true });
            return JSON.stringify(shapeKv(r.kvs)) === JSON.stringify(shapeKv(kvsBefore)) ? r.kvs : undefined;
          },
          10_000,
        );
        expect(shapeKv(kvs), `${s.id} serializable range`).toEqual(shapeKv(kvsBefore));
      } finally {
        local.close();
      }
    }
    const membersAfter = await c.client(again.leaderId).listMembers();
    const shape = (ms: typeof membersBefore) =>
      ms.map((m) => ({ id: m.id, peerAddress: m.peerAddress, learner: m.learner })).sort((x, y) => x.id.localeCompare(y.id));
    expect(shape(membersAfter)).toEqual(shape(membersBefore));
    expect(shape(membersAfter).map((m) => m.id)).toEqual(['n1', 'n2', 'n3']);
    console.log(
      `[e2e] full restart: before ${before.map((s) => `${s.nodeId} t${s.term}/last ${s.lastLogIndex}/commit ${s.commitIndex}`).join(', ')}; ` +
        `after ${after.map((s) => `${s.nodeId} t${s.term}/last ${s.lastLogIndex}/commit ${s.commitIndex}`).join(', ')}`,
    );
  });
});

describe('a data dir belongs to one cluster and one node', () => {
  it("a node pointed at another cluster's data dir, or another node's, refuses to start: exit 2, one line naming the mismatch, the stored data unchanged", async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3, clusterId: 'alpha' }));
    c.startAll();
    const leader = await c.waitForLeader();
    const exits = await Promise.all(c.specs.map((s) => c.terminate(s.id, 'SIGTERM')));
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0]);

    const dataDir = c.spec('n1').dataDir;
    const raftDir = join(dataDir, 'raft');
    const storedBefore = await dumpStore(raftDir);
    expect(storedBefore.length).toBeGreaterThan(3);
    const filesBefore = dirDigest(dataDir);

    const refusedStart = async (id: string, clusterId: string) => {
      const peer = `127.0.0.1:${await freePort()}`;
      return runCli([
        'start',
        '--id',
        id,
        '--data-dir',
        dataDir,
        '--cluster-id',
        clusterId,
        '--listen-peer',
        peer,
        '--listen-client',
        `127.0.0.1:${await freePort()}`,
        '--peers',
        `${id}=${peer}`,
        '--log-level',
        'error',
      ]);
    };

    const otherCluster = await refusedStart('n1', 'beta');
    expect(otherCluster.code).toBe(2);
    expect(lines(otherCluster.stderr)).toHaveLength(1);
    expect(otherCluster.stderr).toMatch(/belongs to cluster 'alpha', not 'beta'/);

    const otherNode = await refusedStart('n2', 'alpha');
    expect(otherNode.code).toBe(2);
    expect(lines(otherNode.stderr)).toHaveLength(1);
    expect(otherNode.stderr).toMatch(/belongs to node 'n1'.*not 'n2'/);
    console.log(`[e2e] refusals: ${otherCluster.stderr.trim()} | ${otherNode.stderr.trim()}`);

    // Nothing was touched: every file in the data dir (LevelDB's included: the identity
    // file is checked before LevelDB is opened) is byte-for-byte what it was.
    expect(dirDigest(dataDir)).toEqual(filesBefore);
    expect(readdirSync(dataDir)).toEqual(['leaderd-identity.json', 'raft']);
    expect(await dumpStore(raftDir)).toEqual(storedBefore);

    // And the rightful owners still start from it, with their history.
    c.startAll();
    const again = await c.waitForLeader();
    expect(again.term).toBeGreaterThanOrEqual(leader.term);
  });
});
