import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from './cluster.js';

let cluster: LocalCluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('a real cluster of leaderd processes', () => {
  for (const n of [3, 5]) {
    it(`${n} nodes elect one leader, and GetLeader agrees on every node`, async () => {
      cluster = await LocalCluster.create({ nodes: n });
      cluster.startAll();
      const leader = await cluster.waitForLeader();
      for (const s of cluster.specs) {
        const l = await cluster.leaderSeenBy(s.id);
        expect(l.leaderId).toBe(leader.leaderId);
        expect(l.term).toBe(leader.term);
        expect(l.leaderAddress).toBe(cluster.endpoint(leader.leaderId));
      }
      const statuses = await Promise.all(cluster.specs.map((s) => cluster!.status(s.id)));
      expect(statuses.filter((s) => s.role === 'leader').map((s) => s.nodeId)).toEqual([leader.leaderId]);
      expect(statuses.filter((s) => s.leaseValid).map((s) => s.nodeId)).toEqual([leader.leaderId]);
    });
  }
});
