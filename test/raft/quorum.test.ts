// Majority arithmetic (src/raft/quorum.ts): tables, then fast-check properties against a
// naive oracle written straight from the definitions.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { majority, quorumValue, tallyVotes, type VoteOutcome } from '../../src/raft/quorum.js';

const voters = (n: number) => Array.from({ length: n }, (_, i) => `n${i}`);

/** Every subset of `items` with exactly `k` elements. */
function subsets<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [head, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [head!, ...s]), ...subsets(rest, k)];
}

/** The smallest size such that any two sets of that size out of n overlap. */
function naiveMajority(n: number): number {
  let k = 0;
  while (2 * k <= n) k++;
  return k;
}

/** "The largest value a majority has reached": max over every majority of the least value in it. */
function naiveQuorumValue(values: readonly number[]): number {
  let best = -Infinity;
  for (const s of subsets(values, naiveMajority(values.length))) best = Math.max(best, Math.min(...s));
  return best;
}

/** Won when some majority granted; lost when no majority can still grant; otherwise pending. */
function naiveTally(votes: readonly (boolean | undefined)[]): VoteOutcome {
  const need = naiveMajority(votes.length);
  const granted = votes.filter((v) => v === true).length;
  const couldGrant = votes.filter((v) => v !== false).length;
  if (granted >= need) return 'won';
  if (couldGrant < need) return 'lost';
  return 'pending';
}

describe('majority', () => {
  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [6, 4],
    [7, 4],
  ])('of %i voters is %i', (n, want) => expect(majority(n)).toBe(want));
});

describe('quorumValue', () => {
  it.each([
    { values: [5], want: 5 },
    { values: [5, 3], want: 3 },
    { values: [5, 3, 1], want: 3 },
    { values: [1, 3, 5], want: 3 },
    { values: [7, 7, 1], want: 7 },
    { values: [9, 8, 1, 1, 1], want: 1 },
    { values: [9, 8, 7, 1, 1], want: 7 },
    { values: [4, 4, 4, 4], want: 4 },
    { values: [10, 9, 2, 1], want: 2 },
  ])('$values -> $want', ({ values, want }) => {
    const ids = voters(values.length);
    expect(quorumValue(ids, (id) => values[ids.indexOf(id)], 0)).toBe(want);
  });

  it('a voter with no value counts as `missing`; no voters gives `missing`', () => {
    expect(quorumValue(['a', 'b', 'c'], (id) => (id === 'a' ? 9 : undefined), -1)).toBe(-1);
    expect(quorumValue(['a', 'b', 'c'], (id) => (id === 'c' ? undefined : 9), -1)).toBe(9);
    expect(quorumValue([], () => 9, -7)).toBe(-7);
  });

  it('agrees with the naive oracle on every value vector (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: -3, max: 20 }), { nil: undefined }), { minLength: 1, maxLength: 7 }),
        fc.integer({ min: -5, max: 5 }),
        (values, missing) => {
          const ids = voters(values.length);
          const got = quorumValue(ids, (id) => values[ids.indexOf(id)], missing);
          expect(got).toBe(naiveQuorumValue(values.map((v) => v ?? missing)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('handles the lease case: infinities for the leader itself and missing rounds (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(-Infinity, Infinity, 0, 1, 2), { minLength: 1, maxLength: 7 }), (values) => {
        const ids = voters(values.length);
        expect(quorumValue(ids, (id) => values[ids.indexOf(id)], -Infinity)).toBe(naiveQuorumValue(values));
      }),
    );
  });
});

describe('tallyVotes', () => {
  it.each<{ votes: (boolean | undefined)[]; want: VoteOutcome }>([
    { votes: [true], want: 'won' },
    { votes: [true, undefined, undefined], want: 'pending' },
    { votes: [true, true, undefined], want: 'won' },
    { votes: [true, false, undefined], want: 'pending' },
    { votes: [true, false, false], want: 'lost' },
    { votes: [true, undefined, undefined, undefined], want: 'pending' },
    { votes: [true, false, false, undefined], want: 'lost' },
    { votes: [true, true, false, false, undefined], want: 'pending' },
    { votes: [true, true, true, false, false], want: 'won' },
  ])('$votes -> $want', ({ votes, want }) => {
    const ids = voters(votes.length);
    const m = new Map<string, boolean>();
    votes.forEach((v, i) => v !== undefined && m.set(ids[i]!, v));
    expect(tallyVotes(ids, m)).toBe(want);
  });

  it('agrees with the naive oracle, and ignores votes from non-voters (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.boolean(), { nil: undefined }), { minLength: 1, maxLength: 7 }),
        fc.array(fc.boolean(), { maxLength: 3 }),
        (votes, strangers) => {
          const ids = voters(votes.length);
          const m = new Map<string, boolean>();
          votes.forEach((v, i) => v !== undefined && m.set(ids[i]!, v));
          strangers.forEach((v, i) => m.set(`stranger${i}`, v));
          expect(tallyVotes(ids, m)).toBe(naiveTally(votes));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('majority agrees with the overlap definition (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 101 }), (n) => {
        expect(majority(n)).toBe(naiveMajority(n));
      }),
    );
  });
});
