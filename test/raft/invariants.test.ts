// The core fail-stops on impossible states with an error that names the invariant and
// the state, and drops (with an event) what a peer may legitimately send.
import { describe, expect, it } from 'vitest';
import { Cluster, CLUSTER } from './harness.js';
import { RaftLog } from '../../src/raft/log.js';
import { Progress } from '../../src/raft/progress.js';
import { RaftInvariantError, type RaftInvariant } from '../../src/raft/invariant.js';
import { newBasicStatus } from '../../src/raft/raw-node.js';
import type { Entry, Message, RaftEvent } from '../../src/raft/types.js';

const conf = { voters: ['a', 'b', 'c'], learners: [] };
const meta = { index: 0, term: 0, conf };
const ent = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array(0) });

function failsWith(name: RaftInvariant, state: Record<string, unknown>, run: () => unknown): void {
  let caught: unknown = null;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(RaftInvariantError);
  const e = caught as RaftInvariantError;
  expect(e.invariant).toBe(name);
  expect(e.state).toMatchObject(state);
  expect(e.message).toContain(name);
}

describe('fail-stop on a broken invariant', () => {
  const cases: { name: RaftInvariant; state: Record<string, unknown>; run: () => unknown }[] = [
    {
      name: 'commit-beyond-last',
      state: { index: 4, lastIndex: 3 },
      run: () => new RaftLog(meta, [ent(1, 1), ent(2, 1), ent(3, 1)], 0).commitTo(4),
    },
    {
      name: 'applied-beyond-commit',
      state: { index: 3, committed: 2 },
      run: () => new RaftLog(meta, [ent(1, 1), ent(2, 1), ent(3, 1)], 2).appliedTo(3),
    },
    {
      name: 'applied-regression',
      state: { index: 1, applied: 2 },
      run: () => {
        const log = new RaftLog(meta, [ent(1, 1), ent(2, 1)], 2);
        log.appliedTo(2);
        log.appliedTo(1);
      },
    },
    {
      name: 'committed-entry-conflict',
      state: { index: 2, term: 1, leaderTerm: 2, committed: 2 },
      run: () => new RaftLog(meta, [ent(1, 1), ent(2, 1)], 2).maybeAppend([ent(2, 2)]),
    },
    {
      name: 'log-gap',
      state: { first: 4, lastIndex: 2 },
      run: () => new RaftLog(meta, [ent(1, 1), ent(2, 1)], 0).append([ent(4, 1)]),
    },
    {
      name: 'initial-state',
      state: { position: 1, index: 3, expected: 2 },
      run: () => new RaftLog(meta, [ent(1, 1), ent(3, 1)], 0),
    },
    {
      name: 'initial-state',
      state: { commit: 5, lastIndex: 2 },
      run: () => new RaftLog(meta, [ent(1, 1), ent(2, 1)], 5),
    },
    {
      name: 'compact-unstable',
      state: { index: 2, unstableFrom: 1 },
      run: () => new RaftLog(meta, [], 0).compact({ index: 2, term: 1, conf }),
    },
    {
      name: 'progress-match-next',
      state: { matchIndex: 0, nextIndex: 0 },
      run: () => new Progress(0, false),
    },
    {
      name: 'progress-match-next',
      state: { matchIndex: 5, nextIndex: 5 },
      run: () => {
        const pr = new Progress(1, false);
        pr.maybeUpdate(5);
        pr.becomeReplicate();
        pr.sentEntries(4, 1, 0);
      },
    },
  ];
  it.each(cases)('$name $state', ({ name, state, run }) => failsWith(name, state, run));

  it('ready() before advance() of the previous Ready, and advance() with a Ready never handed out', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const a = c.node('a');
    a.propose(new Uint8Array([1]));
    const rd = a.ready();
    failsWith('ready-before-advance', {}, () => a.ready());
    failsWith('advance-not-outstanding', { outstanding: { messages: rd.messages.length } }, () => a.advance({ ...rd }));
    a.advance(rd);
  });

  it('persisted() out of Ready order (asynchronous storage writes)', () => {
    const c = new Cluster(['a', 'b', 'c'], { asyncStorageWrites: true });
    c.forceElect('a');
    const a = c.node('a');
    a.propose(new Uint8Array([1]));
    const first = a.ready();
    a.advanceAsync(first);
    a.propose(new Uint8Array([2]));
    const second = a.ready();
    a.advanceAsync(second);
    failsWith('persisted-out-of-order', { oldestInFlight: { entries: first.entries.map((e) => `${e.index}/${e.term}`).join(',') } }, () =>
      a.persisted(second),
    );
  });

  it('compact() beyond the applied index', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const a = c.node('a');
    const applied = a.basicStatus().appliedIndex;
    failsWith('compact-beyond-applied', { index: applied + 1, applied }, () => a.compact(applied + 1, new Uint8Array(0)));
  });

  // Role transitions and term regressions cannot be reached through the public API: the
  // checks guard against a future code path that would. Reach the private transitions
  // directly to show the check is live.
  it('a follower made leader without an election, a leader campaigning', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const b = c.node('b') as unknown as { becomeLeader(): void };
    failsWith('role-transition', { from: 'follower', to: 'leader' }, () => b.becomeLeader());
    const a = c.node('a') as unknown as { becomeCandidate(): void; becomePreCandidate(): void };
    failsWith('role-transition', { from: 'leader', to: 'candidate' }, () => a.becomeCandidate());
    failsWith('role-transition', { from: 'leader', to: 'precandidate' }, () => a.becomePreCandidate());
  });

  it('a term going backwards', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const term = c.node('b').basicStatus().term;
    const b = c.node('b') as unknown as { becomeFollower(term: number, leader: string | null): void };
    failsWith('term-regression', { term, to: term - 1 }, () => b.becomeFollower(term - 1, null));
  });
});

function eventsOf(c: Cluster, id: string): RaftEvent[] {
  const n = c.node(id);
  const out: RaftEvent[] = [];
  while (n.hasReady()) {
    const rd = n.ready();
    out.push(...rd.events);
    n.advance(rd);
  }
  return out;
}

describe('messages from the wrong sender are dropped with an event, never fatal', () => {
  it('an append response from a server outside the configuration', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const before = c.node('a').status();
    const r = c.node('a').step({
      type: 'appResp',
      clusterId: CLUSTER,
      from: 'x',
      to: 'a',
      term: before.term,
      success: true,
      matchIndex: 1000,
      rejectHint: 0,
      rejectTerm: 0,
      round: 1000,
    });
    expect(r).toEqual({ ok: true });
    expect(eventsOf(c, 'a')).toEqual([{ kind: 'ignored', from: 'x', type: 'appResp', term: before.term, reason: 'not-in-config' }]);
    expect(c.node('a').status()).toEqual(before);
  });

  const timeoutNow = (from: string, term: number): Message => ({ type: 'timeoutNow', clusterId: CLUSTER, from, to: 'b', term });

  it('a TimeoutNow not from the current leader is ignored: no election, the lease stands', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const term = c.node('b').basicStatus().term;
    eventsOf(c, 'b');
    c.node('b').step(timeoutNow('c', term));
    expect(eventsOf(c, 'b')).toEqual([{ kind: 'ignored', from: 'c', type: 'timeoutNow', term, reason: 'not-from-leader' }]);
    c.deliverAll();
    expect(c.node('b').basicStatus()).toMatchObject({ role: 'follower', term, leaderId: 'a' });
    expect(c.node('a').basicStatus()).toMatchObject({ role: 'leader', term, leaseValid: true });
  });

  it('the same TimeoutNow from the leader starts a transfer campaign (positive control)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const term = c.node('b').basicStatus().term;
    c.node('b').step(timeoutNow('a', term));
    expect(eventsOf(c, 'b')).toContainEqual({ kind: 'campaign', term: term + 1, preVote: false, transfer: true });
  });
});

describe('basicStatus', () => {
  it('refills the record it is given and agrees with status()', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const into = newBasicStatus();
    for (const id of ['a', 'b']) {
      const got = c.node(id).basicStatus(into);
      expect(got).toBe(into);
      const { firstLogIndex, conf: _conf, progress, ...basic } = c.node(id).status();
      expect(firstLogIndex).toBe(1);
      expect(progress === null).toBe(id !== 'a');
      expect({ ...got }).toEqual(basic);
    }
  });

  it('withProgress visits each follower on the leader and nothing elsewhere', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const seen: string[] = [];
    c.node('a').withProgress((id, match, next, state) => seen.push(`${id}:${match}:${next}:${state}`));
    const last = c.node('a').basicStatus().lastLogIndex;
    expect(seen.sort()).toEqual([`b:${last}:${last + 1}:replicate`, `c:${last}:${last + 1}:replicate`]);
    c.node('b').withProgress(() => seen.push('follower'));
    expect(seen).toHaveLength(2);
  });
});
