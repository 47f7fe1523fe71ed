// A small, fully manual cluster for scenario tests: the test decides every tick,
// every delivery and every crash, so each scenario reads as a story.
import { RaftNode } from '../../src/raft/raft.js';
import { seededRandom } from '../../src/raft/rand.js';
import type { Entry, HardState, Message, NodeId, RaftConfig, RaftEvent, Snapshot } from '../../src/raft/types.js';

export interface Disk {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export const CLUSTER = 'test-cluster';

export function config(id: NodeId, seed: number, over: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    clusterId: CLUSTER,
    heartbeatTick: 1,
    electionTick: 10,
    leaseDriftTicks: 2,
    leaseReads: true,
    maxInflight: 64,
    maxMsgBytes: 1 << 20,
    snapshotChunkBytes: 1 << 16,
    random: seededRandom(seed),
    ...over,
  };
}

export class Cluster {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly disks = new Map<NodeId, Disk>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly reads = new Map<NodeId, Map<string, number>>();
  /** Every event each node reported, in order. */
  readonly events = new Map<NodeId, RaftEvent[]>();
  /** Messages sent and not yet delivered or dropped. */
  inFlight: Message[] = [];
  /** Pairs (from->to) whose messages are dropped. */
  private cut = new Set<string>();
  /** Messages for which this returns false are dropped on delivery. */
  filter: ((m: Message) => boolean) | null = null;
  private seed = 1;

  constructor(
    readonly ids: NodeId[],
    private readonly over: Partial<RaftConfig> = {},
    learners: NodeId[] = [],
  ) {
    for (const id of [...ids, ...learners]) {
      this.disks.set(id, { hardState: { term: 0, votedFor: null, commit: 0 }, snapshot: null, entries: [] });
      this.applied.set(id, []);
      this.reads.set(id, new Map());
      this.events.set(id, []);
    }
    this.bootstrap = { voters: ids, learners };
    for (const id of [...ids, ...learners]) this.start(id);
  }

  private readonly bootstrap: { voters: NodeId[]; learners: NodeId[] };

  node(id: NodeId): RaftNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`${id} is down`);
    return n;
  }

  /** (Re)start a node from what its disk holds. */
  start(id: NodeId, over: Partial<RaftConfig> = {}): RaftNode {
    const disk = this.disks.get(id)!;
    const n = new RaftNode(config(id, this.seed++, { ...this.over, ...over }), {
      hardState: disk.hardState,
      snapshot: disk.snapshot,
      entries: disk.entries,
      bootstrapConf: this.bootstrap,
    });
    this.nodes.set(id, n);
    // The state machine restarts from the snapshot; the core re-delivers what follows.
    this.applied.set(
      id,
      this.applied.get(id)!.filter((e) => e.index <= (disk.snapshot?.meta.index ?? 0)),
    );
    return n;
  }

  /** Lose everything not yet persisted. */
  crash(id: NodeId): void {
    this.nodes.delete(id);
    this.inFlight = this.inFlight.filter((m) => m.to !== id);
  }

  isolate(id: NodeId): void {
    for (const other of this.disks.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Drive every node's Ready: persist, then send, then apply. */
  processReadies(): void {
    for (const [id, n] of this.nodes) {
      while (n.hasReady()) {
        const rd = n.ready();
        const disk = this.disks.get(id)!;
        if (rd.snapshot) {
          disk.snapshot = rd.snapshot;
          disk.entries = [];
          this.applied.set(id, []);
        }
        if (rd.entries.length > 0) {
          const first = rd.entries[0]!.index;
          disk.entries = disk.entries.filter((e) => e.index < first).concat(rd.entries);
        }
        if (rd.hardState) disk.hardState = rd.hardState;
        for (const m of [...rd.messages, ...rd.messagesAfterPersist]) {
          if (!this.cut.has(`${m.from}->${m.to}`)) this.inFlight.push(m);
        }
        this.applied.get(id)!.push(...rd.committedEntries);
        for (const r of rd.readStates) this.reads.get(id)!.set(r.requestId, r.index);
        // A node added mid-test (membership tests) has no list yet.
        let events = this.events.get(id);
        if (events === undefined) this.events.set(id, (events = []));
        events.push(...rd.events);
        n.advance(rd);
      }
    }
  }

  /** Deliver the messages now in flight, once; returns how many there were. */
  deliverOnce(): number {
    this.processReadies();
    const batch = this.inFlight;
    this.inFlight = [];
    for (const m of batch) {
      if (this.cut.has(`${m.from}->${m.to}`) || (this.filter && !this.filter(m))) continue;
      this.nodes.get(m.to)?.step(m);
    }
    this.processReadies();
    return batch.length;
  }

  /** Deliver every message in flight (and whatever they cause) until the network is quiet. */
  deliverAll(maxRounds = 100): void {
    for (let i = 0; i < maxRounds; i++) {
      if (this.deliverOnce() === 0) return;
    }
    throw new Error('network did not go quiet');
  }

  /**
   * Make `id` leader: let every node's clock run past the election timeout while all are
   * cut off (so nobody is in a lease and nobody can win), then campaign with `id`.
   */
  forceElect(id: NodeId): void {
    for (const other of this.disks.keys()) this.isolate(other);
    this.tick(30);
    this.heal();
    this.node(id).campaign();
    this.deliverAll();
    if (this.node(id).status().role !== 'leader') throw new Error(`${id} did not win`);
  }

  /** Advance every clock by one tick and collect what that causes, delivering nothing. */
  tickQuiet(): void {
    for (const node of this.nodes.values()) node.tick();
    this.processReadies();
  }

  tick(n = 1, only?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const [id, node] of this.nodes) if (!only || only.includes(id)) node.tick();
      this.deliverAll();
    }
  }

  /** Tick until `pred` holds, failing after `max` ticks. */
  tickUntil(pred: () => boolean, max = 200): number {
    for (let i = 0; i < max; i++) {
      if (pred()) return i;
      this.tick();
    }
    if (pred()) return max;
    throw new Error(`condition not reached within ${max} ticks`);
  }

  leaders(): NodeId[] {
    return [...this.nodes].filter(([, n]) => n.status().role === 'leader').map(([id]) => id);
  }

  leader(): NodeId {
    const ls = this.leaders();
    if (ls.length !== 1) throw new Error(`expected one leader, found ${ls.join(',') || 'none'}`);
    return ls[0]!;
  }

  electLeader(max = 200): NodeId {
    this.tickUntil(() => this.leaders().length === 1 && this.node(this.leaders()[0]!).status().commitIndex > 0, max);
    return this.leader();
  }

  propose(value: string): { index: number; term: number } {
    const r = this.node(this.leader()).propose(new TextEncoder().encode(value));
    if (!r.ok) throw new Error(`propose failed: ${r.error}`);
    this.deliverAll();
    return r;
  }

  appliedValues(id: NodeId): string[] {
    return this.applied
      .get(id)!
      .filter((e) => e.type === 'normal')
      .map((e) => new TextDecoder().decode(e.data));
  }
}
