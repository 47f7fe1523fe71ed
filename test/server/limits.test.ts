// Every limit on an unbounded resource: watch streams per node and per connection,
// leases, waiting campaigners per name, in-flight keep-alives, unary calls in progress per
// connection, and the default deadline
// of Campaign/Lock. Each refusal is RESOURCE_EXHAUSTED with leaderd-error limit-exceeded
// (or DEADLINE_EXCEEDED for the deadline), names the flag, and changes no state.
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { CoordinationService } from '../../src/server/coordination.js';
import type { LeaseHandlers } from '../../src/gen/leaderd/v1/Lease.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPublicApi } from '../../src/transport/protos.js';
import { type ApiError, ConnectionGate, DEFAULT_LIMITS } from '../../src/server/limits.js';
import { ConfigError, resolveStartConfig } from '../../src/server/config.js';
import { startInprocCluster, type InprocCluster, type InprocNode } from './inproc-cluster.js';
import { waitFor } from '../e2e/cluster.js';

const LIMITS = {
  ...DEFAULT_LIMITS,
  maxWatches: 4,
  maxWatchesPerConnection: 3,
  maxLeases: 5,
  maxWaitersPerName: 2,
  maxKeepAliveInflight: 4,
  maxInflightPerConnection: 2,
  grantTimeoutMs: 800,
};

type Stubs = ReturnType<typeof stubsFor>;
function stubsFor(endpoint: string) {
  const api = loadPublicApi().leaderd.v1;
  // A local subchannel pool: each set of stubs gets its own TCP connection.
  const opts = { 'grpc.use_local_subchannel_pool': 1 };
  const creds = grpc.credentials.createInsecure();
  const kv = new api.KV(endpoint, creds, opts);
  const ch = kv.getChannel();
  return {
    kv,
    lease: new api.Lease(endpoint, creds, { ...opts, channelOverride: ch }),
    election: new api.Election(endpoint, creds, { ...opts, channelOverride: ch }),
    cluster: new api.Cluster(endpoint, creds, { ...opts, channelOverride: ch }),
    close: () => kv.close(),
  };
}

function unary<T>(f: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
  return new Promise((res, rej) => f((err, r) => (err ? rej(err) : res(r as T))));
}

/** Opens a server stream; resolves 'open' once the first message arrived, or the error that ended it. */
function openStream(call: grpc.ClientReadableStream<unknown>): Promise<'open' | grpc.ServiceError> {
  return new Promise((res) => {
    call.once('data', () => res('open'));
    call.once('error', (e: grpc.ServiceError) => res(e));
  });
}

const limitErr = (flag: string) =>
  expect.objectContaining({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringContaining(`--${flag}`) });

let cluster: InprocCluster;
let node: InprocNode;
const opened: Stubs[] = [];
const stubs = (): Stubs => {
  const s = stubsFor(node.client);
  opened.push(s);
  return s;
};

beforeAll(async () => {
  cluster = await startInprocCluster({ size: 1, limits: LIMITS });
  node = await cluster.leader();
}, 30_000);
afterAll(async () => {
  for (const s of opened) s.close();
  await cluster.close();
});

describe('limits on unbounded resources', () => {
  it('watch streams: per connection, then per node (Watch, Observe and WatchLeader alike); a closed stream frees its place', async () => {
    const a = stubs();
    const calls: grpc.ClientReadableStream<unknown>[] = [];
    const watch = (s: Stubs, key: string) => {
      // A put makes the first message arrive, so "open" means admitted and delivering.
      const c = s.kv.Watch({ key, prefix: false, startRevision: 0 }) as grpc.ClientReadableStream<unknown>;
      calls.push(c);
      return c;
    };
    // Observe and WatchLeader answer at once: their first message proves admission.
    const o1 = a.election.Observe({ name: 'e' }) as grpc.ClientReadableStream<unknown>;
    const l1 = a.cluster.WatchLeader({}) as grpc.ClientReadableStream<unknown>;
    calls.push(o1, l1);
    expect(await openStream(o1)).toBe('open');
    expect(await openStream(l1)).toBe('open');
    const w1 = watch(a, 'w1');
    const w1open = openStream(w1);
    await unary((cb) => a.kv.Put({ key: 'w1', value: Buffer.from('x'), lease: 0 }, cb));
    expect(await w1open).toBe('open');
    // A fourth stream on the same connection is refused.
    expect(await openStream(watch(a, 'w2'))).toEqual(limitErr('max-watches-per-connection'));
    // Another connection may open one more (4 on the node), then the node is full.
    const b = stubs();
    const b1 = b.election.Observe({ name: 'e' }) as grpc.ClientReadableStream<unknown>;
    calls.push(b1);
    expect(await openStream(b1)).toBe('open');
    const c = stubs();
    expect(await openStream(c.cluster.WatchLeader({}) as grpc.ClientReadableStream<unknown>)).toEqual(limitErr('max-watches'));
    // Closing one frees a place.
    b1.cancel();
    await waitFor('a place freed', async () => {
      const r = await openStream(c.election.Observe({ name: 'e' }) as grpc.ClientReadableStream<unknown>);
      return r === 'open' ? true : undefined;
    });
    for (const x of calls) x.cancel();
  });

  it('leases: Grant beyond --max-leases is refused and grants nothing; a revoke makes room', async () => {
    const s = stubs();
    const before = node.store.counts().leases;
    const ids: number[] = [];
    for (let i = before; i < LIMITS.maxLeases; i++)
      ids.push((await unary<{ id: number }>((cb) => s.lease.Grant({ ttlMs: 60_000 }, cb))).id);
    const rev = node.store.revision;
    const err = await unary((cb) => s.lease.Grant({ ttlMs: 60_000 }, cb)).catch((e: grpc.ServiceError) => e);
    expect(err).toEqual(limitErr('max-leases'));
    expect((err as grpc.ServiceError).metadata.get('leaderd-error')).toEqual(['limit-exceeded']);
    expect(node.store.counts().leases).toBe(LIMITS.maxLeases);
    expect(node.store.revision).toBe(rev);
    await unary((cb) => s.lease.Revoke({ id: ids[0]! }, cb));
    const again = await unary<{ id: number }>((cb) => s.lease.Grant({ ttlMs: 60_000 }, cb));
    await unary((cb) => s.lease.Revoke({ id: again.id }, cb));
    for (const id of ids.slice(1)) await unary((cb) => s.lease.Revoke({ id }, cb));
  });

  it('waiting campaigners: more than --max-waiters-per-name are refused at once, leaving no key; Campaign without a deadline ends at --grant-timeout-ms', async () => {
    const s = stubs();
    const lease = async () => (await unary<{ id: number }>((cb) => s.lease.Grant({ ttlMs: 60_000 }, cb))).id;
    const [l1, l2, l3, l4] = [await lease(), await lease(), await lease(), await lease()];
    const queue = () => node.store.range('_leaderd/election/busy/').kvs.length;
    const campaign = (id: number) =>
      unary((cb) => s.election.Campaign({ name: 'busy', lease: id, value: Buffer.from('v') }, cb)).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
    expect(await campaign(l1)).toBeNull(); // the holder
    const t0 = performance.now();
    const w2 = campaign(l2);
    await waitFor('the second campaigner waits', () => (queue() === 2 ? true : undefined));
    const w3 = campaign(l3);
    await waitFor('the third campaigner waits', () => (queue() === 3 ? true : undefined));
    const rev = node.store.revision;
    expect(await campaign(l4)).toEqual(limitErr('max-waiters-per-name'));
    expect(node.store.revision).toBe(rev);
    expect(queue()).toBe(3);
    // Neither waiter set a deadline: both end at the node's default, keeping their keys.
    for (const w of [await w2, await w3]) expect(w).toEqual(expect.objectContaining({ code: grpc.status.DEADLINE_EXCEEDED }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(LIMITS.grantTimeoutMs - 50);
    // Their places are free again: l4 now waits (and times out) instead of being refused.
    expect(await campaign(l4)).toEqual(expect.objectContaining({ code: grpc.status.DEADLINE_EXCEEDED }));
    for (const id of [l1, l2, l3, l4]) await unary((cb) => s.lease.Revoke({ id }, cb));
  });

  it('keep-alives: a stream whose answers the client does not read is cut off at --max-keepalive-inflight', async () => {
    // The handler of a real node's service, driven through a stand-in for the gRPC call
    // whose writes report a full buffer (a client that sends but never reads), so the
    // requests it keeps sending pile up deterministically.
    const s = stubs();
    const { id } = await unary<{ id: number }>((cb) => s.lease.Grant({ ttlMs: 60_000 }, cb));
    const svc = new CoordinationService(node.node, node.store, {
      electionTimeoutMs: 300,
      logger: pino({ level: 'silent' }),
      limits: LIMITS,
    });
    const handlers = (svc as unknown as { leaseHandlers(): LeaseHandlers }).leaseHandlers();
    const call = Object.assign(new EventEmitter(), {
      metadata: new grpc.Metadata(),
      getDeadline: () => Infinity,
      written: [] as unknown[],
      write(m: unknown) {
        this.written.push(m);
        return false;
      },
      end() {},
    });
    const errors: grpc.StatusObject[] = [];
    call.on('error', (e: grpc.StatusObject) => errors.push(e));
    (handlers.KeepAlive as unknown as (c: typeof call) => void)(call);
    for (let i = 0; i < 100 && errors.length === 0; i++) {
      call.emit('data', { id });
      await new Promise((r) => setImmediate(r));
    }
    expect(call.written).toHaveLength(1); // answered the first, then waited for 'drain'
    expect(errors).toEqual([limitErr('max-keepalive-inflight')]);
    svc.close();
    await unary((cb) => s.lease.Revoke({ id }, cb));
  });
});

describe('calls in progress per connection', () => {
  it('beyond --max-inflight-per-connection a call waits its turn, 16x that many waiting are refused and change nothing, another connection goes on', async () => {
    const flooder = stubs();
    const other = stubs();
    const put = (s: Stubs, key: string) => unary((cb) => s.kv.Put({ key, value: Buffer.from('v'), lease: 0 }, cb));
    const flood = Array.from({ length: 200 }, (_, i) => put(flooder, `gate/${i}`));
    const otherPut = put(other, 'gate/other');
    const results = await Promise.allSettled(flood);
    await otherPut;
    const refused = results.flatMap((r, i) => (r.status === 'rejected' ? [{ i, err: r.reason as grpc.ServiceError }] : []));
    // At most 2 in progress and 32 waiting when the burst arrived: most of 200 are refused.
    expect(refused.length).toBeGreaterThan(100);
    expect(refused.length).toBeLessThanOrEqual(200 - 34);
    for (const { err } of refused) expect(err).toEqual(limitErr('max-inflight-per-connection'));
    for (const [i, r] of results.entries()) expect(node.store.get(`gate/${i}`) !== null, `gate/${i}`).toBe(r.status === 'fulfilled');
    expect(node.store.get('gate/other')).not.toBeNull();
  });

  it('a waiting call gives up at its deadline and leaves the queue; the slots pass on in order', async () => {
    const gate = new ConnectionGate({ ...DEFAULT_LIMITS, maxInflightPerConnection: 1 });
    const first = await gate.enter('c', new AbortController().signal);
    const order: string[] = [];
    const late = new AbortController();
    const waiting = [
      gate.enter('c', late.signal).then(
        () => order.push('late'),
        (e: ApiError) => order.push(`late ${e.kind}`),
      ),
      gate.enter('c', new AbortController().signal).then((release) => {
        order.push('second');
        release();
      }),
    ];
    // Another connection is not held up.
    (await gate.enter('d', new AbortController().signal))();
    late.abort();
    await waiting[0];
    expect(order).toEqual(['late timeout']);
    expect(gate.running('c')).toBe(1);
    first();
    first(); // releasing twice frees one slot only
    await waiting[1];
    expect(order).toEqual(['late timeout', 'second']);
    expect(gate.running('c')).toBe(0);
  });
});

describe('limit flags', () => {
  it('each limit is a leaderd start setting with a default; a bad value is one clear error', () => {
    const base = resolveStartConfig({ id: 'n1' });
    expect(base.limits).toEqual(DEFAULT_LIMITS);
    const set = resolveStartConfig({ id: 'n1', 'max-watches': '7', 'max-leases': 9, 'grant-timeout-ms': '1500' });
    expect(set.limits).toMatchObject({
      maxWatches: 7,
      maxLeases: 9,
      grantTimeoutMs: 1500,
      maxWaitersPerName: DEFAULT_LIMITS.maxWaitersPerName,
    });
    expect(() => resolveStartConfig({ id: 'n1', 'max-keepalive-inflight': '0' })).toThrow(
      "--max-keepalive-inflight must be a positive whole number, got '0'",
    );
    expect(() => resolveStartConfig({ id: 'n1', 'max-watches-per-connection': 'lots' })).toThrow(ConfigError);
  });
});
