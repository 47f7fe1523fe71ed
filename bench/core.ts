// Throughput of the Raft core alone: entries committed per second with instant links and
// an in-memory "disk", so what is measured is the core's own bookkeeping (log, progress,
// quorum, Ready batching). npm run build && npm run bench:core
//
// A baseline from the same run (a plain loop moving the same 100-byte entries through the
// same number of arrays: persisted on every node, sent to every follower, applied on every
// node) puts the number in proportion to the machine it ran on.
import { RaftNode } from '../src/raft/raft.js';
import { seededRandom } from '../src/raft/rand.js';
import type { Entry, Message, NodeId } from '../src/raft/types.js';

const ENTRY_BYTES = 100;
const BATCH = 64;
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3);

interface Result {
  readonly nodes: number;
  readonly entries: number;
  readonly seconds: number;
}

function cluster(n: number): Map<NodeId, RaftNode> {
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const nodes = new Map<NodeId, RaftNode>();
  for (const [i, id] of ids.entries()) {
    nodes.set(
      id,
      new RaftNode(
        {
          id,
          clusterId: 'bench',
          heartbeatTick: 1,
          electionTick: 10,
          leaseDriftTicks: 2,
          leaseReads: true,
          maxInflight: 256,
          maxMsgBytes: 1 << 20,
          snapshotChunkBytes: 1 << 20,
          random: seededRandom(i + 1),
        },
        { hardState: { term: 0, votedFor: null, commit: 0 }, snapshot: null, entries: [], bootstrapConf: { voters: ids, learners: [] } },
      ),
    );
  }
  return nodes;
}

/** Runs every Ready to completion, delivering messages instantly. Returns normal entries applied on `counted`. */
function drain(nodes: Map<NodeId, RaftNode>, disks: Map<NodeId, Entry[]>, counted: NodeId): number {
  let applied = 0;
  let inbox: Message[] = [];
  for (;;) {
    let any = false;
    for (const [id, node] of nodes) {
      if (!node.hasReady()) continue;
      any = true;
      const rd = node.ready();
      const disk = disks.get(id)!;
      for (const e of rd.entries) disk.push(e);
      for (const m of rd.messages) inbox.push(m);
      if (id === counted) for (const e of rd.committedEntries) if (e.type === 'normal') applied++;
      node.advance(rd);
    }
    if (inbox.length > 0) {
      any = true;
      const batch = inbox;
      inbox = [];
      for (const m of batch) nodes.get(m.to)!.step(m);
    }
    if (!any) return applied;
  }
}

function benchCore(n: number): Result {
  const nodes = cluster(n);
  const disks = new Map<NodeId, Entry[]>([...nodes.keys()].map((id) => [id, []]));
  // A freshly started node grants no vote for one election timeout (the lease of a
  // leader it may have acknowledged before a restart), so let the clocks run.
  let leaderId: NodeId | undefined;
  for (let t = 0; t < 1000 && leaderId === undefined; t++) {
    for (const node of nodes.values()) node.tick();
    drain(nodes, disks, 'n1');
    leaderId = [...nodes.values()].find((x) => x.status().role === 'leader')?.id;
  }
  if (leaderId === undefined) throw new Error('bench: no leader elected');
  const leader = nodes.get(leaderId)!;
  drain(nodes, disks, leaderId);
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  let entries = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let rounds = 0;
  while (performance.now() < end) {
    for (let i = 0; i < BATCH; i++) {
      const r = leader.propose(payload);
      if (!r.ok) throw new Error(`bench: propose failed: ${r.error}`);
    }
    entries += drain(nodes, disks, leaderId);
    // Keep the in-memory disks from growing without bound; the core keeps its own log.
    if (++rounds % 256 === 0) {
      for (const d of disks.values()) d.length = 0;
      const st = leader.status();
      leader.compact(st.appliedIndex, new Uint8Array(0));
      for (const [id, node] of nodes) if (id !== leaderId) node.compact(node.status().appliedIndex, new Uint8Array(0));
    }
  }
  return { nodes: n, entries, seconds: (performance.now() - start) / 1000 };
}

/** The same entries through the same number of arrays, with no consensus at all. */
function benchBaseline(n: number, count: number): number {
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  const disks: Entry[][] = Array.from({ length: n }, () => []);
  const wires: Entry[][] = Array.from({ length: n - 1 }, () => []);
  const applied: Entry[][] = Array.from({ length: n }, () => []);
  let sink = 0;
  const start = performance.now();
  for (let i = 1; i <= count; i++) {
    const e: Entry = { index: i, term: 1, type: 'normal', data: payload.slice() };
    for (const d of disks) d.push(e);
    for (const w of wires) w.push(e);
    for (const a of applied) a.push(e);
    if ((i & 0x3fff) === 0) {
      for (const a of [...disks, ...wires, ...applied]) {
        sink += a.length;
        a.length = 0;
      }
    }
  }
  const seconds = (performance.now() - start) / 1000;
  if (sink < 0) console.log(sink);
  return count / seconds;
}

const rows: string[] = [];
for (const n of [3, 5]) {
  const r = benchCore(n);
  const rate = r.entries / r.seconds;
  const base = benchBaseline(n, r.entries);
  rows.push(
    `${n} nodes: ${Math.round(rate).toLocaleString('en-US')} entries/s committed (${r.entries.toLocaleString('en-US')} in ${r.seconds.toFixed(2)} s, ` +
      `${ENTRY_BYTES}-byte entries, batches of ${BATCH}); baseline array copy ${Math.round(base).toLocaleString('en-US')}/s; ` +
      `core/baseline ${(rate / base).toFixed(3)}`,
  );
  console.log(rows[rows.length - 1]);
  if (n === 3 && rate < 200_000) console.log('  below the 200,000 entries/s target for 3 nodes');
}
