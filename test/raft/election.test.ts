import { describe, expect, it } from 'vitest';
import { Cluster, CLUSTER } from './harness.js';

describe('leader election', () => {
  for (const n of [3, 5]) {
    it(`a ${n}-node cluster elects exactly one leader, which commits its no-op on every node`, () => {
      const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
      const c = new Cluster(ids);
      const leader = c.electLeader();
      c.tick(3);
      expect(c.leaders()).toEqual([leader]);
      const term = c.node(leader).status().term;
      for (const id of ids) {
        const s = c.node(id).status();
        expect(s.term).toBe(term);
        expect(s.leaderId).toBe(leader);
        expect(s.commitIndex).toBe(1);
      }
    });
  }

  it('replicates proposals in order to every node', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.electLeader();
    for (let i = 0; i < 20; i++) c.propose(`v${i}`);
    c.tick(2);
    const want = Array.from({ length: 20 }, (_, i) => `v${i}`);
    for (const id of ['a', 'b', 'c']) expect(c.appliedValues(id)).toEqual(want);
  });

  it('a follower refuses proposals and names the leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const leader = c.electLeader();
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!;
    const r = c.node(follower).propose(new Uint8Array([1]));
    expect(r).toEqual({ ok: false, error: 'not-leader', leaderId: leader });
  });

  it('a message for another cluster is dropped, reported and never acted on', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const leader = c.electLeader();
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!;
    const before = c.node(follower).status();
    const r = c.node(follower).step({
      type: 'vote',
      clusterId: 'other-' + CLUSTER,
      from: 'x',
      to: follower,
      term: before.term + 5,
      preVote: false,
      lastLogIndex: 100,
      lastLogTerm: 100,
      transfer: true,
    });
    expect(r).toEqual({ ok: false, reason: 'wrong-cluster' });
    expect(c.node(follower).status().term).toBe(before.term);
    expect(c.node(follower).hasReady()).toBe(false);
  });
});
