// What the leader knows about one follower (Figure 2, "Volatile state on leaders":
// nextIndex, matchIndex), plus the flow-control state that makes pipelining safe.
//
//  probe:     we do not know where the follower's log matches ours; one append at a
//             time until one succeeds (each rejection moves nextIndex back, fast).
//  replicate: the follower matches up to matchIndex; appends are pipelined, at most
//             maxInflight unacknowledged messages and maxInflightBytes of entries at once.
//  snapshot:  the follower needs entries we compacted away; a snapshot is being sent
//             in chunks and nothing else is until it is installed.

import { invariant } from './invariant.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  matchIndex = 0;
  nextIndex: number;
  state: ProgressState = 'probe';
  /** probe: an append is out and we wait for its answer (or the next heartbeat) before sending another. */
  probeSent = false;
  /** replicate: last index, heartbeat round and entry bytes of each unacknowledged append, oldest first. */
  inflight: { index: number; round: number; bytes: number }[] = [];
  /** replicate: entry bytes of the unacknowledged appends (the sum over `inflight`). */
  inflightBytes = 0;
  /** snapshot: which snapshot is being sent and how many of its bytes the follower holds. */
  pendingSnapshot: { index: number; offset: number; sentRound: number } | null = null;
  /** Heard from since the last CheckQuorum round (thesis §6.2). */
  recentActive = false;
  /** Highest heartbeat round the follower has acknowledged in this term (lease, ReadIndex). */
  ackedRound = 0;
  isLearner: boolean;

  constructor(nextIndex: number, isLearner: boolean) {
    this.nextIndex = nextIndex;
    this.isLearner = isLearner;
    this.check();
  }

  /**
   * matchIndex < nextIndex after every update: the leader never offers a follower
   * entries it already holds as the next ones to append, nor believes it holds entries
   * it was never sent. Broken, the leader would commit on a match it invented.
   */
  private check(): void {
    invariant(this.matchIndex < this.nextIndex, 'progress-match-next', () => ({
      matchIndex: this.matchIndex,
      nextIndex: this.nextIndex,
      state: this.state,
    }));
  }

  /** replicate: an append ending at `last` with `bytes` of entries went out in heartbeat round `round`; assume it lands (pipelining). */
  sentEntries(last: number, round: number, bytes: number): void {
    this.nextIndex = last + 1;
    this.inflight.push({ index: last, round, bytes });
    this.inflightBytes += bytes;
    this.check();
  }

  /** The follower acknowledged everything up to `index`. Returns false for a stale acknowledgement. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.matchIndex) {
      this.matchIndex = index;
      updated = true;
      this.probeSent = false;
    }
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    this.check();
    return updated;
  }

  /**
   * The follower refused an append whose prevLogIndex was `rejected`; `hint` is the
   * highest index that may still match. Returns false when the rejection is stale (it
   * answers an append older than what we have since learnt).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.matchIndex) return false;
      this.nextIndex = this.matchIndex + 1;
      this.check();
      return true;
    }
    if (this.nextIndex - 1 !== rejected) return false;
    this.nextIndex = Math.max(Math.min(rejected, hint + 1), this.matchIndex + 1, 1);
    this.probeSent = false;
    this.check();
    return true;
  }

  becomeProbe(): void {
    if (this.state === 'snapshot' && this.pendingSnapshot) {
      this.nextIndex = Math.max(this.matchIndex + 1, this.pendingSnapshot.index + 1);
    } else {
      this.nextIndex = this.matchIndex + 1;
    }
    this.state = 'probe';
    this.probeSent = false;
    this.inflight = [];
    this.inflightBytes = 0;
    this.pendingSnapshot = null;
    this.check();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.nextIndex = this.matchIndex + 1;
    this.probeSent = false;
    this.inflight = [];
    this.inflightBytes = 0;
    this.pendingSnapshot = null;
    this.check();
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.inflight = [];
    this.inflightBytes = 0;
    this.probeSent = false;
    this.pendingSnapshot = { index, offset: 0, sentRound: 0 };
  }

  /** Acknowledged appends up to `index` no longer count against the window. */
  freeInflightTo(index: number): void {
    let n = 0;
    while (n < this.inflight.length && this.inflight[n]!.index <= index) this.inflightBytes -= this.inflight[n++]!.bytes;
    if (n > 0) this.inflight.splice(0, n);
  }

  isPaused(maxInflight: number, maxInflightBytes: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        // By bytes too: everything in flight is queued ahead of the next heartbeat on the
        // same FIFO stream, so 256 appends of 1 MiB would hold a heartbeat back for seconds
        // and the leader, hearing no quorum in an election timeout, would step down.
        return this.inflight.length >= maxInflight || this.inflightBytes >= maxInflightBytes;
      case 'snapshot':
        return true;
    }
  }
}
