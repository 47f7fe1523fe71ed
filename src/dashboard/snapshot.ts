// What the dashboard shows, as the JSON endpoint returns it and the event stream pushes it.
// The page (src/dashboard/static/dashboard.js) reads exactly these fields; add fields
// freely, rename none (an operator's script may read /api/cluster too).
import type { LeaderChangeCause } from '../server/leadership-history.js';

/** How the serving node last heard from a member: its own status, a status RPC answer, or nothing. */
export type MemberReach = 'self' | 'ok' | 'unreachable' | 'refused';

export interface MemberRow {
  readonly id: string;
  readonly peerAddress: string;
  readonly clientAddress: string;
  readonly learner: boolean;
  readonly reach: MemberReach;
  /** Why the member could not be asked (unreachable, refused), else null. */
  readonly error: string | null;
  readonly role: string | null;
  readonly term: number | null;
  readonly leaderId: string | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  readonly lastLogIndex: number | null;
  /** Only a leader holds a lease; null when the member's status is unknown. */
  readonly leaseValid: boolean | null;
  readonly version: string | null;
  /** Entries the member has yet to apply of what the leader knows committed; null without both statuses. */
  readonly lag: number | null;
  readonly health: 'ready' | 'not-ready' | 'unreachable';
  readonly healthReason: string | null;
  /** Peers this member refused or was refused by at the handshake. */
  readonly refusedPeers: readonly { peerId: string; kind: string; reason: string; byPeer: boolean }[];
  /** Milliseconds since the status shown was taken. */
  readonly ageMs: number;
  /** Failback priority and drain flag, once members carry them (absent until then). */
  readonly priority?: number;
  readonly drained?: boolean;
}

export interface TimelineChange {
  /** Wall-clock ms since the epoch when the serving node learned of the new leader. */
  readonly at: number;
  readonly term: number;
  readonly previous: string | null;
  readonly leader: string;
  readonly cause: LeaderChangeCause;
  readonly leaderlessMs: number;
}

export interface DrillRunSummary {
  /** File name under the drills directory; the report is at /drill-report?name=<name>. */
  readonly name: string;
  readonly startedAt: string | null;
  readonly fault: string | null;
  readonly trials: number | null;
  readonly writesLost: number | null;
  readonly leaseOverlaps: number | null;
  readonly rtoMedianMs: number | null;
  readonly rtoMaxMs: number | null;
  readonly newLeaderMedianMs: number | null;
  /** Set when the file could not be read as a drill result. */
  readonly error: string | null;
}

export interface ClusterSnapshot {
  readonly version: 1;
  /** The node serving this dashboard: every other member's state is what it could ask. */
  readonly node: string;
  readonly clusterId: string;
  /** Wall-clock ms since the epoch of this snapshot. */
  readonly at: number;
  /** The leader as the serving node knows it. */
  readonly leader: { readonly id: string; readonly term: number; readonly since: number | null } | null;
  /** How long the serving node has known no leader (0 while it knows one). */
  readonly leaderlessMs: number;
  readonly members: readonly MemberRow[];
  /** Leader changes the serving node saw in the last hour, oldest first. */
  readonly timeline: readonly TimelineChange[];
  readonly drills: readonly DrillRunSummary[];
}

/** One second of the serving node's own metrics. */
export interface SeriesPoint {
  /** Unix seconds at the end of the interval. */
  readonly t: number;
  /** Entries applied per second (every write, from any node's view: the whole cluster's rate). */
  readonly writesPerSec: number | null;
  /** Proposal to commit on this node while it leads: mean and p99 (bucket estimate), ms; null without proposals. */
  readonly commitMeanMs: number | null;
  readonly commitP99Ms: number | null;
  /** Each synced LevelDB write of this node: mean and p99 (bucket estimate), ms; null without fsyncs. */
  readonly fsyncMeanMs: number | null;
  readonly fsyncP99Ms: number | null;
}
