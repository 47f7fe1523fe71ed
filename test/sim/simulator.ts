// Deterministic cluster simulator (TigerBeetle VOPR style, docs/internals/vopr.md): the
// real Raft core against a virtual clock, an in-memory network with faults and in-memory
// disks, with the invariant checkers of checkers.ts run after every step. One seed
// derives every parameter; a run is a pure function of (seed, options).
//
// A run has two phases. The safety phase injects faults (drops, duplicates, delays,
// reordering, partitions, crashes, membership changes, leadership transfers,
// compaction); the liveness phase stops them all and requires the cluster to converge.
import { decodeConfChange, applyConfChange } from '../../src/raft/conf-change.js';
import { RaftNode } from '../../src/raft/raft.js';
import { seededRandom } from '../../src/raft/rand.js';
import type {
  ConfChange,
  ConfState,
  Message,
  NodeId,
  ProposeResult,
  RaftConfig,
  RaftErrorKind,
  Ready,
  Role,
  Snapshot,
  Status,
  StepResult,
} from '../../src/raft/types.js';
import {
  checkApplied,
  checkCommitAgreement,
  checkCommittedNotOverwritten,
  checkElectionSafety,
  checkLeaderCompleteness,
  checkLeaseExclusivity,
  checkLiveness,
  checkLogMatching,
  checkReadIndex,
  entryKey,
  History,
  recordApplied,
  recordCommitted,
  recordLeaders,
  recordLogEntries,
  type Violation,
} from './checkers.js';
import { MemDisk, entryAt, lastIndex, snapIndex, termAt } from './disk.js';
import { EventQueue } from './heap.js';
import { SimRandom } from './prng.js';
import { describeMessage, describeReady, TraceRing } from './trace.js';

/** What the simulator calls on a node: RaftNode's API, so a broken proxy can stand in. */
export interface SimNode {
  tick(): void;
  step(msg: Message): StepResult;
  propose(data: Uint8Array): ProposeResult;
  proposeConfChange(cc: ConfChange): ProposeResult;
  readIndex(requestId: string): void;
  transferLeadership(to: NodeId): { ok: true } | { ok: false; error: RaftErrorKind };
  campaign(): void;
  compact(index: number, data: Uint8Array): Snapshot | null;
  hasReady(): boolean;
  ready(): Ready;
  advance(rd: Ready): void;
  status(): Status;
  leaseValid(): boolean;
}

/** Wraps each node as it is built (first start and every restart); for proving the checkers catch broken cores. */
export type NodeWrapper = (node: SimNode, id: NodeId, incarnation: number) => SimNode;

export interface SimOptions {
  readonly seed: number;
  /** Voters at the start; by default drawn from the seed (3 or 5). */
  readonly voters?: 3 | 5;
  /** Events in the safety (fault) phase. */
  readonly steps?: number;
  /** Fault rates; by default drawn from the seed. `drop`/`dup` are per message; `partition`/`crash` per scheduler round (~half a tick). */
  readonly drop?: number;
  readonly dup?: number;
  readonly partition?: number;
  readonly crash?: number;
  /** Rate of campaign() calls on a random node per scheduler round (default 0.002). */
  readonly campaign?: number;
  /** Run the liveness phase after the safety phase (default true). */
  readonly liveness?: boolean;
  /** Max relative clock-rate deviation of a node; default leaseDriftTicks / electionTick / 2. */
  readonly drift?: number;
  /** Lines of trace kept for the failure report. */
  readonly traceSize?: number;
  /** Called with every trace line as it happens (`--trace`). */
  readonly onTrace?: (line: string) => void;
  readonly wrapNode?: NodeWrapper;
}

export interface SimParams {
  readonly voters: number;
  readonly spares: number;
  readonly heartbeatTick: number;
  readonly electionTick: number;
  readonly leaseDriftTicks: number;
  readonly leaseReads: boolean;
  readonly maxInflight: number;
  readonly maxMsgBytes: number;
  readonly snapshotChunkBytes: number;
  readonly drift: number;
  readonly drop: number;
  readonly dup: number;
  readonly delay: number;
  readonly maxLatency: number;
  readonly diskLatency: number;
  readonly partition: number;
  readonly crash: number;
  readonly confChange: number;
  readonly transfer: number;
  readonly compact: number;
  readonly steps: number;
}

export interface SimStats {
  steps: number;
  /** Distinct (term, leader) pairs observed. */
  elections: number;
  /** Distinct indexes applied by some node. */
  commits: number;
  proposals: number;
  reads: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  compactions: number;
  messages: number;
  dropped: number;
  /** Nominal ticks of virtual time elapsed. */
  ticks: number;
}

export interface SimResult {
  readonly seed: number;
  readonly params: SimParams;
  readonly violations: readonly Violation[];
  readonly stats: SimStats;
  /** The last `traceSize` events. */
  readonly trace: readonly string[];
}

/** Virtual time units per nominal tick. */
export const TICK = 100;
const CLUSTER_ID = 'sim';

type SimEvent =
  | { readonly kind: 'tick'; readonly node: number; readonly gen: number }
  | { readonly kind: 'ready'; readonly node: number; readonly gen: number }
  | { readonly kind: 'deliver'; readonly msg: Message }
  | { readonly kind: 'chaos' }
  | { readonly kind: 'restart'; readonly node: number }
  | { readonly kind: 'heal'; readonly partition: number };

interface Slot {
  readonly id: NodeId;
  readonly idx: number;
  readonly disk: MemDisk;
  readonly rate: number;
  node: SimNode | null;
  gen: number;
  readyScheduled: boolean;
  /**
   * The state machine: a digest chained over every applied entry, so two nodes with the
   * same digest at an index applied the same sequence, plus the latest values (which make
   * the snapshot span several chunks).
   */
  sm: SmState;
  appliedIndex: number;
  role: Role;
  term: number;
  lease: boolean;
  conf: ConfState;
  /** requestId -> highest commit known anywhere when the read was requested. */
  readonly reads: Map<string, number>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function deriveParams(seed: number, o: Partial<SimOptions> = {}): SimParams {
  const r = new SimRandom(seed);
  const voters = o.voters ?? (r.chance(0.5) ? 3 : 5);
  const electionTick = r.range(8, 20);
  const leaseDriftTicks = r.range(2, Math.max(2, Math.floor(electionTick / 4)));
  const drop = r.pick([0, 0.01, 0.05, 0.15])!;
  const dup = r.pick([0, 0.02, 0.1])!;
  const partition = r.pick([0, 0.005, 0.02])!;
  const crash = r.pick([0, 0.003, 0.01])!;
  return {
    voters,
    spares: r.range(0, 2),
    heartbeatTick: r.range(1, 3),
    electionTick,
    leaseDriftTicks,
    leaseReads: r.chance(0.5),
    maxInflight: r.range(1, 8),
    maxMsgBytes: r.pick([64, 512, 4096])!,
    snapshotChunkBytes: r.pick([32, 256, 4096])!,
    drift: o.drift ?? leaseDriftTicks / electionTick / 2,
    drop: o.drop ?? drop,
    dup: o.dup ?? dup,
    delay: r.pick([0, 0.05, 0.2])!,
    maxLatency: r.pick([10, 50, 150])!,
    diskLatency: r.pick([0, 10, 40])!,
    partition: o.partition ?? partition,
    crash: o.crash ?? crash,
    confChange: r.pick([0, 0.01, 0.03])!,
    transfer: r.pick([0, 0.005, 0.02])!,
    compact: r.pick([0, 0.01, 0.05])!,
    steps: o.steps ?? 3000,
  };
}

export class Simulator {
  readonly params: SimParams;
  readonly history = new History();
  readonly stats: SimStats = {
    steps: 0,
    elections: 0,
    commits: 0,
    proposals: 0,
    reads: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    compactions: 0,
    messages: 0,
    dropped: 0,
    ticks: 0,
  };
  private readonly violations: Violation[] = [];
  private readonly rand: SimRandom;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly slots: Slot[] = [];
  private readonly byId = new Map<NodeId, Slot>();
  private readonly bootstrapConf: ConfState;
  private readonly trace: TraceRing;
  private now = 0;
  /** Blocked directed links "from>to", each with the partition that blocks it. */
  private readonly blocked = new Map<string, Set<number>>();
  private partitionSeq = 0;
  private faults = true;
  private valueSeq = 0;
  private readSeq = 0;
  /** index -> state machine digest after applying it, as first seen. */
  private readonly digests = new Map<number, string>();

  constructor(private readonly opts: SimOptions) {
    this.params = deriveParams(opts.seed, opts);
    // Parameters and the schedule draw from separate streams, so an override of one
    // parameter does not reshuffle everything else.
    this.rand = new SimRandom(opts.seed ^ 0x5bd1e995);
    this.trace = new TraceRing(opts.traceSize ?? 200);
    const p = this.params;
    const ids = Array.from({ length: p.voters + p.spares }, (_, i) => `n${i + 1}`);
    this.bootstrapConf = { voters: ids.slice(0, p.voters), learners: [] };
    for (const [idx, id] of ids.entries()) {
      const rate = 1 + (this.rand.float() * 2 - 1) * p.drift;
      const slot: Slot = {
        id,
        idx,
        disk: new MemDisk(),
        rate,
        node: null,
        gen: 0,
        readyScheduled: false,
        sm: { index: 0, digest: '0', recent: [] },
        appliedIndex: 0,
        role: 'follower',
        term: 0,
        lease: false,
        conf: this.bootstrapConf,
        reads: new Map(),
      };
      this.slots.push(slot);
      this.byId.set(id, slot);
      this.start(slot);
    }
    this.queue.push(this.rand.range(1, TICK / 2), { kind: 'chaos' });
  }

  // -------------------------------------------------------------------------
  // Running.

  run(): SimResult {
    const p = this.params;
    while (this.violations.length === 0 && this.stats.steps < p.steps) this.step();
    if (this.violations.length === 0 && this.opts.liveness !== false) this.livenessPhase();
    this.stats.ticks = Math.floor(this.now / TICK);
    this.stats.elections = this.history.leaders.size;
    this.stats.commits = this.history.applied.size;
    return { seed: this.opts.seed, params: p, violations: this.violations, stats: this.stats, trace: this.trace.toArray() };
  }

  private step(): boolean {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    this.now = ev.time;
    this.stats.steps++;
    const e = ev.value;
    switch (e.kind) {
      case 'tick':
        this.onTick(e.node, e.gen);
        break;
      case 'ready':
        this.onReady(e.node, e.gen);
        break;
      case 'deliver':
        this.onDeliver(e.msg);
        break;
      case 'chaos':
        this.onChaos();
        this.queue.push(this.now + this.rand.range(TICK / 4, (3 * TICK) / 4), { kind: 'chaos' });
        break;
      case 'restart':
        this.restart(this.slots[e.node]!);
        break;
      case 'heal':
        this.heal(e.partition);
        break;
    }
    return true;
  }

  /** Faults stop; every node comes back; a leader must emerge and a probe commit everywhere (checkers.ts checkLiveness). */
  private livenessPhase(): void {
    const p = this.params;
    this.faults = false;
    const t0 = this.now;
    for (const id of [...this.blocked.keys()]) this.blocked.delete(id);
    for (const s of this.slots) if (s.node === null) this.restart(s);
    this.log('faults stop: partitions healed, all nodes up, no drops; liveness phase');
    const bound = 10 * p.electionTick;
    const deadline = t0 + 2 * bound * TICK;
    let leaderAt: number | null = null;
    let appliedAt: number | null = null;
    let probe: { index: number; term: number; value: string } | null = null;
    let nextProposeAt = t0;
    while (this.violations.length === 0 && this.now <= deadline) {
      const leader = this.currentLeader();
      if (leader !== null && leaderAt === null) leaderAt = this.now;
      if (leader !== null && this.now >= nextProposeAt) {
        // (Re)propose while the probe is not in the leader's log: a proposal can be lost
        // with a leader change, which is allowed; only a committed one must survive.
        const inLog = probe !== null && entryAt(leader.disk.current, probe.index)?.term === probe.term;
        if (!inLog) {
          const value = `probe-${this.valueSeq++}`;
          const r = leader.node!.propose(enc.encode(value));
          this.afterNodeEvent(leader);
          if (r.ok) {
            probe = { index: r.index, term: r.term, value };
            this.log(`${leader.id} propose liveness probe -> ${r.index}/${r.term}`);
          }
        }
        nextProposeAt = this.now + p.electionTick * TICK;
      }
      if (probe !== null && leader !== null && this.probeAppliedEverywhere(leader, probe)) {
        appliedAt = this.now;
        break;
      }
      if (!this.step()) break;
    }
    const ticks = (t: number | null) => (t === null ? null : Math.ceil((t - t0) / TICK));
    const leader = this.currentLeader();
    const detail = this.slots.map((s) => `${s.id}:${s.node ? `${s.role}@${s.term} applied=${s.appliedIndex}` : 'down'}`).join(' ');
    this.report(
      checkLiveness({
        leaderAfterTicks: ticks(leaderAt),
        appliedAfterTicks: ticks(appliedAt),
        boundTicks: bound,
        detail: `${detail}; leader ${leader?.id ?? 'none'}, probe ${probe ? `${probe.index}/${probe.term}` : 'never accepted'}`,
      }),
    );
  }

  private probeAppliedEverywhere(leader: Slot, probe: { index: number; term: number; value: string }): boolean {
    const applied = this.history.applied.get(probe.index);
    if (applied === undefined || applied.key !== `${probe.term}/normal/${probe.value}`) return false;
    return leader.conf.voters.every((id) => {
      const s = this.byId.get(id);
      return s !== undefined && s.node !== null && s.appliedIndex >= probe.index;
    });
  }

  /** The up node that is leader in the highest term, if any. */
  private currentLeader(): Slot | null {
    let best: Slot | null = null;
    for (const s of this.slots) {
      if (s.node !== null && s.role === 'leader' && (best === null || s.term > best.term)) best = s;
    }
    return best;
  }

  // -------------------------------------------------------------------------
  // Nodes: start, crash, restart.

  private config(slot: Slot): RaftConfig {
    const p = this.params;
    return {
      id: slot.id,
      clusterId: CLUSTER_ID,
      heartbeatTick: p.heartbeatTick,
      electionTick: p.electionTick,
      leaseDriftTicks: p.leaseDriftTicks,
      leaseReads: p.leaseReads,
      maxInflight: p.maxInflight,
      maxMsgBytes: p.maxMsgBytes,
      snapshotChunkBytes: p.snapshotChunkBytes,
      // A fresh stream per incarnation, still a pure function of the run seed.
      random: seededRandom((this.opts.seed * 31 + slot.idx * 7919 + slot.gen * 104729) | 0),
    };
  }

  private start(slot: Slot): void {
    const d = slot.disk.current;
    slot.gen++;
    const core = new RaftNode(this.config(slot), {
      hardState: d.hardState,
      snapshot: d.snapshot,
      entries: d.entries.slice(),
      bootstrapConf: this.bootstrapConf,
    });
    slot.node = this.opts.wrapNode ? this.opts.wrapNode(core, slot.id, slot.gen) : core;
    // The state machine is memory: it restarts from the snapshot and the core replays
    // the committed entries after it.
    slot.sm = d.snapshot ? decodeState(d.snapshot.data) : { index: 0, digest: '0', recent: [] };
    slot.appliedIndex = snapIndex(d);
    slot.readyScheduled = false;
    slot.reads.clear();
    const period = TICK / slot.rate;
    this.queue.push(this.now + this.rand.float() * period, { kind: 'tick', node: slot.idx, gen: slot.gen });
    this.afterNodeEvent(slot);
  }

  private crash(slot: Slot): void {
    slot.node = null;
    slot.lease = false;
    slot.role = 'follower';
    slot.disk.crash();
    this.stats.crashes++;
    this.log(
      `${slot.id} CRASH (unsynced writes lost; durable log ${snapIndex(slot.disk.current)}..${lastIndex(slot.disk.current)}, term ${slot.disk.current.hardState.term})`,
    );
  }

  private restart(slot: Slot): void {
    if (slot.node !== null) return;
    this.start(slot);
    this.log(
      `${slot.id} RESTART from disk (term ${slot.disk.current.hardState.term}, vote ${slot.disk.current.hardState.votedFor ?? '-'}, log ${snapIndex(slot.disk.current)}..${lastIndex(slot.disk.current)})`,
    );
  }

  // -------------------------------------------------------------------------
  // Events.

  private onTick(idx: number, gen: number): void {
    const s = this.slots[idx]!;
    if (s.node === null || s.gen !== gen) return;
    const before = `${s.role}@${s.term}`;
    s.node.tick();
    this.queue.push(this.now + TICK / s.rate, { kind: 'tick', node: idx, gen });
    this.afterNodeEvent(s);
    const after = `${s.role}@${s.term}`;
    if (before !== after) this.log(`${s.id} tick: ${before} -> ${after}`);
  }

  private onDeliver(m: Message): void {
    const to = this.byId.get(m.to);
    if (to === undefined || to.node === null) {
      this.log(`${m.from} -> ${m.to} ${describeMessage(m)} LOST (${to ? 'node down' : 'no such node'})`);
      return;
    }
    if (this.isBlocked(m.from, m.to)) {
      this.stats.dropped++;
      this.log(`${m.from} -> ${m.to} ${describeMessage(m)} LOST (partition)`);
      return;
    }
    this.log(`${m.from} -> ${m.to} ${describeMessage(m)}`);
    const r = to.node.step(m);
    if (!r.ok) this.report([{ invariant: 'core-contract', message: `${m.to} refused a well-formed message: ${r.reason}` }]);
    this.afterNodeEvent(to);
  }

  private onReady(idx: number, gen: number): void {
    const s = this.slots[idx]!;
    if (s.node === null || s.gen !== gen) return;
    s.readyScheduled = false;
    if (!s.node.hasReady()) return;
    const rd = s.node.ready();
    this.log(`${s.id} ready: ${describeReady(rd)}`);
    this.persist(s, rd);
    for (const m of rd.messages) this.send(m);
    this.apply(s, rd);
    s.node.advance(rd);
    this.afterNodeEvent(s);
  }

  /** Step 1 of the Ready contract, with the checks that concern what reaches the disk. */
  private persist(s: Slot, rd: Ready): void {
    const h = this.history;
    const disk = s.disk;
    if (rd.snapshot) {
      const before = disk.current;
      if (rd.snapshot.meta.index < before.hardState.commit && termAt(before, rd.snapshot.meta.index) !== rd.snapshot.meta.term) {
        this.report([
          {
            invariant: 'durability',
            message: `${s.id} installs snapshot ${rd.snapshot.meta.index}/${rd.snapshot.meta.term} that disagrees with its committed log (commit ${before.hardState.commit})`,
          },
        ]);
      }
      disk.write({ kind: 'install', snapshot: rd.snapshot });
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const last = rd.entries[rd.entries.length - 1]!.index;
      this.report(checkCommittedNotOverwritten(s.id, disk.current, disk.current.hardState.commit, rd.entries));
      const err = disk.write({ kind: 'entries', entries: rd.entries });
      if (err !== null) this.report([{ invariant: 'core-contract', message: `${s.id} Ready: ${err}` }]);
      this.report(checkLogMatching(h, s.id, disk.current, first, last));
      recordLogEntries(h, s.id, disk.current, first, last);
    }
    if (rd.hardState) {
      const prev = disk.current.hardState;
      const hs = rd.hardState;
      if (hs.term < prev.term)
        this.report([{ invariant: 'core-contract', message: `${s.id} term went back from ${prev.term} to ${hs.term}` }]);
      if (hs.term === prev.term && prev.votedFor !== null && hs.votedFor !== prev.votedFor) {
        this.report([
          {
            invariant: 'election-safety',
            message: `${s.id} changed its vote in term ${hs.term} from ${prev.votedFor} to ${hs.votedFor ?? 'nobody'}`,
          },
        ]);
      }
      disk.write({ kind: 'hardState', hardState: hs });
      if (hs.commit > prev.commit) {
        this.report(checkCommitAgreement(h, s.id, disk.current, prev.commit, hs.commit));
        recordCommitted(h, s.id, hs.term, disk.current, prev.commit, hs.commit);
      }
    }
    if (rd.mustSync) disk.sync();
    if (s.node !== null) {
      const st = s.node.status();
      if (st.role === 'leader' && !h.completenessChecked.has(st.term)) {
        h.completenessChecked.add(st.term);
        this.report(checkLeaderCompleteness(h, s.id, st.term, disk.current));
      }
    }
  }

  /** Step 3: the state machine. */
  private apply(s: Slot, rd: Ready): void {
    const h = this.history;
    if (rd.snapshot && rd.snapshot.meta.index > s.appliedIndex) {
      s.sm = decodeState(rd.snapshot.data);
      const i = rd.snapshot.meta.index;
      if (s.sm.index !== i) {
        this.report([{ invariant: 'core-contract', message: `${s.id} got snapshot ${i} holding state at ${s.sm.index}` }]);
      }
      const known = this.digests.get(i);
      if (known !== undefined && known !== s.sm.digest) {
        this.report([
          {
            invariant: 'state-machine-safety',
            message: `${s.id} installs a snapshot at ${i} whose state differs from what was applied there`,
          },
        ]);
      }
      s.appliedIndex = i;
    }
    for (const e of rd.committedEntries) {
      if (e.index !== s.appliedIndex + 1) {
        this.report([{ invariant: 'core-contract', message: `${s.id} asked to apply ${e.index} after ${s.appliedIndex}` }]);
        return;
      }
      const key = entryKey(e);
      this.report(checkApplied(h, s.id, e.index, key));
      recordApplied(h, s.id, e.index, key);
      s.sm.index = e.index;
      s.sm.digest = chainDigest(s.sm.digest, key);
      if (e.type === 'normal') {
        s.sm.recent.push(dec.decode(e.data));
        if (s.sm.recent.length > 16) s.sm.recent.shift();
      }
      const known = this.digests.get(e.index);
      if (known === undefined) this.digests.set(e.index, s.sm.digest);
      else if (known !== s.sm.digest) {
        this.report([
          { invariant: 'state-machine-safety', message: `${s.id} state after applying ${e.index} differs from another node's` },
        ]);
      }
      s.appliedIndex = e.index;
    }
    for (const r of rd.readStates) {
      const wanted = s.reads.get(r.requestId);
      if (wanted === undefined) continue;
      s.reads.delete(r.requestId);
      this.report(checkReadIndex(s.id, r.requestId, r.index, wanted));
    }
  }

  private send(m: Message): void {
    this.stats.messages++;
    if (this.isBlocked(m.from, m.to) || (this.faults && this.rand.chance(this.params.drop))) {
      this.stats.dropped++;
      return;
    }
    const copies = this.faults && this.rand.chance(this.params.dup) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      let latency = 1 + this.rand.float() * this.params.maxLatency;
      if (this.faults && this.rand.chance(this.params.delay)) latency += this.rand.float() * 5 * TICK;
      this.queue.push(this.now + latency, { kind: 'deliver', msg: m });
    }
  }

  /** Observations after anything touched a node, and the per-step checks on them. */
  private afterNodeEvent(s: Slot): void {
    const node = s.node;
    if (node === null) return;
    const st = node.status();
    s.role = st.role;
    s.term = st.term;
    s.conf = st.conf;
    s.lease = node.leaseValid();
    const obs = [{ id: s.id, role: st.role, term: st.term }];
    this.report(checkElectionSafety(this.history, obs));
    recordLeaders(this.history, obs);
    this.report(
      checkLeaseExclusivity(
        this.now,
        this.slots.map((x) => ({ id: x.id, up: x.node !== null, leaseValid: x.lease })),
      ),
    );
    if (!s.readyScheduled && node.hasReady()) {
      s.readyScheduled = true;
      this.queue.push(this.now + this.rand.float() * this.params.diskLatency, { kind: 'ready', node: s.idx, gen: s.gen });
    }
  }

  // -------------------------------------------------------------------------
  // The workload and the faults.

  private onChaos(): void {
    const p = this.params;
    if (!this.faults) return;
    const up = () => this.slots.filter((s) => s.node !== null);
    let leader = this.currentLeader();
    const r = this.rand;

    if (r.chance(0.5)) {
      // Proposals go to whoever claims leadership, or a random node (which refuses).
      const target = r.chance(0.8) && leader ? leader : r.pick(up());
      if (target) {
        const batch = r.range(1, 3);
        for (let i = 0; i < batch; i++) {
          const res = target.node!.propose(enc.encode(`v${this.valueSeq++}`));
          if (res.ok) this.stats.proposals++;
        }
        this.afterNodeEvent(target);
      }
    }
    if (r.chance(0.1)) {
      const target = r.pick(up());
      if (target) {
        const id = `r${this.readSeq++}`;
        target.reads.set(id, this.history.maxCommitted);
        target.node!.readIndex(id);
        this.stats.reads++;
        this.log(`${target.id} readIndex ${id} (committed so far: ${this.history.maxCommitted})`);
        this.afterNodeEvent(target);
      }
    }
    if (r.chance(p.partition)) this.partition();
    if (r.chance(p.crash)) {
      const victim = r.pick(up());
      if (victim) {
        this.crash(victim);
        this.queue.push(this.now + r.range(1, 40) * TICK, { kind: 'restart', node: victim.idx });
      }
    }
    // A crash above may have taken the leader.
    leader = this.currentLeader();
    if (leader && r.chance(p.confChange)) this.confChange(leader);
    if (leader && r.chance(p.transfer)) {
      const to = r.pick(leader.conf.voters.filter((id) => id !== leader.id));
      if (to) {
        const res = leader.node!.transferLeadership(to);
        this.stats.transfers++;
        this.log(`${leader.id} transferLeadership(${to}) -> ${res.ok ? 'ok' : res.error}`);
        this.afterNodeEvent(leader);
      }
    }
    if (r.chance(p.compact) && up().length > 0) {
      const target = r.pick(up());
      if (target) this.compact(target);
    }
    if (r.chance(this.opts.campaign ?? 0.002)) {
      const target = r.pick(up());
      if (target) {
        target.node!.campaign();
        this.log(`${target.id} campaign()`);
        this.afterNodeEvent(target);
      }
    }
  }

  private confChange(leader: Slot): void {
    const r = this.rand;
    const conf = leader.conf;
    const members = new Set([...conf.voters, ...conf.learners]);
    const outsiders = this.slots.filter((s) => !members.has(s.id)).map((s) => s.id);
    const options: ConfChange[] = [];
    for (const id of outsiders) {
      options.push({ op: 'addLearner', nodeId: id });
      options.push({ op: 'addVoter', nodeId: id });
    }
    for (const id of conf.learners) options.push({ op: 'promoteLearner', nodeId: id });
    // Keep at least three voters, so a single crash cannot stall the cluster for good.
    if (conf.voters.length > 3) for (const id of conf.voters) options.push({ op: 'removeVoter', nodeId: id });
    for (const id of conf.learners) options.push({ op: 'removeVoter', nodeId: id });
    const cc = r.pick(options);
    if (cc === undefined) return;
    const res = leader.node!.proposeConfChange(cc);
    if (res.ok) this.stats.confChanges++;
    this.log(`${leader.id} proposeConfChange(${cc.op} ${cc.nodeId}) -> ${res.ok ? `${res.index}/${res.term}` : res.error}`);
    this.afterNodeEvent(leader);
  }

  /** The node snapshots its state machine at its applied index (compact(applied, stateBytes)). */
  private compact(s: Slot): void {
    const d = s.disk.current;
    const index = s.appliedIndex;
    if (index <= snapIndex(d)) return;
    const term = termAt(d, index);
    if (term === undefined) {
      this.report([{ invariant: 'core-contract', message: `${s.id} applied ${index} which is not in its log` }]);
      return;
    }
    const data = encodeState(s.sm);
    const expected: Snapshot = { meta: { index, term, conf: confAt(d, index, this.bootstrapConf) }, data };
    const snapshot = s.node!.compact(index, data);
    // null is the right answer when the core already holds a newer snapshot (one from the
    // leader, not yet handed over in a Ready).
    if (snapshot === null && s.node!.status().firstLogIndex > index) return;
    if (snapshot === null || JSON.stringify(snapshot.meta) !== JSON.stringify(expected.meta)) {
      this.report([
        {
          invariant: 'core-contract',
          message: `${s.id} compact(${index}) returned ${snapshot ? JSON.stringify(snapshot.meta) : 'null'}, its log says ${JSON.stringify(expected.meta)}`,
        },
      ]);
      return;
    }
    // The runtime saves the snapshot synced, before it forgets the entries it covers.
    s.disk.write({ kind: 'compact', snapshot });
    s.disk.sync();
    this.stats.compactions++;
    this.log(`${s.id} compact(${index}) ${data.length}B`);
    this.afterNodeEvent(s);
  }

  private partition(): void {
    const r = this.rand;
    const id = ++this.partitionSeq;
    const ids = this.slots.map((s) => s.id);
    const pairs: [NodeId, NodeId][] = [];
    let what: string;
    if (r.chance(0.5)) {
      // Symmetric: a random side is cut off from the rest.
      const side = new Set(ids.filter(() => r.chance(0.5)));
      if (side.size === 0 || side.size === ids.length) side.add(ids[0]!).delete(ids[ids.length - 1]!);
      for (const a of side) for (const b of ids) if (!side.has(b)) pairs.push([a, b], [b, a]);
      what = `{${[...side].join(',')}} | rest`;
    } else {
      // One-way: a can no longer reach b (b still reaches a).
      const a = r.pick(ids)!;
      const b = r.pick(ids.filter((x) => x !== a))!;
      pairs.push([a, b]);
      what = `${a} -/-> ${b}`;
    }
    for (const [a, b] of pairs) {
      const k = `${a}>${b}`;
      let set = this.blocked.get(k);
      if (!set) this.blocked.set(k, (set = new Set()));
      set.add(id);
    }
    this.stats.partitions++;
    this.log(`PARTITION #${id} ${what}`);
    this.queue.push(this.now + r.range(2, 40) * TICK, { kind: 'heal', partition: id });
  }

  private heal(id: number): void {
    for (const [k, set] of this.blocked) {
      set.delete(id);
      if (set.size === 0) this.blocked.delete(k);
    }
    this.log(`HEAL #${id}`);
  }

  private isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  // -------------------------------------------------------------------------

  private report(vs: readonly Violation[]): void {
    for (const v of vs) {
      if (this.violations.length === 0) this.log(`VIOLATION ${v.invariant}: ${v.message}`);
      this.violations.push(v);
    }
  }

  private log(line: string): void {
    const l = `t=${Math.floor(this.now)} ${line}`;
    this.trace.push(l);
    this.opts.onTrace?.(l);
  }
}

/** Runs one seed to completion (or to its first violation). */
export function runSeed(opts: SimOptions): SimResult {
  return new Simulator(opts).run();
}

export function formatFailure(r: SimResult): string {
  const lines = [
    `seed ${r.seed} FAILED: ${r.violations.map((v) => `${v.invariant}: ${v.message}`).join('; ')}`,
    `params: ${JSON.stringify(r.params)}`,
    `replay: npm run sim -- --seed ${r.seed} --trace`,
    `last ${r.trace.length} events:`,
    ...r.trace.map((l) => `  ${l}`),
  ];
  return lines.join('\n');
}

interface SmState {
  index: number;
  digest: string;
  recent: string[];
}

function encodeState(sm: SmState): Uint8Array {
  return enc.encode(JSON.stringify(sm));
}

function decodeState(data: Uint8Array): SmState {
  return JSON.parse(dec.decode(data)) as SmState;
}

/** FNV-1a (two lanes, 64 bits in all) over the previous digest and the entry. */
function chainDigest(prev: string, key: string): string {
  const s = prev + '|' + key;
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 13);
  }
  return (a >>> 0).toString(16) + (b >>> 0).toString(16);
}

/** The configuration in force at `index` of a log: the last conf entry at or before it (thesis §4.1). */
function confAt(d: Parameters<typeof snapIndex>[0], index: number, bootstrap: ConfState): ConfState {
  let conf = d.snapshot?.meta.conf ?? bootstrap;
  for (const e of d.entries) {
    if (e.index > index) break;
    if (e.type === 'conf') conf = applyConfChange(conf, decodeConfChange(e.data));
  }
  return conf;
}
