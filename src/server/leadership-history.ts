// Every leader change this node saw, with why it happened and how long the node was
// without a leader before it. An operator asking "why did we fail over at 03:12, and how
// long were writes blocked?" needs exactly this; metrics and the dashboard read it.
//
// The cause is inferred from the first signal seen after the last known leader:
//   - check-quorum: this node led and stepped down because a quorum stopped acknowledging
//     it within an election timeout (thesis §6.2);
//   - transfer:     a leadership transfer (this node started it, received TimeoutNow, or was
//     asked to vote for a transfer candidate: thesis §3.10);
//   - election-timeout: some follower heard no leader for an election timeout and
//     campaigned (this node, or a peer whose (pre-)vote request reached us);
//   - higher-term:  this node led and saw a higher term first (a disruptive candidate, or a
//     partition healing);
//   - removed:      this node led and was removed from the configuration;
//   - startup:      the first leader this process learned of (whatever elected it);
//   - unknown:      a new leader with none of the above seen here (this node was cut off
//     while the others elected).
// The first signal wins, except that a transfer replaces a higher-term or election-timeout
// signal: a transfer's target campaigns in a higher term, which is how the old leader
// steps down, and it does so without waiting for a timeout.
import { performance } from 'node:perf_hooks';
import type { Message, NodeId, RaftEvent, SoftState } from '../raft/types.js';

export type LeaderChangeCause = 'startup' | 'election-timeout' | 'transfer' | 'check-quorum' | 'higher-term' | 'removed' | 'unknown';

export const LEADER_CHANGE_CAUSES: readonly LeaderChangeCause[] = [
  'startup',
  'election-timeout',
  'transfer',
  'check-quorum',
  'higher-term',
  'removed',
  'unknown',
];

export interface LeaderChange {
  /** Wall-clock time (ms since the epoch) this node learned of the new leader. */
  readonly at: number;
  readonly term: number;
  /** The leader this node knew before, if any. */
  readonly previous: NodeId | null;
  readonly leader: NodeId;
  readonly cause: LeaderChangeCause;
  /** How long this node knew no leader before this one (0 when it went straight from one to the next). */
  readonly leaderlessMs: number;
}

export interface LeadershipHistoryOptions {
  /** Changes kept; the oldest go first. Default 256. */
  readonly capacity?: number;
  /** Monotonic milliseconds (durations). */
  readonly now?: () => number;
  /** Wall-clock milliseconds (timestamps). */
  readonly wallNow?: () => number;
}

export class LeadershipHistory {
  private readonly capacity: number;
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private readonly kept: LeaderChange[] = [];
  private readonly listeners = new Set<(c: LeaderChange) => void>();
  private pending: LeaderChangeCause | null = null;
  private last: LeaderChange | null = null;
  private current: NodeId | null = null;
  private currentTerm = 0;
  /** Monotonic time since which this node knows no leader; null while it knows one. */
  private leaderlessSince: number | null;

  constructor(opts: LeadershipHistoryOptions = {}) {
    this.capacity = Math.max(1, opts.capacity ?? 256);
    this.now = opts.now ?? (() => performance.now());
    this.wallNow = opts.wallNow ?? (() => Date.now());
    this.leaderlessSince = this.now();
  }

  /** The kept changes, oldest first. */
  changes(): readonly LeaderChange[] {
    return this.kept;
  }

  /** Milliseconds this node has been without a leader so far (0 while it knows one). */
  leaderlessMs(): number {
    return this.leaderlessSince === null ? 0 : this.now() - this.leaderlessSince;
  }

  onChange(listener: (c: LeaderChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  noteEvent(ev: RaftEvent): void {
    switch (ev.kind) {
      case 'step-down':
        this.signal(ev.reason === 'lost-quorum' ? 'check-quorum' : ev.reason === 'higher-term' ? 'higher-term' : 'removed');
        break;
      case 'campaign':
        this.signal(ev.transfer ? 'transfer' : 'election-timeout');
        break;
      case 'transfer':
        if (ev.outcome !== 'abandoned') this.signal('transfer');
        break;
      case 'vote':
      case 'ignored':
      case 'snapshot-refused':
        break;
    }
  }

  noteMessage(msg: Message): void {
    if (msg.type === 'timeoutNow') this.signal('transfer');
    else if (msg.type === 'vote') this.signal(msg.transfer ? 'transfer' : 'election-timeout');
    // A peer's (pre-)vote request that we refused because our leader is alive is not a
    // cause of anything: the leader's next append in its term proves it still leads.
    else if (msg.type === 'app' && this.pending === 'election-timeout' && msg.from === this.current && msg.term === this.currentTerm)
      this.pending = null;
  }

  noteSoftState(prev: SoftState, soft: SoftState): void {
    this.currentTerm = soft.term;
    this.current = soft.leaderId;
    if (soft.leaderId === null) {
      if (this.leaderlessSince === null) this.leaderlessSince = this.now();
      return;
    }
    const leaderlessMs = this.leaderlessSince === null ? 0 : this.now() - this.leaderlessSince;
    this.leaderlessSince = null;
    // The same leader in the same term again (a pre-vote of ours that failed, say): no change.
    if (this.last && this.last.leader === soft.leaderId && this.last.term === soft.term) return;
    const change: LeaderChange = {
      at: this.wallNow(),
      term: soft.term,
      previous: this.last?.leader ?? null,
      leader: soft.leaderId,
      cause: this.last ? (this.pending ?? 'unknown') : 'startup',
      leaderlessMs,
    };
    this.pending = null;
    this.last = change;
    this.kept.push(change);
    if (this.kept.length > this.capacity) this.kept.shift();
    for (const l of this.listeners) l(change);
  }

  private signal(cause: LeaderChangeCause): void {
    // A vote request while we know a live leader and refuse it changes nothing; it only
    // becomes the cause if a new leader follows before any other signal.
    if (this.pending === null || (cause === 'transfer' && (this.pending === 'higher-term' || this.pending === 'election-timeout')))
      this.pending = cause;
  }
}
