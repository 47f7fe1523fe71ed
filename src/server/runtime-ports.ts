// The three things the node runtime (LeaderdNode) needs from the outside world, as
// narrow interfaces: durable storage for the core's state, a message transport to the
// other members, and time. Production uses LevelStorage, GrpcTransport and the
// process's monotonic clock; the seeded simulator (test/sim) plugs in an in-memory disk
// that completes writes on a virtual clock, a faulty in-memory network and virtual
// timers, so it exercises this very runtime (Ready loop, group commit, waiters, leases)
// rather than a copy of it.
import { randomInt } from 'node:crypto';
import { openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ConfState, InitialState, Message, NodeId, Snapshot, SnapshotSink } from '../raft/types.js';
import type { PersistInput } from '../storage/leveldb-storage.js';
import type { HandshakePolicy, RefusedPeer } from '../transport/handshake.js';

/** Durable storage for the core's hard state, log and snapshot, plus small meta values. */
export interface RuntimeStorage {
  /** True if this open created the store: membership is seeded from the bootstrap list only then. */
  readonly isNew: boolean;
  /** What was read at open; only available before the first write. */
  initialState(bootstrapConf: ConfState): InitialState;
  /**
   * One Ready's worth of state in one atomic write (synced when `sync`); calls apply in
   * call order. Calls a storage merges into one write (group commit) return the same
   * promise, so the caller can tell how many writes it paid for.
   */
  persist(p: PersistInput, sync: boolean): Promise<void>;
  /**
   * The local state machine took `snapshot`: store it and drop the entries up to
   * `compactTo` (default: all it covers; entries after compactTo are kept as a tail).
   */
  compact(snapshot: Snapshot, compactTo?: number): Promise<void>;
  /**
   * Somewhere to write a snapshot's bytes (a transfer arriving, a snapshot being taken)
   * before persist() or compact() gets them: a spool file in the data dir (LevelStorage),
   * which they then rename rather than copy; memory in the simulator. Synchronous: the
   * core opens one from inside step(). Throws when none can be opened.
   */
  openSnapshotSink(): SnapshotSink;
  getMeta(key: string): Uint8Array | undefined;
  /** Stores a meta value (synced), ordered with the other writes. */
  putMeta(key: string, value: Uint8Array): Promise<void>;
  /** Waits for queued writes, then closes. */
  close(): Promise<void>;
}

/** Messages to and from the other members. `send` never throws and never blocks. */
export interface RuntimeTransport {
  /** Starts accepting peers; resolves with the bound port. */
  start(): Promise<{ port: number }>;
  send(msg: Message): void;
  onMessage(handler: (msg: Message) => void): void;
  /** The full peer set with addresses (this node may be included; it is ignored). */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  /** A peer's public API address, as it announced it. */
  peerClientAddress(id: NodeId): string | undefined;
  /** Listen to peers announcing (or changing) their public API address. */
  onPeerClientAddress?(handler: (id: NodeId, clientAddr: string) => void): void;
  /** True when a peer's identity is proven (mutual TLS bound to member ids), so what it announces is its own word. */
  authenticatesPeers?(): boolean;
  /** Check incarnation and timing at every handshake (a transport without handshakes omits it). */
  setHandshake?(policy: HandshakePolicy): void;
  /** Peers whose handshake is refused, either way, and why. */
  refusedPeers?(): readonly RefusedPeer[];
  /**
   * Listen for proof that a peer's process is gone: its connection closed cleanly (FIN,
   * no GOAWAY) and a redial to its address was refused. Only a process's exit gives both;
   * a reset, silence, a GOAWAY, a paused process or a partition never do. A transport
   * that cannot tell omits it (the election timeout then covers every failure).
   */
  onPeerGone?(handler: (id: NodeId) => void): void;
  close(): Promise<void>;
}

/** Cancels a timer set with RuntimeClock.after; calling it twice, or after it fired, does nothing. */
export type CancelTimer = () => void;

/** Time as the runtime sees it. */
export interface RuntimeClock {
  /**
   * Monotonic milliseconds (never the wall clock: a wall-clock step back or forward must
   * neither hold ticks back nor deliver a burst of them).
   */
  now(): number;
  /**
   * Milliseconds on a clock that keeps counting while the machine is suspended (Linux
   * CLOCK_BOOTTIME), or undefined where there is none. The tick clock takes the larger of
   * this and now(), so a leader suspended past its lease wakes up knowing it.
   */
  sinceBoot?(): number | undefined;
  /** Calls `fn` once, `ms` from now (ms is clamped to >= 0). */

  after(ms: number, fn: () => void): CancelTimer;
  /** Seed for the core's randomized election timeouts; different on every node and every start. */
  randomSeed(): number;
  /**
   * Calls `fn` once the I/O callbacks that are ready now have run (setImmediate): the
   * runtime waits for it before it takes a Ready, so everything that arrived in one turn
   * of the event loop goes into one batch. Without it (the simulator's clock, where a
   * turn means nothing) the runtime takes the Ready at once.
   */
  afterIo?(fn: () => void): void;
}

/** The process's monotonic clock and Node timers. */
export const systemClock: RuntimeClock = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
  randomSeed: () => randomInt(2 ** 31),
  sinceBoot: bootClock(),
  afterIo: (fn) => setImmediate(fn),
};

/**
 * CLOCK_BOOTTIME as Linux exposes it to Node: /proc/uptime (seconds since boot,
 * suspend included, in centiseconds), read with pread on a descriptor kept open. On
 * other systems (or without /proc) there is none, and README states the limit.
 */
function bootClock(): (() => number | undefined) | undefined {
  let fd: number;
  try {
    fd = openSync('/proc/uptime', 'r');
  } catch {
    return undefined;
  }
  const buf = Buffer.alloc(64);
  return () => {
    try {
      const n = readSync(fd, buf, 0, buf.length, 0);
      const secs = Number.parseFloat(buf.toString('latin1', 0, n));
      return Number.isFinite(secs) ? secs * 1000 : undefined;
    } catch {
      return undefined;
    }
  };
}

/** Resolves `ms` from now on `clock`. */
export function sleepOn(clock: RuntimeClock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}
