// Leadership transfer (thesis §3.10), driven by hand through the harness.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('leadership transfer (thesis §3.10)', () => {
  it('brings a lagging target up to date, then hands over; proposals are refused meanwhile', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids);
    c.forceElect('a');
    c.cutLink('a', 'c');
    for (let i = 0; i < 10; i++) c.propose(`v${i}`);
    expect(c.node('c').status().lastLogIndex).toBeLessThan(c.node('a').status().lastLogIndex);
    expect(c.node('a').transferLeadership('c')).toEqual({ ok: true });
    expect(c.node('a').propose(enc('during'))).toMatchObject({ ok: false, error: 'transferring' });
    expect(c.node('a').leaseValid()).toBe(false);
    c.heal();
    c.tickUntil(() => c.nodes.get('c')!.status().role === 'leader', 30);
    expect(c.leaders()).toEqual(['c']);
    c.propose('after');
    c.tick(2);
    for (const id of ids) expect(c.appliedValues(id)).toEqual([...Array.from({ length: 10 }, (_, i) => `v${i}`), 'after']);
  });

  it('a lost TimeoutNow: the leader, whose lease is void for the term, steps down and a new leader with a valid lease is elected', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    c.tick(2);
    c.filter = (m) => m.type !== 'timeoutNow';
    expect(c.node('a').transferLeadership('b')).toEqual({ ok: true });
    expect(c.node('a').leaseValid()).toBe(false);
    c.tick(12);
    c.filter = null;
    expect(c.node('a').status().role).not.toBe('leader');
    c.tickUntil(() => c.leaders().length === 1 && c.node(c.leaders()[0]!).leaseValid(), 200);
    expect(c.node(c.leader()).status().term).toBeGreaterThan(1);
  });

  it('an unreachable lagging target: the transfer is abandoned after an election timeout and the leader serves again, lease and all', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    c.isolate('c');
    c.propose('c-misses-this'); // c lags, so TimeoutNow is never sent
    c.node('a').transferLeadership('c');
    c.tick(10);
    expect(c.leaders()).toEqual(['a']);
    expect(c.node('a').status().leadTransferee).toBeNull();
    expect(c.node('a').leaseValid()).toBe(true);
    expect(c.node('a').propose(enc('x')).ok).toBe(true);
  });
});

describe('unelectable members (priority 0, drained: setElectable)', () => {
  it('an unelectable voter never campaigns, yet votes, so the others elect a leader when the old one dies', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.node('c').setElectable(false);
    c.forceElect('a');
    c.tick(2);
    c.crash('a');
    c.tickUntil(() => c.leaders().length === 1, 300);
    expect(c.leaders()).toEqual(['b']);
    // b could only win with c's vote: c votes though it never stands.
    c.tick(100);
    expect(c.leaders()).toEqual(['b']);
    expect(c.node('c').status().role).toBe('follower');
  });

  it('alone with a quorum but unelectable, a voter stays a follower: no leader rather than a forbidden one', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.node('b').setElectable(false);
    c.node('c').setElectable(false);
    c.forceElect('a');
    c.tick(2);
    c.crash('a');
    c.tick(200);
    expect(c.leaders()).toEqual([]);
    // And neither names the dead leader to anyone who asks: one that never campaigns
    // forgets a leader it has not heard from for an election timeout.
    expect(c.node('b').softState().leaderId).toBeNull();
    expect(c.node('c').softState().leaderId).toBeNull();
    // Made electable again (undrained), it is elected within a few election timeouts.
    c.node('b').setElectable(true);
    c.tickUntil(() => c.leaders().length === 1, 100);
    expect(c.leaders()).toEqual(['b']);
  });

  it('a TimeoutNow to an unelectable target is ignored: the transfer is abandoned, and the next leader is an electable node', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    c.tick(2);
    c.node('b').setElectable(false);
    expect(c.node('a').transferLeadership('b')).toEqual({ ok: true });
    c.deliverAll();
    expect(c.node('b').status().role).toBe('follower');
    // As for a lost TimeoutNow, the leader's lease is void for the term: it steps down
    // once the transfer is abandoned, and a fresh election never picks b.
    c.tickUntil(() => c.leaders().length === 1 && c.node(c.leader()).leaseValid(), 300);
    expect(['a', 'c']).toContain(c.leader());
    expect(c.node('b').status().role).toBe('follower');
  });
});
