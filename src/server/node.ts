// The node runtime: drives the pure Raft core with time, a disk and a network. It owns
// the tick timer, the storage and the peer transport (in production LevelDB, gRPC and
// the monotonic clock; in the seeded simulator in-memory ones behind the same
// interfaces, runtime-ports.ts), and it is the only place where the core's Ready
// batches are carried out, with asynchronous storage writes (Raft thesis §10.2.1):
//
//   start the write (one synced LevelDB batch: group commit for everything proposed
//   meanwhile) -> send what may leave at once (appends, heartbeats, vote requests)
//   -> apply committed entries -> advance, and take the next Ready while the write is
//   in flight;
//   write durable -> send what promises it (acknowledgements, vote grants) -> tell the
//   core (a leader counts its own copy of an entry towards a commit only now).
//
// Failure policy: a storage error is fail-stop. The node stops taking part and reports
// the error through onFatal; it never retries and carries on with a memory view that
// may disagree with the disk.
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RaftNode } from '../raft/raft.js';
import { seededRandom } from '../raft/rand.js';
import { newBasicStatus } from '../raft/raw-node.js';
import { callStateMachine, describeFailStop } from './fail-stop.js';
import { confChangeError, decodeConfChange } from '../raft/conf-change.js';
import type {
  ConfChange,
  Entry,
  Message,
  NodeId,
  ProposeResult,
  RaftConfig,
  RaftEvent,
  Ready,
  Snapshot,
  SnapshotData,
  SnapshotSink,
  SoftState,
} from '../raft/types.js';
import { LevelStorage } from '../storage/leveldb-storage.js';
import { checkIdentity, writeIdentity } from '../storage/identity.js';
import { GrpcTransport } from '../transport/grpc-transport.js';
import type { ReloadingCertificates } from '../security/tls.js';
import { TickClock } from './tick-clock.js';
import { DEFAULT_LIMITS, maxSnapshotBytesFor } from './limit-defaults.js';
import { crc32 } from '../storage/crc32.js';
import { piecesOf, type PieceReadable } from '../storage/snapshot-pieces.js';
import { sleepOn, systemClock } from './runtime-ports.js';
import type { CancelTimer, RuntimeClock, RuntimeStorage, RuntimeTransport } from './runtime-ports.js';
import type { PersistInput } from '../storage/leveldb-storage.js';
import type { NodeObserver } from './node-observer.js';
import type { HandshakePolicy, Refusal, RefusedPeer } from '../transport/handshake.js';
import {
  BOOTSTRAP_META,
  MemberRegistry,
  bootstrapEntries,
  decodeBootstrap,
  decodeMemberContext,
  encodeBootstrap,
  encodeMemberContext,
  frameHeader,
  leadershipRefusal,
  MAX_PRIORITY,
  priorityOf,
  readFrame,
  type Bootstrap,
  type MemberRecord,
} from './member-registry.js';
import { FailbackPlanner, type FailbackDecision, type LeadershipCandidate } from './failback.js';

/**
 * Readies whose write may be in flight at once. Each write waits for the one before it
 * (group commit merges those that queue up), so more would only grow memory and the
 * delay of the acknowledgements waiting behind them.
 */
const MAX_WRITES_IN_FLIGHT = 64;
/** Longest stretch of snapshot work (StateMachine.snapshotInSlices, restoreInSlices) between two turns of the event loop. */
const SLICE_MS = 10;
/**
 * Bytes of snapshot read or written at a time: a state machine's piece is cut to this
 * before it is written, an installed snapshot is read back this much at a time. Small
 * enough that no step holds the event loop for long: a 4 MiB piece of small keys took
 * KvStore.restoreFromPieces 74 ms median and up to 240 ms to take in (bench:kv-memory),
 * 256 KiB takes 1.5 ms median; the slices still yield only every SLICE_MS.
 */
const SNAPSHOT_PIECE_BYTES = 256 << 10;

/** Meta key of this data dir's incarnation: random, drawn when the store is created. */
export const INCARNATION_META = 'incarnation';
/** Meta key prefix of the incarnation this node learned for a member at first contact. */
const PEER_INCARNATION_META = 'incarnation/';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * Peers refused this member at the handshake because they know it as another
 * incarnation: its data dir was wiped, replaced or copied, and it lost the votes and
 * entries it acknowledged. Only an operator can recover (remove and re-add it).
 */
export class MemberRefusedError extends Error {
  override readonly name = 'MemberRefusedError';
  constructor(
    readonly nodeId: NodeId,
    readonly incarnation: string,
    readonly refusedBy: readonly NodeId[],
  ) {
    super(
      `member ${nodeId}'s data is gone: ${refusedBy.join(' and ')} know ${nodeId} as another incarnation than this data dir's (${incarnation}); ` +
        `it was wiped, replaced or copied and lost the votes and entries it acknowledged. To recover, remove the member ` +
        `(leaderd members remove ${nodeId}), then start it on an empty data dir with --join and add it again ` +
        `(leaderd members add ${nodeId} --peer-address HOST:PORT --client-address HOST:PORT)`,
    );
  }
}

/** What a replicated state machine must do. Calls are made in log order, one at a time. */
export interface StateMachine {
  /** Apply a committed `normal` entry; the result goes to whoever proposed it on this node. */
  apply(entry: Entry): unknown;
  /** Everything applied so far, serialized. */
  snapshot(): Uint8Array;
  /** Replace the whole state with a snapshot's. */
  restore(data: Uint8Array): void;
  /**
   * Optional: restore() as an iterator of slices of bounded work, the state replaced at
   * the last step (unchanged before it). The runtime yields to the event loop between
   * slices, so installing a large snapshot does not stall heartbeats, lease renewals
   * and client calls for as long as the whole restore takes.
   */
  restoreInSlices?(data: Uint8Array): Iterator<void, void>;
  /**
   * Optional: snapshot() as an iterator of slices of bounded work, of the state as of
   * this call (later applies must not reach it); its result is the snapshot. The runtime
   * writes it off its Ready loop, yielding to the event loop between slices, and keeps
   * applying entries meanwhile.
   */
  snapshotInSlices?(): Iterator<void, Uint8Array>;
  /**
   * Optional: snapshot() as pieces of bytes, of the state as of this call (later applies must not
   * reach it). Each next() does bounded work (a few thousand keys or a few MiB of values) and
   * returns the next piece (at most a few MiB); their concatenation is byte for byte what
   * snapshot() returns. The runtime writes the pieces to a file, yielding between them, and
   * is done with each piece before it asks for the next: the state machine may write the
   * next pieces into the same buffers.
   */
  snapshotPieces?(): Iterator<Uint8Array, void>;
  /**
   * Optional: restore() fed the snapshot's bytes in pieces of any size, in order. push() does
   * work bounded by the piece's size and keeps nothing of the piece after it returns (values are
   * copied out); finish() checks the end and returns an iterator of bounded slices whose last step
   * swaps the new state in at once. The store is unchanged and readable until that step; an error
   * from push() or finish() changes nothing.
   */
  restoreFromPieces?(): SnapshotRestore;
  /**
   * Optional: bytes of applied entries the state machine keeps as they are (views of the
   * entry's bytes, not copies), as a running total: up when such a value enters the
   * state, down when one leaves it (replaced, deleted). Only its change across one apply
   * matters: the runtime's log byte trigger then counts what the log holds that the state
   * does not.
   */
  sharedEntryBytes?(): number;
}

/** A restore in progress (StateMachine.restoreFromPieces). */
export interface SnapshotRestore {
  push(piece: Uint8Array): void;
  finish(): Iterator<void, void>;
}

/** A consistent copy of the state machine for a backup (LeaderdNode.captureSnapshot). */
export interface CapturedSnapshot {
  readonly index: number;
  readonly term: number;
  /** The state machine's snapshot (no runtime section), read a chunk at a time. */
  readonly data: SnapshotData;
  readonly sha256: Uint8Array;
  /** Drops the copy (its spool file); call once it is sent, or not. */
  release(): void;
}

/** Why an operation failed, as a closed set of kinds the server maps to gRPC codes. */
export type NodeErrorKind =
  | 'not-leader'
  | 'transferring'
  | 'conf-change-pending'
  | 'invalid'
  | 'not-in-config'
  | 'unavailable'
  | 'stopped'
  | 'timeout'
  | 'superseded'
  /** The leader holds too many uncommitted bytes (core.maxUncommittedBytes): retry after a back-off. */
  | 'overloaded';

/**
 * A failed operation. `outcome` says whether a write may have taken effect:
 * 'not-applied' (refused before it entered the log, or provably replaced there) or
 * 'unknown' (proposed; its fate is not known).
 */
export class NodeError extends Error {
  override readonly name = 'NodeError';
  constructor(
    readonly kind: NodeErrorKind,
    message: string,
    readonly outcome: 'not-applied' | 'unknown' = 'not-applied',
    readonly leaderId: NodeId | null = null,
  ) {
    super(message);
  }
}

/** A state machine that keeps nothing: leaderd's leadership service needs only the log. */
export class NullStateMachine implements StateMachine {
  apply(): void {}
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
  restore(): void {}
}

/** What the runtime itself needs, whatever storage, transport and clock it runs on. */
export interface RuntimeOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly advertisePeer: string;
  /** The public API address other nodes and clients are told. */
  readonly advertiseClient: string;
  /** Peer address of every initial member, this node included. Seeds membership only on a new data dir. */
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly heartbeatMs: number;
  /** Minimum election timeout; each timeout is drawn from [this, 2x this). */
  readonly electionTimeoutMs: number;
  /** Resolution of the logical clock; default 10 ms. */
  readonly tickMs?: number;
  readonly logger: Logger;
  readonly stateMachine?: StateMachine;
  /** Take a snapshot and compact the log every this many applied entries; default 10,000. */
  readonly snapshotEntries?: number;
  /**
   * ... or once the entries applied since the last one hold this many bytes the state
   * machine does not (StateMachine.sharedEntryBytes), whichever comes first; default 32 MiB.
   */
  readonly snapshotBytes?: number;
  /**
   * Entries kept before a snapshot's index when compacting, at most this many and this
   * many bytes, so a follower slightly behind catches up from the log (etcd keeps 5,000).
   * Default: half of snapshotEntries up to 5,000 entries, and 16 MiB.
   */
  readonly snapshotTail?: { readonly entries?: number; readonly bytes?: number };
  /** Called once if the node hits an unrecoverable error (storage, a broken core invariant, a throwing state machine; see fail-stop.ts) and stopped. */
  readonly onFatal?: (err: Error) => void;
  /** Told about every stage of the runtime's work (metrics, leadership history). */
  readonly observer?: NodeObserver;
  /**
   * Core flow-control and read-path settings. Production keeps the defaults; the seeded
   * simulator varies them (one entry per message, snapshots in tiny chunks, ReadIndex
   * instead of lease reads) to reach the core's rarer paths through this runtime.
   */
  readonly core?: Partial<
    Pick<
      RaftConfig,
      'leaseReads' | 'maxInflight' | 'maxInflightBytes' | 'maxMsgBytes' | 'snapshotChunkBytes' | 'maxUncommittedBytes' | 'maxSnapshotBytes'
    >
  >;
  /**
   * Failback by priority (failback.ts): a member of higher priority than the leader that
   * has been healthy and caught up for `delayMs` is handed leadership, by a leader that
   * has led for at least `antiFlapMs`. delayMs 0 disables failback (a drained or
   * priority-0 leader still hands over). Default: FAILBACK_DEFAULTS.
   */
  readonly failback?: { readonly delayMs: number; readonly antiFlapMs: number };
  /**
   * Act on a transport's proof that the leader's process died (RuntimeTransport.onPeerGone):
   * campaign, and vote, without waiting out the election timeout. Default true; off, a
   * crashed leader is replaced after the election timeout like any other failure.
   */
  readonly fastFailover?: boolean;
}

export const FAILBACK_DEFAULTS = { delayMs: 5000, antiFlapMs: 60_000 } as const;

/**
 * A follower whose log is within this many entries of the leader's counts as caught up
 * for a failback or a drain: under a steady write load a healthy follower is always a
 * few appends behind, and the transfer itself sends it the rest before TimeoutNow.
 */
const CAUGHT_UP_ENTRIES = 256;
/**
 * A drained member (not a priority-0 one) stands for election again after the cluster
 * has been without a leader for this many election timeouts: a drain is a preference,
 * and availability wins over it, as it does for etcd's and Consul's operators.
 */
const DRAINED_LAST_RESORT_TIMEOUTS = 3;

export interface NodeOptions extends RuntimeOptions {
  readonly dataDir: string;
  readonly listenPeer: string;
  /**
   * On a new data dir: join an existing cluster instead of bootstrapping one. The node
   * then takes its membership from the leader that adds it (Cluster.AddMember); --peers
   * only tells it whom to accept until then. Ignored on an existing data dir.
   */
  readonly join?: boolean;
  /** Mutual TLS between peers, each certificate bound to its member id; plaintext when absent. */
  readonly peerTls?: ReloadingCertificates | undefined;
}

/** Already-built parts to run a node on (LeaderdNode.fromParts). The node owns them from then on. */
export interface RuntimeParts {
  readonly storage: RuntimeStorage;
  /** Not started yet: fromParts starts it. */
  readonly transport: RuntimeTransport;
  readonly clock: RuntimeClock;
}

export interface LeaderView {
  readonly leaderId: NodeId;
  readonly leaderAddress: string;
  readonly term: number;
}

export interface NodeStatusView {
  readonly nodeId: NodeId;
  readonly role: 'leader' | 'follower' | 'candidate' | 'learner';
  readonly term: number;
  readonly leaderId: NodeId;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  readonly leaseValid: boolean;
  /** Peers whose handshake is refused, either way (timing, incarnation), and why. */
  readonly refusedPeers: readonly RefusedPeer[];
}

export interface MemberView {
  readonly id: NodeId;
  readonly peerAddress: string;
  readonly clientAddress: string;
  readonly learner: boolean;
  readonly priority: number;
  readonly drained: boolean;
}

/** What `updateMember` changes in a record; unset fields stay. */
export interface MemberUpdate {
  readonly priority?: number;
  readonly drained?: boolean;
}

/** How a duration in milliseconds maps onto ticks; shared by the runtime and its docs/tests. */
export function tickSettings(heartbeatMs: number, electionTimeoutMs: number, tickMs = 10) {
  const heartbeatTick = Math.max(1, Math.round(heartbeatMs / tickMs));
  const electionTick = Math.max(heartbeatTick + 1, Math.round(electionTimeoutMs / tickMs));
  // The lease is shorter than the election timeout by a margin for clock drift and for
  // tick rounding on both sides (each side may be up to one tick late).
  const leaseDriftTicks = Math.min(electionTick - 1, Math.max(2, Math.ceil(electionTick / 10)));
  return { tickMs, heartbeatTick, electionTick, leaseDriftTicks };
}

export class LeaderdNode {
  readonly id: NodeId;
  private readonly raft: RaftNode;
  private readonly clock: TickClock;
  private readonly log: Logger;
  /** The last announced client address warned about per member (one warning per change, not per GetLeader). */
  private readonly warnedClientAddress = new Map<NodeId, string>();
  private readonly sm: StateMachine;
  private cancelTimer: CancelTimer | null = null;
  private processing = false;
  private again = false;
  private drained: Promise<void> = Promise.resolve();
  /** Settles after the latest Ready's write is durable and its after-persist work done; Readies complete in order. */
  private persistChain: Promise<void> = Promise.resolve();
  /** Readies handed to the core with advanceAsync whose write is not yet reported durable (bounded by MAX_WRITES_IN_FLIGHT). */
  private writesInFlight = 0;
  /** The latest storage write and what the Readies merged into it carry (for the fsync metrics). */
  private lastBatch: { promise: Promise<void>; entries: number; synced: boolean } | null = null;
  private stopped = false;
  private abdicated = false;
  private fatal: Error | null = null;
  private lastSoft: SoftState;
  /** Refilled by raft.basicStatus() on hot paths (every request), so reading the core's state allocates nothing. */
  private readonly basic = newBasicStatus();
  private readonly leaderListeners = new Set<(l: LeaderView) => void>();
  /** whenLeader calls waiting for the current leader's client address to become known. */
  private readonly leaderAddressWaiters = new Set<() => void>();
  private readonly leaseListeners = new Set<(valid: boolean) => void>();
  private lastLeaseValid = false;
  /** While the lease is valid: the tick it runs out at, as of the last input. */
  private leaseEndTick: number | null = null;
  /** When (runtime clock) the last lease this node held ran out. */
  private leaseEndedAt: number | null = null;
  private readonly readWaiters = new Map<string, (index: number) => void>();
  private readonly proposals = new Map<number, ProposalWaiter>();
  private readSeq = 0;
  // ReadIndex request ids must never repeat across restarts of this node: a leader's
  // answer to a read sent before a restart (still in flight, or delayed in a stream)
  // would otherwise resolve a new read with an index from before it was issued, and the
  // read could miss a write that completed in between (thesis §6.4, linearizable reads).
  // Two draws from the clock's seed source (62 random bits; deterministic in the simulator).
  private readonly bootId: string;
  private lastSnapshotIndex: number;
  /** Payload bytes of the entries applied since the last snapshot (taken or installed) that the state machine does not share: the snapshot trigger by bytes. */
  private bytesSinceSnapshot = 0;
  /** A snapshot is being written in slices off the Ready loop (StateMachine.snapshotInSlices). */
  private takingSnapshot = false;
  /** ... and is written: the log is compacted at it at the next Ready boundary. */
  private madeSnapshot: {
    index: number;
    made: { sink: SnapshotSink; checksum: number };
    tail: { entries: number; bytes: number };
    t0: number;
  } | null = null;
  private readonly obs: NodeObserver | undefined;
  /** This data dir's incarnation, sent in every Hello. */
  readonly incarnation: string;
  /** Incarnations learned at first contact (also in meta, so they survive restarts). */
  private readonly learnedIncarnations = new Map<NodeId, string>();
  /** Voters that refused this node's incarnation at the handshake. */
  private readonly incarnationRefusals = new Map<NodeId, string>();
  /** A peer knows this member as another incarnation: vote for no one, campaign not, until the records say otherwise. */
  private quarantined = false;
  /** An updateMember entry recording an incarnation is in flight (the leader records one at a time). */
  private recordingIncarnation = false;
  /** The membership this data dir was created with (persisted then; --peers only supplies addresses later). */
  private readonly bootstrap: Bootstrap;
  /** Member records as of the last applied entry (replicated state). */
  private readonly registry: MemberRegistry;
  /** Peer addresses from conf changes appended but not yet applied, so a new member is reached at once. */
  private readonly pendingAddresses = new Map<NodeId, string>();
  /** Meta records the constructor decided on, written by fromParts before the node talks to anyone. */
  private readonly unsavedMeta: [string, Uint8Array][] = [];
  /** The bootstrap entries of a new cluster, written by fromParts with the meta records. */
  private unsavedLog: PersistInput | null = null;
  /** What the core was last told by setElectable. */
  private electable = true;
  /**
   * This member's own record as the log held it at start-up, committed or not, until the
   * node has applied that far: a member drained just before a whole-cluster restart must
   * not campaign in the moment before it learns that the drain committed.
   */
  private startupSelf: { record: MemberRecord | undefined; upTo: number } | null = null;
  /**
   * When (runtime clock) this node last heard from a leader (or led). An unelectable
   * follower never times out into a candidate, so its soft state keeps naming a dead
   * leader: silence is what tells it the cluster has none.
   */
  private lastLeaderContact: number;
  /** The "not standing for election although leaderless" warning was given for this leaderless period. */
  private warnedLeaderless = false;
  private readonly failback: FailbackPlanner;
  /** When this node last became leader (runtime clock). */
  private leaderSince = 0;
  private lastFailbackCheck = 0;
  private failbackTransfer = false;
  /** The last failback decision logged (each change is logged once, with its reason). */
  private lastDecision = '';

  private constructor(
    private readonly opts: RuntimeOptions,
    private readonly storage: RuntimeStorage,
    private readonly transport: RuntimeTransport,
    private readonly time: RuntimeClock,
    raftConfig: RaftConfig,
    readonly peerPort: number,
  ) {
    this.id = opts.id;
    this.log = opts.logger;
    this.sm = opts.stateMachine ?? new NullStateMachine();
    this.bootId = `${time.randomSeed().toString(36)}.${time.randomSeed().toString(36)}`;
    this.obs = opts.observer;
    this.lastLeaderContact = time.now();
    const inc = storage.getMeta(INCARNATION_META);
    if (inc !== undefined) this.incarnation = fromUtf8.decode(inc);
    else {
      // A data dir from before incarnations (or a store not created by start()) gets
      // one now; its peers learn it at the next handshake.
      this.incarnation = [time.randomSeed(), time.randomSeed(), time.randomSeed()].map((n) => n.toString(16)).join('');
      this.unsavedMeta.push([INCARNATION_META, utf8.encode(this.incarnation)]);
    }
    const boot = storage.getMeta(BOOTSTRAP_META);
    if (boot !== undefined) this.bootstrap = decodeBootstrap(boot);
    else {
      // A data dir from before the bootstrap record: --peers is the best account of
      // how it was bootstrapped; from now on it is kept.
      this.bootstrap = { join: false, members: new Map(opts.peers), inLog: false };
      this.unsavedMeta.push([BOOTSTRAP_META, encodeBootstrap(this.bootstrap)]);
    }
    this.registry = MemberRegistry.fromBootstrap(this.bootstrap);
    const tickMs = opts.tickMs ?? 10;
    const policy: HandshakePolicy = {
      incarnation: this.incarnation,
      timing: {
        heartbeatMs: opts.heartbeatMs,
        electionTimeoutMs: opts.electionTimeoutMs,
        tickMs,
        leaseDriftMs: raftConfig.leaseDriftTicks * tickMs,
      },
      knownIncarnation: (id) => this.knownIncarnation(id),
      learnIncarnation: (id, incarnation) => this.learnIncarnation(id, incarnation),
      knownIncarnations: () => this.toldIncarnations(),
      heardIncarnation: (id, incarnation) => this.learnIncarnation(id, incarnation),
      refusedByPeer: (id, refusal) => this.refusedByPeer(id, refusal),
    };
    transport.setHandshake?.(policy);
    // The leader's address may become known after the leader itself (its Hello can arrive
    // after its first heartbeat): whenLeader's waiters are waiting for exactly that.
    transport.onPeerClientAddress?.((id) => {
      if (id === this.lastSoft.leaderId) for (const w of this.leaderAddressWaiters) w();
    });
    const confInLog = this.bootstrap.join || this.bootstrap.inLog;
    const bootstrapConf = { voters: confInLog ? [] : [...this.bootstrap.members.keys()], learners: [] };
    let initial = storage.initialState(bootstrapConf);
    if (!this.bootstrap.join && this.bootstrap.inLog && initial.snapshot === null && initial.hardState.term === 0) {
      // A new cluster (or a crash before its first write): the bootstrap voters become the
      // log's first entries, committed, written before this node talks to anyone.
      const entries = bootstrapEntries(this.bootstrap.members.keys());
      const hardState = { term: 1, votedFor: null, commit: entries.length };
      initial = { ...initial, hardState, entries };
      this.unsavedLog = { hardState, entries, snapshot: null };
    }
    if (initial.snapshot) {
      // At start-up, before anything else runs: no reason to yield.
      const steps = this.restoreSteps(initial.snapshot.data, initial.snapshot.meta.index);
      while (steps.next().done !== true);
    }
    this.lastSnapshotIndex = initial.snapshot?.meta.index ?? 0;
    this.raft = new RaftNode(raftConfig, initial);
    this.lastSoft = this.raft.softState();
    if (initial.entries.some((e) => e.type === 'conf')) {
      const latest = new MemberRegistry();
      latest.restore(this.registry.encode());
      for (const e of initial.entries) if (e.type === 'conf') latest.apply(decodeConfChange(e.data));
      this.startupSelf = { record: latest.get(this.id), upTo: initial.entries[initial.entries.length - 1]!.index };
    }
    const failback = opts.failback ?? FAILBACK_DEFAULTS;
    this.failback = new FailbackPlanner({
      delayMs: failback.delayMs,
      antiFlapMs: failback.antiFlapMs,
      unhealthyAfterMs: opts.electionTimeoutMs,
      retryMs: 2 * opts.electionTimeoutMs,
    });
    const conf = this.raft.confState();
    if (!storage.isNew && !this.bootstrap.join) {
      const members = [...conf.voters, ...conf.learners].sort().join(',');
      const given = [...opts.peers.keys()].sort().join(',');
      if (members !== given) {
        this.log.warn(
          { node: this.id, members, peers: given },
          `--peers lists ${given} but the replicated membership is ${members}: --peers only supplies addresses after bootstrap, and never changes who votes`,
        );
      }
    }
    this.clock = new TickClock(
      opts.tickMs ?? 10,
      () => {
        // Nor does it campaign: its log may lack entries it acknowledged.
        if (this.quarantined && this.raft.softState().role !== 'leader') return;
        try {
          this.raft.tick();
        } catch (err) {
          this.fail(err as Error);
        }
      },
      () => time.now(),
      time.sinceBoot ? () => time.sinceBoot?.() : undefined,
    );
    if (opts.fastFailover !== false) {
      transport.onPeerGone?.((id) => {
        if (this.stopped) return;
        this.clock.catchUp();
        try {
          this.raft.leaderGone(id, this.raft.basicStatus(this.basic).term);
        } catch (err) {
          this.fail(err as Error);
          return;
        }
        this.afterInput();
      });
    }
    transport.onMessage((msg) => {
      if (this.stopped) return;
      // A quarantined node (see refusedByPeer) may have lost the votes it cast: it casts none.
      if (this.quarantined && (msg.type === 'vote' || msg.type === 'timeoutNow')) return;
      this.clock.catchUp();
      if (msg.type === 'app' || msg.type === 'snap') this.lastLeaderContact = this.time.now();
      this.obs?.received(msg);
      let r;
      try {
        r = this.raft.step(msg);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      if (!r.ok) this.log.warn({ node: this.id, from: msg.from, type: msg.type, reason: r.reason }, 'peer message refused');
      this.afterInput();
    });
  }

  static async start(opts: NodeOptions): Promise<LeaderdNode> {
    if (!opts.peers.has(opts.id)) throw new Error(`--peers must include this node (${opts.id})`);
    const storage = await openDataDir(opts);
    let transport: GrpcTransport;
    try {
      transport = new GrpcTransport({
        nodeId: opts.id,
        clusterId: opts.clusterId,
        listenPeer: opts.listenPeer,
        advertisePeer: opts.advertisePeer,
        advertiseClient: opts.advertiseClient,
        peerTls: opts.peerTls,
        logger: opts.logger,
        // Ping every half election timeout; a link is declared dead after about three
        // election timeouts (at least 1 s) without an answer, so a briefly starved
        // process keeps its connections, while a partitioned one is torn down and
        // redialed (backoff below) well before TCP's retransmission backoff would.
        keepaliveMs: Math.max(100, Math.round(opts.electionTimeoutMs / 2)),
        keepaliveTimeoutMs: Math.max(1000, 3 * opts.electionTimeoutMs),
        minBackoffMs: 20,
        maxBackoffMs: Math.max(50, Math.round(opts.electionTimeoutMs / 2)),
      });
    } catch (err) {
      await storage.close().catch(() => {});
      throw err;
    }
    return LeaderdNode.fromParts(opts, { storage, transport, clock: systemClock });
  }

  /**
   * Runs a node on already-built storage, transport and clock (the seeded simulator's
   * in-memory ones, say). Starts the transport and the tick timer. If this throws, the
   * transport and the storage are closed.
   */
  static async fromParts(opts: RuntimeOptions, parts: RuntimeParts): Promise<LeaderdNode> {
    const { storage, transport, clock } = parts;
    try {
      if (!opts.peers.has(opts.id)) throw new Error(`--peers must include this node (${opts.id})`);
      const { port } = await transport.start();
      const ticks = tickSettings(opts.heartbeatMs, opts.electionTimeoutMs, opts.tickMs);
      const cfg: RaftConfig = {
        id: opts.id,
        clusterId: opts.clusterId,
        heartbeatTick: ticks.heartbeatTick,
        electionTick: ticks.electionTick,
        leaseDriftTicks: ticks.leaseDriftTicks,
        leaseReads: opts.core?.leaseReads ?? true,
        maxInflight: opts.core?.maxInflight ?? 256,
        // A heartbeat waits behind what is in flight on the follower's stream (~50 MiB/s
        // over loopback with grpc-js's 64 KiB window): 4 MiB keeps it under 100 ms late,
        // where 256 appends of 1 MiB values made leaders lose their quorum for seconds.
        maxInflightBytes: opts.core?.maxInflightBytes ?? 4 << 20,
        maxMsgBytes: opts.core?.maxMsgBytes ?? 1 << 20,
        maxUncommittedBytes: opts.core?.maxUncommittedBytes ?? DEFAULT_LIMITS.maxUncommittedBytes,
        snapshotChunkBytes: opts.core?.snapshotChunkBytes ?? 1 << 20,
        maxSnapshotBytes: opts.core?.maxSnapshotBytes ?? maxSnapshotBytesFor(DEFAULT_LIMITS.quotaBytes),
        checksum: crc32,
        // A transfer arriving is spooled to the data dir, never held in memory whole. A
        // spool that cannot be created (no space, say) refuses the transfer, which the
        // leader retries; a write failing halfway stops the node like any storage failure.
        openSnapshotSink: () => {
          try {
            return storage.openSnapshotSink();
          } catch {
            return null;
          }
        },
        random: seededRandom(clock.randomSeed()),
        asyncStorageWrites: true,
      };
      const node = new LeaderdNode(opts, storage, transport, clock, cfg, port);
      for (const [key, value] of node.unsavedMeta.splice(0)) await storage.putMeta(key, value);
      if (node.unsavedLog !== null) await storage.persist(node.unsavedLog, true);
      node.unsavedLog = null;
      node.updatePeers();
      node.updateElectable();
      node.log.info(
        {
          node: opts.id,
          term: node.lastSoft.term,
          cluster: opts.clusterId,
          peer: opts.advertisePeer,
          client: opts.advertiseClient,
          new: storage.isNew,
          ...ticks,
        },
        'node started',
      );
      node.schedule();
      return node;
    } catch (err) {
      await transport.close().catch(() => {});
      await storage.close().catch(() => {});
      throw err;
    }
  }

  // -------------------------------------------------------------------------
  // Views (always after delivering missed ticks, so a paused node never reports stale leadership)

  status(): NodeStatusView {
    this.clock.catchUp();
    this.afterInput();
    const s = this.raft.basicStatus(this.basic);
    const role =
      s.role === 'leader'
        ? 'leader'
        : s.role === 'candidate' || s.role === 'precandidate'
          ? 'candidate'
          : s.learner
            ? 'learner'
            : 'follower';
    return {
      nodeId: this.id,
      role,
      term: s.term,
      leaderId: s.leaderId ?? '',
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      lastLogIndex: s.lastLogIndex,
      leaseValid: s.leaseValid,
      refusedPeers: this.transport.refusedPeers?.() ?? [],
    };
  }

  leader(): LeaderView {
    this.clock.catchUp();
    this.afterInput();
    return this.leaderView(this.raft.softState());
  }

  get clusterId(): string {
    return this.opts.clusterId;
  }

  /** True only while this node leads and holds a valid lease. */
  isLeader(): boolean {
    this.clock.catchUp();
    this.afterInput();
    return !this.abdicated && this.raft.leaseValid();
  }

  /**
   * isLeader(), and this node's state machine has applied an entry of its own term, so
   * it reflects everything committed before it took over (a lease expiry its predecessor
   * committed, say). Leader-only decisions about replicated state wait for this.
   */
  isLeaderCaughtUp(): boolean {
    if (!this.isLeader()) return false;
    const s = this.raft.basicStatus(this.basic);
    const applied = Math.min(this.appliedTo, s.appliedIndex);
    return this.raft.termAt(applied) === s.term;
  }

  members(): MemberView[] {
    const conf = this.raft.confState();
    const view = (id: NodeId, learner: boolean): MemberView => ({
      id,
      peerAddress: id === this.id ? this.opts.advertisePeer : (this.peerAddressOf(id) ?? ''),
      clientAddress: this.clientAddressOf(id),
      learner,
      priority: priorityOf(this.registry.get(id)),
      drained: this.registry.get(id)?.drained === true,
    });
    return [...conf.voters.map((id) => view(id, false)), ...conf.learners.map((id) => view(id, true))];
  }

  /**
   * Resolves with the leader view as soon as `ready` accepts it — now, or at a later
   * leadership change or leader address becoming known — or with null once `timeoutMs`
   * passes or `signal` aborts. Events, not polling: a request waiting for a leader is
   * answered the moment one is known.
   */
  whenLeader(ready: (l: LeaderView) => boolean, timeoutMs: number, signal?: AbortSignal): Promise<LeaderView | null> {
    const now = this.leader();
    if (ready(now)) return Promise.resolve(now);
    if (signal?.aborted || this.stopped || timeoutMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const finish = (l: LeaderView | null) => {
        off();
        cancel();
        signal?.removeEventListener('abort', aborted);
        resolve(l);
      };
      const aborted = () => finish(null);
      const offChange = this.onLeaderChange((l) => {
        if (ready(l)) finish(l);
      });
      const addressKnown = () => {
        const l = this.leader();
        if (ready(l)) finish(l);
      };
      this.leaderAddressWaiters.add(addressKnown);
      const off = () => {
        offChange();
        this.leaderAddressWaiters.delete(addressKnown);
      };
      const cancel = this.time.after(timeoutMs, aborted);
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Listen to every leadership change this node observes (leader id or term). Returns an unsubscribe function. */
  onLeaderChange(listener: (l: LeaderView) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  // -------------------------------------------------------------------------
  // Operations

  /**
   * Propose an opaque command. Resolves with its index and the state machine's result
   * once it is applied on this node. Rejects with a NodeError: outcome 'not-applied' when
   * it never entered the log (not leader, transferring) or was replaced there by another
   * leader's entry; 'unknown' when the signal aborted (deadline) or the node stopped first.
   */
  async propose(data: Uint8Array, signal?: AbortSignal): Promise<{ index: number; result: unknown }> {
    if (this.stopped) throw new NodeError('stopped', 'node is stopped');
    this.clock.catchUp();
    return this.awaitProposal(this.raft.propose(data), signal);
  }

  /**
   * Propose a single-server membership change (thesis §4.1); for a member being added,
   * `cc.context` carries its peer address, which every member remembers. Resolves once
   * the change is applied on this node; rejects like propose().
   */
  async proposeConfChange(cc: ConfChange, signal?: AbortSignal): Promise<{ index: number }> {
    if (this.stopped) throw new NodeError('stopped', 'node is stopped');
    this.clock.catchUp();
    const { index } = await this.proposeMembership(cc, signal);
    return { index };
  }

  /** A membership change proposed; one the configuration refuses says why, not only "invalid". */
  private proposeMembership(cc: ConfChange, signal: AbortSignal | undefined): Promise<{ index: number; result: unknown }> {
    const r = this.raft.proposeConfChange(cc);
    if (!r.ok && r.error === 'invalid')
      throw new NodeError('invalid', confChangeError(this.raft.confState(), cc) ?? `${cc.op} of ${cc.nodeId} refused`);
    return this.awaitProposal(r, signal);
  }

  private awaitProposal(r: ProposeResult, signal: AbortSignal | undefined): Promise<{ index: number; result: unknown }> {
    if (!r.ok)
      throw new NodeError(
        r.error,
        r.error === 'not-leader'
          ? `not the leader (leader: ${r.leaderId ?? 'unknown'})`
          : r.error === 'overloaded'
            ? 'the leader holds as many uncommitted bytes as it may (--max-uncommitted-bytes): followers are behind; retry after a back-off'
            : `cannot propose: ${r.error}`,
        'not-applied',
        r.leaderId,
      );
    const done = new Promise<{ index: number; result: unknown }>((resolve, reject) => {
      const w: ProposalWaiter = { term: r.term, resolve: (result) => resolve({ index: r.index, result }), reject };
      this.proposals.set(r.index, w);
      this.obs?.proposed(r.index);
      signal?.addEventListener(
        'abort',
        () => {
          if (this.proposals.get(r.index) !== w) return;
          this.proposals.delete(r.index);
          reject(new NodeError('timeout', 'deadline passed before the write was known to be committed', 'unknown'));
        },
        { once: true },
      );
    });
    this.afterInput();
    return done;
  }

  // -------------------------------------------------------------------------
  // Membership changes, one member at a time (thesis §4.1; the core enforces one
  // uncommitted change and an entry of the leader's own term first)

  /**
   * Add a member: as a learner (it receives the log but neither votes nor counts toward
   * a commit), then, unless `learner`, promoted to voter once it has caught up with the
   * commit index, so adding it never stalls commits while it copies the log (§4.2.1).
   * Its record (addresses) travels in the change's context.
   */
  async addMember(
    id: NodeId,
    rec: { peerAddress: string; clientAddress: string; priority?: number },
    learner: boolean,
    signal?: AbortSignal,
  ): Promise<MemberView[]> {
    this.requireLeader();
    if (rec.priority !== undefined) checkPriority(rec.priority);
    const existing = this.members().find((m) => m.id === id);
    if (existing !== undefined) {
      // A retried AddMember: its first attempt added the learner, then leadership moved
      // while the learner caught up, and the caller, told "not the leader", came here.
      // The same addresses carry on from where it stopped; others are another member.
      if (existing.peerAddress !== rec.peerAddress || existing.clientAddress !== rec.clientAddress)
        throw new NodeError(
          'invalid',
          `${id} is already a member (peer ${existing.peerAddress}, client ${existing.clientAddress}); remove it first to add it at other addresses`,
        );
      if (rec.priority !== undefined && rec.priority !== existing.priority)
        throw new NodeError('invalid', `${id} is already a member, at priority ${existing.priority}: change it with members update`);
      if (!existing.learner && learner) throw new NodeError('invalid', `${id} is already a voter`);
      if (existing.learner && !learner) await this.promoteWhenCaughtUp(id, signal);
      return this.members();
    }
    // A member that joins on an empty data dir takes its membership from a snapshot
    // (its own bootstrap record says "join"): compact first, so the log it is sent
    // starts after the configuration it needs instead of at index 1.
    await this.snapshotNow();
    // The joiner's incarnation, if it already reached us; otherwise recordIncarnation adds it once it does.
    const incarnation = this.metIncarnation(id) ?? '';
    const context = encodeMemberContext({
      peerAddress: rec.peerAddress,
      clientAddress: rec.clientAddress,
      incarnation,
      ...(rec.priority !== undefined ? { priority: rec.priority } : {}),
    });
    await this.proposeMembership({ op: 'addLearner', nodeId: id, context }, signal);
    if (!learner) await this.promoteWhenCaughtUp(id, signal);
    return this.members();
  }

  /** A learner made a voter once it holds everything committed now (so it cannot slow the quorum down). */
  private async promoteWhenCaughtUp(id: NodeId, signal: AbortSignal | undefined): Promise<void> {
    const target = this.raft.status().commitIndex;
    while (!(signal?.aborted ?? false)) {
      this.requireLeader();
      const pr = this.raft.status().progress?.get(id);
      if (pr !== undefined && pr.matchIndex >= target) break;
      await sleepOn(this.time, 20);
    }
    if (signal?.aborted) throw new NodeError('timeout', `${id} was added as a learner but did not catch up before the deadline`, 'unknown');
    await this.proposeMembership({ op: 'promoteLearner', nodeId: id }, signal);
  }

  async removeMember(id: NodeId, signal?: AbortSignal): Promise<MemberView[]> {
    this.requireLeader();
    if (id === this.id) {
      // A leader that removes itself steps down once the change commits, before this node
      // can tell its caller so (the answer would be "outcome unknown"), and leaves the
      // cluster leaderless for an election timeout. So it hands leadership over first
      // (thesis §3.10) and sends the caller, change not made, to the new leader (§4.2.2).
      const next = await this.transferLeadership();
      throw new NodeError(
        'not-leader',
        next.leaderId === '' || next.leaderId === this.id
          ? `${id} leads and could not hand leadership over first; retry`
          : `${id} handed leadership to ${next.leaderId} first; ${next.leaderId} makes the change`,
        'not-applied',
        next.leaderId === '' || next.leaderId === this.id ? null : next.leaderId,
      );
    }
    await this.proposeMembership({ op: 'removeVoter', nodeId: id }, signal);
    return this.members();
  }

  async promoteMember(id: NodeId, signal?: AbortSignal): Promise<MemberView[]> {
    this.requireLeader();
    await this.proposeMembership({ op: 'promoteLearner', nodeId: id }, signal);
    return this.members();
  }

  /**
   * Change a member's priority or drained flag: an updateMember entry (no vote changes)
   * whose context names only what changes, so every replica applies the same record and
   * the flag survives restarts, snapshots and leader changes. Refused when no voter that
   * may lead would be left: with every voter drained or at priority 0 the cluster could
   * not elect anyone after the next failure.
   */
  async updateMember(id: NodeId, change: MemberUpdate, signal?: AbortSignal): Promise<MemberView[]> {
    this.requireLeader();
    if (change.priority !== undefined) checkPriority(change.priority);
    const conf = this.raft.confState();
    if (!conf.voters.includes(id) && !conf.learners.includes(id)) throw new NodeError('not-in-config', `${id} is not a member`);
    const after = (v: NodeId): MemberRecord => ({
      peerAddress: '',
      clientAddress: '',
      incarnation: '',
      ...this.registry.get(v),
      ...(v === id ? change : {}),
    });
    if (!conf.voters.some((v) => leadershipRefusal(after(v)) === null)) {
      const why = conf.voters.map((v) => `${v}: ${leadershipRefusal(after(v)) === 'drained' ? 'drained' : 'priority 0'}`).join(', ');
      throw new NodeError(
        'invalid',
        `refusing to leave no voter that may lead (${why}); undrain or raise the priority of another voter first`,
      );
    }
    const context = encodeMemberContext({ peerAddress: '', clientAddress: '', incarnation: '', ...change });
    await this.proposeMembership({ op: 'updateMember', nodeId: id, context }, signal);
    this.log.info({ node: this.id, member: id, ...change }, 'member record updated');
    return this.members();
  }

  private requireLeader(): void {
    if (this.stopped) throw new NodeError('stopped', 'node is stopped');
    this.clock.catchUp();
    const s = this.raft.softState();
    if (s.role !== 'leader')
      throw new NodeError('not-leader', `not the leader (leader: ${s.leaderId ?? 'unknown'})`, 'not-applied', s.leaderId);
  }

  /**
   * The snapshot as of `applied` (the state machine must be exactly there, i.e. between
   * Readies, when this is called), written to a sink from storage a piece at a time: the
   * runtime section (the member records travel with the state machine's snapshot, so a
   * member that installs it learns them as one replaying the log would), then the state
   * machine's pieces, checksummed as they go. One step per piece; the caller yields
   * between steps or not. Never the whole snapshot in one buffer unless the state
   * machine makes one (a state machine without snapshotPieces).
   */
  private snapshotSteps(
    applied: number,
    opts: { readonly frame: boolean; readonly also?: (piece: Uint8Array) => void } = { frame: true },
  ): Iterator<void, { sink: SnapshotSink; checksum: number }> {
    // Both taken now, in this turn: later applies must not reach them.
    const header = opts.frame ? frameHeader(this.registry.encode()) : new Uint8Array(0);
    const also = opts.also;
    const sm = this.sm;
    const call = <T>(fn: () => T): T => callStateMachine('snapshot', applied, fn);
    type Source =
      { kind: 'pieces'; it: Iterator<Uint8Array, void> } | { kind: 'slices'; it: Iterator<void, Uint8Array> } | { kind: 'whole' };
    const source: Source =
      sm.snapshotPieces !== undefined
        ? { kind: 'pieces', it: call(() => sm.snapshotPieces!()) }
        : sm.snapshotInSlices !== undefined
          ? { kind: 'slices', it: call(() => sm.snapshotInSlices!()) }
          : { kind: 'whole' };
    const sink = this.storage.openSnapshotSink();
    let checksum = 0;
    function* write(bytes: Uint8Array): Generator<void, void, void> {
      for (let off = 0; off < bytes.length; off += SNAPSHOT_PIECE_BYTES) {
        const piece = bytes.subarray(off, Math.min(off + SNAPSHOT_PIECE_BYTES, bytes.length));
        sink.append(piece);
        checksum = crc32(piece, checksum);
        also?.(piece);
        if (off + SNAPSHOT_PIECE_BYTES < bytes.length) yield;
      }
    }
    function* steps(): Generator<void, { sink: SnapshotSink; checksum: number }, void> {
      // Dropped on a throw, and on return() (the node stopped halfway).
      let written = false;
      try {
        yield* write(header);
        switch (source.kind) {
          case 'pieces':
            for (let r = call(() => source.it.next()); r.done !== true; r = call(() => source.it.next())) {
              yield* write(r.value);
              yield;
            }
            break;
          case 'slices': {
            let r = call(() => source.it.next());
            for (; r.done !== true; r = call(() => source.it.next())) yield;
            yield* write(r.value);
            break;
          }
          case 'whole':
            yield* write(call(() => sm.snapshot()));
            break;
          default: {
            const never: never = source;
            return never;
          }
        }
        written = true;
      } finally {
        if (!written) sink.discard();
      }
      return { sink, checksum };
    }
    return steps();
  }

  /**
   * Compacts the core's log at a snapshot written by snapshotSteps, unless one installed
   * from the leader meanwhile covers its index (the spool is then dropped). Returns the
   * snapshot for storage, or null.
   */
  private compactWith(
    index: number,
    made: { sink: SnapshotSink; checksum: number },
    tail: { entries: number; bytes: number },
  ): Snapshot | null {
    if (index <= this.raft.snapshotIndex()) {
      made.sink.discard();
      return null;
    }
    return this.raft.compact(index, made.sink.finish(made.checksum), tail);
  }

  /** Wait (a bounded time) until no Ready batch is being handled: the state machine is then exactly at the core's applied index. */
  private async betweenBatches(): Promise<boolean> {
    for (let i = 0; this.processing && i < 500; i++) await sleepOn(this.time, 2);
    return !this.processing && !this.stopped;
  }

  /**
   * A consistent copy of the state machine for a backup (`leaderd snapshot save`): taken
   * after a linearizable read barrier, so it holds every write acknowledged before the
   * call, and between Ready batches, so it is exactly the state at the index it names.
   */
  async captureSnapshot(signal?: AbortSignal): Promise<CapturedSnapshot> {
    await this.readBarrier(signal);
    if (!(await this.betweenBatches()))
      throw new NodeError(this.stopped ? 'stopped' : 'unavailable', 'the node was too busy applying writes to take a snapshot: try again');
    const index = this.raft.status().appliedIndex;
    const term = this.raft.termAt(index);
    if (term === undefined) throw new NodeError('unavailable', `the log no longer holds the term of index ${index}: try again`);
    // Written to a spool file in slices, the SHA-256 the backup's header carries computed on
    // the way: a backup of a gigabyte is neither built in memory nor a stall of this node.
    const sha = createHash('sha256');
    const made = await this.runInSlices(this.snapshotSteps(index, { frame: false, also: (p) => sha.update(p) }));
    if (made === null) throw new NodeError('stopped', 'node is stopped');
    const data = made.value.sink.finish(made.value.checksum);
    return { index, term, data, sha256: sha.digest(), release: () => data.release?.() };
  }

  /** Snapshot and compact now, between Ready batches (the state machine is then exactly at the core's applied index). */
  private async snapshotNow(): Promise<void> {
    if (!(await this.betweenBatches())) return;
    const applied = this.raft.status().appliedIndex;
    if (applied <= this.raft.snapshotIndex()) return;
    // Written in slices like any other: a leader that stalled here for the whole write (a
    // second for a few hundred MiB) would lose its lease, and the change it compacts for.
    const made = await this.runInSlices(this.snapshotSteps(applied));
    if (made === null) return;
    if (!(await this.betweenBatches())) {
      made.value.sink.discard();
      return;
    }
    // No tail: whoever asked for this snapshot needs followers to be sent it.
    const snapshot = this.compactWith(applied, made.value, { entries: 0, bytes: 0 });
    if (snapshot) {
      this.lastSnapshotIndex = applied;
      this.bytesSinceSnapshot = 0;
      await this.storage.compact(snapshot, this.raft.firstIndex() - 1);
    }
  }

  /** A linearizable read barrier (ReadIndex or lease): resolves once this node has applied everything committed before the call. */
  async readBarrier(signal?: AbortSignal): Promise<void> {
    this.clock.catchUp();
    const id = readRequestId(this.id, this.bootId, ++this.readSeq);
    const index = await new Promise<number>((resolve) => {
      this.readWaiters.set(id, resolve);
      this.raft.readIndex(id);
      this.afterInput();
    });
    if (index < 0) throw new NodeError('unavailable', 'cannot confirm a linearizable read: no leader or no quorum');
    await this.waitApplied(index, signal);
  }

  /** Hand leadership to `target` (or the most up-to-date follower). Resolves when leadership moved or the attempt ended. */
  async transferLeadership(target?: NodeId, timeoutMs = 4 * this.opts.electionTimeoutMs): Promise<LeaderView> {
    this.clock.catchUp();
    const s = this.raft.basicStatus(this.basic);
    if (s.role !== 'leader')
      throw new NodeError('not-leader', `not the leader (leader: ${s.leaderId ?? 'unknown'})`, 'not-applied', s.leaderId);
    const to = target ?? this.bestTransferTarget();
    if (to === null) throw new NodeError('invalid', 'no other voter that may lead to transfer leadership to');
    const refusal = to === this.id ? null : leadershipRefusal(this.registry.get(to));
    // The target would ignore the TimeoutNow, and this leader's lease would be void for
    // the rest of the term for nothing: say why instead.
    if (refusal !== null)
      throw new NodeError('invalid', `${to} may not lead (${refusal === 'drained' ? 'drained: leaderd undrain ' + to : 'priority 0'})`);
    const r = this.raft.transferLeadership(to);
    if (!r.ok) throw new NodeError(r.error, `cannot transfer leadership to ${to}: ${r.error}`);
    this.afterInput();
    return (await this.whenLeader((l) => l.leaderId !== '' && l.leaderId !== this.id, timeoutMs)) ?? this.leader();
  }

  async stop(opts: { transfer?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.abdicate();
    if (opts.transfer !== false && !this.fatal) {
      if (this.raft.basicStatus(this.basic).role === 'leader' && this.bestTransferTarget() !== null) {
        try {
          const l = await this.transferLeadership(undefined, 2 * this.opts.electionTimeoutMs);
          if (l.leaderId !== '' && l.leaderId !== this.id)
            this.log.info({ node: this.id, term: l.term, leader: l.leaderId }, 'leadership handed over before shutdown');
          else this.log.warn({ node: this.id, term: l.term }, 'leadership transfer before shutdown did not complete');
        } catch (err) {
          this.log.warn({ node: this.id, err: (err as Error).message }, 'leadership transfer before shutdown failed');
        }
      }
    }
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    for (const w of this.readWaiters.values()) w(-1);
    this.readWaiters.clear();
    for (const w of this.proposals.values())
      w.reject(new NodeError('stopped', 'node stopped before the write was known to be committed', 'unknown'));
    this.proposals.clear();
    await this.transport.close();
    await this.drained.catch(() => {});
    await this.storage.close().catch(() => {});
    this.log.info({ node: this.id }, 'node stopped');
  }

  // -------------------------------------------------------------------------
  // The loop

  private schedule(): void {
    if (this.stopped) return;
    this.cancelTimer = this.time.after(Math.max(1, this.clock.msUntilNextTick()), () => {
      this.clock.catchUp();
      this.updateElectable();
      this.afterInput();
      this.maybeFailback();
      this.schedule();
    });
  }

  private afterInput(): void {
    this.observe();
    if (this.stopped) return;
    this.recordIncarnation();
    if (this.processing) {
      this.again = true;
      return;
    }
    if (!this.raft.hasReady()) return;
    this.processing = true;
    // Batching: proposals and peer messages that arrive in the same turn of the event
    // loop share one Ready (one append per follower, one write), rather than one each.
    const afterIo = this.time.afterIo;
    const drained = afterIo === undefined ? this.drain() : new Promise<void>((r) => afterIo(r)).then(() => this.drain());
    this.drained = drained.finally(() => {
      this.processing = false;
    });
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        while (!this.stopped && this.raft.hasReady()) {
          // Bounded: a disk slower than the proposals makes the loop wait here, and group
          // commit merges what piles up meanwhile into the next write.
          if (this.writesInFlight >= MAX_WRITES_IN_FLIGHT) {
            await this.persistChain;
            continue;
          }
          const rd = this.raft.ready();
          const { write } = await this.handleReady(rd);
          this.raft.advanceAsync(rd);
          this.whenDurable(rd, write);
          this.observe();
          // Only after advanceAsync(): the core counts these entries as applied (and handed
          // to storage, which compacts only after writing them) from then on, and may
          // compact up to them.
          const last = rd.committedEntries[rd.committedEntries.length - 1];
          if (last && !this.stopped) this.maybeSnapshot(last.index);
          this.takeMadeSnapshot();
        }
      } while (this.again && !this.stopped);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Starts `rd`'s write, sends what need not wait for it, applies; returns the write (null when there is nothing to write). */
  private async handleReady(rd: Ready): Promise<{ write: Promise<void> | null }> {
    this.obs?.readyStarted(rd);
    const write = rd.hardState || rd.entries.length > 0 || rd.snapshot ? this.startWrite(rd) : null;
    // Appends and heartbeats leave while our own write is in flight (thesis §10.2.1): a
    // heartbeat never waits behind an fsync, and followers write in parallel with us.
    this.sendAll(rd.messages);
    if (rd.snapshot) {
      const snap = rd.snapshot;
      await this.restoreSnapshot(snap.data, snap.meta.index);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.bytesSinceSnapshot = 0;
    }
    if (rd.snapshot) {
      // Entries this node proposed that the snapshot covers: their fate is in the
      // snapshot, not known to us.
      for (const [index, w] of this.proposals) {
        if (index <= rd.snapshot.meta.index) {
          this.proposals.delete(index);
          w.reject(new NodeError('superseded', 'a snapshot from the leader replaced the log before the write applied here', 'unknown'));
        }
      }
    }
    let last = 0;
    const sm = this.sm;
    for (const e of rd.committedEntries) {
      this.bytesSinceSnapshot += e.data.length;
      let result: unknown = null;
      if (e.type === 'normal') {
        const before = sm.sharedEntryBytes?.();
        result = callStateMachine('apply', e.index, () => sm.apply(e));
        // What the log holds that the state does not: a 1 MiB value the store keeps as a
        // view of its entry costs the log nothing, and counted in full, 1,000 of them
        // took 16 snapshots of up to 1 GiB of state (each written whole to a file) while
        // the log held no byte of its own. A value that later leaves the state (replaced,
        // deleted) counts then: its entry may still be in the log, alone with its bytes.
        if (before !== undefined) this.bytesSinceSnapshot -= sm.sharedEntryBytes!() - before;
      } else if (e.type === 'conf') await this.applyConfChange(e);
      last = e.index;
      const w = this.proposals.get(e.index);
      if (w) {
        this.proposals.delete(e.index);
        if (w.term === e.term) w.resolve(result);
        // Another leader's entry took this index: ours can never commit (Log Matching).
        else
          w.reject(
            new NodeError(
              'not-leader',
              `leadership changed (term ${e.term}) before the write committed; it was not applied`,
              'not-applied',
            ),
          );
      }
    }
    for (const r of rd.readStates) {
      const w = this.readWaiters.get(r.requestId);
      if (w) {
        this.readWaiters.delete(r.requestId);
        w(r.index);
      }
    }
    this.obs?.applied(rd);
    for (const ev of rd.events) {
      this.obs?.event(ev);
      this.logEvent(ev);
    }
    for (const e of rd.entries) {
      if (e.type !== 'conf') continue;
      const cc = decodeConfChange(e.data);
      const rec = decodeMemberContext(cc.context);
      if (rec !== null && rec.peerAddress !== '') this.pendingAddresses.set(cc.nodeId, rec.peerAddress);
    }
    if (rd.entries.some((e) => e.type === 'conf') || rd.snapshot) this.updatePeers();
    if (rd.snapshot) this.appliedTo = Math.max(this.appliedTo, rd.snapshot.meta.index);
    if (last > 0) this.appliedTo = Math.max(this.appliedTo, last);
    this.wakeAppliedWaiters();
    // Wrapped: an async function returning the promise itself would wait for it.
    return { write };
  }

  private startWrite(rd: Ready): Promise<void> {
    const t0 = this.time.now();
    const p = this.storage.persist({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }, rd.mustSync);
    const batch = this.lastBatch;
    if (batch !== null && batch.promise === p) {
      batch.entries += rd.entries.length;
      batch.synced ||= rd.mustSync;
    } else {
      const b = { promise: p, entries: rd.entries.length, synced: rd.mustSync };
      this.lastBatch = b;
      p.then(
        () => this.obs?.batchWritten(b.entries, b.synced, (this.time.now() - t0) / 1000),
        () => {},
      );
    }
    const write = p.then(() => this.obs?.persisted(rd, (this.time.now() - t0) / 1000));
    // Observed by whenDurable; this keeps a rejection from going unhandled meanwhile.
    write.catch(() => {});
    return write;
  }

  private sendAll(msgs: readonly Message[]): void {
    for (const m of msgs) {
      this.obs?.sent(m);
      this.transport.send(m);
    }
  }

  /**
   * Once `rd`'s write and every earlier one are durable: send what promises them
   * (acknowledgements, vote grants) and tell the core, which may then commit as leader.
   * Writes complete in call order; the chain keeps Readies without a write in order too.
   */
  private whenDurable(rd: Ready, write: Promise<void> | null): void {
    this.writesInFlight++;
    const prev = this.persistChain;
    this.persistChain = (write === null ? prev : Promise.all([prev, write])).then(
      () => {
        this.writesInFlight--;
        if (this.stopped) return;
        this.sendAll(rd.messagesAfterPersist);
        try {
          this.raft.persisted(rd);
        } catch (err) {
          this.fail(err as Error);
          return;
        }
        this.afterInput();
      },
      (err: Error) => this.fail(err),
    );
  }

  private maybeSnapshot(applied: number): void {
    // By bytes as well as entries: 10,000 entries of 1 MiB values written over one key
    // would otherwise keep 10 GiB of log in memory and on disk before the first snapshot.
    // The log since the last snapshot is held in memory, so the byte trigger stays fixed
    // however large the state: grown to half the last snapshot, it let a gigabyte of state
    // hold another half gigabyte of log. Only the bytes the log holds alone count (values
    // the state keeps as views of their entries do not, until they leave the state), so
    // the log holds at most this much memory of its own, and on disk the state plus this
    // much. The price is writing: with 1 GiB of state, each 32 MiB of such writes costs a
    // 1 GiB snapshot, written to a file a piece at a time off the loop. 32 MiB and a 16 MiB
    // tail (64 and 32 while values counted): the log, memory on every node, holds at most
    // 48 MiB of its own instead of 96; 200 x 1 MiB values and 1,000,000 small keys took 2
    // snapshots instead of 4 and left 21 MiB of log instead of 45.
    const entries = this.opts.snapshotEntries ?? 10_000;
    const bytes = this.opts.snapshotBytes ?? 32 << 20;
    if (applied - this.lastSnapshotIndex < entries && this.bytesSinceSnapshot < bytes) return;
    if (this.takingSnapshot) return;
    const t0 = this.time.now();
    const tail = {
      entries: this.opts.snapshotTail?.entries ?? Math.min(5000, Math.floor(entries / 2)),
      bytes: this.opts.snapshotTail?.bytes ?? 16 << 20,
    };
    this.bytesSinceSnapshot = 0;
    this.lastSnapshotIndex = applied;
    if (applied <= this.raft.snapshotIndex()) return;
    const afterIo = this.time.afterIo;
    // The state as of `applied` (the state machine is exactly there between Readies).
    const steps = this.snapshotSteps(applied);
    if (afterIo === undefined) {
      // A clock without turns (the simulator): all at once, compacted at this boundary.
      let r = steps.next();
      while (r.done !== true) r = steps.next();
      const snapshot = this.compactWith(applied, r.value, tail);
      if (snapshot) this.storeSnapshot(snapshot, t0);
      return;
    }
    // Written out a piece at a time while this loop goes on; the log is compacted at the
    // first Ready boundary after the last piece (takeMadeSnapshot).
    this.takingSnapshot = true;
    void (async () => {
      const made = await this.runInSlices(steps);
      if (made === null) return;
      this.madeSnapshot = { index: applied, made: made.value, tail, t0 };
      if (!this.processing) this.takeMadeSnapshot();
    })()
      .catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))))
      .finally(() => (this.takingSnapshot = false));
  }

  /** Between Readies: compact the log at the snapshot made in slices, if one is ready. */
  private takeMadeSnapshot(): void {
    const made = this.madeSnapshot;
    if (made === null || this.stopped) return;
    this.madeSnapshot = null;
    // Null when a snapshot installed from the leader meanwhile already covers its index.
    const snapshot = this.compactWith(made.index, made.made, made.tail);
    if (snapshot) this.storeSnapshot(snapshot, made.t0);
  }

  private storeSnapshot(snapshot: Snapshot, t0: number): void {
    // Not awaited: storage applies its writes in call order, so later appends still land
    // after this compaction, but the Ready loop goes on meanwhile. Writing a snapshot of a
    // gigabyte takes seconds, and the heartbeats of a leader that waited for it would stop
    // for as long: its followers would elect another leader.
    const bytes = snapshot.data.byteLength;
    this.storage.compact(snapshot, this.raft.firstIndex() - 1).then(
      () => this.obs?.snapshotTaken(bytes, (this.time.now() - t0) / 1000),
      (err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))),
    );
  }

  // -------------------------------------------------------------------------
  // Applied-index waiters

  private appliedTo = 0;
  private appliedWaiters: { index: number; resolve: () => void }[] = [];

  private waitApplied(index: number, signal?: AbortSignal): Promise<void> {
    // appliedTo moves as soon as the state machine has applied (before the core's own
    // applied index, which waits for advance()).
    if (Math.max(this.appliedTo, this.raft.basicStatus(this.basic).appliedIndex) >= index) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.appliedWaiters = this.appliedWaiters.filter((x) => x !== w);
        reject(signal?.reason ?? new Error('aborted'));
      };
      const w = {
        index,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.appliedWaiters.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private wakeAppliedWaiters(): void {
    if (this.appliedWaiters.length === 0) return;
    const still = [];
    for (const w of this.appliedWaiters) {
      if (w.index <= this.appliedTo) w.resolve();
      else still.push(w);
    }
    this.appliedWaiters = still;
  }

  // -------------------------------------------------------------------------
  // Observation and logging

  /**
   * Listen to this node's own lease: true when it starts leading with a valid lease,
   * false the moment that lease is no longer valid (checked after every input and tick,
   * so after a stall it fires before anything else is handled). Returns an unsubscribe.
   */
  onLeaseChange(listener: (valid: boolean) => void): () => void {
    // The lease is only tracked while someone listens: start from what it is now.
    if (this.leaseListeners.size === 0) this.lastLeaseValid = !this.abdicated && this.raft.leaseValid();
    this.leaseListeners.add(listener);
    return () => this.leaseListeners.delete(listener);
  }

  /**
   * How long ago (ms) the last lease this node held ran out, by its own clock, or null
   * if it never held one while a lease listener was registered. Read in a lease
   * listener's `false` call, it says how much of the drift margin is left.
   */
  leaseEndedAgoMs(): number | null {
    return this.leaseEndedAt === null ? null : Math.max(0, this.time.now() - this.leaseEndedAt);
  }

  private observe(): void {
    const soft = this.raft.softState();
    if (this.leaseListeners.size > 0 && (soft.role === 'leader' || this.lastLeaseValid)) {
      const valid = !this.abdicated && this.raft.leaseValid();
      if (valid) this.leaseEndTick = this.raft.leaseExpiresAt();
      if (valid !== this.lastLeaseValid) {
        // After a stall the loss is seen late: it happened at the tick the lease ran
        // out, which the last input before the stall already knew.
        if (!valid) this.leaseEndedAt = Math.min(this.time.now(), this.clock.dueAt(this.leaseEndTick ?? Infinity));
        this.lastLeaseValid = valid;
        for (const l of this.leaseListeners) l(valid);
      }
    }
    const prev = this.lastSoft;
    if (soft.role === prev.role && soft.leaderId === prev.leaderId && soft.term === prev.term && soft.learner === prev.learner) return;
    this.lastSoft = soft;
    this.obs?.softStateChanged(prev, soft);
    if (prev.role === 'leader' && soft.role !== 'leader' && this.proposals.size > 0) {
      // Our entries may still commit under the next leader, or be replaced: unknown.
      for (const w of this.proposals.values())
        w.reject(new NodeError('not-leader', 'leadership was lost before the write was known to be committed', 'unknown', soft.leaderId));
      this.proposals.clear();
    }
    if (soft.role === 'leader' && prev.role !== 'leader') this.leaderSince = this.time.now();
    if (soft.role !== 'leader' && prev.role === 'leader') {
      this.failback.reset();
      this.lastDecision = '';
    }
    const fields = { node: this.id, term: soft.term };
    if (soft.term !== prev.term) this.log.info({ ...fields, from: prev.term }, 'term changed');
    if (soft.role !== prev.role) this.log.info({ ...fields, role: soft.role, was: prev.role }, 'role changed');
    if (soft.leaderId !== prev.leaderId || soft.term !== prev.term) {
      this.log.info({ ...fields, leader: soft.leaderId ?? '', was: prev.leaderId ?? '' }, soft.leaderId ? 'leader known' : 'no leader');
      const view = this.leaderView(soft);
      for (const l of this.leaderListeners) l(view);
    }
  }

  private logEvent(ev: RaftEvent): void {
    switch (ev.kind) {
      case 'vote':
        this.log.info(
          { node: this.id, term: ev.term, candidate: ev.candidate, preVote: ev.preVote, reason: ev.reason },
          ev.granted ? (ev.preVote ? 'pre-vote granted' : 'vote granted') : ev.preVote ? 'pre-vote refused' : 'vote refused',
        );
        break;
      case 'step-down':
        this.log.warn({ node: this.id, term: ev.term, reason: ev.reason }, 'leader stepped down');
        break;
      case 'campaign':
        this.log.info(
          { node: this.id, term: ev.term, preVote: ev.preVote, transfer: ev.transfer },
          ev.preVote ? 'pre-campaign started' : 'campaign started',
        );
        break;
      case 'leader-gone':
        this.log.info(
          { node: this.id, term: ev.term, leader: ev.leader, rank: ev.rank },
          'leader process proven gone (clean close, redial refused); its lease is over',
        );
        break;
      case 'transfer':
        this.log.info({ node: this.id, term: ev.term, to: ev.to, outcome: ev.outcome }, 'leadership transfer');
        break;
      case 'ignored':
        this.log.debug({ node: this.id, term: ev.term, from: ev.from, type: ev.type, reason: ev.reason }, 'peer message ignored');
        break;
      case 'snapshot-refused':
        this.log.warn(
          { node: this.id, term: ev.term, from: ev.from, index: ev.index, reason: ev.reason },
          'snapshot transfer refused; the leader starts it again',
        );
        break;
    }
  }

  private leaderView(soft: SoftState): LeaderView {
    const id = soft.leaderId ?? '';
    return { leaderId: id, leaderAddress: id === '' ? '' : this.clientAddressOf(id), term: soft.term };
  }

  private clientAddressOf(id: NodeId): string {
    if (id === this.id) return this.opts.advertiseClient;
    const hello = this.transport.peerClientAddress(id);
    const recorded = this.registry.get(id)?.clientAddress ?? '';
    // GetLeader and forwarding hand this address to clients. With peer TLS the Hello that
    // named it came over a stream whose certificate is bound to member `id`, so it is the
    // member's own, current word. Without TLS anyone who reaches the peer port can send a
    // Hello as `id` and steer clients to a host of theirs: the replicated record (set by
    // AddMember) then wins, and the Hello only fills in members the records say nothing of.
    if (this.transport.authenticatesPeers?.() === true || recorded === '') return hello ?? recorded;
    if (hello !== undefined && hello !== recorded && this.warnedClientAddress.get(id) !== hello) {
      this.warnedClientAddress.set(id, hello);
      this.log.warn(
        { member: id, announced: hello, recorded },
        'a plaintext peer Hello names a client address other than the member record; handing out the recorded one',
      );
    }
    return recorded;
  }

  /** Peer addresses: from --peers, and for members added later from their conf change context. */
  private updatePeers(): void {
    const conf = this.raft.confState();
    // Every node of --peers stays a peer, member or not: the transport refuses everyone
    // else, and the configuration here is the latest in the log, committed or not
    // (thesis §4.1). A node whose log holds an uncommitted removal of X (or that lags
    // behind X's re-addition) would otherwise refuse X for good, even when X leads and is
    // the only one who can replace that entry or send the missing ones; the simulator
    // found both (a removal by a deposed leader, a re-added member elected leader).
    const peers = new Map<NodeId, string>(this.opts.peers);
    for (const id of [...conf.voters, ...conf.learners]) {
      const addr = this.peerAddressOf(id);
      if (addr) peers.set(id, addr);
    }
    peers.delete(this.id);
    // Not (or not yet) a member, as after --join: the bootstrap list is who may reach us
    // (the leader that adds this node) until a snapshot brings the configuration.
    if (!conf.voters.includes(this.id) && !conf.learners.includes(this.id)) {
      for (const [id, addr] of this.bootstrap.members) if (id !== this.id && !peers.has(id)) peers.set(id, addr);
    }
    this.transport.setPeers(peers);
  }

  /** --peers supplies addresses; otherwise the member's record, or a change not yet applied. */
  private peerAddressOf(id: NodeId): string | undefined {
    const fromFlags = this.opts.peers.get(id);
    if (fromFlags !== undefined) return fromFlags;
    const rec = this.registry.get(id)?.peerAddress;
    if (rec) return rec;
    // Stores from before member records kept a run-time member's address in meta.
    const legacy = this.storage.getMeta(`peer/${id}`);
    return legacy ? fromUtf8.decode(legacy) : this.pendingAddresses.get(id);
  }

  /**
   * A snapshot from the leader, installed while the node runs: read a piece at a time,
   * giving the event loop a turn every SLICE_MS, so peer messages keep being stepped (the
   * leader stays heard, no election starts here) and heartbeats keep being answered while
   * a large state is decoded.
   */
  private async restoreSnapshot(data: SnapshotData, index: number): Promise<void> {
    await this.runInSlices(this.restoreSteps(data, index));
  }

  /**
   * Runs `steps` to the end, giving the event loop a turn every SLICE_MS (none on a clock
   * without turns: the simulator). Null when the node stopped meanwhile: the steps are
   * then abandoned (return()), which drops what they wrote.
   */
  private async runInSlices<T>(steps: Iterator<void, T>): Promise<{ value: T } | null> {
    const afterIo = this.time.afterIo;
    let sliceStart = this.time.now();
    let r = steps.next();
    while (r.done !== true) {
      if (afterIo !== undefined && this.time.now() - sliceStart >= SLICE_MS) {
        await new Promise<void>((resolve) => afterIo(resolve));
        if (this.stopped) {
          steps.return?.();
          return null;
        }
        sliceStart = this.time.now();
      }
      r = steps.next();
    }
    return { value: r.value };
  }

  /**
   * Restores the state machine and the member records from `data`, read
   * SNAPSHOT_PIECE_BYTES at a time into restoreFromPieces (or whole, for a state machine
   * without it); one step per piece or slice. Nothing changes before the last step.
   */
  private *restoreSteps(data: SnapshotData, index: number): Generator<void, void, void> {
    const call = <T>(fn: () => T): T => callStateMachine('restore', index, fn);
    const { runtime, userStart } = call(() => readFrame(data));
    const end = data.byteLength;
    const sm = this.sm;
    if (sm.restoreFromPieces !== undefined) {
      const restore = call(() => sm.restoreFromPieces!());
      for (let off = userStart; off < end; off += SNAPSHOT_PIECE_BYTES) {
        const piece = data.subarray(off, Math.min(off + SNAPSHOT_PIECE_BYTES, end));
        call(() => restore.push(piece));
        yield;
      }
      const swap = call(() => restore.finish());
      while (call(() => swap.next()).done !== true) yield;
    } else if (sm.restoreInSlices !== undefined) {
      const it = call(() => sm.restoreInSlices!(data.subarray(userStart, end)));
      while (call(() => it.next()).done !== true) yield;
    } else {
      call(() => sm.restore(data.subarray(userStart, end)));
    }
    if (runtime !== null) call(() => this.registry.restore(runtime));
  }

  /**
   * A committed membership change: update the records. A member added or removed starts
   * over as to its incarnation (it may come back on an empty data dir, re-added): the add
   * records it in its context if the leader knew it, or the leader records it later
   * (recordIncarnation); until then the next handshake teaches it.
   */
  private async applyConfChange(e: Entry): Promise<void> {
    const cc = decodeConfChange(e.data);
    this.registry.apply(cc);
    this.pendingAddresses.delete(cc.nodeId);
    // Not for the bootstrap entries (term 1): replayed at every restart, they would make
    // this node forget, each time, the incarnations it met before they were recorded.
    const startsOver = cc.op === 'removeVoter' || ((cc.op === 'addVoter' || cc.op === 'addLearner') && e.term > 1);
    if (startsOver && cc.nodeId !== this.id) {
      this.learnedIncarnations.delete(cc.nodeId);
      this.incarnationRefusals.delete(cc.nodeId);
      if (this.storage.getMeta(PEER_INCARNATION_META + cc.nodeId)?.length)
        await this.storage.putMeta(PEER_INCARNATION_META + cc.nodeId, new Uint8Array(0));
    }
    if (cc.nodeId === this.id && this.registry.get(this.id)?.incarnation === this.incarnation) this.liftQuarantine();
    this.updatePeers();
    if (cc.nodeId === this.id) this.updateElectable();
  }

  /** Why this member may not lead, from its record (or, at start-up, the latest in its log). */
  private selfRefusal(): 'priority-0' | 'drained' | null {
    const applied = leadershipRefusal(this.registry.get(this.id));
    const st = this.startupSelf;
    if (st === null) return applied;
    if (this.appliedTo >= st.upTo) {
      this.startupSelf = null;
      return applied;
    }
    return applied ?? leadershipRefusal(st.record);
  }

  /**
   * Tell the core whether this member may stand for election. Priority 0 is a hard rule:
   * a disaster-recovery replica is never a candidate, even when no other member can lead
   * (it still votes, so it helps elect anyone else). A drain is a preference: after
   * DRAINED_LAST_RESORT_TIMEOUTS election timeouts without a leader, a drained member
   * stands again, and as leader hands over as soon as a member that may lead is healthy.
   */
  private updateElectable(): void {
    const refusal = this.selfRefusal();
    const now = this.time.now();
    if (this.lastSoft.role === 'leader') this.lastLeaderContact = now;
    const leaderlessMs = now - this.lastLeaderContact;
    if (leaderlessMs < this.opts.electionTimeoutMs) this.warnedLeaderless = false;
    const lastResort = refusal === 'drained' && leaderlessMs >= DRAINED_LAST_RESORT_TIMEOUTS * this.opts.electionTimeoutMs;
    const electable = refusal === null || lastResort;
    if (refusal === 'priority-0' && !this.warnedLeaderless && leaderlessMs >= DRAINED_LAST_RESORT_TIMEOUTS * this.opts.electionTimeoutMs) {
      this.warnedLeaderless = true;
      this.log.warn(
        { node: this.id, leaderlessMs },
        'no leader, and this member has priority 0 (never leader): not standing for election; a member of priority 1 or more must be up',
      );
    }
    if (electable === this.electable) return;
    this.electable = electable;
    this.raft.setElectable(electable);
    const fields = { node: this.id, reason: refusal ?? 'may-lead' };
    if (lastResort)
      this.log.warn(
        { ...fields, leaderlessMs },
        'drained, but no leader for several election timeouts: standing for election (availability over the drain)',
      );
    else if (electable) this.log.info(fields, 'this member may lead again: standing for election when needed');
    else this.log.info(fields, refusal === 'drained' ? 'drained: not standing for election' : 'priority 0: never standing for election');
  }

  /**
   * The leader's periodic look at who should lead (failback.ts), once per heartbeat
   * interval: hands leadership to a member of higher priority that has been healthy for
   * the failback delay, or away from this leader if it is drained or at priority 0.
   */
  private maybeFailback(): void {
    if (this.failbackTransfer || this.abdicated || this.stopped || this.lastSoft.role !== 'leader') return;
    const now = this.time.now();
    if (now - this.lastFailbackCheck < this.opts.heartbeatMs) return;
    this.lastFailbackCheck = now;
    if (!this.isLeaderCaughtUp()) return;
    const st = this.raft.status();
    const voters: LeadershipCandidate[] = [];
    for (const id of st.conf.voters) {
      const pr = st.progress?.get(id);
      if (id === this.id || pr === undefined) continue;
      const rec = this.registry.get(id);
      voters.push({
        id,
        priority: priorityOf(rec),
        refusal: leadershipRefusal(rec),
        active: pr.recentActive,
        caughtUp: pr.state === 'replicate' && st.lastLogIndex - pr.matchIndex <= CAUGHT_UP_ENTRIES,
        matchIndex: pr.matchIndex,
      });
    }
    const self = { id: this.id, priority: priorityOf(this.registry.get(this.id)), refusal: this.selfRefusal() };
    const decision = this.failback.decide({ nowMs: now, leaderSinceMs: this.leaderSince, self, voters });
    this.logDecision(decision, self.priority, voters);
    if (decision.kind !== 'transfer') return;
    this.failbackTransfer = true;
    const to = decision.to;
    this.transferLeadership(to)
      .then((l) => {
        if (l.leaderId === to) this.log.info({ node: this.id, to, term: l.term, reason: decision.reason }, 'leadership handed over');
        else {
          this.failback.transferFailed(to, this.time.now());
          this.log.warn(
            { node: this.id, to, leader: l.leaderId, reason: decision.reason },
            'leadership transfer did not complete: will retry',
          );
        }
      })
      .catch((err: Error) => {
        this.failback.transferFailed(to, this.time.now());
        this.log.warn({ node: this.id, to, err: err.message, reason: decision.reason }, 'leadership transfer failed: will retry');
      })
      .finally(() => {
        this.failbackTransfer = false;
      });
  }

  private logDecision(d: FailbackDecision, selfPriority: number, voters: readonly LeadershipCandidate[]): void {
    const key = d.kind === 'stay' ? `${d.kind}/${d.reason}` : `${d.kind}/${d.reason}/${d.to}`;
    if (key === this.lastDecision) return;
    const first = this.lastDecision === '';
    this.lastDecision = key;
    const fields = { node: this.id, decision: d.kind, reason: d.reason, priority: selfPriority };
    switch (d.kind) {
      case 'stay':
        // The steady state of a cluster without priorities is not news.
        if (first && (d.reason === 'highest-priority' || d.reason === 'failback-disabled')) return;
        this.log.info(
          fields,
          d.reason === 'no-eligible-member'
            ? 'this leader may not lead (drained or priority 0), but no other voter that may lead is healthy and caught up: still leading'
            : d.reason === 'retry-wait'
              ? 'failback: waiting before trying the transfer again'
              : d.reason === 'failback-disabled'
                ? 'a member of higher priority is healthy, but failback is off (--failback-delay-ms 0)'
                : 'this leader has the highest priority among the healthy members',
        );
        return;
      case 'wait': {
        const to = voters.find((v) => v.id === d.to);
        this.log.info(
          { ...fields, to: d.to, toPriority: to?.priority, atMs: d.atMs },
          d.reason === 'anti-flap'
            ? `failback to ${d.to} held back: this leader was elected less than the anti-flap window ago`
            : `failback to ${d.to} once it has been healthy and caught up for the failback delay`,
        );
        return;
      }
      case 'transfer': {
        const to = voters.find((v) => v.id === d.to);
        this.log.info(
          { ...fields, to: d.to, toPriority: to?.priority },
          d.reason === 'higher-priority'
            ? `failback: handing leadership to ${d.to}, of higher priority, healthy and caught up`
            : `this leader may not lead (${d.reason === 'leader-drained' ? 'drained' : 'priority 0'}): handing leadership to ${d.to}`,
        );
        return;
      }
    }
  }

  /**
   * The leader turns what handshakes taught it into replicated state, one member at a
   * time: once a member's incarnation is committed, every replica refuses another one,
   * including replicas that never met the member before its data dir was lost (the
   * simulator found a member that had never talked to n3 accept n3 back after a wipe,
   * and count its pre-vote, while every peer that had met n3 refused it).
   */
  private recordIncarnation(): void {
    if (this.recordingIncarnation || this.abdicated || this.raft.softState().role !== 'leader') return;
    const conf = this.raft.confState();
    for (const id of [...conf.voters, ...conf.learners]) {
      if (this.registry.get(id)?.incarnation) continue;
      const incarnation = id === this.id ? this.incarnation : this.metIncarnation(id);
      if (incarnation === undefined) continue;
      const context = encodeMemberContext({ peerAddress: '', clientAddress: '', incarnation });
      const r = this.raft.proposeConfChange({ op: 'updateMember', nodeId: id, context });
      // Refused while another change is pending or before this term's first commit: the next input retries.
      if (!r.ok) return;
      this.recordingIncarnation = true;
      this.awaitProposal(r, undefined)
        .then(() => this.log.info({ node: this.id, member: id, incarnation }, 'member incarnation recorded'))
        .catch(() => {})
        .finally(() => {
          this.recordingIncarnation = false;
        });
      return;
    }
  }

  private liftQuarantine(): void {
    if (!this.quarantined) return;
    this.quarantined = false;
    this.incarnationRefusals.clear();
    this.log.warn({ node: this.id, incarnation: this.incarnation }, 'the membership records this incarnation: voting again');
  }

  // -------------------------------------------------------------------------
  // Incarnations (what the handshake checks; see transport/handshake.ts)

  private knownIncarnation(id: NodeId): string | undefined {
    const replicated = this.registry.get(id)?.incarnation;
    if (replicated) return replicated;
    return this.metIncarnation(id);
  }

  /** The incarnation of `id` this node admitted at a handshake, or heard of from a peer it admitted. */
  private metIncarnation(id: NodeId): string | undefined {
    const learned = this.learnedIncarnations.get(id);
    if (learned !== undefined) return learned;
    const stored = this.storage.getMeta(PEER_INCARNATION_META + id);
    return stored === undefined || stored.length === 0 ? undefined : fromUtf8.decode(stored);
  }

  /** Every member's incarnation this node knows, for its Hello: the records first, then what handshakes taught. */
  private toldIncarnations(): Map<NodeId, string> {
    const out = new Map<NodeId, string>();
    const conf = this.raft.confState();
    for (const id of [...conf.voters, ...conf.learners]) {
      const inc = id === this.id ? undefined : this.knownIncarnation(id);
      if (inc !== undefined) out.set(id, inc);
    }
    return out;
  }

  /** First contact: trust and remember (a later, different incarnation of `id` is refused). */
  private learnIncarnation(id: NodeId, incarnation: string): void {
    if (this.stopped) return;
    this.learnedIncarnations.set(id, incarnation);
    this.log.info({ node: this.id, peer: id, incarnation }, 'learned member incarnation');
    this.storage.putMeta(PEER_INCARNATION_META + id, utf8.encode(incarnation)).catch((err: Error) => this.fail(err));
  }

  /**
   * A peer refused this node's incarnation. Refused by a majority of the voters, this
   * node's data is gone for the cluster and it stops for good (exit code 2). One peer
   * alone is not trusted with that: it may have missed the conf change that re-added
   * this member and still remember the incarnation before.
   */
  private refusedByPeer(id: NodeId, refusal: Refusal): void {
    if (refusal.kind !== 'incarnation' || this.stopped) return;
    this.incarnationRefusals.set(id, refusal.reason);
    // One refusal is enough to stop voting and campaigning: if this data dir was wiped, its
    // votes in the current term are forgotten, and a peer that has not heard yet (a lagging
    // candidate) would count them again. If instead the refusing peer lags behind this
    // member's re-addition, the next record of this incarnation lifts the quarantine.
    if (!this.quarantined) {
      this.quarantined = true;
      this.log.warn({ node: this.id, peer: id, reason: refusal.reason }, 'a peer knows this member as another incarnation: not voting');
    }
    const voters = this.raft.confState().voters;
    const refusers = voters.filter((v) => v !== this.id && this.incarnationRefusals.has(v));
    if (refusers.length >= Math.floor(voters.length / 2) + 1) {
      this.fail(new MemberRefusedError(this.id, this.incarnation, refusers));
    }
  }

  /** The voter that may lead with the highest priority, the most up-to-date among equals (a shutdown's handover). */
  private bestTransferTarget(): NodeId | null {
    const voters = this.raft.confState().voters;
    let best: NodeId | null = null;
    let bestPriority = -1;
    let bestMatch = -1;
    this.raft.withProgress((id, matchIndex) => {
      const rec = this.registry.get(id);
      if (!voters.includes(id) || leadershipRefusal(rec) !== null) return;
      const priority = priorityOf(rec);
      if (priority > bestPriority || (priority === bestPriority && matchIndex > bestMatch)) {
        best = id;
        bestPriority = priority;
        bestMatch = matchIndex;
      }
    });
    return best;
  }

  /**
   * From stop() or a fatal error on, no leadership signal says this node leads, and
   * every lease listener hears so now: before the transfer that stop() may start (the
   * target is elected at once, without waiting out this lease) and before the node stops
   * answering. Work guarded by the lease (runWhileLeader) must not outlive a node that
   * can no longer defend it, however valid the lease still is on paper.
   */
  private abdicate(): void {
    if (this.abdicated) return;
    this.abdicated = true;
    if (!this.lastLeaseValid && !this.raft.leaseValid()) return;
    this.lastLeaseValid = false;
    this.leaseEndedAt = this.time.now();
    for (const l of this.leaseListeners) l(false);
  }

  private fail(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    this.abdicate();
    const { message, fields } =
      err instanceof MemberRefusedError
        ? { message: 'refused by its peers: node stops', fields: { cause: 'member-refused' } }
        : describeFailStop(err);
    this.log.fatal({ node: this.id, ...fields, err: err.message }, message);
    void this.stop({ transfer: false }).finally(() => this.opts.onFatal?.(err));
  }
}

/**
 * Open a node's data dir, claiming it if new: the identity file, and the LevelDB store
 * whose first write holds the incarnation and the bootstrap membership.
 */
async function openDataDir(opts: {
  readonly dataDir: string;
  readonly clusterId: string;
  readonly id: NodeId;
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly join?: boolean | undefined;
}): Promise<LevelStorage> {
  const identity = { clusterId: opts.clusterId, nodeId: opts.id };
  const known = checkIdentity(opts.dataDir, identity);
  const storage = await LevelStorage.open({
    dir: join(opts.dataDir, 'raft'),
    clusterId: opts.clusterId,
    nodeId: opts.id,
    // Born with the data dir, in the batch that claims it: a dir that lost its data
    // (wiped, replaced) comes back as another incarnation, which peers refuse.
    // The bootstrap membership is persisted the same way: later --peers only supply addresses.
    initialMeta: new Map([
      [INCARNATION_META, utf8.encode(randomBytes(16).toString('hex'))],
      [BOOTSTRAP_META, encodeBootstrap({ join: opts.join ?? false, members: opts.peers, inLog: true })],
    ]),
  });
  if (!known) writeIdentity(opts.dataDir, identity);
  return storage;
}

/**
 * `leaderd snapshot restore`: a new data dir for member `id` of a new cluster, starting
 * from a backup of the state machine. It is claimed like a bootstrap (identity,
 * incarnation, and `peers` as the bootstrap membership, in the batch that claims it);
 * then the backup becomes the snapshot at its index and term, with `peers` as its
 * configuration and member records, and a hard state that has it committed. Every member
 * restored from one backup starts at the same log position with the same configuration,
 * so their logs match (§5.3) and any of them may be elected.
 */
export async function seedDataDir(opts: {
  readonly dataDir: string;
  readonly clusterId: string;
  readonly id: NodeId;
  readonly peers: ReadonlyMap<NodeId, string>;
  /** The backup's data: read a piece at a time (a Uint8Array, or a region of the backup file), never whole. */
  readonly snapshot: { readonly index: number; readonly term: number; readonly data: PieceReadable };
}): Promise<void> {
  const storage = await openDataDir(opts);
  try {
    if (!storage.isNew) throw new Error(`data dir ${opts.dataDir} already holds data`);
    const { index, term, data } = opts.snapshot;
    const records = MemberRegistry.fromBootstrap({ join: false, members: opts.peers, inLog: true });
    // Framed into the spool, not into a copy of the backup, and copied a piece at a time:
    // a backup of gigabytes passes through one piece's worth of memory.
    const sink = storage.openSnapshotSink();
    const header = frameHeader(records.encode());
    sink.append(header);
    let checksum = crc32(header);
    for (const piece of piecesOf(data, 0, data.byteLength, SEED_PIECE)) {
      checksum = crc32(piece, checksum);
      sink.append(piece);
    }
    await storage.persist(
      {
        hardState: { term, votedFor: null, commit: index },
        entries: [],
        snapshot: {
          meta: { index, term, conf: { voters: [...opts.peers.keys()], learners: [] } },
          data: sink.finish(checksum),
        },
      },
      true,
    );
  } finally {
    await storage.close();
  }
}

/** Bytes of a backup copied into the data dir at a time. */
const SEED_PIECE = 4 << 20;

function checkPriority(p: number): void {
  if (!Number.isSafeInteger(p) || p < 0 || p > MAX_PRIORITY)
    throw new NodeError('invalid', `priority must be a whole number from 0 (never leader) to ${MAX_PRIORITY}, got ${p}`);
}

/** A ReadIndex request id: unique per node, per boot (a random id drawn at start) and per read. */
export function readRequestId(nodeId: NodeId, bootId: string, seq: number): string {
  return `${nodeId}/${bootId}/${seq}`;
}

interface ProposalWaiter {
  readonly term: number;
  resolve(result: unknown): void;
  reject(err: Error): void;
}
