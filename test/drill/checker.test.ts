// The drill's checkers, each fed a fabricated broken history to prove it fires, and a
// healthy one to prove it stays quiet.
import { describe, expect, it } from 'vitest';
import {
  leadershipOverlaps,
  leadershipSpans,
  lostWrites,
  trialTimings,
  type AckedWrite,
  type FoundValue,
  type StatusObservation,
} from '../../src/drill/checker.js';

const acked: AckedWrite[] = [
  { key: 'd/1', value: '1', revision: 10, ackedAtMs: 1 },
  { key: 'd/2', value: '2', revision: 11, ackedAtMs: 2 },
  { key: 'd/3', value: '3', revision: 12, ackedAtMs: 3 },
];
const allThere = new Map<string, FoundValue>(acked.map((w) => [w.key, { value: w.value, modRevision: w.revision }]));

describe('lost-write counter', () => {
  it('finds nothing lost when every acknowledged write reads back as written', () => {
    expect(lostWrites(acked, allThere)).toEqual([]);
  });

  it('counts a missing key, a changed value and a write at another revision as lost', () => {
    const broken = new Map(allThere);
    broken.delete('d/1');
    broken.set('d/2', { value: 'other', modRevision: 11 });
    broken.set('d/3', { value: '3', modRevision: 40 });
    expect(lostWrites(acked, broken).map((w) => w.key)).toEqual(['d/1', 'd/2', 'd/3']);
  });

  it('ignores keys nobody acknowledged (writes whose outcome was unknown may land)', () => {
    const extra = new Map(allThere);
    extra.set('d/4', { value: '4', modRevision: 13 });
    expect(lostWrites(acked, extra)).toEqual([]);
  });
});

function obs(node: string, sentMs: number, role: string, term: number, leaseValid = role === 'leader', leaderId = ''): StatusObservation {
  return {
    node,
    sentMs,
    receivedMs: sentMs + 2,
    status: { role, term, leaderId: leaderId || (role === 'leader' ? node : ''), leaseValid },
  };
}
const down = (node: string, sentMs: number): StatusObservation => ({ node, sentMs, receivedMs: sentMs + 250, status: null });

describe('overlap detector', () => {
  it('a clean failover (old leader gone, then a new one in a newer term) has no overlap', () => {
    const history = [
      obs('n1', 0, 'leader', 1),
      obs('n1', 20, 'leader', 1),
      down('n1', 40),
      obs('n2', 0, 'follower', 1, false, 'n1'),
      obs('n2', 300, 'candidate', 2),
      obs('n2', 320, 'leader', 2),
      obs('n2', 340, 'leader', 2),
      obs('n1', 600, 'follower', 2, false, 'n2'),
    ];
    expect(leadershipOverlaps(history)).toEqual([]);
  });

  it('catches two leaders of one term', () => {
    const history = [obs('n1', 0, 'leader', 3, false), obs('n2', 500, 'leader', 3, false)];
    expect(leadershipOverlaps(history)).toEqual([{ kind: 'same-term', atMs: 502, detail: 'n1 and n2 both led term 3' }]);
  });

  it('catches a woken leader claiming its old lease inside the new leader’s lease', () => {
    const history = [
      obs('n1', 0, 'leader', 1),
      down('n1', 20),
      obs('n2', 400, 'leader', 2),
      obs('n2', 420, 'leader', 2),
      obs('n2', 440, 'leader', 2),
      // n1 was paused; it answers between n2's two polls still claiming its lease.
      { node: 'n1', sentMs: 423, receivedMs: 428, status: { role: 'leader', term: 1, leaderId: 'n1', leaseValid: true } },
    ];
    const found = leadershipOverlaps(history);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ kind: 'lease', atMs: 423 });
    expect(found[0]!.detail).toContain('n1 claimed a valid lease (term 1) while n2 held one (term 2)');
  });

  it('does not call it an overlap when the other leader’s hold is not certain (a failed poll between)', () => {
    const history = [
      obs('n2', 400, 'leader', 2),
      down('n2', 420),
      obs('n2', 700, 'leader', 2),
      { node: 'n1', sentMs: 500, receivedMs: 505, status: { role: 'leader', term: 1, leaderId: 'n1', leaseValid: true } },
    ];
    expect(leadershipOverlaps(history)).toEqual([]);
  });
});

describe('trial timings', () => {
  const history = [
    obs('n2', 90, 'follower', 1, false, 'n1'),
    obs('n2', 110, 'follower', 1, false, 'n1'),
    obs('n3', 400, 'follower', 1, false, ''),
    obs('n2', 450, 'candidate', 2),
    obs('n2', 480, 'leader', 2),
  ];
  const samples = [
    { startMs: 90, ackMs: 95 },
    { startMs: 98, ackMs: 99 },
    { startMs: 99, ackMs: 120 }, // in flight at the fault: proves nothing
    { startMs: 105, ackMs: null },
    { startMs: 110, ackMs: 600 },
    { startMs: 620, ackMs: 625 },
  ];

  it('measures detection, the new leader and RTO from the fault', () => {
    expect(trialTimings(100, 1, history, samples)).toEqual({ detectionMs: 302, newLeaderMs: 382, newLeader: 'n2', rtoMs: 501 });
  });

  it('reports null for what did not happen', () => {
    expect(trialTimings(100, 1, history.slice(0, 2), samples.slice(0, 4))).toEqual({
      detectionMs: null,
      newLeaderMs: null,
      newLeader: null,
      rtoMs: null,
    });
  });
});

describe('leadership spans', () => {
  it('follow the highest-term leader and show the leaderless gap', () => {
    const spans = leadershipSpans([obs('n1', 0, 'leader', 1), down('n1', 20), obs('n2', 300, 'candidate', 2), obs('n2', 400, 'leader', 2)]);
    expect(spans.map((s) => [s.leader, s.term])).toEqual([
      ['n1', 1],
      [null, 1],
      [null, 2],
      ['n2', 2],
    ]);
    expect(spans[0]).toMatchObject({ fromMs: 2 });
    expect(spans[spans.length - 1]).toMatchObject({ fromMs: 402, toMs: 402 });
  });
});
