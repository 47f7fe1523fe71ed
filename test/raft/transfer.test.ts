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
