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
//  - what advance() means for the log: entries now stable, entries now applied.
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

  constructor(
    private readonly log: RaftLog,
    hard: HardState,
    soft: SoftState,
  ) {
    this.prevHard = hard;
    this.prevSoft = soft;
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
    const rd: Ready = {
      softState: sameSoft(parts.softState, this.prevSoft) ? null : parts.softState,
      hardState: sameHard(hard, this.prevHard) ? null : hard,
      snapshot,
      entries,
      // A snapshot replaces what the state machine holds; entries after it come in the next Ready.
      committedEntries: snapshot !== null ? [] : this.log.committedToApply(),
      messages: parts.messages,
      readStates: parts.readStates,
      // Only term, vote and log changes must be synced; a commit index can be
      // recomputed after a crash (etcd-io/raft MustSync).
      mustSync: snapshot !== null || entries.length > 0 || hard.term !== this.prevHard.term || hard.votedFor !== this.prevHard.votedFor,
      events: parts.events,
    };
    this.outstanding = rd;
    return rd;
  }

  /** The driver persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    invariant(rd === this.outstanding, 'advance-not-outstanding', () => ({
      given: describeReady(rd),
      outstanding: this.outstanding === null ? null : describeReady(this.outstanding),
    }));
    this.outstanding = null;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.softState) this.prevSoft = rd.softState;
    if (rd.snapshot) this.log.appliedTo(rd.snapshot.meta.index);
    const last: Entry | undefined = rd.entries[rd.entries.length - 1];
    if (last) this.log.stableTo(last.index, last.term);
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied) this.log.appliedTo(applied.index);
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
