// The vote is on disk before the grant leaves (Figure 2: persist before responding).
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

describe('the vote is persisted before the grant leaves', () => {
  it('a grant travels in the same Ready as the hard state recording it, and a restarted node never votes twice in a term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const b = c.node('b');
    const term = b.status().term;
    c.crash('a');
    for (let i = 0; i < 10; i++) b.tick(); // out of the leader's lease
    while (b.hasReady()) b.advance(b.ready());
    const ask = (from: string) =>
      c.node('b').step({
        type: 'vote',
        clusterId: 'test-cluster',
        from,
        to: 'b',
        term: term + 1,
        preVote: false,
        lastLogIndex: 99,
        lastLogTerm: term,
        transfer: false,
      });
    ask('c');
    const rd = b.ready();
    const grant = rd.messages.find((m) => m.type === 'voteResp');
    expect(grant).toMatchObject({ to: 'c', granted: true, term: term + 1 });
    expect(rd.hardState).toMatchObject({ term: term + 1, votedFor: 'c' });
    expect(rd.mustSync).toBe(true);
    // The driver persists it (the harness's disk) and sends; then b crashes and restarts.
    c.disks.get('b')!.hardState = rd.hardState!;
    b.advance(rd);
    c.crash('b');
    const b2 = c.start('b');
    for (let i = 0; i < 10; i++) b2.tick();
    while (b2.hasReady()) b2.advance(b2.ready());
    ask('a'); // another candidate, same term
    const rd2 = b2.ready();
    expect(rd2.messages.find((m) => m.type === 'voteResp')).toMatchObject({ to: 'a', granted: false });
    expect(b2.status().votedFor).toBe('c');
  });
});
