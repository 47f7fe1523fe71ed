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

  it('a late pre-vote grant from an earlier pre-campaign does not count toward the current one', () => {
    const c = new Cluster(['a', 'b', 'c']);
    // Every clock runs past the start-up quiet period with nobody able to win.
    for (const id of c.ids) c.isolate(id);
    c.tick(30);
    c.heal();
    // a pre-campaigns (proposing term 1); b's grant is delivered, c's is held back.
    c.node('a').campaign();
    c.deliverOnce();
    const held = c.inFlight.filter((m) => m.from === 'c' && m.to === 'a' && m.type === 'voteResp');
    expect(held).toMatchObject([{ preVote: true, granted: true, term: 1 }]);
    c.inFlight = c.inFlight.filter((m) => !held.includes(m));
    c.filter = (m) => !(m.from === 'a' && m.type === 'vote' && !m.preVote); // a's real votes are lost
    c.deliverOnce();
    expect(c.node('a').status()).toMatchObject({ role: 'candidate', term: 1 });
    // a's candidacy times out with nobody answering; it pre-campaigns again, proposing 2.
    c.isolate('a');
    c.tickUntil(() => c.node('a').status().role === 'precandidate', 100);
    c.heal();
    c.filter = null;
    c.inFlight = [];
    expect(c.node('a').status().term).toBe(1);
    // The held grant was for term 1: it must not count as a vote for term 2.
    c.node('a').step(held[0]!);
    c.processReadies();
    expect(c.node('a').status()).toMatchObject({ role: 'precandidate', term: 1 });
    expect(c.events.get('a')!.at(-1)).toMatchObject({ kind: 'ignored', from: 'c', reason: 'stale-pre-vote' });
  });
});
