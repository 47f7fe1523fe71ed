// Deliberately broken nodes, injected through SimOptions.broken, to prove the simulator
// reaches the class of bug each checker exists for (every checker gets a broken case).
// Never used outside tests and `--broken`.
import type { BrokenBehaviour } from './simulator.js';

/**
 * Grants every vote and pre-vote it is asked for, whatever it already voted for in
 * that term, on top of what the real node answers: the "votes twice in a term" bug
 * that breaks Election Safety (§5.2 relies on one vote per server per term).
 */
export const grantsEveryVote: BrokenBehaviour = {
  onReceive: (id, m) =>
    m.type === 'vote' && m.to === id
      ? [{ type: 'voteResp', clusterId: m.clusterId, from: id, to: m.from, term: m.term, preVote: m.preVote, granted: true }]
      : [],
};

/**
 * Tells its client 'not-applied' when a write's fate is unknown (leadership lost while
 * it was in flight, say): the client retries a write that may still commit, and it is
 * applied twice. The write-outcome checker must catch it.
 */
export const unknownAsNotApplied: BrokenBehaviour = { unknownAsNotApplied: true };

/**
 * A transport that takes a cut link for a process exit: the survivors would then elect
 * a new leader inside the live leader's lease. Lease Exclusivity (or the no-disruption
 * check) must catch it; this is why only a clean close plus a refused redial is proof.
 */
export const partitionProvesGone: BrokenBehaviour = { partitionProvesGone: true };

export const BROKEN: Readonly<Record<string, BrokenBehaviour>> = {
  'grants-every-vote': grantsEveryVote,
  'unknown-as-not-applied': unknownAsNotApplied,
  'partition-proves-gone': partitionProvesGone,
};
