// The simulator's implementations of the runtime's ports (src/server/runtime-ports.ts):
// a disk whose writes complete on the virtual clock, a network that hands every message
// to the simulator's fault model, and virtual timers. Each instance belongs to one
// incarnation of a node; after a crash it goes dead: pending writes never complete (the
// process is gone) and nothing it sends arrives.
import type { RuntimeClock, RuntimeStorage, RuntimeTransport, CancelTimer } from '../../src/server/runtime-ports.js';
import type { PersistInput } from '../../src/storage/leveldb-storage.js';
import type { ConfState, InitialState, Message, NodeId, Snapshot, SnapshotSink } from '../../src/raft/types.js';
import { checkHello, type HandshakePolicy, type RefusedPeer } from '../../src/transport/handshake.js';
import type { Hello } from '../../src/transport/codec.js';
import type { MemDisk } from './disk.js';

/** What the parts need from the simulator. */
export interface PartsHost {
  /** Virtual time now. */
  now(): number;
  /** Runs `fn` as its own simulator event at virtual time `at`, unless the incarnation has ended by then. */
  at(at: number, owner: Incarnation, what: string, fn: () => void): void;
}

/** One run of one node, from (re)start to crash. */
export interface Incarnation {
  readonly idx: number;
  readonly gen: number;
  alive: boolean;
}

export interface StorageHooks {
  /** Draws the latency of the next write. */
  latency(): number;
  /** Carries out a persist on the disk (with the simulator's checks) once it completes. */
  persist(p: PersistInput, sync: boolean): void;
  /** Same for a snapshot the node took of its own state machine (always synced). */
  compact(snapshot: Snapshot): void;
}

/**
 * LevelStorage's contract in memory: writes apply in call order, each completing after a
 * drawn latency; a synced write is durable when its promise resolves, an unsynced one
 * only after a later sync (MemDisk), so a crash may lose it.
 */
export class MemStorage implements RuntimeStorage {
  /** Completion time of the last queued write: writes complete in call order. */
  private tail = 0;
  private written = false;

  constructor(
    private readonly host: PartsHost,
    private readonly owner: Incarnation,
    private readonly disk: MemDisk,
    /** Durable meta values of this data dir (putMeta is synced). */
    private readonly meta: Map<string, Uint8Array>,
    /** True when the data dir was just created (its meta holds only what creation writes). */
    readonly isNew: boolean,
    private readonly hooks: StorageHooks,
  ) {}

  initialState(bootstrapConf: ConfState): InitialState {
    if (this.written) throw new Error('initialState() is only available before the first write');
    const d = this.disk.current;
    return { hardState: d.hardState, snapshot: d.snapshot, entries: d.entries.slice(), bootstrapConf };
  }

  persist(p: PersistInput, sync: boolean): Promise<void> {
    return this.enqueue('persist', () => this.hooks.persist(p, sync));
  }

  compact(snapshot: Snapshot): Promise<void> {
    return this.enqueue('compact', () => this.hooks.compact(snapshot));
  }

  /** Memory: chunks kept as they come and joined once, at finish. */
  openSnapshotSink(): SnapshotSink {
    let parts: Uint8Array[] = [];
    return {
      append: (chunk) => parts.push(chunk.slice()),
      finish: () => {
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let off = 0;
        for (const p of parts) {
          out.set(p, off);
          off += p.length;
        }
        parts = [];
        return out;
      },
      discard: () => {
        parts = [];
      },
    };
  }

  getMeta(key: string): Uint8Array | undefined {
    return this.meta.get(key);
  }

  putMeta(key: string, value: Uint8Array): Promise<void> {
    const copy = Uint8Array.from(value);
    return this.enqueue('putMeta', () => this.meta.set(key, copy));
  }

  close(): Promise<void> {
    return this.enqueue('close', () => {});
  }

  private enqueue(what: string, write: () => void): Promise<void> {
    this.written = true;
    const done = Math.max(this.tail, this.host.now() + this.hooks.latency());
    this.tail = done;
    return new Promise((resolve) => {
      this.host.at(done, this.owner, `disk ${what}`, () => {
        write();
        resolve();
      });
    });
  }
}

/**
 * GrpcTransport's contract in memory: a message to a node outside the peer set is
 * dropped at the sender, and a receiver accepts messages only from its peer set (the
 * gRPC transport refuses the stream of a node that is not a peer). With a handshake
 * policy, every delivery also passes the gRPC transport's Hello checks both ways
 * (incarnation and timing, transport/handshake.ts): the receiver checks the sender's
 * Hello, the sender the receiver's reply.
 */
export class SimTransport implements RuntimeTransport {
  peers: ReadonlySet<NodeId> = new Set();
  handler: ((msg: Message) => void) | null = null;
  policy: HandshakePolicy | null = null;
  private goneHandler: ((id: NodeId) => void) | null = null;
  private readonly refused = new Map<NodeId, RefusedPeer>();

  constructor(
    private readonly owner: Incarnation,
    private readonly id: NodeId,
    private readonly net: { send(m: Message): void; dropUnknownPeer(m: Message): void },
  ) {}

  start(): Promise<{ port: number }> {
    return Promise.resolve({ port: 0 });
  }

  send(msg: Message): void {
    if (!this.owner.alive) return;
    if (!this.peers.has(msg.to)) this.net.dropUnknownPeer(msg);
    else this.net.send(msg);
  }

  onMessage(handler: (msg: Message) => void): void {
    this.handler = handler;
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.peers = new Set([...peers.keys()].filter((id) => id !== this.id));
  }

  setHandshake(policy: HandshakePolicy): void {
    this.policy = policy;
  }

  refusedPeers(): readonly RefusedPeer[] {
    return [...this.refused.values()];
  }

  onPeerGone(handler: (id: NodeId) => void): void {
    this.goneHandler = handler;
  }

  /** The simulator: `id`'s process exited and this node's link to it saw the proof (clean close, redial refused). */
  peerGone(id: NodeId): void {
    if (this.owner.alive && this.peers.has(id)) this.goneHandler?.(id);
  }

  hello(): Hello {
    return {
      clusterId: 'sim',
      nodeId: this.id,
      peerAddress: `sim-peer:${this.id}`,
      clientAddress: `sim-client:${this.id}`,
      incarnation: this.policy?.incarnation ?? '',
      timing: this.policy?.timing ?? null,
      knownIncarnations: this.policy?.knownIncarnations() ?? new Map(),
    };
  }

  /**
   * The handshake between `from` (dialer) and `to` (server) for one message: null when
   * both admit each other, else who refused. Each side records what it refused, and the
   * refused side is told, as over gRPC.
   */
  static handshake(from: SimTransport, to: SimTransport): string | null {
    if (to.policy !== null) {
      const r = checkHello(to.id, to.policy, from.hello());
      if (r !== null) {
        to.refused.set(from.id, { ...r, peerId: from.id, byPeer: false });
        from.refused.set(to.id, { ...r, peerId: to.id, byPeer: true });
        from.policy?.refusedByPeer(to.id, r);
        return `${to.id} refuses ${from.id}: ${r.reason}`;
      }
    }
    if (from.policy !== null) {
      const r = checkHello(from.id, from.policy, to.hello());
      if (r !== null) {
        from.refused.set(to.id, { ...r, peerId: to.id, byPeer: false });
        to.refused.set(from.id, { ...r, peerId: from.id, byPeer: true });
        to.policy?.refusedByPeer(from.id, r);
        return `${from.id} refuses ${to.id}: ${r.reason}`;
      }
    }
    from.refused.delete(to.id);
    to.refused.delete(from.id);
    return null;
  }

  peerClientAddress(id: NodeId): string | undefined {
    return this.peers.has(id) ? `sim-client:${id}` : undefined;
  }

  close(): Promise<void> {
    this.handler = null;
    return Promise.resolve();
  }
}

/** A node's monotonic clock runs at `rate` times virtual time (bounded clock drift). */
export class VirtualClock implements RuntimeClock {
  constructor(
    private readonly host: PartsHost,
    private readonly owner: Incarnation,
    private readonly rate: number,
    private readonly seed: number,
  ) {}

  now(): number {
    return this.host.now() * this.rate;
  }

  after(ms: number, fn: () => void): CancelTimer {
    const t = { cancelled: false };
    this.host.at(this.host.now() + Math.max(0, ms) / this.rate, this.owner, 'timer', () => {
      if (!t.cancelled) fn();
    });
    return () => {
      t.cancelled = true;
    };
  }

  randomSeed(): number {
    return this.seed;
  }
}
