// The follower's side of AppendEntries (Figure 2, receiver steps 1-5), table-driven: what a
// follower holding an older leader's uncommitted suffix keeps, truncates and commits when
// the current leader's message covers only part of its log.
import { describe, expect, it } from 'vitest';
import { RaftNode } from '../../src/raft/raft.js';
import type { AppendRequest, Entry, Ready } from '../../src/raft/types.js';
import { CLUSTER, config } from './harness.js';

const entry = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array([index]) });

/**
 * Follower f at term 3: entries 1-2 of term 1 (committed by the cluster), then 3-4 of
 * term 2 that an old leader never got committed. Leader l (term 3) holds 1-2 and its own
 * entries 3-5 of term 3, committed up to 5.
 */
function follower(): RaftNode {
  return new RaftNode(config('f', 1), {
    hardState: { term: 3, votedFor: null, commit: 0 },
    snapshot: null,
    entries: [entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)],
    bootstrapConf: { voters: ['l', 'f', 'g'], learners: [] },
  });
}

/** Step an append from l (leader commit 5) into `f`; returns the Ready it causes. */
function append(f: RaftNode, m: Pick<AppendRequest, 'term' | 'prevLogIndex' | 'prevLogTerm' | 'entries' | 'round'>): Ready {
  f.step({ type: 'app', clusterId: CLUSTER, from: 'l', to: 'f', leaderCommit: 5, ...m });
  return f.ready();
}

interface Case {
  readonly name: string;
  readonly prev: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  /** What f must hold afterwards: [index, term] of each entry, and its commit index. */
  readonly log: readonly [number, number][];
  readonly commit: number;
}

const cases: readonly Case[] = [
  {
    // Step 5 takes min(leaderCommit, index of last new entry): entries 3-4 of term 2 were
    // never verified by this message and differ from the leader's; committing them would
    // apply entries no quorum ever agreed on.
    name: 'a heartbeat anchored below the stale suffix commits only up to its anchor',
    prev: 2,
    prevTerm: 1,
    entries: [],
    log: [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
    ],
    commit: 2,
  },
  {
    name: 'an append that conflicts at 3 truncates the stale suffix and commits what it brought',
    prev: 2,
    prevTerm: 1,
    entries: [entry(3, 3)],
    log: [
      [1, 1],
      [2, 1],
      [3, 3],
    ],
    commit: 3,
  },
  {
    name: 'an append that brings the whole missing log commits up to the leader',
    prev: 2,
    prevTerm: 1,
    entries: [entry(3, 3), entry(4, 3), entry(5, 3)],
    log: [
      [1, 1],
      [2, 1],
      [3, 3],
      [4, 3],
      [5, 3],
    ],
    commit: 5,
  },
  {
    name: 'an append whose previous entry does not match changes nothing',
    prev: 4,
    prevTerm: 3,
    entries: [entry(5, 3)],
    log: [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
    ],
    commit: 0,
  },
];

describe('follower AppendEntries (Figure 2, receiver)', () => {
  it.each(cases)('$name', (c) => {
    const f = follower();
    const rd = append(f, { term: 3, prevLogIndex: c.prev, prevLogTerm: c.prevTerm, entries: c.entries, round: 1 });
    // What f holds afterwards: its log before, cut at the first entry this Ready writes.
    const first = rd.entries[0]?.index ?? Infinity;
    const before: [number, number][] = [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
    ];
    const held = [...before.filter(([i]) => i < first), ...rd.entries.map((e): [number, number] => [e.index, e.term])];
    expect(held).toEqual(c.log);
    expect(f.status().commitIndex).toBe(c.commit);
    expect(rd.committedEntries.every((e) => c.log.some(([i, t]) => i === e.index && t === e.term))).toBe(true);
  });
});

describe('an append from an older term', () => {
  it('is refused with our term and acknowledges no heartbeat round, so a later leadership cannot count it', () => {
    const f = follower();
    const rd = append(f, { term: 2, prevLogIndex: 4, prevLogTerm: 2, entries: [], round: 18 });
    // Rounds start over with each leadership: echoing 18 would let l, leading again in
    // term 3, count it as our answer to its own round 18, sent long after (seed 30332).
    expect(rd.messages).toMatchObject([{ type: 'appResp', to: 'l', term: 3, success: false, round: 0 }]);
    expect(f.status().commitIndex).toBe(0);
  });
});
