// Majority arithmetic, kept apart so it can be property-tested against a naive oracle
// (test/raft/quorum.test.ts).
import type { NodeId } from './types.js';

export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The largest value that a majority of voters have reached: the majority-th largest
 * of the voters' values. Used for commitIndex (matchIndex per voter, Figure 2 "Rules
 * for Servers, Leaders") and for the lease and ReadIndex rounds. A voter with no value
 * counts as `missing`.
 *
 * Computed as the largest value v such that a majority holds at least v, by counting
 * rather than sorting: configurations have a handful of voters, and this runs on every
 * append acknowledgement and every lease check, so it allocates nothing.
 */
export function quorumValue(voters: readonly NodeId[], valueOf: (id: NodeId) => number | undefined, missing: number): number {
  const n = voters.length;
  if (n === 0) return missing;
  const need = majority(n);
  let best = -Infinity;
  let found = false;
  for (let i = 0; i < n; i++) {
    const v = valueOf(voters[i]!) ?? missing;
    if (found && v <= best) continue;
    let atLeast = 0;
    for (let j = 0; j < n; j++) if ((valueOf(voters[j]!) ?? missing) >= v) atLeast++;
    if (atLeast >= need) {
      best = v;
      found = true;
    }
  }
  return best;
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
