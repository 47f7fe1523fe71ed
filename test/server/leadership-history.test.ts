// The cause of each leader change, as an operator reads it in /metrics and the dashboard:
// inferred from what the node saw since the last leader it knew.
import { describe, expect, it } from 'vitest';
import { LeadershipHistory } from '../../src/server/leadership-history.js';
import type { Message, SoftState } from '../../src/raft/types.js';

function soft(role: SoftState['role'], leaderId: string | null, term: number): SoftState {
  return { role, leaderId, term, learner: false };
}

/** A history on a fake clock, and a helper that feeds soft-state transitions in order. */
function setup() {
  let now = 0;
  const h = new LeadershipHistory({ now: () => now, wallNow: () => 1_000_000 + now });
  let prev = soft('follower', null, 0);
  const to = (s: SoftState) => {
    h.noteSoftState(prev, s);
    prev = s;
  };
  return { h, to, advance: (ms: number) => (now += ms) };
}

const vote = (from: string, term: number, transfer: boolean, preVote = false): Message => ({
  type: 'vote',
  from,
  to: 'n1',
  term,
  clusterId: 'c',
  preVote,
  lastLogIndex: 0,
  lastLogTerm: 0,
  transfer,
});
const app = (from: string, term: number): Message => ({
  type: 'app',
  from,
  to: 'n1',
  term,
  clusterId: 'c',
  prevLogIndex: 0,
  prevLogTerm: 0,
  entries: [],
  leaderCommit: 0,
  round: 1,
});

describe('leadership history', () => {
  it('the first leader is "startup", with the time this node waited for it', () => {
    const { h, to, advance } = setup();
    advance(400);
    h.noteEvent({ kind: 'campaign', term: 0, preVote: true, transfer: false });
    to(soft('candidate', null, 1));
    advance(20);
    to(soft('follower', 'n2', 1));
    expect(h.changes()).toEqual([{ at: 1_000_420, term: 1, previous: null, leader: 'n2', cause: 'startup', leaderlessMs: 420 }]);
    expect(h.leaderlessMs()).toBe(0);
  });

  it('a dead leader replaced after our election timeout is "election-timeout", leaderless time counted from losing it', () => {
    const { h, to, advance } = setup();
    to(soft('follower', 'n2', 1));
    advance(1000);
    h.noteEvent({ kind: 'campaign', term: 1, preVote: true, transfer: false });
    to(soft('candidate', null, 2));
    advance(35);
    expect(h.leaderlessMs()).toBe(35);
    to(soft('leader', 'n1', 2));
    expect(h.changes()[1]).toMatchObject({ term: 2, previous: 'n2', leader: 'n1', cause: 'election-timeout', leaderlessMs: 35 });
  });

  it("a peer's transfer vote is 'transfer', even after a refused ordinary pre-vote", () => {
    const { h, to } = setup();
    to(soft('follower', 'n2', 1));
    h.noteMessage(vote('n3', 2, false, true));
    h.noteMessage(vote('n3', 2, true));
    to(soft('follower', 'n3', 2));
    expect(h.changes()[1]?.cause).toBe('transfer');
  });

  it('a refused vote request while our leader keeps sending appends is not the cause of a later change', () => {
    const { h, to } = setup();
    to(soft('leader', 'n1', 1));
    to(soft('follower', 'n2', 1)); // n2 led term 1 for this test: the fake is about signals only
    h.noteMessage(vote('n3', 2, false, true));
    h.noteMessage(app('n2', 1));
    h.noteEvent({ kind: 'step-down', term: 1, reason: 'lost-quorum' });
    to(soft('follower', 'n3', 3));
    expect(h.changes().at(-1)?.cause).toBe('check-quorum');
  });

  it('a leader that loses its quorum records "check-quorum"; a higher term seen first records "higher-term"', () => {
    const { h, to } = setup();
    to(soft('leader', 'n1', 1));
    h.noteEvent({ kind: 'step-down', term: 1, reason: 'lost-quorum' });
    to(soft('follower', null, 1));
    to(soft('follower', 'n2', 2));
    h.noteEvent({ kind: 'step-down', term: 2, reason: 'higher-term' });
    to(soft('follower', 'n3', 3));
    expect(h.changes().map((c) => c.cause)).toEqual(['startup', 'check-quorum', 'higher-term']);
  });

  it('the old leader that started a transfer records "transfer", not the higher term it stepped down on', () => {
    const { h, to } = setup();
    to(soft('leader', 'n1', 1));
    h.noteEvent({ kind: 'transfer', to: 'n2', term: 1, outcome: 'timeout-now-sent' });
    h.noteEvent({ kind: 'step-down', term: 1, reason: 'higher-term' });
    to(soft('follower', 'n2', 2));
    expect(h.changes()[1]?.cause).toBe('transfer');
  });

  it('the same leader and term learned again (our failed pre-vote) is no change; a new leader with no signal is "unknown"', () => {
    const { h, to } = setup();
    to(soft('follower', 'n2', 1));
    h.noteEvent({ kind: 'campaign', term: 1, preVote: true, transfer: false });
    to(soft('candidate', null, 1));
    to(soft('follower', 'n2', 1));
    expect(h.changes()).toHaveLength(1);
    to(soft('follower', 'n3', 5));
    expect(h.changes().map((c) => c.cause)).toEqual(['startup', 'election-timeout']);
    to(soft('follower', 'n2', 6));
    expect(h.changes().at(-1)?.cause).toBe('unknown');
  });

  it('keeps only the newest changes', () => {
    let now = 0;
    const h = new LeadershipHistory({ capacity: 3, now: () => now });
    let prev = soft('follower', null, 0);
    for (let t = 1; t <= 5; t++) {
      const s = soft('follower', `n${t}`, t);
      h.noteSoftState(prev, s);
      prev = s;
      now += 10;
    }
    expect(h.changes().map((c) => c.term)).toEqual([3, 4, 5]);
  });
});
