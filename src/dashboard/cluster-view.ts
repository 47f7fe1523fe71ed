// The cluster as one node sees it, for the dashboard: its own status, each other member's
// answer to the status RPC (or why there was none), lag behind the leader, health, and
// the leader changes it saw. Other members are asked only while someone watches (an open
// event stream, or a JSON request in the last few seconds), every 500 ms, each with a
// deadline and at most one call in flight per member: a member that died or hangs shows
// as unreachable after one deadline and can never pile calls up.
import type { LeadershipHistory } from '../server/leadership-history.js';
import { readiness } from '../server/health.js';
import type { LeaderView, MemberView, NodeStatusView } from '../server/node.js';
import { isPeerStatusError, type PeerStatus, type PeerStatusError, type PeerStatusSource } from './peer-status.js';
import type { ClusterSnapshot, DrillRunSummary, MemberRow } from './snapshot.js';

export interface ClusterViewDeps {
  readonly nodeId: string;
  readonly clusterId: string;
  status(): NodeStatusView;
  members(): readonly MemberView[];
  readonly history: LeadershipHistory;
  readonly peers: PeerStatusSource;
  /** The recent drill runs (cheap: cached by the caller). */
  drills(): readonly DrillRunSummary[];
  /** Leadership changes as the runtime reports them, for an immediate push. */
  onLeaderChange?(listener: (l: LeaderView) => void): () => void;
  /** Wall-clock milliseconds. */
  readonly now?: () => number;
  /** Deadline of each status RPC to another member; default 800 ms. */
  readonly probeTimeoutMs?: number;
  /** How often members are asked while someone watches; default 500 ms. */
  readonly pollMs?: number;
}

/** How far back the timeline reaches. */
export const TIMELINE_WINDOW_MS = 3600_000;
/** A JSON request keeps the members asked for this long (a script polling /api/cluster). */
const JSON_INTEREST_MS = 5000;

interface PeerEntry {
  inFlight: boolean;
  result: PeerStatus | PeerStatusError | null;
  at: number;
}

type SnapshotListener = (s: ClusterSnapshot) => void;

export class ClusterView {
  private readonly now: () => number;
  private readonly probeTimeoutMs: number;
  private readonly pollMs: number;
  private readonly peerEntries = new Map<string, PeerEntry>();
  private readonly listeners = new Set<SnapshotListener>();
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private lastKey = '';
  private latest: ClusterSnapshot | null = null;
  private interestUntil = 0;

  constructor(private readonly deps: ClusterViewDeps) {
    this.now = deps.now ?? (() => Date.now());
    this.probeTimeoutMs = deps.probeTimeoutMs ?? 800;
    this.pollMs = deps.pollMs ?? 500;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.listeners.size > 0 || this.now() < this.interestUntil) this.refresh();
    }, this.pollMs);
    this.timer.unref();
    // A leader change reaches watchers at once, not at the next poll; the other members
    // are asked again right away, since they changed too.
    this.unsubscribe =
      this.deps.onLeaderChange?.(() => {
        if (this.listeners.size > 0) this.refresh();
      }) ?? null;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.listeners.clear();
  }

  /** Called with every snapshot that differs from the previous one (and after each subscribe). */
  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    this.refresh();
    return () => this.listeners.delete(listener);
  }

  /** The current snapshot; asks the members first when no recent answers are cached (bounded by the deadline). */
  async current(): Promise<ClusterSnapshot> {
    this.interestUntil = this.now() + JSON_INTEREST_MS;
    const stale = this.latest === null || this.now() - this.latest.at > this.pollMs * 2;
    if (stale) await this.probePeers();
    return this.rebuild();
  }

  /** The snapshot from what is known now (the members' latest answers), without asking anyone. */
  snapshot(): ClusterSnapshot {
    return this.rebuild();
  }

  /** Rebuild from what is known now, then ask the members and rebuild with their answers. */
  refresh(): void {
    this.rebuild();
    void this.probePeers().then(() => this.rebuild());
  }

  private async probePeers(): Promise<void> {
    const members = this.deps.members();
    const known = new Set(members.map((m) => m.id));
    for (const id of this.peerEntries.keys()) if (!known.has(id)) this.peerEntries.delete(id);
    await Promise.all(
      members
        .filter((m) => m.id !== this.deps.nodeId)
        .map(async (m) => {
          let e = this.peerEntries.get(m.id);
          if (!e) this.peerEntries.set(m.id, (e = { inFlight: false, result: null, at: 0 }));
          if (e.inFlight) return;
          if (m.clientAddress === '') {
            e.result = { kind: 'unreachable', message: 'client address not known yet' };
            e.at = this.now();
            return;
          }
          e.inFlight = true;
          try {
            e.result = await this.deps.peers.getStatus(m.clientAddress, this.probeTimeoutMs);
          } finally {
            e.inFlight = false;
            e.at = this.now();
          }
        }),
    );
  }

  private rebuild(): ClusterSnapshot {
    const snap = this.build();
    // Ages and the running leaderless time change every time; the rest says whether anything happened.
    const key = JSON.stringify({
      ...snap,
      at: 0,
      leaderlessMs: 0,
      members: snap.members.map((m) => ({ ...m, ageMs: 0 })),
    });
    this.latest = snap;
    if (key !== this.lastKey) {
      this.lastKey = key;
      for (const l of this.listeners) l(snap);
    }
    return snap;
  }

  private build(): ClusterSnapshot {
    const now = this.now();
    const self = this.deps.status();
    const rows: MemberRow[] = this.deps.members().map((m) => this.row(m, self, now));
    const leaderId = self.leaderId !== '' ? self.leaderId : null;
    const leaderRow = rows.find((r) => r.id === leaderId && r.role === 'leader') ?? rows.find((r) => r.role === 'leader');
    const withLag = rows.map((r) => ({
      ...r,
      lag:
        leaderRow !== undefined && leaderRow.commitIndex !== null && r.appliedIndex !== null
          ? Math.max(0, leaderRow.commitIndex - r.appliedIndex)
          : null,
    }));
    const changes = this.deps.history.changes();
    const last = changes.length > 0 ? changes[changes.length - 1]! : null;
    return {
      version: 1,
      node: this.deps.nodeId,
      clusterId: this.deps.clusterId,
      at: now,
      leader: leaderId === null ? null : { id: leaderId, term: self.term, since: last?.leader === leaderId ? last.at : null },
      leaderlessMs: Math.round(this.deps.history.leaderlessMs()),
      members: withLag,
      timeline: changes.filter((c) => c.at >= now - TIMELINE_WINDOW_MS).map((c) => ({ ...c, leaderlessMs: Math.round(c.leaderlessMs) })),
      drills: this.deps.drills(),
    };
  }

  private row(m: MemberView, self: NodeStatusView, now: number): MemberRow {
    const extra = m as MemberView & { priority?: unknown; drained?: unknown };
    const base = {
      id: m.id,
      peerAddress: m.peerAddress,
      clientAddress: m.clientAddress,
      learner: m.learner,
      lag: null,
      ...(typeof extra.priority === 'number' ? { priority: extra.priority } : {}),
      ...(typeof extra.drained === 'boolean' ? { drained: extra.drained } : {}),
    };
    if (m.id === this.deps.nodeId) return { ...base, reach: 'self', error: null, ...statusFields(self), ageMs: 0 };
    const e = this.peerEntries.get(m.id);
    if (!e || e.result === null)
      return {
        ...base,
        reach: 'unreachable',
        error: 'not asked yet',
        ...unknownFields(),
        ageMs: 0,
        health: 'unreachable',
        healthReason: 'not asked yet',
      };
    if (isPeerStatusError(e.result))
      return {
        ...base,
        reach: e.result.kind,
        error: e.result.message,
        ...unknownFields(),
        ageMs: now - e.at,
        health: 'unreachable',
        healthReason: e.result.message,
      };
    return { ...base, reach: 'ok', error: null, ...statusFields(e.result), ageMs: now - e.at };
  }
}

type StatusFields = Pick<
  MemberRow,
  | 'role'
  | 'term'
  | 'leaderId'
  | 'commitIndex'
  | 'appliedIndex'
  | 'lastLogIndex'
  | 'leaseValid'
  | 'version'
  | 'health'
  | 'healthReason'
  | 'refusedPeers'
>;

function statusFields(s: NodeStatusView | PeerStatus): StatusFields {
  const r = readiness(s);
  return {
    role: s.role,
    term: s.term,
    leaderId: s.leaderId === '' ? null : s.leaderId,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    lastLogIndex: s.lastLogIndex,
    leaseValid: s.leaseValid,
    version: 'version' in s ? s.version : null,
    health: r.ready ? 'ready' : 'not-ready',
    healthReason: r.ready ? null : r.reason,
    refusedPeers: s.refusedPeers.map((p) => ({ peerId: p.peerId, kind: p.kind, reason: p.reason, byPeer: p.byPeer })),
  };
}

function unknownFields(): Omit<StatusFields, 'health' | 'healthReason'> {
  return {
    role: null,
    term: null,
    leaderId: null,
    commitIndex: null,
    appliedIndex: null,
    lastLogIndex: null,
    leaseValid: null,
    version: null,
    refusedPeers: [],
  };
}
