// Table-driven tests of the in-memory log (src/raft/log.ts), in the style of
// etcd-io/raft log_test.go: each row is a log, an operation and what must follow.
import { describe, expect, it } from 'vitest';
import { RaftLog } from '../../src/raft/log.js';
import { encodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfState, Entry, SnapshotMeta } from '../../src/raft/types.js';

const conf: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
const e = (index: number, term: number, bytes = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array(bytes) });
/** Entries (from, term), (from+1, term)... */
const run = (from: number, ...terms: number[]): Entry[] => terms.map((t, i) => e(from + i, t));
const snap = (index: number, term: number): SnapshotMeta => ({ index, term, conf });
const ids = (es: readonly Entry[]) => es.map((x) => `${x.index}/${x.term}`);

/** Snapshot at 3 (term 2), entries 4..6 with terms 2, 3, 3. */
const compacted = () => new RaftLog(snap(3, 2), run(4, 2, 3, 3), 3);

describe('RaftLog', () => {
  it.each([
    { index: 2, term: undefined },
    { index: 3, term: 2 },
    { index: 4, term: 2 },
    { index: 6, term: 3 },
    { index: 7, term: undefined },
  ])('term($index) after a snapshot at 3 is $term', ({ index, term }) => {
    expect(compacted().term(index)).toBe(term);
  });

  it('first and last index, last term, entry()', () => {
    const log = compacted();
    expect([log.firstIndex(), log.lastIndex(), log.lastTerm()]).toEqual([4, 6, 3]);
    expect(log.entry(3)).toBeUndefined();
    expect(log.entry(5)).toEqual(e(5, 3));
    const empty = new RaftLog(snap(0, 0), [], 0);
    expect([empty.firstIndex(), empty.lastIndex(), empty.lastTerm()]).toEqual([1, 0, 0]);
  });

  // §5.4.1: a higher last term wins; equal last terms compare length.
  it.each([
    { lastIndex: 5, lastTerm: 4, upToDate: true },
    { lastIndex: 1, lastTerm: 4, upToDate: true },
    { lastIndex: 6, lastTerm: 3, upToDate: true },
    { lastIndex: 7, lastTerm: 3, upToDate: true },
    { lastIndex: 5, lastTerm: 3, upToDate: false },
    { lastIndex: 9, lastTerm: 2, upToDate: false },
  ])('isUpToDate($lastIndex, $lastTerm) against a log ending at 6/3 is $upToDate', ({ lastIndex, lastTerm, upToDate }) => {
    expect(compacted().isUpToDate(lastIndex, lastTerm)).toBe(upToDate);
  });

  it.each([
    { lo: 1, hi: 3, max: Infinity, want: ['1/1', '2/1', '3/2'] },
    { lo: 2, hi: 9, max: Infinity, want: ['2/1', '3/2', '4/2'] },
    { lo: 1, hi: 4, max: 25, want: ['1/1', '2/1'] },
    // At least one entry, whatever its size: an entry larger than the limit still goes out.
    { lo: 1, hi: 4, max: 1, want: ['1/1'] },
    { lo: 5, hi: 9, max: Infinity, want: [] },
  ])('slice($lo, $hi, $max bytes)', ({ lo, hi, max, want }) => {
    const log = new RaftLog(snap(0, 0), [e(1, 1, 10), e(2, 1, 10), e(3, 2, 10), e(4, 2, 10)], 0);
    expect(ids(log.slice(lo, hi, max)!)).toEqual(want);
  });

  it('slice below the snapshot is undefined: the caller must send a snapshot', () => {
    expect(compacted().slice(3, 6)).toBeUndefined();
  });

  // Figure 2, AppendEntries receiver steps 3-4. Log 1..3 with terms 1, 1, 2; commit 1.
  it.each([
    { name: 'all already present', entries: run(2, 1, 2), log: ['1/1', '2/1', '3/2'], appended: [], truncated: false },
    {
      name: 'new after the last',
      entries: run(3, 2, 2, 3),
      log: ['1/1', '2/1', '3/2', '4/2', '5/3'],
      appended: ['4/2', '5/3'],
      truncated: false,
    },
    {
      name: 'conflict truncates the suffix',
      entries: run(3, 3, 3),
      log: ['1/1', '2/1', '3/3', '4/3'],
      appended: ['3/3', '4/3'],
      truncated: true,
    },
    { name: 'conflict in the middle', entries: run(2, 4), log: ['1/1', '2/4'], appended: ['2/4'], truncated: true },
    { name: 'nothing', entries: [], log: ['1/1', '2/1', '3/2'], appended: [], truncated: false },
  ])('maybeAppend: $name', ({ entries, log: want, appended, truncated }) => {
    const log = new RaftLog(snap(0, 0), run(1, 1, 1, 2), 1);
    const r = log.maybeAppend(entries);
    expect(ids(log.slice(1, log.lastIndex())!)).toEqual(want);
    expect(ids(r.appended)).toEqual(appended);
    expect(r.truncated).toBe(truncated);
  });

  it('entries replaced by a truncation are unstable again, and stableTo ignores an acknowledgement of the replaced entry', () => {
    const log = new RaftLog(snap(0, 0), run(1, 1, 1, 2), 1);
    expect(log.hasUnstable()).toBe(false);
    log.maybeAppend(run(3, 3));
    expect(ids(log.unstableEntries())).toEqual(['3/3']);
    log.stableTo(3, 2); // the old entry at 3 was persisted, not the new one
    expect(ids(log.unstableEntries())).toEqual(['3/3']);
    log.stableTo(3, 3);
    expect(log.hasUnstable()).toBe(false);
  });

  it('durableTo ignores a write of entries a truncation replaced, and a truncation takes durability back', () => {
    const log = new RaftLog(snap(0, 0), run(1, 1, 1, 1, 1, 1), 1);
    expect(log.durable).toBe(5); // read back from disk
    log.maybeAppend(run(3, 2)); // a new leader replaces 3..5
    expect(log.durable).toBe(2);
    log.durableTo(5, 1); // the old write of 5 completes: the log no longer holds it
    log.durableTo(3, 1);
    expect(log.durable).toBe(2);
    log.durableTo(3, 2);
    expect(log.durable).toBe(3);
    log.durableTo(2, 1); // an older write never takes it back
    expect(log.durable).toBe(3);
  });

  // Fast backtracking: the largest index <= `index` whose term is <= `term`.
  // Log 1..7 with terms 1 1 2 2 4 4 4.
  it.each([
    { index: 7, term: 4, want: { index: 7, term: 4 } },
    { index: 7, term: 3, want: { index: 4, term: 2 } },
    { index: 7, term: 2, want: { index: 4, term: 2 } },
    { index: 3, term: 1, want: { index: 2, term: 1 } },
    { index: 9, term: 5, want: { index: 7, term: 4 } },
    { index: 7, term: 0, want: { index: 0, term: 0 } },
  ])('findConflictByTerm($index, $term)', ({ index, term, want }) => {
    const log = new RaftLog(snap(0, 0), run(1, 1, 1, 2, 2, 4, 4, 4), 0);
    expect(log.findConflictByTerm(index, term)).toEqual(want);
  });

  it('findConflictByTerm stops at the snapshot', () => {
    expect(compacted().findConflictByTerm(6, 1)).toEqual({ index: 3, term: 2 });
  });

  it.each([
    { to: 2, moved: false, committed: 3 },
    { to: 3, moved: false, committed: 3 },
    { to: 5, moved: true, committed: 5 },
  ])('commitTo($to) from 3 moves: $moved', ({ to, moved, committed }) => {
    const log = compacted();
    expect(log.commitTo(to)).toBe(moved);
    expect(log.committed).toBe(committed);
  });

  it('committedToApply hands out what is committed and not applied, once applied moves', () => {
    const log = new RaftLog(snap(0, 0), run(1, 1, 1, 1, 1), 3);
    expect(ids(log.committedToApply())).toEqual(['1/1', '2/1', '3/1']);
    log.appliedTo(2);
    expect(ids(log.committedToApply())).toEqual(['3/1']);
    log.appliedTo(3);
    expect(log.committedToApply()).toEqual([]);
  });

  it('compact forgets the entries a snapshot covers; restore replaces the whole log', () => {
    const log = new RaftLog(snap(0, 0), run(1, 1, 1, 2, 2, 2), 4);
    log.appliedTo(4);
    log.compact(snap(3, 2));
    expect([log.firstIndex(), log.lastIndex(), log.term(3), log.term(2)]).toEqual([4, 5, 2, undefined]);
    log.restore({ meta: snap(9, 5), data: new Uint8Array(0) });
    expect([log.firstIndex(), log.lastIndex(), log.lastTerm(), log.committed, log.hasUnstable()]).toEqual([10, 9, 5, 9, false]);
  });

  it('confAt: the latest configuration entry up to an index, committed or not (§4.1)', () => {
    const cc = (index: number, op: 'addVoter' | 'removeVoter', nodeId: string): Entry => ({
      index,
      term: 1,
      type: 'conf',
      data: encodeConfChange({ op, nodeId }),
    });
    const log = new RaftLog(snap(0, 0), [e(1, 1), cc(2, 'addVoter', 'd'), e(3, 1), cc(4, 'removeVoter', 'a')], 0);
    expect(log.confAt(1)).toEqual({ conf, index: 0 });
    expect(log.confAt(3)).toEqual({ conf: { voters: ['a', 'b', 'c', 'd'], learners: [] }, index: 2 });
    expect(log.confAt(99)).toEqual({ conf: { voters: ['b', 'c', 'd'], learners: [] }, index: 4 });
  });
});
