// ReadIndex bookkeeping (thesis §6.4), kept apart from the protocol the way etcd-io/raft
// keeps read_only.go and raft-rs read_only.rs apart from raft.go / raft.rs.
//
// A leader serves a linearizable read at its commit index once (1) it has committed an
// entry of its own term, so that commit index is known to be current, and (2) a quorum
// acknowledged a heartbeat round sent after the read arrived, so no newer leader can
// have committed anything it does not know of. Reads wait in `awaitingCommit` for (1)
// and in `pending` for (2). A follower forwards its client's reads to the leader and
// remembers them in `forwarded` until the answer comes back or an election timeout
// passes without one (the leader crashed, or the message was lost).
//
// This class only holds the queues; raft.ts decides when a read may be answered and how
// (a ReadState for a local read, a readIndexResp for a forwarded one).
import type { NodeId } from './types.js';

/** Who asked: null on this node; otherwise the follower that forwarded the read. */
export interface ReadRequest {
  readonly requestId: string;
  readonly from: NodeId | null;
}

export interface PendingRead extends ReadRequest {
  readonly index: number;
  /** Confirmed once a quorum acknowledged a heartbeat round >= this one. */
  readonly round: number;
}

export class ReadOnly {
  private pending: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term (§6.4 step 1). */
  private awaitingCommit: ReadRequest[] = [];
  /** Follower side: request id -> tick at which it was forwarded to the leader. */
  private readonly forwarded = new Map<string, number>();

  // ---------------------------------------------------------------------------
  // Leader side

  awaitCommit(read: ReadRequest): void {
    this.awaitingCommit.push(read);
  }

  hasAwaitingCommit(): boolean {
    return this.awaitingCommit.length > 0;
  }

  /** The reads that waited for an entry of this term to commit; they are no longer queued. */
  takeAwaitingCommit(): readonly ReadRequest[] {
    const waiting = this.awaitingCommit;
    this.awaitingCommit = [];
    return waiting;
  }

  addPending(read: PendingRead): void {
    this.pending.push(read);
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** The pending reads whose round a quorum has acknowledged (`ackedRound`), oldest first; the rest stay. */
  confirm(ackedRound: number): readonly PendingRead[] {
    const done: PendingRead[] = [];
    const still: PendingRead[] = [];
    for (const r of this.pending) (r.round <= ackedRound ? done : still).push(r);
    this.pending = still;
    return done;
  }

  /**
   * Leadership is lost (new term, step-down): every read this leader holds must fail,
   * since it can no longer prove its commit index is current. Returns them, pending
   * first, in arrival order.
   */
  takeAllLeaderReads(): readonly ReadRequest[] {
    const all: ReadRequest[] = [...this.pending, ...this.awaitingCommit];
    this.pending = [];
    this.awaitingCommit = [];
    return all;
  }

  // ---------------------------------------------------------------------------
  // Follower side

  forward(requestId: string, now: number): void {
    this.forwarded.set(requestId, now);
  }

  /** The leader answered a forwarded read; false when it is unknown (expired, or never ours). */
  answered(requestId: string): boolean {
    return this.forwarded.delete(requestId);
  }

  /** Forwarded reads unanswered for `timeout` ticks; they are forgotten. */
  expire(now: number, timeout: number): readonly string[] {
    if (this.forwarded.size === 0) return [];
    const out: string[] = [];
    for (const [id, at] of this.forwarded) {
      if (now - at >= timeout) {
        this.forwarded.delete(id);
        out.push(id);
      }
    }
    return out;
  }
}
