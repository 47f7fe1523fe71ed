// Guarantees at the edges, on real leaderd processes: the reserved keys of Election and
// Lock cannot be written around (issue 7, scenario 5) and every service speaks the one
// error contract (scenario 9).
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LeaderdClient, type LockHandle } from '../../src/client/leaderd-client.js';
import { loadPublicApi } from '../../src/transport/protos.js';
import type { ClusterClient as GrpcCluster } from '../../src/gen/leaderd/v1/Cluster.js';
import { LocalCluster } from './cluster.js';
import { api, call, outcomeOf, type Api } from './api.js';

let cluster: LocalCluster;
let leaderId: string;
let raw: Api;
const clients: LeaderdClient[] = [];
const enc = (s: string) => Buffer.from(s);
const labelOf = (err: unknown) => (err as grpc.ServiceError).metadata?.get('leaderd-error')[0]?.toString();

function client(): LeaderdClient {
  const c = new LeaderdClient({ endpoints: cluster.endpoints() });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  cluster.startAll();
  leaderId = (await cluster.waitForLeader()).leaderId;
  raw = api(cluster.endpoint(cluster.specs.find((s) => s.id !== leaderId)!.id));
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  raw?.close();
  await cluster?.stop();
});

describe('reserved keys (scenario 5)', () => {
  it('a prefix delete or txn delete reaching _leaderd/ is refused while a lock is held and a campaigner waits; the holder keeps it', async () => {
    const holder = client();
    const waiter = client();
    const held: LockHandle = await holder.lock('nightly', { ttlMs: 3000 });
    let granted = false;
    const waiting = waiter.lock('nightly', { ttlMs: 3000 }).then((h) => {
      granted = true;
      return h;
    });
    // The waiter's key is queued behind the holder's before anything is tried.
    const queue = async () =>
      (await call<{ kvs: { key: string; createRevision: number }[] }>((o, cb) => raw.kv.Range({ prefix: '_leaderd/lock/nightly/' }, o, cb)))
        .kvs;
    for (let i = 0; i < 200 && (await queue()).length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    const before = await queue();
    expect(before.map((k) => k.key)).toContain(held.key);
    expect(before.length).toBe(2);

    const attempts: [string, (o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => unknown][] = [
      ['Delete "_" prefix', (o, cb) => raw.kv.Delete({ key: '_', prefix: true }, o, cb)],
      ['Delete "" prefix', (o, cb) => raw.kv.Delete({ key: '', prefix: true }, o, cb)],
      ['Delete "_leaderd" prefix', (o, cb) => raw.kv.Delete({ key: '_leaderd', prefix: true }, o, cb)],
      ['Delete "_leaderd/lock/" prefix', (o, cb) => raw.kv.Delete({ key: '_leaderd/lock/', prefix: true }, o, cb)],
      ['Delete the holder key', (o, cb) => raw.kv.Delete({ key: held.key }, o, cb)],
      ['Txn delete "_" prefix', (o, cb) => raw.kv.Txn({ success: [{ delete: { key: '_', prefix: true } }] }, o, cb)],
      ['Txn delete the holder key', (o, cb) => raw.kv.Txn({ success: [{ delete: { key: held.key } }] }, o, cb)],
      ['Txn put the holder key', (o, cb) => raw.kv.Txn({ success: [{ put: { key: held.key, value: enc('x') } }] }, o, cb)],
      ['CompareAndSwap the holder key', (o, cb) => raw.kv.CompareAndSwap({ key: held.key, value: enc('x'), expectAbsent: true }, o, cb)],
      ['Put the holder key', (o, cb) => raw.kv.Put({ key: held.key, value: enc('x') }, o, cb)],
    ];
    for (const [what, f] of attempts) {
      const err = await call(f).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(err, what).not.toBeNull();
      expect(err!.code, `${what}: ${err!.details}`).toBe(grpc.status.INVALID_ARGUMENT);
      expect(labelOf(err), what).toBe('reserved-key');
      expect(outcomeOf(err), what).toBe('not-applied');
    }
    // Nothing changed: both keys are still queued, the holder's first; the waiter was not granted.
    expect(await queue()).toEqual(before);
    expect(held.valid()).toBe(true);
    expect(granted).toBe(false);
    // Reads of the reserved keys stay allowed, and a prefix that cannot reach them still deletes.
    await call((o, cb) => raw.kv.Put({ key: '_mine', value: enc('1') }, o, cb));
    const del = await call<{ deleted: number }>((o, cb) => raw.kv.Delete({ key: '_m', prefix: true }, o, cb));
    expect(del.deleted).toBe(1);
    await held.unlock();
    (await waiting).unlock().catch(() => {});
  });
});

describe('one error contract (scenario 9)', () => {
  it('not-leader is UNAVAILABLE with leaderd-error: not-leader from the Cluster service too, as from every other service', async () => {
    const follower = cluster.specs.find((s) => s.id !== leaderId)!.id;
    const v1 = loadPublicApi().leaderd.v1;
    const c: GrpcCluster = new v1.Cluster(cluster.endpoint(follower), grpc.credentials.createInsecure());
    try {
      const err = await call((o, cb) => c.TransferLeader({ targetId: follower }, o, cb)).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(err).not.toBeNull();
      expect(err!.code, err!.details).toBe(grpc.status.UNAVAILABLE);
      expect(labelOf(err)).toBe('not-leader');
      expect(outcomeOf(err)).toBe('not-applied');
    } finally {
      c.close();
    }
  });
});
