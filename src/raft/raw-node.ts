// Ready/advance bookkeeping, kept apart from the protocol as etcd-io/raft keeps
// rawnode.go apart from raft.go.
//
// The protocol (raft.ts) accumulates output — messages, read states, events, a
// received snapshot — and changes its hard and soft state. This module turns that into
// one Ready at a time and remembers what the driver has been handed:
//  - the hard and soft state last reported, so a Ready carries them only when they
//    changed (a driver that rewrote its HardState on every Ready would sync for nothing);
//  - the outstanding Ready, so ready() cannot hand out a second batch before advance()
//    acknowledged the first: messages of the second could otherwise leave before the
//    entries or vote of the first reached disk (Figure 2: persist before responding);
//  - what advance() means for the log: entries now stable, entries now applied;
//  - with asynchronous storage writes (advanceAsync, then persisted), which messages may
//    leave before the Ready's write is durable, and the Readies whose write is still in
//    flight, so persisted() comes in Ready order.
import type { RaftLog } from './log.js';
import { invariant } from './invariant.js';
import type { BasicStatus, Entry, HardState, Message, RaftEvent, ReadState, Ready, Snapshot, SoftState } from './types.js';

/** What the protocol has produced since the last Ready. */
export interface ReadyParts {
  readonly hardState: HardState;
  readonly softState: SoftState;
  /** A snapshot received from the leader and not yet handed to the driver. */
  readonly snapshot: Snapshot | null;
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly events: readonly RaftEvent[];
}

export class ReadyTracker {
  private prevHard: HardState;
  private prevSoft: SoftState;
  private outstanding: Ready | null = null;
  /** Readies handed to advanceAsync whose write is not yet reported durable, oldest first. */
  private readonly writing: Ready[] = [];

  constructor(
    private readonly log: RaftLog,
    hard: HardState,
    soft: SoftState,
    private readonly asyncWrites = false,
  ) {
    this.prevHard = hard;
    this.prevSoft = soft;
  }

  /** Some Ready handed to advanceAsync is not yet reported persisted: answers held back for it are still waiting. */
  writesInFlight(): boolean {
    return this.writing.length > 0;
  }

  /** A Ready was handed out and not yet acknowledged with advance(). */
  isOutstanding(): boolean {
    return this.outstanding !== null;
  }

  /**
   * Whether ready() would return something. `pendingOutput`: the protocol holds
   * messages, read states, events, a snapshot or deferred broadcasts.
   */
  hasReady(hard: HardState, soft: SoftState, pendingOutput: boolean): boolean {
    if (this.outstanding !== null) return false;
    return (
      pendingOutput ||
      !sameHard(hard, this.prevHard) ||
      !sameSoft(soft, this.prevSoft) ||
      this.log.hasUnstable() ||
      this.log.committed > this.log.applied
    );
  }

  /** Call before the protocol flushes deferred output into a new Ready. */
  checkNotOutstanding(): void {
    invariant(this.outstanding === null, 'ready-before-advance', () => ({ outstanding: describeReady(this.outstanding!) }));
  }

  ready(parts: ReadyParts): Ready {
    this.checkNotOutstanding();
    const hard = parts.hardState;
    const entries = this.log.unstableEntries();
    const snapshot = parts.snapshot;
    const termOrVote = hard.term !== this.prevHard.term || hard.votedFor !== this.prevHard.votedFor;
    const { now, afterPersist } = this.splitMessages(parts.messages, termOrVote);
    const rd: Ready = {
      softState: sameSoft(parts.softState, this.prevSoft) ? null : parts.softState,
      hardState: sameHard(hard, this.prevHard) ? null : hard,
      snapshot,
      entries,
      // A snapshot replaces what the state machine holds; entries after it come in the next Ready.
      committedEntries: snapshot !== null ? [] : this.log.committedToApply(),
      messages: now,
      messagesAfterPersist: afterPersist,
      readStates: parts.readStates,
      // Only term, vote and log changes must be synced; a commit index can be
      // recomputed after a crash (etcd-io/raft MustSync).
      mustSync: snapshot !== null || entries.length > 0 || termOrVote,
      events: parts.events,
    };
    this.outstanding = rd;
    return rd;
  }

  /**
   * What may leave before the write is durable (asyncStorageWrites). Acknowledgements and
   * vote answers wait: an acknowledgement promises the entries are on disk (a leader
   * counts it towards a commit), a grant that the vote is (Figure 2: persist before
   * responding), and keeping every answer behind the writes keeps them in order, so a
   * heartbeat's answer never overtakes an append's and looks like a lost append. A Ready
   * that changes the term or vote holds back everything: a candidate's vote requests
   * leave only once its vote for itself is durable, or it could win, crash, forget that
   * vote and vote for another candidate in the same term (two leaders, §5.2).
   */
  private splitMessages(msgs: readonly Message[], termOrVote: boolean): { now: readonly Message[]; afterPersist: readonly Message[] } {
    if (!this.asyncWrites) return { now: msgs, afterPersist: [] };
    if (termOrVote) return { now: [], afterPersist: msgs };
    const now: Message[] = [];
    const afterPersist: Message[] = [];
    for (const m of msgs) {
      if ((m.type === 'appResp' && m.heartbeatOnly !== true) || m.type === 'snapResp' || m.type === 'voteResp') afterPersist.push(m);
      else now.push(m);
    }
    return { now, afterPersist };
  }

  /** The driver persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    this.advanceAsync(rd);
    this.persisted(rd);
  }

  /**
   * The driver started `rd`'s write, sent `rd.messages` and applied `rd`; its write may
   * still be in flight. The next Ready may be taken now.
   */
  advanceAsync(rd: Ready): void {
    invariant(rd === this.outstanding, 'advance-not-outstanding', () => ({
      given: describeReady(rd),
      outstanding: this.outstanding === null ? null : describeReady(this.outstanding),
    }));
    this.outstanding = null;
    this.writing.push(rd);
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.softState) this.prevSoft = rd.softState;
    if (rd.snapshot) this.log.appliedTo(rd.snapshot.meta.index);
    const last: Entry | undefined = rd.entries[rd.entries.length - 1];
    if (last) this.log.stableTo(last.index, last.term);
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied) this.log.appliedTo(applied.index);
  }

  /** `rd`'s write is durable (and `rd.messagesAfterPersist` sent). Readies are reported in the order they were handed out. */
  persisted(rd: Ready): void {
    invariant(this.writing[0] === rd, 'persisted-out-of-order', () => ({
      given: describeReady(rd),
      oldestInFlight: this.writing[0] === undefined ? null : describeReady(this.writing[0]),
    }));
    this.writing.shift();
    if (rd.snapshot) this.log.durableTo(rd.snapshot.meta.index, rd.snapshot.meta.term);
    const last: Entry | undefined = rd.entries[rd.entries.length - 1];
    if (last) this.log.durableTo(last.index, last.term);
  }
}

/**
 * A BasicStatus to fill with RaftNode.basicStatus(into): a caller on a hot path keeps
 * one and reuses it, so reading the node's state allocates nothing (etcd's BasicStatus).
 */
export function newBasicStatus(): BasicStatus {
  return {
    id: '',
    role: 'follower',
    term: 0,
    votedFor: null,
    leaderId: null,
    commitIndex: 0,
    appliedIndex: 0,
    lastLogIndex: 0,
    leaseValid: false,
    learner: false,
    leadTransferee: null,
  };
}

export function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.votedFor === b.votedFor && a.commit === b.commit;
}

export function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leaderId === b.leaderId && a.term === b.term && a.learner === b.learner;
}

function describeReady(rd: Ready): Record<string, unknown> {
  return {
    entries: rd.entries.map((e) => `${e.index}/${e.term}`).join(','),
    committed: rd.committedEntries.map((e) => e.index).join(','),
    messages: rd.messages.length,
    snapshot: rd.snapshot?.meta.index ?? null,
  };
}
