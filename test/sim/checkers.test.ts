// Each checker is shown a history with the violation it exists to catch, and a correct
// one, so a checker that can never fire cannot hide behind a green simulator run.
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../src/raft/types.js';
import {
  checkApplied,
  checkCommitAgreement,
  checkCommittedNotOverwritten,
  checkElectionSafety,
  checkIncarnationCounted,
  checkLeaderCompleteness,
  checkLeaseExclusivity,
  checkLeaderCommitRule,
  checkLiveness,
  checkNoDisruption,
  checkLogMatching,
  checkLogMatchingFull,
  checkReadIndex,
  checkWriteAcked,
  checkWriteApplied,
  checkWriteNotApplied,
  entryKey,
  History,
  recordApplied,
  recordCommitted,
  recordLeaders,
  recordLogEntries,
  recordWriteApplied,
} from './checkers.js';
import { applyOp, emptyLog, type LogState } from './disk.js';

const enc = new TextEncoder();

function entry(index: number, term: number, value = `v${index}`): Entry {
  return { index, term, type: 'normal', data: enc.encode(value) };
}

/** A log holding entries 1..n with the given terms (and values v<index> unless overridden). */
function logOf(terms: number[], values: Record<number, string> = {}): LogState {
  const s = emptyLog();
  applyOp(s, { kind: 'entries', entries: terms.map((t, i) => entry(i + 1, t, values[i + 1] ?? `v${i + 1}`)) });
  return s;
}

describe('Election Safety', () => {
  it('reports a second leader in a term already led by another node', () => {
    const h = new History();
    recordLeaders(h, [{ id: 'n1', role: 'leader', term: 3 }]);
    const v = checkElectionSafety(h, [{ id: 'n2', role: 'leader', term: 3 }]);
    expect(v).toHaveLength(1);
    expect(v[0]!.invariant).toBe('election-safety');
    expect(v[0]!.message).toContain('term 3');
  });

  it('reports two leaders of one term observed at once', () => {
    const v = checkElectionSafety(new History(), [
      { id: 'n1', role: 'leader', term: 2 },
      { id: 'n3', role: 'leader', term: 2 },
    ]);
    expect(v.map((x) => x.invariant)).toEqual(['election-safety']);
  });

  it('accepts one leader per term, the same leader seen again, and candidates in its term', () => {
    const h = new History();
    recordLeaders(h, [{ id: 'n1', role: 'leader', term: 3 }]);
    expect(
      checkElectionSafety(h, [
        { id: 'n1', role: 'leader', term: 3 },
        { id: 'n2', role: 'candidate', term: 3 },
        { id: 'n2', role: 'leader', term: 4 },
      ]),
    ).toEqual([]);
  });
});

describe('No disruption', () => {
  const leader = { id: 'n1', up: true, role: 'leader' as const, term: 4, leaseValid: true };
  it('reports a campaign in a higher term while a leader holds its lease', () => {
    const v = checkNoDisruption('n3', 5, [leader, { id: 'n3', up: true, role: 'candidate', term: 5, leaseValid: false }]);
    expect(v.map((x) => x.invariant)).toEqual(['disruption']);
    expect(v[0]!.message).toContain('n1, leader of term 4');
  });

  it('accepts a campaign once the lease is gone, or with the leader down', () => {
    expect(checkNoDisruption('n3', 5, [{ ...leader, leaseValid: false }])).toEqual([]);
    expect(checkNoDisruption('n3', 5, [{ ...leader, up: false }])).toEqual([]);
  });
});

describe('Leader commit rule (Figure 8)', () => {
  const log = (terms: number[]) => ({
    snapshot: null,
    hardState: { term: 4, votedFor: 'n1', commit: 0 },
    entries: terms.map((term, i) => ({ index: i + 1, term, type: 'normal' as const, data: new Uint8Array() })),
  });
  it("reports a leader that commits an earlier term's entry by counting", () => {
    const h = new History();
    recordLeaders(h, [{ id: 'n1', role: 'leader', term: 4 }]);
    const v = checkLeaderCommitRule(h, 'n1', 4, log([1, 2, 4]), 2);
    expect(v.map((x) => x.invariant)).toEqual(['commit-rule']);
  });

  it("accepts a leader's own entry, and any index for a node that did not lead the term", () => {
    const h = new History();
    recordLeaders(h, [{ id: 'n1', role: 'leader', term: 4 }]);
    expect(checkLeaderCommitRule(h, 'n1', 4, log([1, 2, 4]), 3)).toEqual([]);
    expect(checkLeaderCommitRule(h, 'n2', 4, log([1, 2, 4]), 2)).toEqual([]);
  });
});

describe('Lease Exclusivity', () => {
  it('reports two nodes holding a valid lease at one instant', () => {
    const v = checkLeaseExclusivity(1234, [
      { id: 'n1', up: true, leaseValid: true },
      { id: 'n2', up: true, leaseValid: true },
      { id: 'n3', up: true, leaseValid: false },
    ]);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('n1, n2');
  });

  it('accepts a single holder, and ignores a crashed node', () => {
    expect(
      checkLeaseExclusivity(1, [
        { id: 'n1', up: true, leaseValid: true },
        { id: 'n2', up: false, leaseValid: true },
      ]),
    ).toEqual([]);
  });
});

describe('Log Matching', () => {
  it('reports the same index and term holding different content', () => {
    const h = new History();
    const a = logOf([1, 1, 2]);
    recordLogEntries(h, 'n1', a, 1, 3);
    const b = logOf([1, 1, 2], { 3: 'other' });
    const v = checkLogMatching(h, 'n2', b, 1, 3);
    expect(v.map((x) => x.invariant)).toEqual(['log-matching']);
    expect(v[0]!.message).toContain('3/2');
  });

  it('reports the same index and term preceded by different terms', () => {
    const h = new History();
    recordLogEntries(h, 'n1', logOf([1, 1, 3]), 1, 3);
    const v = checkLogMatching(h, 'n2', logOf([1, 2, 3], { 3: 'v3' }), 3, 3);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('after term 2');
  });

  it('accepts logs that diverge only after their last common (index, term)', () => {
    const h = new History();
    recordLogEntries(h, 'n1', logOf([1, 1, 2, 2]), 1, 4);
    expect(checkLogMatching(h, 'n2', logOf([1, 1, 3], { 3: 'x' }), 1, 3)).toEqual([]);
  });

  it('whole-log form finds a differing prefix under an agreeing entry, and accepts matching logs', () => {
    const good = [
      { id: 'n1', log: logOf([1, 1, 2]) },
      { id: 'n2', log: logOf([1, 1, 2, 2]) },
      { id: 'n3', log: logOf([1, 3], { 2: 'y' }) },
    ];
    expect(checkLogMatchingFull(good)).toEqual([]);
    const bad = [
      { id: 'n1', log: logOf([1, 1, 2]) },
      { id: 'n2', log: logOf([1, 1, 2], { 1: 'z' }) },
    ];
    expect(checkLogMatchingFull(bad).map((x) => x.invariant)).toEqual(['log-matching']);
  });
});

describe('Leader Completeness', () => {
  it('reports a later-term leader missing a committed entry', () => {
    const h = new History();
    recordCommitted(h, 'n1', 2, logOf([1, 2, 2]), 0, 3);
    const v = checkLeaderCompleteness(h, 'n2', 3, logOf([1, 2]));
    expect(v.map((x) => x.invariant)).toEqual(['leader-completeness']);
    expect(v[0]!.message).toContain('lacks 3/2');
  });

  it('reports a later-term leader holding a different entry at a committed index', () => {
    const h = new History();
    recordCommitted(h, 'n1', 2, logOf([1, 2]), 0, 2);
    expect(checkLeaderCompleteness(h, 'n2', 4, logOf([1, 3], { 2: 'w' }))).toHaveLength(1);
  });

  it('accepts a complete leader, a stale leader of the same term, and entries covered by its snapshot', () => {
    const h = new History();
    recordCommitted(h, 'n1', 2, logOf([1, 2, 2]), 0, 3);
    expect(checkLeaderCompleteness(h, 'n2', 3, logOf([1, 2, 2, 3]))).toEqual([]);
    expect(checkLeaderCompleteness(h, 'n3', 2, logOf([1]))).toEqual([]);
    const compacted = logOf([1, 2, 2, 3]);
    applyOp(compacted, {
      kind: 'compact',
      snapshot: { meta: { index: 3, term: 2, conf: { voters: [], learners: [] } }, data: new Uint8Array() },
    });
    expect(checkLeaderCompleteness(h, 'n2', 3, compacted)).toEqual([]);
  });
});

describe('Durability', () => {
  it('reports two nodes committing different entries at one index', () => {
    const h = new History();
    recordCommitted(h, 'n1', 1, logOf([1, 1]), 0, 2);
    const v = checkCommitAgreement(h, 'n2', logOf([1, 2], { 2: 'other' }), 0, 2);
    expect(v.map((x) => x.invariant)).toEqual(['durability']);
  });

  it('reports a commit index beyond the end of the node log as a core contract breach', () => {
    expect(checkCommitAgreement(new History(), 'n1', logOf([1]), 0, 3).map((x) => x.invariant)).toEqual(['core-contract']);
  });

  it('reports a node overwriting an entry at or below its own commit index', () => {
    const before = logOf([1, 1, 1]);
    const v = checkCommittedNotOverwritten('n1', before, 2, [entry(2, 2, 'new'), entry(3, 2)]);
    expect(v.map((x) => x.invariant)).toEqual(['durability']);
    expect(v[0]!.message).toContain('overwrites committed 2/1');
  });

  it('accepts overwriting uncommitted entries and rewriting committed ones unchanged', () => {
    const before = logOf([1, 1, 1]);
    expect(checkCommittedNotOverwritten('n1', before, 2, [entry(2, 1), entry(3, 2, 'new')])).toEqual([]);
  });

  it('reports applying something other than the committed entry at an index', () => {
    const h = new History();
    recordCommitted(h, 'n1', 1, logOf([1]), 0, 1);
    const v = checkApplied(h, 'n2', 1, entryKey(entry(1, 1, 'lost write replaced')));
    expect(v.map((x) => x.invariant)).toContain('durability');
  });
});

describe('State Machine Safety', () => {
  it('reports two nodes applying different entries at one index', () => {
    const h = new History();
    recordApplied(h, 'n1', 5, entryKey(entry(5, 2, 'a')));
    const v = checkApplied(h, 'n2', 5, entryKey(entry(5, 3, 'b')));
    expect(v.map((x) => x.invariant)).toEqual(['state-machine-safety']);
  });

  it('accepts every node applying the same entry at an index', () => {
    const h = new History();
    recordCommitted(h, 'n1', 2, logOf([1, 2, 2, 2, 2]), 0, 5);
    recordApplied(h, 'n1', 5, entryKey(entry(5, 2)));
    expect(checkApplied(h, 'n3', 5, entryKey(entry(5, 2)))).toEqual([]);
  });
});

describe('Read linearizability', () => {
  it('reports a read index below what was committed before the read was asked', () => {
    expect(checkReadIndex('n1', 'r1', 4, 7).map((x) => x.invariant)).toEqual(['read-linearizability']);
  });

  it('accepts a covering read index and a failed read', () => {
    expect(checkReadIndex('n1', 'r1', 7, 7)).toEqual([]);
    expect(checkReadIndex('n1', 'r2', -1, 7)).toEqual([]);
  });
});

describe('Liveness', () => {
  it('reports no leader, a late leader, and a probe never applied everywhere', () => {
    expect(
      checkLiveness({ leaderAfterTicks: null, readAfterTicks: null, appliedAfterTicks: null, boundTicks: 100, detail: '' }),
    ).toHaveLength(1);
    expect(checkLiveness({ leaderAfterTicks: 101, readAfterTicks: 110, appliedAfterTicks: 150, boundTicks: 100, detail: '' })).toHaveLength(
      1,
    );
    const v = checkLiveness({ leaderAfterTicks: 30, readAfterTicks: 40, appliedAfterTicks: null, boundTicks: 100, detail: 'n3 behind' });
    expect(v[0]!.message).toContain('n3 behind');
  });

  it('reports a leader that serves no read until a client writes (no entry of its own term)', () => {
    const v = checkLiveness({ leaderAfterTicks: 30, readAfterTicks: null, appliedAfterTicks: null, boundTicks: 100, detail: '' });
    expect(v.map((x) => x.message)).toEqual([expect.stringContaining('no read served')]);
    expect(checkLiveness({ leaderAfterTicks: 30, readAfterTicks: 201, appliedAfterTicks: 150, boundTicks: 100, detail: '' })).toHaveLength(
      1,
    );
  });

  it('accepts a leader, a read and the probe applied within the bound', () => {
    expect(checkLiveness({ leaderAfterTicks: 30, readAfterTicks: 35, appliedAfterTicks: 60, boundTicks: 100, detail: '' })).toEqual([]);
  });
});

describe('Write outcomes', () => {
  it('reports a write applied at two indexes (applied twice)', () => {
    const h = new History();
    recordWriteApplied(h, 'n1', 'v7', 12);
    const v = checkWriteApplied(h, 'n2', 'v7', 15);
    expect(v.map((x) => x.invariant)).toEqual(['write-outcome']);
    expect(v[0]!.message).toContain('applied twice');
  });

  it("reports a write applied after it was reported 'not-applied', and a 'not-applied' report after it was applied", () => {
    const h = new History();
    h.writesNotApplied.add('v3');
    expect(checkWriteApplied(h, 'n1', 'v3', 4).map((x) => x.invariant)).toEqual(['write-outcome']);
    const h2 = new History();
    recordWriteApplied(h2, 'n1', 'v3', 4);
    expect(checkWriteNotApplied(h2, 'n2', 'v3').map((x) => x.invariant)).toEqual(['write-outcome']);
  });

  it('reports an acknowledgement with an index other than where the write was applied, or of a write never applied', () => {
    const h = new History();
    recordWriteApplied(h, 'n1', 'v1', 9);
    expect(checkWriteAcked(h, 'n1', 'v1', 8)).toHaveLength(1);
    expect(checkWriteAcked(h, 'n1', 'v2', 10)[0]!.message).toContain('never applied');
    h.writesAcked.set('v1', 9);
    expect(checkWriteApplied(h, 'n3', 'v1', 11).length).toBeGreaterThan(0);
  });

  it('accepts a write applied once at its acknowledged index, on every node, and an unapplied write reported not-applied', () => {
    const h = new History();
    expect(checkWriteApplied(h, 'n1', 'v1', 9)).toEqual([]);
    recordWriteApplied(h, 'n1', 'v1', 9);
    expect(checkWriteAcked(h, 'n1', 'v1', 9)).toEqual([]);
    h.writesAcked.set('v1', 9);
    expect(checkWriteApplied(h, 'n2', 'v1', 9)).toEqual([]);
    expect(checkWriteNotApplied(h, 'n1', 'v2')).toEqual([]);
  });
});

describe('No voter with a lost incarnation counted', () => {
  it('reports a vote or an acknowledgement counted from a member whose data dir was replaced', () => {
    const v = checkIncarnationCounted('n2', 1, 2, 'a vote in term 4', 'n1');
    expect(v.map((x) => x.invariant)).toEqual(['lost-incarnation']);
    expect(v[0]!.message).toContain('n2 incarnation 2');
  });

  it('accepts the admitted incarnation, and a node that is not a member', () => {
    expect(checkIncarnationCounted('n2', 3, 3, 'a vote', 'n1')).toEqual([]);
    expect(checkIncarnationCounted('n9', undefined, 2, 'a vote', 'n1')).toEqual([]);
  });
});
