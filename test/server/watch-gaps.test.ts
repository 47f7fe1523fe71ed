// Watches never skip a revision: across a snapshot install a Watch either delivers every
// revision or ends with OUT_OF_RANGE naming the oldest revision still available, and a
// client that stops reading is cancelled (RESOURCE_EXHAUSTED) instead of being queued to.
// Real nodes in this process (LevelDB, gRPC peers and public API on loopback); a
// follower is cut off while the others write and compact their logs, so on healing it
// can only catch up by installing the leader's snapshot.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPublicApi } from '../../src/transport/protos.js';
import { LeaderdClient, LeaderdError } from '../../src/client/leaderd-client.js';
import { startInprocCluster, type InprocCluster, type InprocNode } from './inproc-cluster.js';
import { waitFor } from '../e2e/cluster.js';

interface WatchMsg {
  revision: number;
  events: { type: string; kv: { key: string } }[];
}

/** A raw KV.Watch on every key, recording revisions and how the stream ended. */
function rawWatch(endpoint: string, startRevision: number) {
  const api = loadPublicApi().leaderd.v1;
  const stub = new api.KV(endpoint, grpc.credentials.createInsecure());
  const call = stub.Watch({ key: '', prefix: true, startRevision }) as grpc.ClientReadableStream<WatchMsg>;
  const revisions: number[] = [];
  let status: grpc.StatusObject | null = null;
  let error: grpc.ServiceError | null = null;
  call.on('data', (m: WatchMsg) => revisions.push(m.revision));
  call.on('error', (e: grpc.ServiceError) => (error = e));
  call.on('status', (s: grpc.StatusObject) => (status = s));
  return {
    call,
    revisions,
    ended: () => error ?? status,
    error: () => error,
    close: () => {
      call.cancel();
      stub.close();
    },
  };
}

let cluster: InprocCluster | null = null;
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await cluster?.close();
  cluster = null;
});

async function isolatedFollower(c: InprocCluster): Promise<{ leader: InprocNode; follower: InprocNode }> {
  const leader = await c.leader();
  const follower = c.nodes.find((n) => n !== leader)!;
  return { leader, follower };
}

function countRestores(n: InprocNode): () => number {
  let restores = 0;
  const off = n.store.onRestore(() => restores++);
  closers.push(off);
  return () => restores;
}

const contiguous = (revs: number[], from: number) => revs.every((r, i) => r === from + i);

describe('watches across a snapshot install', () => {
  it('a watch on a follower that installs a snapshot skipping revisions ends with OUT_OF_RANGE naming the oldest revision', async () => {
    cluster = await startInprocCluster({ snapshotEntries: 10 });
    const { leader, follower } = await isolatedFollower(cluster);
    const client = new LeaderdClient({ endpoints: [leader.client] });
    closers.push(() => void client.close());
    const { revision: r0 } = await client.put('k', 'v0');
    await waitFor('follower applied', () => (follower.store.revision >= r0 ? true : undefined));
    const w = rawWatch(follower.client, r0 + 1);
    closers.push(w.close);
    // The typed error in the client library, on the same follower only.
    const fclient = new LeaderdClient({ endpoints: [follower.client] });
    closers.push(() => void fclient.close());
    const typed = (async () => {
      try {
        for await (const b of fclient.watch('', { prefix: true, startRevision: r0 + 1 })) void b;
        return null;
      } catch (e) {
        return e;
      }
    })();
    for (let i = 1; i <= 3; i++) await client.put('k', `v${i}`);
    await waitFor('watch delivered the first writes', () => (w.revisions.length === 3 ? true : undefined));
    const restores = countRestores(follower);

    follower.transport.cut = true;
    for (let i = 4; i <= 40; i++) await client.put(`k${i % 5}`, `v${i}`);
    follower.transport.cut = false;

    await waitFor('the follower installed a snapshot', () => (restores() > 0 ? true : undefined), 20_000);
    const err = await waitFor('the watch ended', () => w.error() ?? undefined, 10_000);
    expect(err.code).toBe(grpc.status.OUT_OF_RANGE);
    const oldest = Number(err.metadata.get('leaderd-oldest-revision')[0]);
    // Nothing skipped: what arrived is r0+1.. without a hole, and the oldest revision
    // named lies beyond it, after the revisions the snapshot swallowed.
    expect(contiguous(w.revisions, r0 + 1)).toBe(true);
    expect(oldest).toBeGreaterThan(w.revisions.at(-1)! + 1);
    expect(err.details).toMatch(new RegExp(`installed a snapshot .*oldest revision still available is ${oldest}`));

    const e = await typed;
    expect(e).toBeInstanceOf(LeaderdError);
    expect((e as LeaderdError).kind).toBe('out-of-range');
    expect((e as LeaderdError).oldestRevision).toBe(oldest);
  }, 60_000);

  it('a watch on a follower that installs a snapshot at the revision it had reached delivers every revision', async () => {
    cluster = await startInprocCluster({ snapshotEntries: 10 });
    const { leader, follower } = await isolatedFollower(cluster);
    const client = new LeaderdClient({ endpoints: [leader.client] });
    closers.push(() => void client.close());
    const { revision: r0 } = await client.put('k', 'v0');
    await waitFor('follower applied', () => (follower.store.revision >= r0 ? true : undefined));
    const w = rawWatch(follower.client, r0 + 1);
    closers.push(w.close);
    const { revision: r1 } = await client.put('k', 'v1');
    await waitFor('follower applied', () => (follower.store.revision >= r1 ? true : undefined));
    const restores = countRestores(follower);

    // Entries that change no key (lease grants) fill the log past a snapshot while the
    // follower is away: its install jumps the log, not the revision.
    follower.transport.cut = true;
    for (let i = 0; i < 25; i++) await client.lease(60_000).then((l) => l.revoke());
    follower.transport.cut = false;
    await waitFor('the follower installed a snapshot', () => (restores() > 0 ? true : undefined), 20_000);

    for (let i = 2; i <= 6; i++) await client.put('k', `v${i}`);
    await waitFor('every revision delivered', () => (w.revisions.length === 6 || w.ended() ? true : undefined), 10_000);
    expect(w.ended()).toBeNull();
    expect(w.revisions).toEqual([1, 2, 3, 4, 5, 6].map((i) => r0 + i));
    expect(w.ended()).toBeNull();
  }, 60_000);
});

describe('observers across a snapshot install', () => {
  it('Observe on a follower answers the current holder marked resync, and the client says so', async () => {
    cluster = await startInprocCluster({ snapshotEntries: 10 });
    const { leader, follower } = await isolatedFollower(cluster);
    const client = new LeaderdClient({ endpoints: [leader.client] });
    const fclient = new LeaderdClient({ endpoints: [follower.client] });
    closers.push(
      () => void client.close(),
      () => void fclient.close(),
    );
    const seen: { found: boolean; resynced?: boolean }[] = [];
    const ac = new AbortController();
    closers.push(() => ac.abort());
    void (async () => {
      for await (const l of fclient.observe('svc', ac.signal)) seen.push({ found: l.found, ...(l.resynced ? { resynced: true } : {}) });
    })().catch(() => {});
    await waitFor('observer got the empty election', () => (seen.length === 1 ? true : undefined));
    const restores = countRestores(follower);

    follower.transport.cut = true;
    const leadership = await client.campaign('svc', 'me');
    for (let i = 0; i < 25; i++) await client.put('filler', `${i}`);
    follower.transport.cut = false;
    await waitFor('the follower installed a snapshot', () => (restores() > 0 ? true : undefined), 20_000);
    await waitFor('observer saw the holder', () => (seen.length === 2 ? true : undefined), 10_000);
    expect(seen).toEqual([{ found: false }, { found: true, resynced: true }]);
    await leadership.resign();
  }, 60_000);
});

describe('slow watchers', () => {
  it('a client that stops reading is cancelled with RESOURCE_EXHAUSTED, and the server sent it only a bounded number of messages', async () => {
    cluster = await startInprocCluster({ size: 1, store: { historyRevisions: 100 } });
    const leader = await cluster.leader();
    const client = new LeaderdClient({ endpoints: [leader.client] });
    closers.push(() => void client.close());
    const start = leader.store.revision + 1;
    const w = rawWatch(leader.client, start);
    closers.push(w.close);
    w.call.pause();
    const value = new Uint8Array(16 << 10);
    const writes = 600;
    // Writes are awaited in small batches, so the watch falls ever further behind.
    for (let i = 0; i < writes; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => client.put(`big/${(i + j) % 7}`, value)));
    w.call.resume();
    const err = await waitFor('the watch was cancelled', () => w.error() ?? undefined, 10_000);
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/read too slowly/);
    const oldest = Number(err.metadata.get('leaderd-oldest-revision')[0]);
    expect(oldest).toBeGreaterThan(start);
    // What was sent before the cancel is a gap-free prefix, and far fewer messages than
    // revisions written: the server did not queue the backlog for the paused client.
    expect(contiguous(w.revisions, start)).toBe(true);
    expect(w.revisions.length).toBeLessThan(writes / 4);
  }, 60_000);
});
