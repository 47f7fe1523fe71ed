// Table-driven tests of the leader's per-follower flow control (src/raft/progress.ts),
// in the style of etcd-io/raft tracker/progress_test.go.
import { describe, expect, it } from 'vitest';
import { Progress, type ProgressState } from '../../src/raft/progress.js';

function progress(state: ProgressState, match: number, next: number): Progress {
  const pr = new Progress(next, false);
  pr.matchIndex = match;
  pr.state = state;
  if (state === 'snapshot') pr.becomeSnapshot(10);
  return pr;
}

describe('Progress', () => {
  it.each([
    { update: 3, updated: false, match: 5, next: 6 }, // stale acknowledgement
    { update: 5, updated: false, match: 5, next: 6 },
    { update: 7, updated: true, match: 7, next: 8 },
    { update: 9, updated: true, match: 9, next: 10 },
  ])('maybeUpdate($update) from match 5, next 6', ({ update, updated, match, next }) => {
    const pr = progress('probe', 5, 6);
    expect(pr.maybeUpdate(update)).toBe(updated);
    expect([pr.matchIndex, pr.nextIndex]).toEqual([match, next]);
  });

  it.each([
    // replicate: a rejection at or below match is stale; otherwise back to match+1.
    { state: 'replicate', match: 5, next: 10, rejected: 5, hint: 0, ok: false, want: 10 },
    { state: 'replicate', match: 5, next: 10, rejected: 9, hint: 0, ok: true, want: 6 },
    // probe: only the rejection of the append just sent counts (next-1).
    { state: 'probe', match: 0, next: 10, rejected: 8, hint: 3, ok: false, want: 10 },
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 3, ok: true, want: 4 },
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 20, ok: true, want: 9 },
    { state: 'probe', match: 5, next: 10, rejected: 9, hint: 2, ok: true, want: 6 },
    { state: 'probe', match: 0, next: 2, rejected: 1, hint: 0, ok: true, want: 1 },
  ] as const)(
    '$state match $match next $next: maybeDecrTo($rejected, hint $hint) -> $ok, next $want',
    ({ state, match, next, rejected, hint, ok, want }) => {
      const pr = progress(state, match, next);
      expect(pr.maybeDecrTo(rejected, hint)).toBe(ok);
      expect(pr.nextIndex).toBe(want);
    },
  );

  it.each([
    { state: 'probe', probeSent: false, inflight: 0, paused: false },
    { state: 'probe', probeSent: true, inflight: 0, paused: true },
    { state: 'replicate', probeSent: false, inflight: 2, paused: false },
    { state: 'replicate', probeSent: false, inflight: 3, paused: true },
    { state: 'snapshot', probeSent: false, inflight: 0, paused: true },
  ] as const)('$state, probeSent $probeSent, $inflight in flight of 3: paused $paused', ({ state, probeSent, inflight, paused }) => {
    const pr = progress(state, 1, 2);
    pr.probeSent = probeSent;
    for (let i = 0; i < inflight; i++) pr.sentEntries(2 + i, 1, 10);
    expect(pr.isPaused(3, Infinity)).toBe(paused);
  });

  it.each([
    { sent: [], paused: false, why: 'nothing in flight: one append goes out however large' },
    { sent: [300], paused: false, why: '300 of 1000 bytes in flight' },
    { sent: [600, 399], paused: false, why: '999 of 1000 bytes in flight' },
    { sent: [600, 400], paused: true, why: '1000 of 1000 bytes in flight' },
    { sent: [5000], paused: true, why: 'one append over the bound alone' },
  ])('replicate, maxInflightBytes 1000: $why', ({ sent, paused }) => {
    const pr = progress('replicate', 1, 2);
    sent.forEach((bytes, i) => pr.sentEntries(2 + i, 1, bytes));
    expect(pr.isPaused(256, 1000)).toBe(paused);
  });

  it('pipelining: sentEntries moves next optimistically; acknowledgements free the window in order, messages and bytes', () => {
    const pr = progress('replicate', 4, 5);
    pr.sentEntries(6, 1, 100);
    pr.sentEntries(9, 1, 200);
    pr.sentEntries(12, 2, 400);
    expect(pr.nextIndex).toBe(13);
    expect(pr.inflightBytes).toBe(700);
    pr.freeInflightTo(8);
    expect(pr.inflight).toEqual([
      { index: 9, round: 1, bytes: 200 },
      { index: 12, round: 2, bytes: 400 },
    ]);
    expect(pr.inflightBytes).toBe(600);
    pr.freeInflightTo(12);
    expect(pr.inflight).toEqual([]);
    expect(pr.inflightBytes).toBe(0);
  });

  it.each([
    { from: 'replicate', match: 4, next: 9, want: 5 },
    // After a snapshot the follower holds at least the snapshot: probe from past it.
    { from: 'snapshot', match: 4, next: 9, want: 11 },
  ] as const)('becomeProbe from $from resumes at $want', ({ from, match, next, want }) => {
    const pr = progress(from, match, next);
    pr.becomeProbe();
    expect([pr.state, pr.nextIndex, pr.probeSent, pr.inflight, pr.pendingSnapshot]).toEqual(['probe', want, false, [], null]);
  });

  it('becomeReplicate resets the window and resumes right after match', () => {
    const pr = progress('probe', 7, 3 + 7);
    pr.probeSent = true;
    pr.becomeReplicate();
    expect([pr.state, pr.nextIndex, pr.probeSent]).toEqual(['replicate', 8, false]);
  });
});
