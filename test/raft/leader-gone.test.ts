// RaftNode.leaderGone (kill -9 failover): the survivors of a leader whose process is
// proven dead elect one of them before their leases from it would have run out, and a
// survivor that may not lead never holds the others back.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

/** Crash the leader `a` and tell each of `told` that its process is gone; ticks until one leads (at most `max`). */
function killLeader(c: Cluster, told: readonly string[], max: number): number {
  c.forceElect('a');
  c.tick(2);
  c.crash('a');
  for (const id of told) c.node(id).leaderGone('a', c.node(id).basicStatus().term);
  let ticks = 0;
  while (c.leaders().length === 0 && ticks < max) {
    c.tick(1);
    ticks++;
  }
  return ticks;
}

describe('leaderGone', () => {
  it('survivors that both proved the leader dead elect one of them within a few ticks, far inside their leases', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const ticks = killLeader(c, ['b', 'c'], 30);
    expect(c.leaders()).toHaveLength(1);
    // electionTick is 10: without the proof nobody may even vote before 10 ticks pass.
    expect(ticks).toBeLessThan(5);
  });

  it('a survivor without the proof keeps refusing inside its lease: no leader before its lease ends', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const ticks = killLeader(c, ['b'], 30);
    expect(c.leaders()).toHaveLength(1);
    expect(ticks).toBeGreaterThanOrEqual(7);
  });

  it.each(['b', 'c'])('an unelectable survivor (%s) that proved the leader dead does not hold back the electable one', (unelectable) => {
    // Which survivor is first in rank depends on the ids and the term: with either one
    // unelectable, one of the two runs puts it first.
    const c = new Cluster(['a', 'b', 'c']);
    c.node(unelectable).setElectable(false);
    const ticks = killLeader(c, ['b', 'c'], 30);
    expect(c.leaders()).toEqual([unelectable === 'b' ? 'c' : 'b']);
    expect(ticks).toBeLessThan(5);
  });
});
