// Fail-stop on a broken core invariant.
//
// When one of these fires, the node's in-memory state contradicts what Raft guarantees
// (a committed entry about to be overwritten, a term going backwards, the driver
// handing back a Ready it was never given). Carrying on could acknowledge a write that
// is then lost, or vote twice in one term; stopping the process loses nothing that a
// restart from disk cannot recover. etcd-io/raft panics in the same places; raft-rs
// calls fatal!. The error names the invariant and carries a snapshot of the state that
// broke it, so the operator's log says what failed rather than "storage failure".
//
// Only impossible states fail-stop. What a peer can legitimately send — a message from
// a server not (or no longer) in our configuration, a stale term, a duplicate — is
// dropped or answered, never fatal: a node must not crash on a peer's message.

/** The closed set of invariants the core checks. */
export type RaftInvariant =
  /** A role change the state machine of roles does not allow (e.g. follower -> leader without an election). */
  | 'role-transition'
  /** currentTerm only grows (Figure 2). */
  | 'term-regression'
  /** At most one vote per term (Figure 2, RequestVote receiver). */
  | 'vote-changed'
  /** The applied index only grows, and never passes the commit index. */
  | 'applied-regression'
  | 'applied-beyond-commit'
  /** The commit index never passes the last index of the log. */
  | 'commit-beyond-last'
  /** An entry at or below the commit index is never replaced (Log Matching, Leader Completeness). */
  | 'committed-entry-conflict'
  /** Entries appended to the log follow its last index. */
  | 'log-gap'
  /** A log read back from storage starts after its snapshot, contiguous, commit within it. */
  | 'initial-state'
  /** Leader: for every follower, matchIndex < nextIndex. */
  | 'progress-match-next'
  /** compact() only below the applied index, and only over entries already persisted. */
  | 'compact-beyond-applied'
  | 'compact-unstable'
  /** The driver contract: ready() after advance() of the previous Ready; advance() with that Ready. */
  | 'ready-before-advance'
  | 'advance-not-outstanding'
  /** With asynchronous storage writes: persisted() reports the Readies in the order they were handed out. */
  | 'persisted-out-of-order';

export type InvariantState = Readonly<Record<string, unknown>>;

export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError';

  constructor(
    readonly invariant: RaftInvariant,
    readonly state: InvariantState,
  ) {
    super(`raft invariant violated: ${invariant} ${JSON.stringify(state)}`);
  }
}

/**
 * Fail-stop unless `holds`. `state` is a function so the snapshot is only built when
 * the check fails: these checks sit on the hot path.
 */
export function invariant(holds: boolean, name: RaftInvariant, state: () => InvariantState): asserts holds {
  if (!holds) throw new RaftInvariantError(name, state());
}
