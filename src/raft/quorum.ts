// Majority arithmetic, kept apart so it can be property-tested against a dumb oracle.
import type { NodeId } from './types.js';

export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The largest value that a majority of voters have reached: sort the voters' values
 * descending and take the majority-th. Used for commitIndex (matchIndex per voter,
 * Figure 2 "Rules for Servers, Leaders") and for the lease and ReadIndex rounds.
 * A voter with no value counts as `missing`.
 */
export function quorumValue(voters: readonly NodeId[], valueOf: (id: NodeId) => number | undefined, missing: number): number {
  if (voters.length === 0) return missing;
  const values = voters.map((id) => valueOf(id) ?? missing);
  values.sort((a, b) => b - a);
  return values[majority(voters.length) - 1] ?? missing;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

export function tallyVotes(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return 'won';
  if (rejected > voters.length - need) return 'lost';
  return 'pending';
}
