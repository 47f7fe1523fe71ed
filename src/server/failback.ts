// Who should lead, as the leader sees it: failback to a member of higher priority, and
// handing leadership away from a leader that must not lead (drained, priority 0).
//
// Pure: the leader's runtime samples its followers' progress (time in milliseconds,
// whether each answered recently and has caught up) and carries out the decision; the
// decision itself depends only on those samples, so table tests pin it.
//
// Scenarios that shape it:
// - A preferred member comes back after a crash. It is handed leadership only once it
//   has been healthy and caught up for the failback delay without a gap, so a member that
//   restarts in a loop, or answers one heartbeat in three, never gets it.
// - The preferred member fails again right after the failback, the others elect one of
//   themselves, it comes back, and so on: leadership would flap with it. So a leader
//   fails back only after it has led for the anti-flap window. Each leader's term of
//   office ends before the next starts, so automatic failbacks are at least one window
//   apart cluster-wide, with no replicated bookkeeping.
// - A leader that is drained (or set to priority 0) hands over at once to the best
//   healthy, caught-up member that may lead; there is no delay and no window for an
//   operator's request. With no such member it keeps leading (an election could only
//   elect one of the same members) and says why.
import type { NodeId } from '../raft/types.js';

export interface FailbackSettings {
  /** A higher-priority member must be healthy and caught up this long before it is handed leadership; 0 = no failback. */
  readonly delayMs: number;
  /** A leader fails back only after leading this long (at most one failback per window). */
  readonly antiFlapMs: number;
  /** A member not heard from (or not caught up) for this long is unhealthy, and its healthy run starts over. */
  readonly unhealthyAfterMs: number;
  /** After a transfer that did not complete, wait this long before trying again. */
  readonly retryMs: number;
}

export interface LeadershipCandidate {
  readonly id: NodeId;
  readonly priority: number;
  /** Why it may not lead (from its member record), or null. */
  readonly refusal: 'priority-0' | 'drained' | null;
  /** It answered the leader within the last heartbeat rounds (the core's recentActive). */
  readonly active: boolean;
  /** Its log is close enough to the leader's for a transfer to complete at once. */
  readonly caughtUp: boolean;
  readonly matchIndex: number;
}

export interface FailbackInput {
  readonly nowMs: number;
  /** When this node became leader. */
  readonly leaderSinceMs: number;
  readonly self: { readonly id: NodeId; readonly priority: number; readonly refusal: 'priority-0' | 'drained' | null };
  /** The other voters. */
  readonly voters: readonly LeadershipCandidate[];
}

export type FailbackDecision =
  /** Nothing to do, and why. */
  | { readonly kind: 'stay'; readonly reason: 'highest-priority' | 'failback-disabled' | 'no-eligible-member' | 'retry-wait' }
  /** A better leader exists but is not handed leadership yet, and why; `atMs` is the earliest it could be. */
  | { readonly kind: 'wait'; readonly to: NodeId; readonly reason: 'failback-delay' | 'anti-flap'; readonly atMs: number }
  | { readonly kind: 'transfer'; readonly to: NodeId; readonly reason: 'higher-priority' | 'leader-drained' | 'leader-priority-0' };

export class FailbackPlanner {
  /** When each member was last seen healthy (active and caught up). */
  private readonly lastHealthy = new Map<NodeId, number>();
  /** Start of each member's current healthy run. */
  private readonly healthySince = new Map<NodeId, number>();
  private retryAtMs = 0;

  constructor(private readonly settings: FailbackSettings) {}

  decide(input: FailbackInput): FailbackDecision {
    const { nowMs } = input;
    for (const v of input.voters) this.sample(v, nowMs);
    for (const id of [...this.lastHealthy.keys()]) {
      if (!input.voters.some((v) => v.id === id)) {
        this.lastHealthy.delete(id);
        this.healthySince.delete(id);
      }
    }
    if (nowMs < this.retryAtMs) return { kind: 'stay', reason: 'retry-wait' };
    const eligible = input.voters
      .filter((v) => v.refusal === null && v.priority > 0 && this.healthy(v.id, nowMs))
      .sort((a, b) => b.priority - a.priority || b.matchIndex - a.matchIndex || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (input.self.refusal !== null) {
      const to = eligible[0];
      if (to === undefined) return { kind: 'stay', reason: 'no-eligible-member' };
      return { kind: 'transfer', to: to.id, reason: input.self.refusal === 'drained' ? 'leader-drained' : 'leader-priority-0' };
    }
    const better = eligible.filter((v) => v.priority > input.self.priority);
    const to = better[0];
    if (to === undefined) return { kind: 'stay', reason: 'highest-priority' };
    if (this.settings.delayMs === 0) return { kind: 'stay', reason: 'failback-disabled' };
    const readyAt = this.healthySince.get(to.id)! + this.settings.delayMs;
    const windowEnds = input.leaderSinceMs + this.settings.antiFlapMs;
    if (nowMs < readyAt) return { kind: 'wait', to: to.id, reason: 'failback-delay', atMs: Math.max(readyAt, windowEnds) };
    if (nowMs < windowEnds) return { kind: 'wait', to: to.id, reason: 'anti-flap', atMs: windowEnds };
    return { kind: 'transfer', to: to.id, reason: 'higher-priority' };
  }

  /** The transfer the last decision asked for did not complete: try again after retryMs, the target's healthy run starting over. */
  transferFailed(to: NodeId, nowMs: number): void {
    this.retryAtMs = nowMs + this.settings.retryMs;
    this.healthySince.delete(to);
    this.lastHealthy.delete(to);
  }

  /** Forget every sample (this node stopped leading: the next term starts from scratch). */
  reset(): void {
    this.lastHealthy.clear();
    this.healthySince.clear();
    this.retryAtMs = 0;
  }

  private sample(v: LeadershipCandidate, nowMs: number): void {
    const last = this.lastHealthy.get(v.id);
    // A gap longer than unhealthyAfterMs ends the healthy run, even if the member is
    // healthy again at this sample: it must then stay healthy for a whole delay again.
    if (last !== undefined && nowMs - last > this.settings.unhealthyAfterMs) {
      this.lastHealthy.delete(v.id);
      this.healthySince.delete(v.id);
    }
    if (v.active && v.caughtUp) {
      this.lastHealthy.set(v.id, nowMs);
      if (!this.healthySince.has(v.id)) this.healthySince.set(v.id, nowMs);
    }
  }

  private healthy(id: NodeId, nowMs: number): boolean {
    const last = this.lastHealthy.get(id);
    return last !== undefined && nowMs - last <= this.settings.unhealthyAfterMs;
  }
}
