// Snapshot transfer between real nodes in this process (LevelDB, gRPC peers on loopback):
// a hostile peer that passes the handshake as the leader sends a follower oversize,
// endless, truncated and corrupt transfers; the follower refuses each (the refusals show
// in its metrics), installs nothing and keeps following the real leader, and then still
// catches up from the real leader's snapshot and serves every key.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPeerApi } from '../../src/transport/protos.js';
import { helloToWire, toWire } from '../../src/transport/codec.js';
import { crc32 } from '../../src/storage/crc32.js';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import type { SnapshotRequest } from '../../src/raft/types.js';
import { startInprocCluster, type InprocCluster, type InprocNode } from './inproc-cluster.js';
import { waitFor } from '../e2e/cluster.js';

let cluster: InprocCluster;
let leader: InprocNode;
let follower: InprocNode;
let client: LeaderdClient;

beforeAll(async () => {
  cluster = await startInprocCluster({ snapshotEntries: 10 });
  leader = await cluster.leader();
  follower = cluster.nodes.find((n) => n !== leader)!;
  client = new LeaderdClient({ endpoints: [leader.client] });
}, 30_000);
afterAll(async () => {
  await client?.close();
  await cluster?.close();
});

async function refusals(n: InprocNode): Promise<Record<string, number>> {
  const text = await n.metrics.registry.metrics();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^leaderd_snapshot_transfers_refused_total\{[^}]*reason="([a-z-]+)"[^}]*\} (\d+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

/** A peer stream to `to` that passed the handshake claiming to be `as`. */
async function impersonate(to: InprocNode, as: InprocNode): Promise<grpc.ClientDuplexStream<unknown, unknown>> {
  const api = loadPeerApi().leaderd.raft.v1;
  const peerAddress = (to.node as unknown as { opts: { advertisePeer: string } }).opts.advertisePeer;
  const stub = new api.Peer(peerAddress, grpc.credentials.createInsecure());
  const s = (stub as unknown as { Stream(): grpc.ClientDuplexStream<unknown, unknown> }).Stream();
  s.on('error', () => {});
  const accepted = new Promise<void>((resolve, reject) => {
    s.once('data', () => resolve());
    s.once('error', reject);
  });
  const asAddress = (as.node as unknown as { opts: { advertisePeer: string } }).opts.advertisePeer;
  s.write(helloToWire({ clusterId: 'inproc', nodeId: as.id, peerAddress: asAddress, clientAddress: as.client }));
  await accepted;
  return s;
}

const firstIndex = (n: InprocNode) => (n.node as unknown as { raft: { firstIndex(): number } }).raft.firstIndex();

describe('snapshot transfer between real nodes', () => {
  it('a peer impersonating the leader cannot make a follower buffer or install oversize, endless, truncated or corrupt snapshots', async () => {
    await client.put('before', 'v');
    const restores: number[] = [];
    const off = follower.store.onRestore(() => restores.push(follower.store.revision));
    const term = leader.node.status().term;
    const base = {
      type: 'snap' as const,
      clusterId: 'inproc',
      from: leader.id,
      to: follower.id,
      term,
      meta: { index: 1_000_000, term, conf: { voters: cluster.nodes.map((n) => n.id), learners: [] } },
      round: 1,
    };
    type Chunk = Omit<SnapshotRequest, keyof typeof base>;
    const piece = new Uint8Array(16 << 10).fill(7);
    const attacks: Record<string, Chunk[]> = {
      // Declared past the default limit (twice the quota and 256 MiB).
      'too-large': [{ offset: 0, data: piece, done: false, totalSize: 2 ** 40, checksum: 0 }],
      // 32 KiB declared, then chunks that never stop (1 MiB offered).
      overrun: Array.from({ length: 64 }, (_, i) => ({
        offset: i * piece.length,
        data: piece,
        done: false,
        totalSize: 2 * piece.length,
        checksum: 0,
      })),
      // The last chunk ends at half the declared size.
      truncated: [{ offset: 0, data: piece, done: true, totalSize: 2 * piece.length, checksum: crc32(piece) }],
      // Whole and the right size, but not the bytes the checksum was taken over.
      checksum: [{ offset: 0, data: piece, done: true, totalSize: piece.length, checksum: crc32(piece) ^ 1 }],
    };
    try {
      for (const [reason, chunks] of Object.entries(attacks)) {
        // The real leader redials when its stream is taken over, which ends ours in turn:
        // keep trying (bounded) until the follower has stepped this attack's chunks.
        await waitFor(`the follower refused the ${reason} transfer`, async () => {
          const s = await impersonate(follower, leader);
          try {
            for (const c of chunks) s.write(toWire({ ...base, ...c }));
            await new Promise((r) => setTimeout(r, 200));
          } finally {
            s.cancel();
          }
          return ((await refusals(follower))[reason] ?? 0) >= 1 ? true : undefined;
        });
      }
    } finally {
      off();
    }
    expect(restores).toEqual([]);
    // Still following the real leader: a write made now is applied there.
    const { revision } = await client.put('after', 'v');
    await waitFor('follower applied the write', () => (follower.store.revision >= revision ? true : undefined));
    expect(follower.store.get('after')?.value).toEqual(new TextEncoder().encode('v'));
  }, 20_000);

  it('a follower cut off while the others compact catches up from the real snapshot, checksum and all, and serves every key', async () => {
    const restores: number[] = [];
    const off = follower.store.onRestore(() => restores.push(follower.store.revision));
    try {
      follower.transport.cut = true;
      let last = 0;
      for (let i = 0; i < 40; i++) last = (await client.put(`k${i}`, `value ${i}`)).revision;
      await waitFor('the leader compacted past the follower', () =>
        firstIndex(leader) > follower.node.status().lastLogIndex + 1 ? true : undefined,
      );
      follower.transport.cut = false;
      await waitFor('the follower installed the snapshot and applied the rest', () => (follower.store.revision >= last ? true : undefined));
      expect(restores.length).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < 40; i++) expect(follower.store.get(`k${i}`)?.value).toEqual(new TextEncoder().encode(`value ${i}`));
      expect((await refusals(follower))['checksum']).toBe(1);
    } finally {
      follower.transport.cut = false;
      off();
    }
  }, 20_000);
});
