// One rule each, told as a story. Ticks: heartbeat every tick, election timeout 10-19.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

const others = (ids: string[], id: string) => ids.filter((x) => x !== id);

describe('PreVote (thesis §9.6)', () => {
  it('a node rejoining from a partition does not disrupt the healthy leader', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids);
    const leader = c.electLeader();
    const term = c.node(leader).status().term;
    const loner = others(ids, leader)[0]!;
    c.isolate(loner);
    // Cut off for many election timeouts, the loner keeps pre-campaigning but never
    // wins a pre-vote, so its term does not move.
    c.tick(100);
    expect(c.node(loner).status().term).toBe(term);
    c.heal();
    c.tick(30);
    expect(c.leaders()).toEqual([leader]);
    expect(c.node(leader).status().term).toBe(term);
    expect(c.node(loner).status().leaderId).toBe(leader);
  });
});

describe('CheckQuorum (thesis §6.2)', () => {
  it('an isolated leader steps down within one election timeout and loses its lease sooner', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids);
    const leader = c.electLeader();
    expect(c.node(leader).leaseValid()).toBe(true);
    c.isolate(leader);
    let leaseLostAt = -1;
    let steppedDownAt = -1;
    for (let t = 1; t <= 30 && steppedDownAt < 0; t++) {
      c.tick();
      const s = c.node(leader).status();
      if (leaseLostAt < 0 && !s.leaseValid) leaseLostAt = t;
      if (s.role !== 'leader') steppedDownAt = t;
    }
    expect(leaseLostAt).toBeGreaterThan(0);
    expect(leaseLostAt).toBeLessThanOrEqual(10 - 2);
    expect(steppedDownAt).toBeGreaterThan(0);
    expect(steppedDownAt).toBeLessThanOrEqual(2 * 10);
    // The majority side elects a new leader in a higher term.
    c.tickUntil(() => others(ids, leader).some((id) => c.node(id).status().role === 'leader'));
  });
});

describe('Leader lease (thesis §6.4)', () => {
  it('a follower that heard from the leader within the election timeout grants no vote, even to a higher term', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids);
    const leader = c.electLeader();
    const [f1, f2] = others(ids, leader) as [string, string];
    const s = c.node(f1).status();
    c.node(f1).step({
      type: 'vote',
      clusterId: 'test-cluster',
      from: f2,
      to: f1,
      term: s.term + 1,
      preVote: false,
      lastLogIndex: s.lastLogIndex + 10,
      lastLogTerm: s.term,
      transfer: false,
    });
    expect(c.node(f1).status().term).toBe(s.term);
    expect(c.node(f1).status().votedFor).toBe(s.votedFor);
    c.processReadies();
    expect(c.inFlight.filter((m) => m.type === 'voteResp')).toEqual([]);
  });

  it('a restarted node grants no vote for one election timeout (it may have backed a lease before crashing)', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids);
    const leader = c.electLeader();
    const [f1, f2] = others(ids, leader) as [string, string];
    c.crash(f1);
    const n = c.start(f1);
    const term = n.status().term;
    const ask = () =>
      n.step({
        type: 'vote',
        clusterId: 'test-cluster',
        from: f2,
        to: f1,
        term: term + 1,
        preVote: false,
        lastLogIndex: 100,
        lastLogTerm: term,
        transfer: false,
      });
    ask();
    expect(n.status().votedFor).not.toBe(f2);
    for (let i = 0; i < 10; i++) n.tick();
    ask();
    expect(n.status().votedFor).toBe(f2);
  });

  it('lease reads answer at once; ReadIndex without a lease needs a heartbeat round', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids);
    const leader = c.electLeader();
    c.propose('x');
    c.node(leader).readIndex('r1');
    c.processReadies();
    expect(c.reads.get(leader)!.get('r1')).toBe(c.node(leader).status().commitIndex);

    const c2 = new Cluster(ids, { leaseReads: false });
    const l2 = c2.electLeader();
    c2.propose('y');
    const [f] = others(ids, l2);
    c2.isolate(l2);
    c2.node(l2).readIndex('r2');
    c2.processReadies();
    expect(c2.reads.get(l2)!.has('r2')).toBe(false); // no quorum confirmed it yet
    c2.heal();
    c2.tick(1); // the round sent while cut off was lost; the next heartbeat round confirms it
    expect(c2.reads.get(l2)!.get('r2')).toBe(c2.node(l2).status().commitIndex);
    // A follower's read is served by the leader.
    c2.node(f!).readIndex('r3');
    c2.deliverAll();
    expect(c2.reads.get(f!)!.get('r3')).toBe(c2.node(l2).status().commitIndex);
  });
});

describe('Figure 8: a leader never commits an entry of a previous term by counting replicas', () => {
  it('an old-term entry stored on a majority stays uncommitted until an entry of the current term commits', () => {
    const ids = ['s1', 's2', 's3', 's4', 's5'];
    // One entry per append message, so the old entry and the new no-op travel separately.
    const c = new Cluster(ids, { maxMsgBytes: 0 });
    // (a) s1 leads and gets entry 2 onto s2 only.
    c.forceElect('s1');
    c.tick(2);
    for (const x of ['s3', 's4', 's5']) c.cutLink('s1', x);
    const old = c.node('s1').propose(new TextEncoder().encode('old'));
    if (!old.ok) throw new Error('propose failed');
    c.deliverAll();
    expect(c.node('s2').status().lastLogIndex).toBe(old.index);
    expect(c.node('s1').status().commitIndex).toBe(old.index - 1);
    // (b) s1 crashes; s5 wins a higher term with s3 and s4 and writes its no-op locally only.
    c.crash('s1');
    c.heal();
    c.filter = (m) => !(m.from === 's5' && m.type === 'app');
    c.forceElect('s5');
    c.crash('s5');
    c.filter = null;
    // (c) s1 restarts and wins a still higher term with s2, s3, s4.
    c.start('s1');
    c.filter = (m) => !(m.from === 's1' && m.type === 'app');
    // Its first pre-vote (for the term s3 and s4 already voted in) is refused and teaches
    // s1 that term; the second succeeds.
    expect(() => c.forceElect('s1')).toThrow(/did not win/);
    c.forceElect('s1');
    c.filter = null;
    const s1 = c.node('s1');
    c.tickQuiet();
    const term = s1.status().term;
    expect(term).toBeGreaterThan(old.term);
    // Replicate step by step: at some moment a majority holds the old entry while the
    // new term's no-op has not reached it. The leader must not count that as committed.
    let sawOldOnMajorityOnly = false;
    for (let i = 0; i < 50 && s1.status().commitIndex <= old.index; i++) {
      c.deliverOnce();
      const holders = ['s1', 's2', 's3', 's4'].filter((id) => c.node(id).status().lastLogIndex >= old.index);
      const noopHolders = ['s1', 's2', 's3', 's4'].filter((id) => c.node(id).status().lastLogIndex > old.index);
      if (holders.length >= 3 && noopHolders.length < 3) sawOldOnMajorityOnly = true;
      expect(s1.status().commitIndex).not.toBe(old.index);
      if (c.inFlight.length === 0) c.tickQuiet();
    }
    expect(sawOldOnMajorityOnly, c.ids.map((id) => `${id}:${JSON.stringify(c.nodes.get(id)?.status().lastLogIndex)}`).join(' ')).toBe(true);
    // (e) Once the current-term entry is on a majority, both commit together.
    expect(s1.status().commitIndex).toBeGreaterThan(old.index);
    expect(c.appliedValues('s1')).toContain('old');
  });
});
