import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from './cluster.js';
import { call, leaderAndFollower, outcomeOf, type Api } from './api.js';

let cluster: LocalCluster;
let leaderApi: Api;
let followerApi: Api;
const enc = (s: string) => Buffer.from(s);

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  cluster.startAll();
  ({ leaderApi, followerApi } = await leaderAndFollower(cluster));
});

afterAll(async () => {
  leaderApi?.close();
  followerApi?.close();
  await cluster?.stop();
});

describe('KV over a real cluster', () => {
  it('a write on a follower is forwarded, and a linearizable read on any node sees it', async () => {
    const put = await call<{ revision: number }>((o, cb) => followerApi.kv.Put({ key: 'a', value: enc('1') }, o, cb));
    expect(put.revision).toBeGreaterThan(0);
    for (const a of [leaderApi, followerApi]) {
      const got = await call<{ found: boolean; value: Buffer; modRevision: number }>((o, cb) => a.kv.Get({ key: 'a' }, o, cb));
      expect(got.found).toBe(true);
      expect(got.value.toString()).toBe('1');
      expect(got.modRevision).toBe(put.revision);
    }
  });

  it('compare-and-swap succeeds only on the expected value and reports the current one', async () => {
    await call((o, cb) => leaderApi.kv.Put({ key: 'cas', value: enc('x') }, o, cb));
    const bad = await call<{ succeeded: boolean; currentValue: Buffer; currentFound: boolean }>((o, cb) =>
      followerApi.kv.CompareAndSwap({ key: 'cas', value: enc('z'), expectedValue: enc('nope') }, o, cb),
    );
    expect(bad.succeeded).toBe(false);
    expect(bad.currentFound).toBe(true);
    expect(bad.currentValue.toString()).toBe('x');
    const good = await call<{ succeeded: boolean }>((o, cb) =>
      followerApi.kv.CompareAndSwap({ key: 'cas', value: enc('y'), expectedValue: enc('x') }, o, cb),
    );
    expect(good.succeeded).toBe(true);
    const absent = await call<{ succeeded: boolean }>((o, cb) =>
      leaderApi.kv.CompareAndSwap({ key: 'cas-new', value: enc('1'), expectAbsent: true }, o, cb),
    );
    expect(absent.succeeded).toBe(true);
    const again = await call<{ succeeded: boolean }>((o, cb) =>
      leaderApi.kv.CompareAndSwap({ key: 'cas-new', value: enc('2'), expectAbsent: true }, o, cb),
    );
    expect(again.succeeded).toBe(false);
  });

  it('keys attached to a lease vanish when it is revoked', async () => {
    const g = await call<{ id: number; ttlMs: number }>((o, cb) => followerApi.lease.Grant({ ttlMs: 5000 }, o, cb));
    expect(g.id).toBeGreaterThan(0);
    await call((o, cb) => followerApi.kv.Put({ key: 'leased', value: enc('v'), lease: g.id }, o, cb));
    const ttl = await call<{ ttlMs: number; keys: string[] }>((o, cb) => followerApi.lease.TimeToLive({ id: g.id, keys: true }, o, cb));
    expect(ttl.keys).toEqual(['leased']);
    expect(ttl.ttlMs).toBeGreaterThan(0);
    await call((o, cb) => followerApi.lease.Revoke({ id: g.id }, o, cb));
    const got = await call<{ found: boolean }>((o, cb) => leaderApi.kv.Get({ key: 'leased' }, o, cb));
    expect(got.found).toBe(false);
  });

  it('bad requests get the right code, say not-applied, and change nothing', async () => {
    const before = await call<{ revision: number }>((o, cb) => leaderApi.kv.Get({ key: 'a' }, o, cb));
    const cases: [string, grpc.status, (o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => unknown][] = [
      ['empty key', grpc.status.INVALID_ARGUMENT, (o, cb) => followerApi.kv.Put({ key: '', value: enc('v') }, o, cb)],
      ['oversized key', grpc.status.RESOURCE_EXHAUSTED, (o, cb) => followerApi.kv.Put({ key: 'k'.repeat(5000), value: enc('v') }, o, cb)],
      [
        'oversized value',
        grpc.status.RESOURCE_EXHAUSTED,
        (o, cb) => followerApi.kv.Put({ key: 'big', value: Buffer.alloc((1 << 20) + 1) }, o, cb),
      ],
      [
        'oversized request',
        grpc.status.RESOURCE_EXHAUSTED,
        (o, cb) => followerApi.kv.Put({ key: 'huge', value: Buffer.alloc(2 << 20) }, o, cb),
      ],
      ['unknown lease', grpc.status.NOT_FOUND, (o, cb) => followerApi.kv.Put({ key: 'x', value: enc('v'), lease: 987654 }, o, cb)],
      ['control character', grpc.status.INVALID_ARGUMENT, (o, cb) => followerApi.kv.Put({ key: 'a\u0001b', value: enc('v') }, o, cb)],
      [
        'reserved prefix',
        grpc.status.INVALID_ARGUMENT,
        (o, cb) => followerApi.kv.Put({ key: '_leaderd/election/x/1', value: enc('v') }, o, cb),
      ],
      [
        'cas without expectation',
        grpc.status.INVALID_ARGUMENT,
        (o, cb) => followerApi.kv.CompareAndSwap({ key: 'c', value: enc('v') }, o, cb),
      ],
      ['ttl too short', grpc.status.INVALID_ARGUMENT, (o, cb) => followerApi.lease.Grant({ ttlMs: 1 }, o, cb)],
      [
        'unknown compare target',
        grpc.status.INVALID_ARGUMENT,
        (o, cb) =>
          followerApi.kv.Txn(
            { compare: [{ key: 'a', target: 99 as never, result: 'EQUAL' }], success: [{ put: { key: 'a', value: enc('x') } }] },
            o,
            cb,
          ),
      ],
      [
        'unknown compare result',
        grpc.status.INVALID_ARGUMENT,
        (o, cb) =>
          leaderApi.kv.Txn(
            { compare: [{ key: 'a', target: 'VERSION', result: 42 as never }], success: [{ put: { key: 'a', value: enc('x') } }] },
            o,
            cb,
          ),
      ],
      [
        'too many txn ops',
        grpc.status.RESOURCE_EXHAUSTED,
        (o, cb) =>
          followerApi.kv.Txn({ success: Array.from({ length: 200 }, (_, i) => ({ put: { key: `t${i}`, value: enc('v') } })) }, o, cb),
      ],
    ];
    for (const [what, code, f] of cases) {
      const err = await call(f).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(err, what).not.toBeNull();
      expect(err!.code, `${what}: ${err!.details}`).toBe(code);
      if (code !== grpc.status.RESOURCE_EXHAUSTED || what !== 'oversized request') expect(outcomeOf(err), what).toBe('not-applied');
    }
    const after = await call<{ revision: number }>((o, cb) => leaderApi.kv.Get({ key: 'a' }, o, cb));
    expect(after.revision).toBe(before.revision);
  });

  it('a retried write with the same session and seq is applied once; a bare client_id is refused, not deduplicated', async () => {
    // Re-sending the same (session, seq) after UNAVAILABLE (a leader change on a loaded
    // machine) is exactly what sessions make safe.
    const again = async <T>(f: () => Promise<T>): Promise<T> => {
      for (let i = 0; ; i++) {
        try {
          return await f();
        } catch (err) {
          if ((err as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || i >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const { session } = await again(() => call<{ session: number }>((o, cb) => followerApi.kv.OpenSession({ ttlMs: 10_000 }, o, cb)));
    expect(session).toBeGreaterThan(0);
    const first = await again(() =>
      call<{ revision: number }>((o, cb) =>
        followerApi.kv.Put({ key: 'once', value: enc('1'), session, seq: 1, firstIncomplete: 1 }, o, cb),
      ),
    );
    const retry = await again(() =>
      call<{ revision: number }>((o, cb) => leaderApi.kv.Put({ key: 'once', value: enc('1'), session, seq: 1, firstIncomplete: 1 }, o, cb)),
    );
    expect(retry.revision).toBe(first.revision);
    const got = await call<{ version: number }>((o, cb) => leaderApi.kv.Get({ key: 'once' }, o, cb));
    expect(got.version).toBe(1);
    const legacy = await call((o, cb) => leaderApi.kv.Put({ key: 'once', value: enc('2'), clientId: 'c1', seq: 1 }, o, cb)).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(legacy?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(legacy?.details).toMatch(/client_id is no longer supported.*session/);
    expect(outcomeOf(legacy)).toBe('not-applied');
    expect((await call<{ version: number }>((o, cb) => leaderApi.kv.Get({ key: 'once' }, o, cb))).version).toBe(1);
  });

  it('watch delivers every change under a prefix from a start revision, in order', async () => {
    const start = (await call<{ revision: number }>((o, cb) => leaderApi.kv.Put({ key: 'w/0', value: enc('0') }, o, cb))).revision;
    for (let i = 1; i <= 5; i++) await call((o, cb) => followerApi.kv.Put({ key: `w/${i}`, value: enc(String(i)) }, o, cb));
    await call((o, cb) => followerApi.kv.Delete({ key: 'w/', prefix: true }, o, cb));
    const stream = followerApi.kv.Watch({ key: 'w/', prefix: true, startRevision: start });
    const seen: string[] = [];
    for await (const r of stream as AsyncIterable<{ revision: number; events: { type: string; kv: { key: string } }[] }>) {
      for (const e of r.events) seen.push(`${e.type} ${e.kv.key}`);
      if (seen.length >= 12) break;
    }
    stream.cancel();
    expect(seen).toEqual([...Array.from({ length: 6 }, (_, i) => `PUT w/${i}`), ...Array.from({ length: 6 }, (_, i) => `DELETE w/${i}`)]);
  });
});
