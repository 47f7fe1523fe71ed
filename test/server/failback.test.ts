// The failback decision: who, when, and at most once per anti-flap window.
import { describe, expect, it } from 'vitest';
import { FailbackPlanner, type FailbackInput, type LeadershipCandidate } from '../../src/server/failback.js';

const SETTINGS = { delayMs: 1000, antiFlapMs: 5000, unhealthyAfterMs: 300, retryMs: 600 };

function member(id: string, over: Partial<LeadershipCandidate> = {}): LeadershipCandidate {
  return { id, priority: 1, refusal: null, active: true, caughtUp: true, matchIndex: 10, ...over };
}

function input(nowMs: number, voters: LeadershipCandidate[], over: Partial<FailbackInput> = {}): FailbackInput {
  return { nowMs, leaderSinceMs: -10_000, self: { id: 'n1', priority: 1, refusal: null }, voters, ...over };
}

/** Feed the planner one sample every 50 ms from `from` to `to` (inclusive); returns the last decision. */
function run(
  p: FailbackPlanner,
  from: number,
  to: number,
  voters: (t: number) => LeadershipCandidate[],
  over: Partial<FailbackInput> = {},
) {
  let d = p.decide(input(from, voters(from), over));
  for (let t = from + 50; t <= to; t += 50) d = p.decide(input(t, voters(t), over));
  return d;
}

describe('failback planner', () => {
  it('equal priorities: nobody is better, the leader stays', () => {
    const p = new FailbackPlanner(SETTINGS);
    expect(run(p, 0, 3000, () => [member('n2'), member('n3')])).toEqual({ kind: 'stay', reason: 'highest-priority' });
  });

  it('a higher-priority member is handed leadership once healthy for the whole delay, not before', () => {
    const p = new FailbackPlanner(SETTINGS);
    const voters = () => [member('n2', { priority: 5 }), member('n3', { priority: 3 })];
    expect(run(p, 0, 950, voters)).toEqual({ kind: 'wait', to: 'n2', reason: 'failback-delay', atMs: 1000 });
    expect(p.decide(input(1000, voters()))).toEqual({ kind: 'transfer', to: 'n2', reason: 'higher-priority' });
  });

  it('a gap longer than the unhealthy bound starts the delay over; short gaps (a missed heartbeat) do not', () => {
    const p = new FailbackPlanner(SETTINGS);
    // Inactive for 200 ms at t=400: tolerated.
    const flicker = (t: number) => [member('n2', { priority: 5, active: !(t >= 400 && t < 600) })];
    expect(run(p, 0, 1000, flicker)).toMatchObject({ kind: 'transfer', to: 'n2' });
    const q = new FailbackPlanner(SETTINGS);
    // Not caught up for 500 ms from t=400: the run restarts when it is healthy again (t=900).
    const lagging = (t: number) => [member('n2', { priority: 5, caughtUp: !(t >= 400 && t < 900) })];
    expect(run(q, 0, 1850, lagging)).toEqual({ kind: 'wait', to: 'n2', reason: 'failback-delay', atMs: 1900 });
    expect(q.decide(input(1900, lagging(1900)))).toMatchObject({ kind: 'transfer', to: 'n2' });
  });

  it('anti-flap: a leader fails back only after leading for the window', () => {
    const p = new FailbackPlanner(SETTINGS);
    const voters = () => [member('n2', { priority: 5 })];
    const over = { leaderSinceMs: 0 };
    expect(run(p, 0, 4950, voters, over)).toEqual({ kind: 'wait', to: 'n2', reason: 'anti-flap', atMs: 5000 });
    expect(p.decide(input(5000, voters(), over))).toMatchObject({ kind: 'transfer', to: 'n2' });
  });

  it('failback delay 0 disables failback', () => {
    const p = new FailbackPlanner({ ...SETTINGS, delayMs: 0 });
    expect(run(p, 0, 3000, () => [member('n2', { priority: 5 })])).toEqual({ kind: 'stay', reason: 'failback-disabled' });
  });

  it('never to a member that may not lead, or that lags, or is silent: the best eligible one instead', () => {
    const p = new FailbackPlanner(SETTINGS);
    const voters = () => [
      member('n2', { priority: 9, refusal: 'drained' }),
      member('n3', { priority: 8, active: false }),
      member('n4', { priority: 7, caughtUp: false }),
      member('n5', { priority: 0, refusal: 'priority-0' }),
      member('n6', { priority: 2, matchIndex: 9 }),
      member('n7', { priority: 2, matchIndex: 10 }),
    ];
    expect(run(p, 0, 1000, voters)).toEqual({ kind: 'transfer', to: 'n7', reason: 'higher-priority' });
  });

  it('a drained or priority-0 leader hands over at once, with no delay or window, to the highest-priority healthy member', () => {
    const p = new FailbackPlanner(SETTINGS);
    const voters = [member('n2', { priority: 1 }), member('n3', { priority: 2 })];
    const drained = { self: { id: 'n1', priority: 5, refusal: 'drained' as const }, leaderSinceMs: 0 };
    expect(p.decide(input(0, voters, drained))).toEqual({ kind: 'transfer', to: 'n3', reason: 'leader-drained' });
    const zero = { self: { id: 'n1', priority: 0, refusal: 'priority-0' as const }, leaderSinceMs: 0 };
    expect(p.decide(input(50, voters, zero))).toEqual({ kind: 'transfer', to: 'n3', reason: 'leader-priority-0' });
  });

  it('a drained leader with no member able to lead stays, and says so', () => {
    const p = new FailbackPlanner(SETTINGS);
    const voters = [member('n2', { refusal: 'drained' }), member('n3', { active: false })];
    const d = p.decide(input(0, voters, { self: { id: 'n1', priority: 1, refusal: 'drained' } }));
    expect(d).toEqual({ kind: 'stay', reason: 'no-eligible-member' });
  });

  it('after a failed transfer it waits before trying again, and the target must be healthy for a whole delay again', () => {
    const p = new FailbackPlanner(SETTINGS);
    const voters = () => [member('n2', { priority: 5 })];
    expect(run(p, 0, 1000, voters)).toMatchObject({ kind: 'transfer', to: 'n2' });
    p.transferFailed('n2', 1000);
    // Its healthy run starts over at the first sample after the failure (t=1550).
    expect(p.decide(input(1550, voters()))).toEqual({ kind: 'stay', reason: 'retry-wait' });
    expect(run(p, 1600, 2500, voters)).toEqual({ kind: 'wait', to: 'n2', reason: 'failback-delay', atMs: 2550 });
    expect(p.decide(input(2550, voters()))).toMatchObject({ kind: 'transfer', to: 'n2' });
  });
});
