// Prometheus metrics of one node (prom-client), fed by the runtime through NodeObserver
// and read from the node's status at scrape time.
//
// The write-stage histogram splits a leader's write into what it waits for:
//   queue     proposed -> the Ready batch that carries it starts (the drain loop was busy)
//   persist   that batch starts -> its LevelDB write (fsync) is done
//   replicate that batch starts (its appends leave at once, in parallel with the leader's
//             own write) -> first follower acknowledgement covering it (with 3 voters
//             that is the quorum)
//   commit    that acknowledgement -> the Ready batch that commits it starts (this
//             includes waiting for the leader's own write if it is still in flight)
//   apply     that batch starts -> applied to the state machine
// so "where does a write wait" is answered from /metrics of a running leader.
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Message, NodeId, RaftEvent, Ready, SoftState } from '../raft/types.js';
import { LEADER_CHANGE_CAUSES, LeadershipHistory } from './leadership-history.js';
import type { NodeObserver } from './node-observer.js';
import type { NodeStatusView } from './node.js';

/** Where scrape-time values come from; attached once the node runs. */
export interface MetricsSources {
  status(): NodeStatusView;
  counts?(): { keys: number; leases: number; sessions: number; watchers: number; bytes: number };
  /** The storage quota (--quota-bytes) the store's bytes are checked against. */
  quotaBytes?: number;
}

export type WriteStage = 'queue' | 'persist' | 'replicate' | 'commit' | 'apply';
export const WRITE_STAGES: readonly WriteStage[] = ['queue', 'persist', 'replicate', 'commit', 'apply'];
const ROLES = ['leader', 'follower', 'candidate', 'learner'] as const;

/** 50 µs .. ~3.3 s, doubling: fsyncs, loopback round trips and commit latencies all fit. */
const LATENCY_BUCKETS = Array.from({ length: 17 }, (_, i) => 0.00005 * 2 ** i);
/** Proposals tracked at once; beyond this the oldest are forgotten (never more memory than this). */
const MAX_TRACKED = 65_536;
/** Heartbeat rounds remembered per peer for round-trip times. */
const MAX_ROUNDS = 256;

interface Tracked {
  readonly proposed: number;
  batched?: number;
  persisted?: number;
  acked?: number;
  committed?: number;
}

export class NodeMetrics implements NodeObserver {
  readonly registry = new Registry();
  readonly history: LeadershipHistory;
  private sources: MetricsSources | null = null;
  private readonly tracked = new Map<number, Tracked>();
  private readonly roundSent = new Map<NodeId, Map<number, number>>();
  private readonly lastAppend = new Map<NodeId, number>();
  private readonly heartbeatMs: number;

  private readonly stage: Histogram<'stage'>;
  private readonly proposalCommit: Histogram;
  private readonly fsync: Histogram;
  private readonly batchEntries: Histogram;
  private readonly peerRtt: Histogram<'peer'>;
  private readonly heartbeatLateness: Histogram;
  private readonly leaderChanges: Counter<'cause'>;
  private readonly leaderless: Histogram;
  private readonly campaigns: Counter<'pre_vote'>;
  private readonly snapshotDuration: Histogram;
  private readonly snapshotBytes: Gauge<'origin'>;
  private readonly snapshots: Counter<'origin'>;
  private readonly snapshotsRefused: Counter<'reason'>;

  constructor(opts: { nodeId: NodeId; heartbeatMs: number; history?: LeadershipHistory; processMetrics?: boolean }) {
    this.heartbeatMs = opts.heartbeatMs;
    this.history = opts.history ?? new LeadershipHistory();
    const r = [this.registry];
    this.registry.setDefaultLabels({ node: opts.nodeId });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });

    const view = () => this.sources?.status() ?? null;
    new Gauge({
      name: 'leaderd_role',
      help: 'Role of this node: 1 for the current role, 0 for the others',
      labelNames: ['role'],
      registers: r,
      collect() {
        const s = view();
        for (const role of ROLES) this.set({ role }, s?.role === role ? 1 : 0);
      },
    });
    const gauge = (name: string, help: string, f: (s: NodeStatusView) => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          const s = view();
          if (s) this.set(f(s));
        },
      });
    gauge('leaderd_term', 'Current Raft term', (s) => s.term);
    gauge('leaderd_commit_index', 'Highest log index known committed', (s) => s.commitIndex);
    gauge('leaderd_applied_index', 'Highest log index applied to the state machine', (s) => s.appliedIndex);
    gauge('leaderd_last_log_index', 'Index of the last entry in the local log', (s) => s.lastLogIndex);
    gauge('leaderd_has_leader', '1 while this node knows a leader', (s) => (s.leaderId === '' ? 0 : 1));
    gauge('leaderd_lease_valid', '1 while this node leads with a valid leader lease', (s) => (s.leaseValid ? 1 : 0));
    const history = this.history;
    new Gauge({
      name: 'leaderd_leaderless_seconds',
      help: 'How long this node has been without a known leader so far (0 while it knows one)',
      registers: r,
      collect() {
        this.set(history.leaderlessMs() / 1000);
      },
    });
    const counts = () => this.sources?.counts?.() ?? null;
    for (const [name, help, key] of [
      ['leaderd_keys', 'Keys in the key-value store', 'keys'],
      ['leaderd_leases', 'Live leases', 'leases'],
      ['leaderd_sessions', 'Client sessions remembered for exactly-once retries', 'sessions'],
      ['leaderd_watchers', 'Open revision subscribers on this node (Watch, Observe and WatchLeader streams)', 'watchers'],
      ['leaderd_quota_used_bytes', 'Bytes of keys and values counted against the storage quota (--quota-bytes)', 'bytes'],
    ] as const) {
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          const c = counts();
          if (c) this.set(c[key]);
        },
      });
    }

    const quota = () => this.sources?.quotaBytes ?? null;
    new Gauge({
      name: 'leaderd_quota_bytes',
      help: 'The storage quota (--quota-bytes): writes that would grow the store past it are refused',
      registers: r,
      collect() {
        const q = quota();
        if (q !== null) this.set(q);
      },
    });

    this.stage = new Histogram({
      name: 'leaderd_write_stage_seconds',
      help: 'Time a write proposed on this leader spends in each stage: queue, persist, replicate, commit, apply',
      labelNames: ['stage'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.proposalCommit = new Histogram({
      name: 'leaderd_proposal_commit_seconds',
      help: 'Proposal on this leader until it is known committed',
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.fsync = new Histogram({
      name: 'leaderd_fsync_seconds',
      help: 'Duration of each synced LevelDB write (the Ready batches merged into it by group commit: entries and hard state), from the first batch handed to storage',
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.batchEntries = new Histogram({
      name: 'leaderd_persist_batch_entries',
      help: 'Log entries written per synced LevelDB write (group commit merges the Ready batches that queue behind a write)',
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: r,
    });
    this.peerRtt = new Histogram({
      name: 'leaderd_peer_round_trip_seconds',
      help: "Leader only: an append round's first send to a peer until that peer's acknowledgement of the round",
      labelNames: ['peer'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.heartbeatLateness = new Histogram({
      name: 'leaderd_heartbeat_lateness_seconds',
      help: 'Follower only: gap between two appends from the leader beyond the heartbeat interval (0 when on time)',
      buckets: [0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r,
    });
    this.leaderChanges = new Counter({
      name: 'leaderd_leader_changes_total',
      help: 'Leader changes this node saw, by cause',
      labelNames: ['cause'],
      registers: r,
    });
    for (const cause of LEADER_CHANGE_CAUSES) this.leaderChanges.inc({ cause }, 0);
    this.leaderless = new Histogram({
      name: 'leaderd_leaderless_period_seconds',
      help: 'Time without a known leader before each leader change',
      buckets: [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30],
      registers: r,
    });
    this.campaigns = new Counter({
      name: 'leaderd_campaigns_total',
      help: 'Campaigns this node started (pre_vote="true": the PreVote round)',
      labelNames: ['pre_vote'],
      registers: r,
    });
    this.snapshotsRefused = new Counter({
      name: 'leaderd_snapshot_transfers_refused_total',
      help: 'Incoming snapshot transfers dropped before install (too-large, overrun, truncated, checksum)',
      labelNames: ['reason'],
      registers: r,
    });
    this.snapshotDuration = new Histogram({
      name: 'leaderd_snapshot_duration_seconds',
      help: 'Taking a snapshot of the state machine and compacting the log',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers: r,
    });
    this.snapshotBytes = new Gauge({
      name: 'leaderd_snapshot_last_bytes',
      help: 'Size of the latest snapshot taken here (origin="local") or installed from the leader (origin="leader")',
      labelNames: ['origin'],
      registers: r,
    });
    this.snapshots = new Counter({
      name: 'leaderd_snapshots_total',
      help: 'Snapshots taken here (origin="local") or installed from the leader (origin="leader")',
      labelNames: ['origin'],
      registers: r,
    });
    for (const origin of ['local', 'leader']) {
      this.snapshots.inc({ origin }, 0);
      this.snapshotBytes.set({ origin }, 0);
    }
    this.history.onChange((c) => {
      this.leaderChanges.inc({ cause: c.cause });
      this.leaderless.observe(c.leaderlessMs / 1000);
    });
  }

  attach(sources: MetricsSources): void {
    this.sources = sources;
  }

  /** The exposition text for `/metrics`. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // -------------------------------------------------------------------------
  // NodeObserver

  proposed(index: number): void {
    if (this.tracked.size >= MAX_TRACKED) this.tracked.delete(this.tracked.keys().next().value!);
    this.tracked.set(index, { proposed: performance.now() });
  }

  readyStarted(rd: Ready): void {
    if (rd.snapshot) {
      this.snapshots.inc({ origin: 'leader' });
      this.snapshotBytes.set({ origin: 'leader' }, rd.snapshot.data.byteLength);
    }
    if (this.tracked.size === 0) return;
    const now = performance.now();
    for (const e of rd.entries) {
      const t = this.tracked.get(e.index);
      if (t && t.batched === undefined) {
        t.batched = now;
        this.stage.observe({ stage: 'queue' }, (now - t.proposed) / 1000);
      }
    }
    for (const e of rd.committedEntries) {
      const t = this.tracked.get(e.index);
      if (!t || t.committed !== undefined) continue;
      t.committed = now;
      this.proposalCommit.observe((now - t.proposed) / 1000);
      if (t.acked !== undefined) this.stage.observe({ stage: 'commit' }, (now - t.acked) / 1000);
    }
  }

  persisted(rd: Ready): void {
    if (this.tracked.size === 0) return;
    const now = performance.now();
    for (const e of rd.entries) {
      const t = this.tracked.get(e.index);
      if (t && t.batched !== undefined && t.persisted === undefined) {
        t.persisted = now;
        this.stage.observe({ stage: 'persist' }, (now - t.batched) / 1000);
      }
    }
  }

  batchWritten(entries: number, synced: boolean, seconds: number): void {
    if (!synced) return;
    this.fsync.observe(seconds);
    this.batchEntries.observe(entries);
  }

  applied(rd: Ready): void {
    if (this.tracked.size === 0) return;
    const now = performance.now();
    for (const e of rd.committedEntries) {
      const t = this.tracked.get(e.index);
      if (!t) continue;
      this.tracked.delete(e.index);
      if (t.committed !== undefined) this.stage.observe({ stage: 'apply' }, (now - t.committed) / 1000);
    }
  }

  event(ev: RaftEvent): void {
    if (ev.kind === 'campaign') this.campaigns.inc({ pre_vote: String(ev.preVote) });
    else if (ev.kind === 'snapshot-refused') this.snapshotsRefused.inc({ reason: ev.reason });
    this.history.noteEvent(ev);
  }

  softStateChanged(prev: SoftState, soft: SoftState): void {
    // Proposals of a leader that stepped down are no longer this node's to time.
    if (prev.role === 'leader' && soft.role !== 'leader') this.tracked.clear();
    if (soft.role !== 'leader') this.roundSent.clear();
    this.history.noteSoftState(prev, soft);
  }

  received(msg: Message): void {
    this.history.noteMessage(msg);
    if (msg.type === 'app') {
      const now = performance.now();
      const last = this.lastAppend.get(msg.from);
      this.lastAppend.set(msg.from, now);
      if (last !== undefined) this.heartbeatLateness.observe(Math.max(0, now - last - this.heartbeatMs) / 1000);
    } else if (msg.type === 'appResp') {
      const now = performance.now();
      const sent = this.roundSent.get(msg.from)?.get(msg.round);
      if (sent !== undefined) {
        this.roundSent.get(msg.from)!.delete(msg.round);
        this.peerRtt.observe({ peer: msg.from }, (now - sent) / 1000);
      }
      if (msg.success && this.tracked.size > 0) {
        for (const [index, t] of this.tracked) {
          if (index > msg.matchIndex) break;
          if (t.acked !== undefined || t.batched === undefined) continue;
          t.acked = now;
          this.stage.observe({ stage: 'replicate' }, (now - t.batched) / 1000);
        }
      }
    }
  }

  sent(msg: Message): void {
    if (msg.type !== 'app') return;
    let rounds = this.roundSent.get(msg.to);
    if (!rounds) this.roundSent.set(msg.to, (rounds = new Map()));
    if (rounds.has(msg.round)) return;
    if (rounds.size >= MAX_ROUNDS) rounds.delete(rounds.keys().next().value!);
    rounds.set(msg.round, performance.now());
  }

  snapshotTaken(bytes: number, seconds: number): void {
    this.snapshots.inc({ origin: 'local' });
    this.snapshotBytes.set({ origin: 'local' }, bytes);
    this.snapshotDuration.observe(seconds);
  }
}
