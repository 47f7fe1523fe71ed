// Guarantees at the edges, on real leaderd processes: a restarted client neither loses
// nor repeats a write (issue 7, scenario 1), the reserved keys of Election and Lock cannot
// be written around (scenario 5), and every service speaks the one error contract
// (scenario 9).
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LeaderdClient, type LockHandle } from '../../src/client/leaderd-client.js';
import { loadPublicApi } from '../../src/transport/protos.js';
import type { ClusterClient as GrpcCluster } from '../../src/gen/leaderd/v1/Cluster.js';
import { LocalCluster, waitFor } from './cluster.js';
import { api, call, outcomeOf, type Api } from './api.js';

let cluster: LocalCluster;
let leaderId: string;
let raw: Api;
const clients: LeaderdClient[] = [];
const enc = (s: string) => Buffer.from(s);
const labelOf = (err: unknown) => (err as grpc.ServiceError).metadata?.get('leaderd-error')[0]?.toString();

function client(opts: { clientId?: string } = {}): LeaderdClient {
  const c = new LeaderdClient({ endpoints: cluster.endpoints(), ...opts });
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

describe('exactly-once writes across a client restart (scenario 1)', () => {
  const read = async (key: string) =>
    call<{ found: boolean; value: Buffer; version: number; modRevision: number }>((o, cb) => raw.kv.Get({ key }, o, cb));

  it('a client restarted with the same clientId: its next put applies (it used to be acknowledged and dropped)', async () => {
    const before = client({ clientId: 'billing-worker' });
    const first = await before.put('balance', '100');
    before.close();
    const after = client({ clientId: 'billing-worker' });
    const second = await after.put('balance', '500');
    expect(second.revision).toBeGreaterThan(first.revision);
    const got = await read('balance');
    expect(got.value.toString()).toBe('500');
    expect(got.modRevision).toBe(second.revision);
  });

  it('two writes before the restart: every write after it applies (they used to fail with "already applied")', async () => {
    const before = client({ clientId: 'two-writes' });
    await before.put('tw', 'a');
    await before.put('tw', 'b');
    before.close();
    const after = client({ clientId: 'two-writes' });
    for (const v of ['c', 'd', 'e']) await after.put('tw', v);
    const got = await read('tw');
    expect(got.value.toString()).toBe('e');
    expect(got.version).toBe(5);
  });

  it('a late retry of a write whose session ended is refused (session-expired, not-applied) and never applies twice', async () => {
    const { session } = await call<{ session: number }>((o, cb) => raw.kv.OpenSession({ ttlMs: 10_000, label: 'late' }, o, cb));
    const put = (value: string) =>
      call<{ revision: number }>((o, cb) => raw.kv.Put({ key: 'late', value: enc(value), session, seq: 1, firstIncomplete: 1 }, o, cb));
    const first = await put('1');
    // A retry while the session lives gets the first answer.
    expect((await put('1')).revision).toBe(first.revision);
    await call((o, cb) => raw.kv.CloseSession({ session }, o, cb));
    for (const v of ['1', '2']) {
      const err = await put(v).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, err?.details).toBe(grpc.status.FAILED_PRECONDITION);
      expect(labelOf(err)).toBe('session-expired');
      expect(outcomeOf(err)).toBe('not-applied');
    }
    const got = await read('late');
    expect(got.version).toBe(1);
    expect(got.modRevision).toBe(first.revision);
  });

  it('the leader expires an idle session through the log; its writes are refused from then on', async () => {
    const { session } = await call<{ session: number }>((o, cb) => raw.kv.OpenSession({ ttlMs: 500, label: 'idle' }, o, cb));
    await call((o, cb) => raw.kv.Put({ key: 'idle', value: enc('1'), session, seq: 1, firstIncomplete: 1 }, o, cb));
    // The expiry is the leader's decision, logged when it proposes it; nothing here
    // touches the session meanwhile (a retry would renew it).
    const leaderLog = cluster.spec(leaderId).logPath;
    const { readFileSync } = await import('node:fs');
    await waitFor(
      'the leader to expire the session',
      () =>
        readFileSync(leaderLog, 'utf8')
          .split('\n')
          .some((l) => l.includes('session expired') && l.includes(`"session":${session}`)) || undefined,
    );
    const err = await call((o, cb) => raw.kv.Put({ key: 'idle', value: enc('2'), session, seq: 2, firstIncomplete: 2 }, o, cb)).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(labelOf(err)).toBe('session-expired');
    const ka = await call<{ ttlMs: number }>((o, cb) => raw.kv.KeepAliveSession({ session }, o, cb));
    expect(ka.ttlMs).toBe(0);
    expect((await read('idle')).version).toBe(1);
  });
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
