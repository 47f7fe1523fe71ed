// Deterministic cluster simulator (TigerBeetle VOPR style, docs/internals/vopr.md): the
// real node runtime (LeaderdNode: its Ready loop, group commit, proposal waiters, read
// barriers, lease listeners, snapshots) on a virtual clock, an in-memory network with
// faults and in-memory disks whose writes complete on the virtual clock (parts.ts),
// with the invariant checkers of checkers.ts run as it goes. One seed derives every
// parameter; a run is a pure function of (seed, options).
//
// The runtime is asynchronous, so between two events the simulator lets every pending
// microtask run (a setImmediate turn: the microtask queue always drains before it) and
// nothing else: no real timer, no I/O. Every continuation the runtime awaits (a disk
// write, a timer) is itself a simulator event, so the interleaving is decided by the
// event queue alone and replays exactly.
//
// A run has two phases. The safety phase injects faults (drops, duplicates, delays,
// reordering, partitions, crashes, membership changes, leadership transfers,
// compaction); the liveness phase stops them all and requires the cluster to converge.
import { pino, type Logger } from 'pino';
import { decodeConfChange, applyConfChange } from '../../src/raft/conf-change.js';
import type { ConfChange, ConfState, Message, NodeId, Role, Snapshot } from '../../src/raft/types.js';
import { INCARNATION_META, LeaderdNode, MemberRefusedError, NodeError, tickSettings, type StateMachine } from '../../src/server/node.js';
import type { Entry } from '../../src/raft/types.js';
import { BOOTSTRAP_META, encodeBootstrap, encodeMemberContext } from '../../src/server/member-registry.js';
import type { PersistInput } from '../../src/storage/leveldb-storage.js';
import {
  checkApplied,
  checkCommitAgreement,
  checkCommittedNotOverwritten,
  checkElectionSafety,
  checkIncarnationCounted,
  checkLeaderCommitRule,
  checkLeaderCompleteness,
  checkNoDisruption,
  checkLeaseExclusivity,
  checkLiveness,
  checkLogMatching,
  checkReadIndex,
  checkWriteAcked,
  checkWriteApplied,
  checkWriteNotApplied,
  entryKey,
  History,
  recordApplied,
  recordCommitted,
  recordLeaders,
  recordLogEntries,
  recordWriteApplied,
  type Violation,
} from './checkers.js';
import { MemDisk, lastIndex, snapIndex, termAt } from './disk.js';
import { EventQueue } from './heap.js';
import { MemStorage, SimTransport, VirtualClock, type Incarnation, type PartsHost } from './parts.js';
import { SimRandom } from './prng.js';
import { describeMessage, describePersist, TraceRing } from './trace.js';

/**
 * A deliberately broken node, for proving that the simulator reaches the bug class each
 * checker exists for (broken.ts). Never used outside tests and `--broken`.
 */
export interface BrokenBehaviour {
  /** Extra messages node `id` sends when it receives `m` (on top of what the runtime answers). */
  readonly onReceive?: (id: NodeId, m: Message) => readonly Message[];
  /** Reports a write whose fate is unknown as 'not-applied' (invites a duplicate retry). */
  readonly unknownAsNotApplied?: boolean;
  /**
   * A transport that takes a lost link for a process exit (a reset or silence for the
   * kernel's clean close): the two sides of a symmetric partition each prove the other
   * gone, live leader included.
   */
  readonly partitionProvesGone?: boolean;
}

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
  /**
   * Share of crashes that also lose the whole data dir (the node restarts empty, with a
   * new incarnation). Default drawn from the seed.
   */
  readonly wipe?: number;
  /**
   * Peers check each other's incarnation and timing at the handshake, as the gRPC
   * transport does (default true). Off: a transport without handshakes, on which a
   * member that lost its data dir is counted again.
   */
  readonly handshake?: boolean;
  /**
   * A spare joins with an empty configuration (`leaderd start --join`), knowing the
   * current members only as addresses. Default false: it starts from the cluster's
   * bootstrap configuration, as a node given the initial member list does (it writes the
   * same bootstrap entries as the initial voters). Before the bootstrap voters were the
   * log's first entries, a joiner that received the log from index 1 never saw them and
   * could count itself a majority (seed 183 with this option).
   */
  readonly joinEmpty?: boolean;
  /**
   * Share of crashes that are a process exit seen by the peers linked to it (a clean
   * close and a refused redial, RuntimeTransport.onPeerGone), the rest being machine
   * losses that peers only notice by silence. Default drawn from the seed (0, 0.5 or 1);
   * at 0 the runs are what they were before the signal existed.
   */
  readonly processExits?: number;
  /** The runtime's fastFailover option (default true): off, it ignores the proofs. */
  readonly fastFailover?: boolean;
  /** Run the liveness phase after the safety phase (default true). */
  readonly liveness?: boolean;
  /** Max relative clock-rate deviation of a node; default leaseDriftTicks / electionTick / 2. */
  readonly drift?: number;
  /**
   * Upper bound of a disk write's latency in virtual ms (drawn uniformly below it); by
   * default drawn from the seed (0, 10 or 40). A disk slower than the network is what
   * lets a leader's appends be acknowledged before its own write is durable.
   */
  readonly diskLatency?: number;
  /** Lines of trace kept for the failure report. */
  readonly traceSize?: number;
  /** Called with every trace line as it happens (`--trace`). */
  readonly onTrace?: (line: string) => void;
  readonly broken?: BrokenBehaviour;
  /**
   * Adversarial scheduling (FoundationDB's "buggify"): on top of the random faults, the
   * schedules that known Raft bugs need, each turned on or off per seed (see
   * AdversaryParams). Default false: the seeds' schedules stay what they were.
   */
  readonly adversary?: boolean;
  /**
   * Check that no node campaigns against a leader's valid lease (default true). Off: the
   * run goes on to what such a campaign leads to (a second lease, a stale read).
   */
  readonly checkDisruption?: boolean;
}

/**
 * The adversary's knobs, each drawn per seed as off (0) or a rate: a run with every
 * knob on at once is mostly crashed nodes, and a bug that needs one schedule hides
 * behind the others (FoundationDB's buggify turns each on in only some runs).
 */
export interface AdversaryParams {
  /**
   * Per append with entries that a leader's follower receives: the leader crashes right
   * after, with its entries on some followers only and maybe not on its own disk
   * (Figure 8's scenario; §10.2.1's leader that counted its own unsynced entries).
   */
  readonly crashAfterAppend: number;
  /** Per newly observed leader: it crashes within a tick, before its first entries spread. */
  readonly crashNewLeader: number;
  /**
   * Per vote grant (not a pre-vote) a node sends: it crashes at once, before a disk write
   * still in flight completes. Harmless when the vote was durable before the grant left.
   */
  readonly crashAfterVote: number;
  /** Same per successful append acknowledgement (each heartbeat's answer too, so a lower rate). */
  readonly crashAfterAck: number;
  /**
   * Per scheduler round: a link, or every link into or out of a node, is clogged: what
   * is sent on it is held and delivered in a burst when it unclogs (stale answers
   * arriving after a term change, acknowledgements that come late).
   */
  readonly clog: number;
  /**
   * Per scheduler round: the leader is cut off one way (its messages no longer arrive)
   * while what its followers send it is held for up to an election timeout and then
   * arrives late: acknowledgements of heartbeats the followers heard long ago, just as
   * they start to elect someone else (a lease counted from the acknowledgement instead
   * of the heartbeat's sending outlives the followers' promise; thesis §6.4.1).
   */
  readonly lateAcks: number;
  /**
   * A disk slower than the network (virtual ms, replacing SimParams.diskLatency when not
   * 0): a leader's appends are acknowledged before its own write is durable, and a
   * crash catches writes in flight (thesis §10.2.1).
   */
  readonly slowDisk: number;
  /**
   * Per append carrying entries: it is lost, while heartbeats (no entries) get through,
   * as on a link that drops large messages. A follower then hears the leader's commit
   * index on heartbeats anchored below entries it has not received (Figure 2,
   * AppendEntries step 5: commit only what the append verified).
   */
  readonly loseEntries: number;
  /**
   * Per TimeoutNow (leadership transfer): once it is out, what is sent to the old leader is
   * held for up to an election timeout, so it goes on believing it leads while its
   * successor commits (a leader must confirm with a quorum round before it answers a
   * read: thesis §6.4 steps 2-3).
   */
  readonly deafAfterTransfer: number;
  /**
   * Per vote request (not a pre-vote): it arrives up to an election timeout late, after
   * the voters may have heard from a leader again: a voter in a leader's lease must still
   * refuse it (thesis §6.4), whatever it answered the candidate's pre-vote.
   */
  readonly slowVotes: number;
  /**
   * Per message: a copy is delivered again one to three election timeouts later (a
   * retransmission from a stale connection): answers from an earlier term reach a node
   * that leads again (Figure 2: every message from an older term is stale).
   */
  readonly lateCopies: number;
  /** Restarts after an adversary's crash come within this many ticks, so the node competes again. */
  readonly restartTicks: number;
}

export function deriveAdversary(seed: number, electionTick: number): AdversaryParams {
  const r = new SimRandom(seed ^ 0x2545f491);
  const knob = (rates: readonly number[]) => (r.chance(0.5) ? r.pick(rates)! : 0);
  return {
    crashAfterAppend: knob([0.01, 0.05, 0.2]),
    crashNewLeader: knob([0.1, 0.3]),
    crashAfterVote: knob([0.1, 0.4]),
    crashAfterAck: knob([0.002, 0.01]),
    clog: knob([0.01, 0.03]),
    lateAcks: knob([0.005, 0.02]),
    slowDisk: knob([100, 200]),
    restartTicks: r.range(1, 2 * electionTick),
    // Knobs added later draw after the others, so the seeds that ran without them keep their schedules.
    loseEntries: knob([0.1, 0.3]),
    deafAfterTransfer: knob([0.3, 1]),
    slowVotes: knob([0.3, 1]),
    lateCopies: knob([0.01, 0.05]),
  };
}

export interface SimParams {
  readonly voters: number;
  readonly spares: number;
  readonly heartbeatTick: number;
  readonly electionTick: number;
  /** What the runtime derives from the timing (tickSettings), not drawn. */
  readonly leaseDriftTicks: number;
  readonly leaseReads: boolean;
  readonly maxInflight: number;
  readonly maxMsgBytes: number;
  readonly snapshotChunkBytes: number;
  /** The runtime's snapshotEntries: it snapshots its state machine every this many applied entries. */
  readonly snapshotEntries: number;
  readonly drift: number;
  readonly drop: number;
  readonly dup: number;
  readonly delay: number;
  readonly maxLatency: number;
  readonly diskLatency: number;
  readonly partition: number;
  readonly crash: number;
  readonly wipe: number;
  readonly processExits: number;
  readonly confChange: number;
  readonly transfer: number;
  readonly steps: number;
}

export interface SimStats {
  steps: number;
  /** Distinct (term, leader) pairs observed. */
  elections: number;
  /** Distinct indexes applied by some node. */
  commits: number;
  proposals: number;
  /** Proposals the runtime acknowledged (applied, with their index). */
  acked: number;
  /** Proposals the runtime refused or reported with outcome 'not-applied'. */
  notApplied: number;
  reads: number;
  crashes: number;
  /** Peers told that a crashed process is gone (fast failover's proof). */
  goneProofs: number;
  /** Leaders that crashed and were followed by a new one, and the ticks without a leader in between (summed). */
  leaderCrashes: number;
  leaderlessTicks: number;
  /**
   * Of those, the ones replaced sooner than silence allows: within (electionTick -
   * heartbeatTick) ticks, before every follower's lease from the dead leader ran out.
   */
  fastReplacements: number;
  wipes: number;
  /** Runs whose liveness phase was skipped because a member had lost its data. */
  livenessSkipped: number;
  partitions: number;
  /** Crashes the adversary chose (SimOptions.adversary), and links it clogged. */
  adversaryCrashes: number;
  clogs: number;
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
  /** The adversary's knobs for this seed, or null without SimOptions.adversary. */
  readonly adversary: AdversaryParams | null;
  readonly violations: readonly Violation[];
  readonly stats: SimStats;
  /** The last `traceSize` events. */
  readonly trace: readonly string[];
}

/** Virtual time units per nominal tick; the runtime runs with tickMs = TICK (one unit is its millisecond). */
export const TICK = 100;
const CLUSTER_ID = 'sim';

type SimEvent =
  | { readonly kind: 'call'; readonly owner: Incarnation; readonly what: string; readonly fn: () => void }
  | {
      readonly kind: 'deliver';
      readonly msg: Message;
      readonly sender: Sender;
      readonly sentAt: number;
      /** For a pre-vote grant: whether another node held a valid lease when it was sent. */
      readonly leaseAtSend: boolean;
    }
  | { readonly kind: 'chaos' }
  | { readonly kind: 'restart'; readonly node: number }
  | { readonly kind: 'crash'; readonly node: number; readonly gen: number; readonly why: string }
  | { readonly kind: 'heal'; readonly partition: number };

/** Who sent a message: the sending process's transport and the incarnation of its data dir. */
interface Sender {
  readonly transport: SimTransport | null;
  readonly incarnation: number;
}

interface Slot {
  readonly id: NodeId;
  readonly idx: number;
  readonly rate: number;
  /** The data dir: the log and the meta values; replaced when wiped. */
  disk: MemDisk;
  meta: Map<string, Uint8Array>;
  /** Identity of the data dir: a new one each time it is wiped. */
  incarnation: number;
  /**
   * The configuration it was started into: the initial one for the initial voters; for
   * a spare, the one it was first added to (it starts then, like a node joining with
   * the current member list). Null: never started.
   */
  seeded: ConfState | null;
  /** The running process, or null while down (or still starting). */
  node: LeaderdNode | null;
  /** Stopped for good: its peers refused its incarnation (exit code 2; an operator must remove and re-add it). */
  refused: boolean;
  transport: SimTransport | null;
  inc: Incarnation;
  /**
   * The state machine: a digest chained over every applied write, so two nodes with the
   * same digest at an index applied the same sequence, plus the latest values (which make
   * the snapshot span several chunks). `index` is the last write applied.
   */
  sm: SmState;
  role: Role;
  term: number;
  /** The runtime's lease signal (onLeaseChange) and its isLeader() at the last observation. */
  leaseSignal: boolean;
  isLeader: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function deriveParams(seed: number, o: Partial<SimOptions> = {}): SimParams {
  const r = new SimRandom(seed);
  const voters = o.voters ?? (r.chance(0.5) ? 3 : 5);
  const electionTick = r.range(8, 20);
  const heartbeatTick = r.range(1, 3);
  const { leaseDriftTicks } = tickSettings(heartbeatTick * TICK, electionTick * TICK, TICK);
  const drop = r.pick([0, 0.01, 0.05, 0.15])!;
  const dup = r.pick([0, 0.02, 0.1])!;
  const partition = r.pick([0, 0.005, 0.02])!;
  const crash = r.pick([0, 0.003, 0.01])!;
  return {
    voters,
    spares: r.range(0, 2),
    heartbeatTick,
    electionTick,
    leaseDriftTicks,
    leaseReads: r.chance(0.5),
    maxInflight: r.range(1, 8),
    maxMsgBytes: r.pick([64, 512, 4096])!,
    snapshotChunkBytes: r.pick([32, 256, 4096])!,
    snapshotEntries: r.pick([10_000, 40, 8])!,
    drift: o.drift ?? leaseDriftTicks / electionTick / 2,
    drop: o.drop ?? drop,
    dup: o.dup ?? dup,
    delay: r.pick([0, 0.05, 0.2])!,
    maxLatency: r.pick([10, 50, 150])!,
    // Drawn even when given, so the option changes nothing else the seed derives.
    diskLatency: ((drawn) => o.diskLatency ?? drawn)(r.pick([0, 10, 40])!),
    partition: o.partition ?? partition,
    crash: o.crash ?? crash,
    wipe: o.wipe ?? 0,
    confChange: r.pick([0, 0.01, 0.03])!,
    transfer: r.pick([0, 0.005, 0.02])!,
    steps: o.steps ?? 3000,
    // Drawn last, so it changes nothing else the seed derives.
    processExits: ((drawn) => o.processExits ?? drawn)(r.pick([0, 0.5, 1])!),
  };
}

/** Lets every pending microtask run, and nothing else the simulator does not schedule. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Simulator implements PartsHost {
  readonly params: SimParams;
  readonly history = new History();
  readonly stats: SimStats = {
    steps: 0,
    elections: 0,
    commits: 0,
    proposals: 0,
    acked: 0,
    notApplied: 0,
    reads: 0,
    crashes: 0,
    goneProofs: 0,
    leaderCrashes: 0,
    leaderlessTicks: 0,
    fastReplacements: 0,
    wipes: 0,
    livenessSkipped: 0,
    partitions: 0,
    adversaryCrashes: 0,
    clogs: 0,
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
  /** Every node's address book: all ids, so a member added later is reachable once it is in the configuration. */
  private readonly addresses: ReadonlyMap<NodeId, string>;
  /** Member -> the incarnation of its data dir when it became a member (lost-incarnation checker). */
  private readonly admitted = new Map<NodeId, number>();
  /** Nodes whose data dir was lost since they were last added: their peers refuse them. */
  private readonly wiped = new Set<NodeId>();
  private readonly trace: TraceRing;
  private readonly traceOn: boolean;
  private time = 0;
  /** Blocked directed links "from>to", each with the partition that blocks it. */
  private readonly blocked = new Map<string, Set<number>>();
  private partitionSeq = 0;
  private faults = true;
  private valueSeq = 0;
  private readSeq = 0;
  /** index -> state machine digest after applying the write there, as first seen. */
  private readonly digests = new Map<number, string>();
  /** The adversary's knobs (null: off) and its own random stream, so the base schedule draws as without it. */
  readonly adversary: AdversaryParams | null;
  private readonly arand: SimRandom;
  /**
   * Node -> the term of the pre-vote round it runs, and when it started (the runtime
   * logs 'pre-campaign started').
   */
  private readonly preRounds = new Map<NodeId, { readonly term: number; readonly since: number }>();
  /**
   * Node -> the term of a pre-vote round in which it was handed a grant for that same
   * term sent before the round started (an earlier round's), or one granted when no
   * leader held a lease. The core counts such a grant, which is right (the voter would
   * grant it again), yet delayed it can start a campaign against a lease won in between:
   * PreVote's own race, so checkNoDisruption skips campaigns that may come from one and
   * the trace says so. A grant for another term is not among them: the core must ignore
   * it (stale-pre-vote), and a campaign it caused would be reported.
   */
  private readonly staleGrants = new Map<NodeId, number>();
  /** Per link "from>to": when its last message sent so far (not counting late copies) arrives. */
  private readonly lastArrival = new Map<string, number>();
  /** When the last leader crashed, until a new leader is observed. */
  private leaderCrashedAt: number | null = null;
  /** Processes the adversary crashed before what they had sent left the machine: it is lost. */
  private readonly silenced = new WeakSet<SimTransport>();
  /** Clogged directed links "from>to" -> virtual time they unclog. */
  private readonly clogged = new Map<string, number>();

  constructor(private readonly opts: SimOptions) {
    const params = deriveParams(opts.seed, opts);
    // Parameters and the schedule draw from separate streams, so an override of one
    // parameter does not reshuffle everything else.
    this.rand = new SimRandom(opts.seed ^ 0x5bd1e995);
    this.arand = new SimRandom(opts.seed ^ 0x7f4a7c15);
    this.adversary = opts.adversary === true ? deriveAdversary(opts.seed, params.electionTick) : null;
    const slowDisk = this.adversary?.slowDisk ?? 0;
    this.params = slowDisk > 0 && opts.diskLatency === undefined ? { ...params, diskLatency: slowDisk } : params;
    this.trace = new TraceRing(opts.traceSize ?? 200);
    this.traceOn = (opts.traceSize ?? 200) > 0 || opts.onTrace !== undefined;
    const p = this.params;
    const ids = Array.from({ length: p.voters + p.spares }, (_, i) => `n${i + 1}`);
    this.bootstrapConf = { voters: ids.slice(0, p.voters), learners: [] };
    this.addresses = new Map(ids.map((id) => [id, `sim-peer:${id}`]));
    for (const id of this.bootstrapConf.voters) this.admitted.set(id, 1);
    for (const [idx, id] of ids.entries()) {
      const rate = 1 + (this.rand.float() * 2 - 1) * p.drift;
      const slot: Slot = {
        id,
        idx,
        rate,
        disk: new MemDisk(),
        meta: new Map(),
        incarnation: 1,
        seeded: idx < p.voters ? this.bootstrapConf : null,
        node: null,
        refused: false,
        transport: null,
        inc: { idx, gen: 0, alive: false },
        sm: emptyState(),
        role: 'follower',
        term: 0,
        leaseSignal: false,
        isLeader: false,
      };
      this.newDataDir(slot);
      this.slots.push(slot);
      this.byId.set(id, slot);
    }
  }

  /**
   * An empty data dir gets its incarnation and its bootstrap record when it is created
   * (like LevelStorage.open's initialMeta): the initial voters bootstrap the cluster; a
   * spare joins it, knowing the members of the configuration it is added to.
   */
  private newDataDir(slot: Slot): void {
    slot.disk = new MemDisk();
    slot.meta = new Map([[INCARNATION_META, enc.encode(this.incarnationOf(slot))]]);
    if (slot.seeded !== null) {
      const join = this.opts.joinEmpty === true && slot.seeded !== this.bootstrapConf;
      const conf = join ? slot.seeded : this.bootstrapConf;
      const members = new Map([...conf.voters, ...conf.learners].map((id) => [id, this.addresses.get(id)!]));
      slot.meta.set(BOOTSTRAP_META, encodeBootstrap({ join, members, inLog: true }));
    }
  }

  private incarnationOf(slot: Slot): string {
    return `${slot.id}.${slot.incarnation}`;
  }

  // -------------------------------------------------------------------------
  // PartsHost.

  now(): number {
    return this.time;
  }

  at(time: number, owner: Incarnation, what: string, fn: () => void): void {
    this.queue.push(time, { kind: 'call', owner, what, fn });
  }

  // -------------------------------------------------------------------------
  // Running.

  async run(): Promise<SimResult> {
    const p = this.params;
    for (const s of this.slots) if (s.seeded !== null) await this.start(s);
    await settle();
    this.queue.push(this.rand.range(1, TICK / 2), { kind: 'chaos' });
    while (this.violations.length === 0 && this.stats.steps < p.steps) await this.step();
    // A member that lost its data stays refused until an operator removes and re-adds it,
    // so the cluster owes no liveness without that step (a pending change may need it).
    const lost = [...this.wiped];
    if (lost.length > 0) {
      this.stats.livenessSkipped++;
      this.log(`liveness phase skipped: ${lost.join(', ')} lost their data (recovery: remove and re-add)`);
    } else if (this.violations.length === 0 && this.opts.liveness !== false) await this.livenessPhase();
    // The run is over: every process is gone, nothing it left pending may act.
    for (const s of this.slots) s.inc.alive = false;
    this.stats.ticks = Math.floor(this.time / TICK);
    this.stats.elections = this.history.leaders.size;
    this.stats.commits = this.history.applied.size;
    return {
      seed: this.opts.seed,
      params: p,
      adversary: this.adversary,
      violations: this.violations,
      stats: this.stats,
      trace: this.trace.toArray(),
    };
  }

  private async step(): Promise<boolean> {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    this.time = ev.time;
    this.stats.steps++;
    const e = ev.value;
    let touched: Slot | null = null;
    switch (e.kind) {
      case 'crash': {
        const slot = this.slots[e.node]!;
        if (slot.node === null || slot.inc.gen !== e.gen) break;
        const unsent = this.arand.chance(0.5);
        if (unsent && slot.transport !== null) this.silenced.add(slot.transport);
        this.log(`ADVERSARY crashes ${slot.id}: ${e.why}${unsent ? '; what it sent is lost' : ''}`);
        this.stats.adversaryCrashes++;
        this.crash(slot, false);
        this.queue.push(this.time + this.arand.range(1, this.adversary!.restartTicks + 1) * TICK, { kind: 'restart', node: slot.idx });
        break;
      }
      case 'call':
        if (!e.owner.alive) return true;
        e.fn();
        touched = this.slots[e.owner.idx]!;
        break;
      case 'deliver':
        touched = this.onDeliver(e.msg, e.sender, e.sentAt, e.leaseAtSend);
        break;
      case 'chaos':
        await this.onChaos();
        this.queue.push(this.time + this.rand.range(TICK / 4, (3 * TICK) / 4), { kind: 'chaos' });
        break;
      case 'restart':
        await this.restart(this.slots[e.node]!);
        break;
      case 'heal':
        this.heal(e.partition);
        break;
    }
    await settle();
    if (touched !== null) await this.observe(touched);
    return true;
  }

  /** Faults stop; every node comes back; a leader must emerge and a probe commit everywhere (checkers.ts checkLiveness). */
  private async livenessPhase(): Promise<void> {
    const p = this.params;
    this.faults = false;
    const t0 = this.time;
    for (const id of [...this.blocked.keys()]) this.blocked.delete(id);
    this.clogged.clear();
    for (const s of this.slots) if (s.node === null && s.seeded !== null && !s.refused) await this.restart(s);
    await settle();
    this.log('faults stop: partitions healed, all nodes up, no drops; liveness phase');
    const bound = 10 * p.electionTick;
    const deadline = t0 + 2 * bound * TICK;
    let leaderAt: number | null = null;
    let readAt: number | null = null;
    let appliedAt: number | null = null;
    let probe = null as { index: number; value: string } | null;
    let nextProposeAt = t0;
    /** The incarnation a read is pending at: first a read, with no write, must be served. */
    let reading: Incarnation | null = null;
    while (this.violations.length === 0 && this.time <= deadline) {
      const leader = this.currentLeader();
      if (leader !== null && leaderAt === null) leaderAt = this.time;
      if (leader !== null && readAt === null && reading !== leader.inc) {
        // (Re)asked of each new leader: a read that fails with a leader change may be retried.
        const inc = (reading = leader.inc);
        this.log(`${leader.id} readBarrier before any write of the liveness phase`);
        leader.node!.readBarrier().then(
          () => {
            if (inc.alive && readAt === null) readAt = this.time;
          },
          () => {
            if (reading === inc) reading = null;
          },
        );
        await settle();
      }
      if (leader !== null && readAt !== null && probe === null && this.time >= nextProposeAt) {
        // (Re)propose until one probe is acknowledged: a proposal can be lost with a
        // leader change (its outcome is then 'unknown' or 'not-applied'), which is allowed.
        const value = `probe-${this.valueSeq++}`;
        this.log(`${leader.id} propose liveness probe ${value}`);
        this.propose(leader, value, (index) => {
          probe ??= { index, value };
        });
        await settle();
        nextProposeAt = this.time + p.electionTick * TICK;
      }
      if (probe !== null && leader !== null && this.probeAppliedEverywhere(leader, probe)) {
        appliedAt = this.time;
        break;
      }
      if (!(await this.step())) break;
    }
    const ticks = (t: number | null) => (t === null ? null : Math.ceil((t - t0) / TICK));
    const leader = this.currentLeader();
    const detail = this.slots.map((s) => `${s.id}:${s.node ? `${s.role}@${s.term} applied=${s.sm.index}` : 'down'}`).join(' ');
    this.report(
      checkLiveness({
        leaderAfterTicks: ticks(leaderAt),
        readAfterTicks: ticks(readAt),
        appliedAfterTicks: ticks(appliedAt),
        boundTicks: bound,
        detail: `${detail}; leader ${leader?.id ?? 'none'}, probe ${probe ? `${probe.index} ${probe.value}` : 'never acknowledged'}`,
      }),
    );
  }

  private probeAppliedEverywhere(leader: Slot, probe: { index: number; value: string }): boolean {
    if (this.history.writesApplied.get(probe.value)?.index !== probe.index) return false;
    return this.confOf(leader).voters.every((id) => {
      const s = this.byId.get(id);
      return s !== undefined && s.node !== null && s.sm.index >= probe.index;
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

  private confOf(s: Slot): ConfState {
    const members = s.node?.members() ?? [];
    return { voters: members.filter((m) => !m.learner).map((m) => m.id), learners: members.filter((m) => m.learner).map((m) => m.id) };
  }

  // -------------------------------------------------------------------------
  // Nodes: start, crash, restart.

  private async start(slot: Slot): Promise<void> {
    const p = this.params;
    const inc: Incarnation = { idx: slot.idx, gen: slot.inc.gen + 1, alive: true };
    slot.inc = inc;
    // The state machine is memory: it restarts from the snapshot (restore) and the
    // runtime replays the committed entries after it.
    slot.sm = emptyState();
    slot.role = 'follower';
    slot.leaseSignal = false;
    slot.isLeader = false;
    const d = slot.disk.current;
    const isNew = d.hardState.term === 0 && d.snapshot === null && d.entries.length === 0;
    const storage = new MemStorage(this, inc, slot.disk, slot.meta, isNew, {
      latency: () => this.rand.float() * p.diskLatency,
      persist: (w, sync) => this.onPersist(slot, w, sync),
      compact: (snap) => this.onCompact(slot, snap),
    });
    const sender: { transport: SimTransport | null; incarnation: number } = { transport: null, incarnation: slot.incarnation };
    const transport = new SimTransport(inc, slot.id, {
      send: (m) => this.send(m, sender),
      dropUnknownPeer: (m) => {
        this.stats.messages++;
        this.stats.dropped++;
        if (this.tracing) this.log(`${m.from} -> ${m.to} ${describeMessage(m)} DROPPED (not a peer of the sender)`);
      },
    });
    // A fresh stream per incarnation, still a pure function of the run seed.
    const clock = new VirtualClock(this, inc, slot.rate, (this.opts.seed * 31 + slot.idx * 7919 + inc.gen * 104729) | 0);
    sender.transport = transport;
    slot.transport = transport;
    // Not awaited: the runtime may wait for its disk before it runs, and the disk
    // completes writes only as simulator events. Until then the node is not up.
    void LeaderdNode.fromParts(
      {
        id: slot.id,
        clusterId: CLUSTER_ID,
        advertisePeer: this.addresses.get(slot.id)!,
        advertiseClient: `sim-client:${slot.id}`,
        peers: this.addresses,
        heartbeatMs: p.heartbeatTick * TICK,
        electionTimeoutMs: p.electionTick * TICK,
        tickMs: TICK,
        logger: this.nodeLogger(slot, inc),
        stateMachine: new SimStateMachine(this, slot, inc),
        snapshotEntries: p.snapshotEntries,
        core: {
          leaseReads: p.leaseReads,
          maxInflight: p.maxInflight,
          // Derived, not drawn (a new draw would move every seed's schedule): half the
          // runs bound the bytes in flight at two messages' worth, so the window closes
          // by bytes before it does by count.
          maxInflightBytes: p.maxInflight % 2 === 1 ? 2 * p.maxMsgBytes : Infinity,
          maxMsgBytes: p.maxMsgBytes,
          snapshotChunkBytes: p.snapshotChunkBytes,
        },
        onFatal: (err) => this.onFatal(slot, inc, err),
        ...(this.opts.fastFailover === false ? { fastFailover: false } : {}),
      },
      { storage, transport, clock },
    ).then(
      (node) => {
        if (!inc.alive) return;
        slot.node = node;
        node.onLeaseChange((valid) => this.onLeaseSignal(slot, inc, valid));
      },
      (err: unknown) => inc.alive && this.report([{ invariant: 'core-contract', message: `${slot.id} failed to start: ${String(err)}` }]),
    );
  }

  /**
   * The runtime stopped itself. Refused by its peers for a lost incarnation it exits
   * with code 2 and stays down, as the systemd unit does; anything else is a bug.
   */
  private onFatal(slot: Slot, inc: Incarnation, err: Error): void {
    if (!inc.alive) return;
    if (err instanceof MemberRefusedError) {
      this.log(`${slot.id} STOPS FOR GOOD: ${err.message}`);
      this.crash(slot, false);
      slot.refused = true;
      return;
    }
    this.report([{ invariant: 'core-contract', message: `${slot.id} fail-stopped: ${err.message}` }]);
  }

  /**
   * The runtime logs at warn when the core refuses a peer message: with well-formed
   * messages that is a broken contract between the runtime and the core. At info it logs
   * each campaign, the moment the no-disruption check needs.
   */
  private nodeLogger(slot: Slot, inc: Incarnation): Logger {
    return pino(
      { level: 'info' },
      {
        write: (line: string) => {
          if (!inc.alive) return;
          const rec = JSON.parse(line) as {
            msg?: string;
            reason?: string;
            type?: string;
            from?: string;
            term?: number;
            transfer?: boolean;
          };
          if (rec.msg === 'pre-campaign started') {
            this.preRounds.set(slot.id, { term: rec.term!, since: this.time });
            this.staleGrants.delete(slot.id);
          }
          if (rec.msg === 'campaign started' && rec.transfer === false) this.onCampaign(slot, rec.term!);
          if (rec.msg === 'peer message refused') {
            this.report([
              { invariant: 'core-contract', message: `${slot.id} refused a well-formed ${rec.type} from ${rec.from}: ${rec.reason}` },
            ]);
          }
        },
      },
    );
  }

  /**
   * The fault model leaderd claims to survive: a minority of the members lose their data.
   * A majority that lost theirs has lost the cluster's acknowledged state for good, and
   * its members, each on an empty data dir, cannot tell themselves from a new cluster
   * (that is what `leaderd recover` and a restore from backup are for).
   */
  private mayLoseDisk(victim: Slot): boolean {
    let intact = 0;
    for (const [id, incarnation] of this.admitted) {
      if (id !== victim.id && this.byId.get(id)!.incarnation === incarnation) intact++;
    }
    return intact >= Math.floor(this.admitted.size / 2) + 1;
  }

  private crash(slot: Slot, wipe: boolean): void {
    this.preRounds.delete(slot.id);
    this.staleGrants.delete(slot.id);
    if (slot.role === 'leader') this.leaderCrashedAt = this.time;
    slot.inc.alive = false;
    slot.node = null;
    slot.transport = null;
    slot.leaseSignal = false;
    slot.isLeader = false;
    slot.role = 'follower';
    slot.disk.crash();
    this.stats.crashes++;
    this.tellPeersGone(slot);
    if (wipe) {
      // The disk is gone: the node comes back on an empty data dir, a new incarnation. If
      // the lost one had stored nothing beyond a new data dir's (no term past the
      // bootstrap's, no vote, no entry past the bootstrap entries), it never voted nor
      // acknowledged an entry, so nothing anyone counted is lost with it: the new one
      // stands in its place (peers that met the old one still refuse it).
      const lost = slot.disk.current;
      const blank = lost.hardState.term <= 1 && lost.hardState.votedFor === null && lastIndex(lost) <= this.bootstrapConf.voters.length;
      if (this.admitted.get(slot.id) === slot.incarnation && blank) this.admitted.set(slot.id, slot.incarnation + 1);
      slot.incarnation++;
      this.wiped.add(slot.id);
      this.newDataDir(slot);
      this.stats.wipes++;
    }
    this.log(
      `${slot.id} CRASH${wipe ? ' AND DATA DIR LOST (incarnation ' + slot.incarnation + ')' : ' (unsynced writes lost'}; durable log ${snapIndex(slot.disk.current)}..${lastIndex(slot.disk.current)}, term ${slot.disk.current.hardState.term})`,
    );
  }

  /**
   * A process exit: each peer that had a working link to it sees its connection close
   * cleanly and its redial refused, a moment later (never across a partition: the FIN
   * is lost there too; a held link delivers it when it unclogs). Whether this crash is
   * such an exit, and the moment, come from a hash of the seed and the crash count, not
   * the run's random stream, so seeds without process exits run as they did before.
   */
  private tellPeersGone(victim: Slot): void {
    const h = new SimRandom((this.opts.seed * 2654435761 + this.stats.crashes * 40503) | 0);
    if (!h.chance(this.params.processExits)) return;
    const gen = victim.inc.gen;
    for (const x of this.slots) {
      const transport = x.transport;
      if (x === victim || x.node === null || transport === null) continue;
      if (this.isBlocked(victim.id, x.id) || this.isBlocked(x.id, victim.id)) continue;
      // The FIN comes after everything the process sent on that connection (TCP keeps order).
      const link = `${victim.id}>${x.id}`;
      const last = Math.max(this.clogged.get(link) ?? 0, this.lastArrival.get(link) ?? 0);
      const when = Math.max(this.time + 1 + h.float() * (TICK / 2), last + 1);
      this.at(when, x.inc, `${x.id} proves ${victim.id} gone`, () => {
        if (victim.node !== null || victim.inc.gen !== gen || x.transport !== transport) return;
        this.log(`${x.id} sees ${victim.id}'s process gone (clean close, redial refused)`);
        this.stats.goneProofs++;
        transport.peerGone(victim.id);
      });
    }
  }

  private async restart(slot: Slot): Promise<void> {
    if (slot.node !== null || slot.refused) return;
    await this.start(slot);
    this.log(
      `${slot.id} RESTART from disk (term ${slot.disk.current.hardState.term}, vote ${slot.disk.current.hardState.votedFor ?? '-'}, log ${snapIndex(slot.disk.current)}..${lastIndex(slot.disk.current)})`,
    );
    await settle();
    await this.observe(slot);
  }

  // -------------------------------------------------------------------------
  // Events.

  private onDeliver(m: Message, sender: Sender, sentAt: number, leaseAtSend: boolean): Slot | null {
    const to = this.byId.get(m.to);
    const handler = to?.transport?.handler;
    if (to === undefined || to.node === null || !handler) {
      if (this.tracing) this.log(`${m.from} -> ${m.to} ${describeMessage(m)} LOST (${to ? 'node down' : 'no such node'})`);
      return null;
    }
    if (this.isBlocked(m.from, m.to) || (sender.transport !== null && this.silenced.has(sender.transport))) {
      this.stats.dropped++;
      if (this.tracing) this.log(`${m.from} -> ${m.to} ${describeMessage(m)} LOST (partition)`);
      return null;
    }
    if (!to.transport!.peers.has(m.from)) {
      this.stats.dropped++;
      if (this.tracing) this.log(`${m.from} -> ${m.to} ${describeMessage(m)} REFUSED (not a peer of the receiver)`);
      return null;
    }
    if (this.tracing) this.log(`${m.from} -> ${m.to} ${describeMessage(m)}`);
    if (this.opts.handshake !== false && sender.transport !== null) {
      const refusal = SimTransport.handshake(sender.transport, to.transport!);
      if (refusal !== null) {
        this.stats.dropped++;
        if (this.tracing) this.log(`${m.from} -> ${m.to} ${describeMessage(m)} REFUSED at handshake (${refusal})`);
        return to;
      }
    }
    if ((m.type === 'voteResp' && m.granted) || (m.type === 'appResp' && m.success)) {
      const what =
        m.type === 'voteResp' ? `a ${m.preVote ? 'pre-vote' : 'vote'} in term ${m.term}` : `an acknowledgement up to ${m.matchIndex}`;
      this.report(checkIncarnationCounted(m.from, this.admitted.get(m.from), sender.incarnation, what, m.to));
    }
    const round = this.preRounds.get(to.id);
    if (m.type === 'voteResp' && m.preVote && m.granted && round !== undefined) {
      if (m.term !== round.term) {
        this.log(`${to.id} is handed a late pre-vote for term ${m.term} during its round for ${round.term} (to be ignored)`);
      } else if (sentAt < round.since) {
        this.staleGrants.set(to.id, round.term);
        this.log(`${to.id} is handed a pre-vote for term ${m.term} granted at t=${Math.floor(sentAt)}, before its round started`);
      } else if (!leaseAtSend) {
        // Granted while no leader held a lease, delivered late: the voter may be back in
        // a lease by now, but it promised nothing when it granted (PreVote's own race).
        this.staleGrants.set(to.id, round.term);
        this.log(`${to.id} is handed a pre-vote granted at t=${Math.floor(sentAt)}, when no leader held a lease`);
      }
    }
    handler(m);
    if (this.adversary !== null && this.faults) this.adversaryOnDeliver(m, sender);
    for (const extra of this.opts.broken?.onReceive?.(to.id, m) ?? [])
      this.send(extra, { transport: to.transport, incarnation: to.incarnation });
    return to;
  }

  /** Step 1 of the Ready loop, as it reaches the disk, with the checks that concern what is stored. */
  private onPersist(s: Slot, w: PersistInput, sync: boolean): void {
    const h = this.history;
    const disk = s.disk;
    if (this.tracing) this.log(`${s.id} disk: ${describePersist(w, sync)}`);
    if (w.snapshot) {
      const before = disk.current;
      if (w.snapshot.meta.index < before.hardState.commit && termAt(before, w.snapshot.meta.index) !== w.snapshot.meta.term) {
        this.report([
          {
            invariant: 'durability',
            message: `${s.id} installs snapshot ${w.snapshot.meta.index}/${w.snapshot.meta.term} that disagrees with its committed log (commit ${before.hardState.commit})`,
          },
        ]);
      }
      disk.write({ kind: 'install', snapshot: w.snapshot });
    }
    if (w.entries.length > 0) {
      const first = w.entries[0]!.index;
      const last = w.entries[w.entries.length - 1]!.index;
      this.report(checkCommittedNotOverwritten(s.id, disk.current, disk.current.hardState.commit, w.entries));
      const err = disk.write({ kind: 'entries', entries: w.entries });
      if (err !== null) this.report([{ invariant: 'core-contract', message: `${s.id} persist: ${err}` }]);
      this.report(checkLogMatching(h, s.id, disk.current, first, last));
      recordLogEntries(h, s.id, disk.current, first, last);
    }
    if (w.hardState) {
      const prev = disk.current.hardState;
      const hs = w.hardState;
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
        this.report(checkLeaderCommitRule(h, s.id, hs.term, disk.current, hs.commit));
        this.report(checkCommitAgreement(h, s.id, disk.current, prev.commit, hs.commit));
        recordCommitted(h, s.id, hs.term, disk.current, prev.commit, hs.commit);
      }
    }
    if (sync) disk.sync();
    // A leader's first write of entries of its own term comes after everything it held
    // when elected reached the disk (writes complete in order): its log must hold every
    // entry committed in an earlier term (Leader Completeness).
    const own = w.entries.find((e) => h.leaders.get(e.term) === s.id && !h.completenessChecked.has(e.term));
    if (own !== undefined) {
      h.completenessChecked.add(own.term);
      this.report(checkLeaderCompleteness(h, s.id, own.term, disk.current));
    }
  }

  /** The runtime took a snapshot of its state machine: it must describe the log it replaces. */
  private onCompact(s: Slot, snapshot: Snapshot): void {
    const d = s.disk.current;
    const { index } = snapshot.meta;
    if (index <= snapIndex(d)) return;
    const expected = { index, term: termAt(d, index), conf: confAt(d, index, this.bootstrapConf) };
    if (JSON.stringify(snapshot.meta) !== JSON.stringify(expected)) {
      this.report([
        {
          invariant: 'core-contract',
          message: `${s.id} snapshot ${JSON.stringify(snapshot.meta)} disagrees with its log ${JSON.stringify(expected)}`,
        },
      ]);
      return;
    }
    // The runtime saves the snapshot synced, before it forgets the entries it covers.
    s.disk.write({ kind: 'compact', snapshot });
    s.disk.sync();
    this.stats.compactions++;
    this.log(`${s.id} disk: compact to ${index} (${snapshot.data.byteLength}B)`);
  }

  /** Step 3: the state machine applies a write. */
  onApply(s: Slot, e: Entry): void {
    const h = this.history;
    if (e.index <= s.sm.index) {
      this.report([{ invariant: 'core-contract', message: `${s.id} asked to apply ${e.index} after ${s.sm.index}` }]);
      return;
    }
    const key = entryKey(e);
    const value = dec.decode(e.data);
    this.report(checkApplied(h, s.id, e.index, key));
    recordApplied(h, s.id, e.index, key);
    this.report(checkWriteApplied(h, s.id, value, e.index));
    recordWriteApplied(h, s.id, value, e.index);
    s.sm.index = e.index;
    s.sm.digest = chainDigest(s.sm.digest, key);
    s.sm.recent.push(value);
    if (s.sm.recent.length > 16) s.sm.recent.shift();
    const known = this.digests.get(e.index);
    if (known === undefined) this.digests.set(e.index, s.sm.digest);
    else if (known !== s.sm.digest) {
      this.report([{ invariant: 'state-machine-safety', message: `${s.id} state after applying ${e.index} differs from another node's` }]);
    }
  }

  /** The runtime replaced the state machine's state with a snapshot's. */
  onRestore(s: Slot, state: SmState): void {
    const known = this.digests.get(state.index);
    if (known !== undefined && known !== state.digest) {
      this.report([
        {
          invariant: 'state-machine-safety',
          message: `${s.id} restores a snapshot whose state at ${state.index} differs from what was applied there`,
        },
      ]);
    }
    s.sm = state;
  }

  private send(m: Message, sender: Sender): void {
    this.stats.messages++;
    if (this.adversary !== null && this.faults) this.adversaryOnSend(m, sender);
    if (
      this.isBlocked(m.from, m.to) ||
      (this.faults && this.rand.chance(this.params.drop)) ||
      (this.faults && this.adversary !== null && this.adversaryLoses(m))
    ) {
      this.stats.dropped++;
      return;
    }
    const copies = this.faults && this.rand.chance(this.params.dup) ? 2 : 1;
    const leaseAtSend =
      m.type === 'voteResp' && m.preVote && m.granted && this.slots.some((x) => x.id !== m.to && x.node !== null && x.leaseSignal);
    if (this.faults && this.adversary !== null && this.adversary.lateCopies > 0 && this.arand.chance(this.adversary.lateCopies)) {
      const late = this.arand.range(this.params.electionTick, 3 * this.params.electionTick + 1) * TICK;
      this.queue.push(this.time + late, { kind: 'deliver', msg: m, sender, sentAt: this.time, leaseAtSend });
    }
    for (let c = 0; c < copies; c++) {
      let latency = 1 + this.rand.float() * this.params.maxLatency;
      if (this.faults && this.rand.chance(this.params.delay)) latency += this.rand.float() * 5 * TICK;
      if (this.faults && this.adversary !== null) latency += this.adversaryDelay(m);
      const unclog = this.clogged.get(`${m.from}>${m.to}`);
      if (unclog !== undefined && this.faults) {
        if (unclog <= this.time) this.clogged.delete(`${m.from}>${m.to}`);
        // Held until the link unclogs, then delivered in a burst, in order.
        else latency = Math.max(latency, unclog - this.time + c);
      }
      this.queue.push(this.time + latency, { kind: 'deliver', msg: m, sender, sentAt: this.time, leaseAtSend });
      const link = `${m.from}>${m.to}`;
      this.lastArrival.set(link, Math.max(this.lastArrival.get(link) ?? 0, this.time + latency));
    }
  }

  /** What the runtime says about itself (as a client would ask it), and the per-step checks on it. */
  private async observe(s: Slot): Promise<void> {
    const node = s.node;
    if (node === null) return;
    const st = node.status();
    const before = `${s.role}@${s.term}`;
    s.role = st.role === 'leader' ? 'leader' : st.role === 'candidate' ? 'candidate' : 'follower';
    s.term = st.term;
    s.isLeader = node.isLeader();
    const after = `${s.role}@${s.term}`;
    if (before !== after) {
      this.log(`${s.id} ${before} -> ${after}`);
      if (s.role === 'leader' && this.leaderCrashedAt !== null) {
        this.stats.leaderCrashes++;
        const ticks = (this.time - this.leaderCrashedAt) / TICK;
        this.stats.leaderlessTicks += ticks;
        if (ticks < this.params.electionTick - this.params.heartbeatTick) this.stats.fastReplacements++;
        this.leaderCrashedAt = null;
      }
      if (s.role === 'leader' && this.adversary !== null && this.faults) this.adversaryOnNewLeader(s);
    }
    const obs = [{ id: s.id, role: s.role, term: s.term }];
    this.report(checkElectionSafety(this.history, obs));
    recordLeaders(this.history, obs);
    this.checkLeases();
    // status() and isLeader() deliver due ticks first, which may start the Ready loop.
    await settle();
  }

  /** A real (not pre-vote, not transfer) campaign started, as the runtime logs it. */
  private onCampaign(s: Slot, term: number): void {
    this.preRounds.delete(s.id);
    if (this.opts.checkDisruption === false) return;
    if (this.staleGrants.get(s.id) === term) {
      this.log(`${s.id} campaigns in term ${term} after a late pre-vote grant for that term: not checked for disruption (PreVote's race)`);
      return;
    }
    this.report(
      checkNoDisruption(
        s.id,
        term,
        this.slots.map((x) => ({ id: x.id, up: x.node !== null, role: x.role, term: x.term, leaseValid: x.leaseSignal })),
      ),
    );
  }

  /** Lease Exclusivity on the runtime's own view: its lease signal, and isLeader(). */
  private checkLeases(): void {
    let signals = 0;
    let claims = 0;
    for (const x of this.slots) {
      if (x.node === null) continue;
      if (x.leaseSignal) signals++;
      if (x.isLeader) claims++;
    }
    if (signals > 1)
      this.report(
        checkLeaseExclusivity(
          this.time,
          this.slots.map((x) => ({ id: `${x.id} (lease signal)`, up: x.node !== null, leaseValid: x.leaseSignal })),
        ),
      );
    if (claims > 1)
      this.report(
        checkLeaseExclusivity(
          this.time,
          this.slots.map((x) => ({ id: `${x.id} (isLeader)`, up: x.node !== null, leaseValid: x.isLeader })),
        ),
      );
  }

  private onLeaseSignal(s: Slot, inc: Incarnation, valid: boolean): void {
    if (!inc.alive) return;
    s.leaseSignal = valid;
    this.log(`${s.id} lease signal ${valid ? 'ON' : 'off'}`);
    if (valid) this.checkLeases();
  }

  // -------------------------------------------------------------------------
  // The workload and the faults.

  /** A write through the runtime, with its outcome checked against what was applied. */
  private propose(target: Slot, value: string, onAck?: (index: number) => void): void {
    const inc = target.inc;
    this.stats.proposals++;
    target.node!.propose(enc.encode(value)).then(
      ({ index }) => {
        if (!inc.alive) return;
        this.stats.acked++;
        this.report(checkWriteAcked(this.history, target.id, value, index));
        this.history.writesAcked.set(value, index);
        onAck?.(index);
      },
      (err: unknown) => {
        if (!inc.alive) return;
        const outcome = err instanceof NodeError ? err.outcome : 'unknown';
        if (outcome === 'not-applied' || this.opts.broken?.unknownAsNotApplied) {
          this.stats.notApplied++;
          this.report(checkWriteNotApplied(this.history, target.id, value));
          this.history.writesNotApplied.add(value);
        }
      },
    );
  }

  private async onChaos(): Promise<void> {
    const p = this.params;
    if (!this.faults) return;
    const up = () => this.slots.filter((s) => s.node !== null);
    let leader = this.currentLeader();
    const r = this.rand;
    const touched = new Set<Slot>();

    if (r.chance(0.5)) {
      // Proposals go to whoever claims leadership, or a random node (which refuses).
      const target = r.chance(0.8) && leader ? leader : r.pick(up());
      if (target) {
        const batch = r.range(1, 3);
        for (let i = 0; i < batch; i++) this.propose(target, `v${this.valueSeq++}`);
        touched.add(target);
      }
    }
    if (r.chance(0.1)) {
      const target = r.pick(up());
      if (target) {
        const id = `r${this.readSeq++}`;
        // A read must reflect every write committed before it was asked for (thesis §6.4).
        const wanted = this.history.maxCommittedNormal;
        const inc = target.inc;
        this.stats.reads++;
        this.log(`${target.id} readBarrier ${id} (writes committed so far up to ${wanted})`);
        target.node!.readBarrier().then(
          () => {
            if (!inc.alive) return;
            this.log(`${target.id} read ${id} served with writes up to ${target.sm.index}`);
            this.report(checkReadIndex(target.id, id, target.sm.index, wanted));
          },
          (err: unknown) => {
            if (!inc.alive) return;
            if (!(err instanceof NodeError && err.kind === 'unavailable'))
              this.report([{ invariant: 'core-contract', message: `${target.id} read ${id} failed: ${String(err)}` }]);
          },
        );
        touched.add(target);
      }
    }
    if (r.chance(p.partition)) this.partition();
    if (this.adversary !== null && this.arand.chance(this.adversary.clog)) this.clog();
    if (this.adversary !== null && leader && this.arand.chance(this.adversary.lateAcks)) this.lateAcks(leader);
    if (r.chance(p.crash)) {
      const victim = r.pick(up());
      if (victim) {
        this.crash(victim, r.chance(p.wipe) && this.mayLoseDisk(victim));
        touched.delete(victim);
        this.queue.push(this.time + r.range(1, 40) * TICK, { kind: 'restart', node: victim.idx });
      }
    }
    // A crash above may have taken the leader.
    leader = this.currentLeader();
    if (leader && r.chance(p.confChange)) {
      await this.confChange(leader);
      touched.add(leader);
    }
    if (leader && r.chance(p.transfer)) {
      const to = r.pick(this.confOf(leader).voters.filter((id) => id !== leader.id));
      if (to) {
        const from = leader;
        this.stats.transfers++;
        this.log(`${from.id} transferLeadership(${to})`);
        from.node!.transferLeadership(to).then(
          (l) => from.inc.alive && this.log(`${from.id} transferLeadership(${to}) ended: leader ${l.leaderId || 'none'}@${l.term}`),
          (err: unknown) => from.inc.alive && this.log(`${from.id} transferLeadership(${to}) refused: ${String(err)}`),
        );
        touched.add(from);
      }
    }
    await settle();
    for (const s of touched) await this.observe(s);
  }

  private async confChange(leader: Slot): Promise<void> {
    const r = this.rand;
    const conf = this.confOf(leader);
    const members = new Set([...conf.voters, ...conf.learners]);
    const outsiders = this.slots.filter((s) => !members.has(s.id)).map((s) => s.id);
    const options: ConfChange[] = [];
    for (const id of outsiders) {
      // A member added at run time brings its record (addresses, incarnation) in the change.
      const slot = this.byId.get(id)!;
      const context = encodeMemberContext({
        peerAddress: this.addresses.get(id)!,
        clientAddress: `sim-client:${id}`,
        incarnation: slot.seeded === null ? '' : this.incarnationOf(slot),
      });
      options.push({ op: 'addLearner', nodeId: id, context });
      options.push({ op: 'addVoter', nodeId: id, context });
    }
    for (const id of conf.learners) options.push({ op: 'promoteLearner', nodeId: id });
    // Keep at least three voters, so a single crash cannot stall the cluster for good.
    if (conf.voters.length > 3) for (const id of conf.voters) options.push({ op: 'removeVoter', nodeId: id });
    for (const id of conf.learners) options.push({ op: 'removeVoter', nodeId: id });
    const cc = r.pick(options);
    if (cc === undefined) return;
    const inc = leader.inc;
    const member = this.byId.get(cc.nodeId)!;
    if (member.seeded === null) {
      member.seeded = conf;
      this.newDataDir(member);
      await this.start(member);
      this.log(`${member.id} STARTS to join, seeded with members ${[...conf.voters, ...conf.learners].join(',')}`);
    }
    const incarnation = member.incarnation;
    this.log(`${leader.id} proposeConfChange(${cc.op} ${cc.nodeId})`);
    leader.node!.proposeConfChange(cc).then(
      ({ index }) => {
        if (!inc.alive) return;
        this.stats.confChanges++;
        this.log(`${leader.id} conf change ${cc.op} ${cc.nodeId} applied at ${index}`);
        if (cc.op === 'removeVoter') this.admitted.delete(cc.nodeId);
        else if (cc.op !== 'promoteLearner') this.admitted.set(cc.nodeId, incarnation);
        if (cc.op === 'addVoter' || cc.op === 'addLearner') this.wiped.delete(cc.nodeId);
      },
      (err: unknown) => inc.alive && this.log(`${leader.id} proposeConfChange(${cc.op} ${cc.nodeId}) -> ${String(err)}`),
    );
  }

  // -------------------------------------------------------------------------
  // The adversary (SimOptions.adversary).

  /** Crashes `slot`'s current process as its own event, right after the one running now. */
  private crashSoon(slot: Slot, delay: number, why: string): void {
    this.queue.push(this.time + delay, { kind: 'crash', node: slot.idx, gen: slot.inc.gen, why });
  }

  /** The running process that sent a message, if it is still up. */
  private senderSlot(m: Message, sender: Sender): Slot | null {
    const slot = this.byId.get(m.from);
    return slot !== undefined && slot.node !== null && slot.transport === sender.transport ? slot : null;
  }

  /** Extra latency the adversary adds to a message (slow vote requests). */
  private adversaryDelay(m: Message): number {
    const p = this.adversary!.slowVotes;
    if (p === 0 || m.type !== 'vote' || m.preVote || !this.arand.chance(p)) return 0;
    return this.arand.float() * this.params.electionTick * TICK;
  }

  /** Whether the adversary loses this message (SimParams drops come on top). */
  private adversaryLoses(m: Message): boolean {
    const p = this.adversary!.loseEntries;
    return p > 0 && m.type === 'app' && m.entries.length > 0 && this.arand.chance(p);
  }

  private adversaryOnSend(m: Message, sender: Sender): void {
    const a = this.adversary!;
    if (m.type === 'timeoutNow' && a.deafAfterTransfer > 0 && this.arand.chance(a.deafAfterTransfer)) {
      const slot = this.senderSlot(m, sender);
      if (slot !== null) this.deafen(slot, this.time + this.arand.range(1, this.params.electionTick) * TICK);
      return;
    }
    const granted = m.type === 'voteResp' && m.granted && !m.preVote;
    const acked = m.type === 'appResp' && m.success;
    if (!granted && !acked) return;
    if (!this.arand.chance(granted ? a.crashAfterVote : a.crashAfterAck)) return;
    const slot = this.senderSlot(m, sender);
    if (slot !== null) this.crashSoon(slot, 0, `right after it sent ${describeMessage(m)} to ${m.to}`);
  }

  private adversaryOnDeliver(m: Message, sender: Sender): void {
    const a = this.adversary!;
    if (m.type !== 'app' || m.entries.length === 0 || !this.arand.chance(a.crashAfterAppend)) return;
    const slot = this.senderSlot(m, sender);
    if (slot !== null && slot.role === 'leader')
      this.crashSoon(slot, 0, `leader of term ${m.term} right after ${m.to} received entries up to ${m.prevLogIndex + m.entries.length}`);
  }

  private adversaryOnNewLeader(s: Slot): void {
    if (this.arand.chance(this.adversary!.crashNewLeader)) this.crashSoon(s, this.arand.float() * TICK, `new leader of term ${s.term}`);
  }

  /** A link, or every link into or out of a node, holds what is sent on it for a while. */
  private clog(): void {
    const r = this.arand;
    const ids = this.slots.map((s) => s.id);
    const until = this.time + r.range(1, 3 * this.params.electionTick) * TICK;
    const a = r.pick(ids)!;
    const links: [NodeId, NodeId][] = [];
    const mode = r.range(0, 3);
    for (const b of ids) {
      if (b === a) continue;
      if (mode === 0 || mode === 2) links.push([a, b]);
      if (mode === 1 || mode === 2) links.push([b, a]);
    }
    const one = mode === 0 && r.chance(0.5) ? [r.pick(links)!] : links;
    for (const [x, y] of one) this.clogged.set(`${x}>${y}`, Math.max(until, this.clogged.get(`${x}>${y}`) ?? 0));
    this.stats.clogs++;
    this.log(`CLOG ${one.map(([x, y]) => `${x}>${y}`).join(' ')} until t=${Math.floor(until)}`);
  }

  /** Holds every message to `s` until `until`; its own still go out (their TimeoutNow among them). */
  private deafen(s: Slot, until: number): void {
    for (const x of this.slots) {
      if (x === s) continue;
      const k = `${x.id}>${s.id}`;
      this.clogged.set(k, Math.max(until, this.clogged.get(k) ?? 0));
    }
    this.stats.clogs++;
    this.log(`DEAF ${s.id}: what is sent to it is held until t=${Math.floor(until)}`);
  }

  private lateAcks(leader: Slot): void {
    const r = this.arand;
    const p = this.params;
    const id = ++this.partitionSeq;
    const held = this.time + r.range(1, p.electionTick) * TICK;
    for (const x of this.slots) {
      if (x === leader) continue;
      const k = `${leader.id}>${x.id}`;
      let set = this.blocked.get(k);
      if (!set) this.blocked.set(k, (set = new Set()));
      set.add(id);
      this.clogged.set(`${x.id}>${leader.id}`, Math.max(held, this.clogged.get(`${x.id}>${leader.id}`) ?? 0));
    }
    this.stats.partitions++;
    this.log(`PARTITION #${id} ${leader.id} -/-> all, and all -> ${leader.id} held until t=${Math.floor(held)}`);
    this.queue.push(this.time + r.range(p.electionTick, 3 * p.electionTick) * TICK, { kind: 'heal', partition: id });
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
      if (this.opts.broken?.partitionProvesGone) {
        for (const [a, b] of pairs) {
          const x = this.byId.get(a)!;
          const transport = x.transport;
          if (transport !== null) this.at(this.time + 1, x.inc, `${a} wrongly proves ${b} gone`, () => transport.peerGone(b));
        }
      }
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
    this.queue.push(this.time + r.range(2, 40) * TICK, { kind: 'heal', partition: id });
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

  /** Trace lines are built only when someone will read them (a replay for a failure report, or --trace). */
  private get tracing(): boolean {
    return this.traceOn;
  }

  private log(line: string): void {
    if (!this.traceOn) return;
    const l = `t=${Math.floor(this.time)} ${line}`;
    this.trace.push(l);
    this.opts.onTrace?.(l);
  }
}

/** The replicated state machine the runtime drives; every call is checked by the simulator. */
class SimStateMachine implements StateMachine {
  constructor(
    private readonly sim: Simulator,
    private readonly slot: Slot,
    private readonly inc: Incarnation,
  ) {}

  apply(entry: Entry): unknown {
    if (this.inc.alive) this.sim.onApply(this.slot, entry);
    return null;
  }

  snapshot(): Uint8Array {
    return encodeState(this.slot.sm);
  }

  restore(data: Uint8Array): void {
    if (this.inc.alive) this.sim.onRestore(this.slot, decodeState(data));
  }
}

function emptyState(): SmState {
  return { index: 0, digest: '0', recent: [] };
}

/**
 * Runs one seed to completion (or to its first violation). Without a trace listener it
 * runs untraced, and replays a failing seed with the trace on for the report (the replay
 * is exact: a run is a pure function of its options).
 */
export async function runSeed(opts: SimOptions): Promise<SimResult> {
  if (opts.onTrace !== undefined || opts.traceSize === 0) return new Simulator(opts).run();
  const fast = await new Simulator({ ...opts, traceSize: 0 }).run();
  if (fast.violations.length === 0) return fast;
  return new Simulator(opts).run();
}

export function formatFailure(r: SimResult): string {
  const lines = [
    `seed ${r.seed} FAILED: ${r.violations.map((v) => `${v.invariant}: ${v.message}`).join('; ')}`,
    `params: ${JSON.stringify(r.params)}`,
    ...(r.adversary ? [`adversary: ${JSON.stringify(r.adversary)}`] : []),
    `replay: npm run sim -- --seed ${r.seed}${r.adversary ? ' --adversary' : ''} --trace`,
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
