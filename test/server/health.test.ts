// /readyz's rule, case by case: what makes a node not worth sending clients to.
import { describe, expect, it } from 'vitest';
import { readiness } from '../../src/server/health.js';
import type { NodeStatusView } from '../../src/server/node.js';

const base: NodeStatusView = {
  nodeId: 'n1',
  role: 'follower',
  term: 3,
  leaderId: 'n2',
  commitIndex: 10,
  appliedIndex: 10,
  lastLogIndex: 10,
  leaseValid: false,
  refusedPeers: [],
};

describe('readiness', () => {
  it('a follower that knows a leader and has applied what it knows committed is ready', () => {
    expect(readiness(base)).toEqual({ ready: true });
  });
  it('no known leader: not ready', () => {
    expect(readiness({ ...base, leaderId: '' })).toEqual({ ready: false, reason: 'no leader known' });
  });
  it('a leader without a valid lease is not ready; with one it is', () => {
    const leader = { ...base, role: 'leader' as const, leaderId: 'n1' };
    expect(readiness(leader).ready).toBe(false);
    expect(readiness({ ...leader, leaseValid: true }).ready).toBe(true);
  });
  it('committed entries not yet applied: not ready', () => {
    expect(readiness({ ...base, appliedIndex: 7 })).toEqual({ ready: false, reason: 'applied 7 of 10 committed' });
  });
});
