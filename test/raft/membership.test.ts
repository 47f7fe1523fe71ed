// Single-server membership changes (thesis §4.1), driven by hand through the harness.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

const others = (ids: string[], id: string) => ids.filter((x) => x !== id);

describe('membership changes (single-server, thesis §4.1)', () => {
  it('adds a learner that receives the log but never votes, then promotes it', () => {
    const c = new Cluster(['a', 'b', 'c'], {}, []);
    c.forceElect('a');
    c.propose('x');
    // d joins as a node with an empty disk that knows nothing yet.
    c.disks.set('d', { hardState: { term: 0, votedFor: null, commit: 0 }, snapshot: null, entries: [] });
    c.applied.set('d', []);
    c.reads.set('d', new Map());
    const a = c.node('a');
    expect(a.proposeConfChange({ op: 'addLearner', nodeId: 'd' }).ok).toBe(true);
    c.start('d');
    c.tick(3);
    expect(c.node('d').status().learner).toBe(true);
    expect(c.appliedValues('d')).toEqual(['x']);
    expect(a.status().conf.learners).toEqual(['d']);
    // Learners never campaign.
    c.isolate('d');
    c.tick(60);
    expect(c.node('d').status().role).toBe('follower');
    expect(c.node('d').status().term).toBe(a.status().term);
    c.heal();
    c.tick(2);
    expect(a.proposeConfChange({ op: 'promoteLearner', nodeId: 'd' }).ok).toBe(true);
    c.tick(3);
    expect(a.status().conf.voters).toEqual(['a', 'b', 'c', 'd']);
    expect(c.node('d').status().learner).toBe(false);
  });

  it('a new leader accepts no configuration change before committing an entry of its term, and one change at a time', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.filter = (m) => m.type !== 'appResp';
    c.forceElect('a');
    expect(c.node('a').proposeConfChange({ op: 'removeVoter', nodeId: 'c' })).toMatchObject({ ok: false, error: 'conf-change-pending' });
    c.filter = null;
    c.tick(2);
    expect(c.node('a').proposeConfChange({ op: 'removeVoter', nodeId: 'c' }).ok).toBe(true);
    expect(c.node('a').proposeConfChange({ op: 'addLearner', nodeId: 'z' })).toMatchObject({ ok: false, error: 'conf-change-pending' });
    expect(c.node('a').proposeConfChange({ op: 'promoteLearner', nodeId: 'q' })).toMatchObject({ ok: false });
  });

  it('a change racing a leader crash either survives or vanishes everywhere, and the cluster goes on changing', () => {
    for (const reaches of [[], ['b']] as string[][]) {
      const ids = ['a', 'b', 'c'];
      const c = new Cluster(ids);
      c.forceElect('a');
      c.tick(2);
      // The change to remove c reaches only `reaches` before the leader dies.
      for (const x of others(ids, 'a')) if (!reaches.includes(x)) c.cutLink('a', x);
      expect(c.node('a').proposeConfChange({ op: 'removeVoter', nodeId: 'c' }).ok).toBe(true);
      c.deliverAll();
      c.crash('a');
      c.heal();
      // While a is down, b may believe in a two-voter {a, b} configuration that needs a
      // back: a single-server change trades that availability for simplicity.
      c.tick(25);
      c.start('a');
      c.tickUntil(() => c.leaders().length === 1, 300);
      c.tick(30);
      const leader = c.leader();
      const removed = !c.node(leader).status().conf.voters.includes('c');
      // Every member agrees on the configuration (a removed node is simply no longer told).
      const members = c.node(leader).status().conf.voters;
      const confs = members.map((id) => JSON.stringify(c.node(id).status().conf));
      expect(new Set(confs).size).toBe(1);
      // It survived only if it reached a node that could win the election.
      if (reaches.length === 0) expect(removed).toBe(false);
      // Further changes still go through.
      const next = removed ? { op: 'addVoter' as const, nodeId: 'c' } : { op: 'removeVoter' as const, nodeId: 'c' };
      expect(c.node(leader).proposeConfChange(next).ok).toBe(true);
      c.tick(5);
      // (When c led and removed itself, it stepped down once that committed, §4.2.2.)
      const leader2 = c.leaders().length === 1 ? c.leader() : (c.tickUntil(() => c.leaders().length === 1, 300), c.leader());
      expect(c.node(leader2).status().conf.voters.includes('c')).toBe(removed);
      if (leader === 'c' && !removed) expect(leader2).not.toBe('c');
      c.propose('still-working');
      c.tick(2);
      expect(c.appliedValues(leader2)).toContain('still-working');
    }
  });
});
