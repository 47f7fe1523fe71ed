// LeaderdClient against real leaderd processes on loopback: the typed API end to end,
// a watch that survives a SIGKILLed leader without gap or duplicate, kept-alive leases,
// and election/lock failover when a holder dies without resigning.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LeaderdClient, LeaderdError, type LeadershipLostError, type Leadership } from '../../src/client/leaderd-client.js';
import { FencingVerifier } from '../../src/fencing/verifier.js';
import { LocalCluster, sleep, waitFor } from './cluster.js';

const clients: LeaderdClient[] = [];
function clientOf(c: LocalCluster, endpoints = c.endpoints(), opts: { timeoutMs?: number } = {}): LeaderdClient {
  const cl = new LeaderdClient({ endpoints, ...opts });
  clients.push(cl);
  return cl;
}
const closeClients = () => {
  for (const c of clients.splice(0)) c.close();
};

describe('LeaderdClient on a 3-node cluster', () => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await LocalCluster.create({ nodes: 3 });
    cluster.startAll();
    await cluster.waitForLeader();
  });
  afterEach(closeClients);
  afterAll(async () => {
    closeClients();
    await cluster?.stop();
  });

  it('puts, gets, ranges and deletes, with revisions increasing', async () => {
    const c = clientOf(cluster);
    const a = await c.put('kv/a', 'one');
    const b = await c.put('kv/b', new Uint8Array([1, 2, 3]));
    expect(b.revision).toBeGreaterThan(a.revision);
    const got = await c.get('kv/a');
    expect(got.kv?.value.toString()).toBe('one');
    expect(got.kv).toMatchObject({ key: 'kv/a', createRevision: a.revision, modRevision: a.revision, version: 1, lease: 0 });
    expect(got.revision).toBeGreaterThanOrEqual(b.revision);
    expect((await c.get('kv/missing')).kv).toBeNull();
    const page1 = await c.range('kv/', { limit: 1 });
    expect(page1.kvs.map((k) => k.key)).toEqual(['kv/a']);
    expect(page1.more).toBe(true);
    const page2 = await c.range('kv/', { startAfter: 'kv/a' });
    expect(page2.kvs.map((k) => [k.key, [...k.value]])).toEqual([['kv/b', [1, 2, 3]]]);
    const del = await c.delete('kv/', { prefix: true });
    expect(del.deleted).toBe(2);
    expect((await c.range('kv/')).kvs).toEqual([]);
  });

  it('compare-and-swap by value, absence and mod revision; txn with compares and reads', async () => {
    const c = clientOf(cluster);
    const created = await c.compareAndSwap('cas/k', 'v1', { absent: true });
    expect(created.succeeded).toBe(true);
    const refused = await c.compareAndSwap('cas/k', 'v2', { absent: true });
    expect(refused.succeeded).toBe(false);
    expect(refused.current?.value.toString()).toBe('v1');
    expect((await c.compareAndSwap('cas/k', 'v2', { value: 'v1' })).succeeded).toBe(true);
    const cur = await c.get('cas/k');
    expect((await c.compareAndSwap('cas/k', 'v3', { modRevision: cur.kv!.modRevision - 1 })).succeeded).toBe(false);
    expect((await c.compareAndSwap('cas/k', 'v3', { modRevision: cur.kv!.modRevision })).succeeded).toBe(true);

    const t = await c.txn({
      compare: [{ key: 'cas/k', target: 'value', op: '=', operand: 'v3' }],
      success: [
        { type: 'put', key: 'cas/other', value: 'x' },
        { type: 'get', key: 'cas/k' },
      ],
      failure: [{ type: 'delete', key: 'cas/k' }],
    });
    expect(t.succeeded).toBe(true);
    expect(t.responses[0]).toMatchObject({ type: 'put', revision: t.revision });
    const r1 = t.responses[1];
    expect(r1?.type === 'get' && r1.kv?.value.toString()).toBe('v3');
    const f = await c.txn({
      compare: [{ key: 'cas/k', target: 'version', op: '>', operand: 100 }],
      success: [],
      failure: [{ type: 'delete', key: 'cas/', prefix: true }],
    });
    expect(f.succeeded).toBe(false);
    expect(f.responses[0]).toMatchObject({ type: 'delete', deleted: 2 });
  });

  it('throws typed, non-retryable errors for invalid requests without retrying them', async () => {
    const c = clientOf(cluster);
    const err = await c.grantLease(10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaderdError);
    expect(err).toMatchObject({ kind: 'invalid-argument', retryable: false });
  });

  it('a kept-alive lease keeps its key for several TTLs; after close() without revoking, the key goes once the TTL passes', async () => {
    const owner = clientOf(cluster);
    const reader = clientOf(cluster);
    const lease = await owner.lease(600);
    await owner.put('leased/k', 'v', { lease: lease.id });
    await sleep(2000);
    expect(lease.valid()).toBe(true);
    expect((await reader.get('leased/k')).kv?.lease).toBe(lease.id);
    const info = await reader.timeToLive(lease.id, { keys: true });
    expect(info.keys).toEqual(['leased/k']);
    expect(info.grantedTtlMs).toBe(600);
    owner.close();
    expect(lease.signal.aborted).toBe(true);
    await waitFor('the leased key to expire', async () => ((await reader.get('leased/k')).kv === null ? true : undefined), 5000, 50);
  });

  it('close() ends every stream, keep-alive, timer and connection it opened', async () => {
    const count = () => {
      const m = new Map<string, number>();
      for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
      return m;
    };
    const before = count();
    const c = clientOf(cluster);
    const stop = new AbortController();
    const drain = async (it: AsyncIterable<unknown>) => {
      for await (const _ of it) void _;
    };
    const streams = [
      drain(c.watch('leak/', { prefix: true, signal: stop.signal })),
      drain(c.watchLeader(stop.signal)),
      drain(c.observe('leak', stop.signal)),
    ];
    await c.lease(1000);
    await c.campaign('leak', 'x', { ttlMs: 1000 });
    await c.put('leak/k', 'v');
    await sleep(300);
    expect(count().get('Timeout') ?? 0).toBeGreaterThan(before.get('Timeout') ?? 0);
    c.close();
    // Every iterator ends by itself (no signal needed) once the client is closed.
    await Promise.all(streams);
    await waitFor(
      'the resources opened by the client to be released',
      () => {
        const now = count();
        for (const [k, n] of now) if (n > (before.get(k) ?? 0)) return undefined;
        return true;
      },
      5000,
      50,
    );
  });

  it('locks: the second holder waits for unlock and gets a higher token; a fencing verifier then refuses the first', async () => {
    const a = clientOf(cluster);
    const b = clientOf(cluster);
    const verifier = new FencingVerifier();
    const la = await a.lock('res', { ttlMs: 2000 });
    expect(verifier.check('res', la.token)).toEqual({ ok: true });
    let bHeld = false;
    const lbP = b.lock('res', { ttlMs: 2000 }).then((h) => ((bHeld = true), h));
    await sleep(500);
    expect(bHeld).toBe(false);
    await la.unlock();
    expect(la.signal.aborted).toBe(true);
    const lb = await lbP;
    expect(lb.token).toBeGreaterThan(la.token);
    expect(verifier.check('res', lb.token)).toEqual({ ok: true });
    expect(verifier.check('res', la.token)).toEqual({ ok: false, highest: BigInt(lb.token) });
    await lb.unlock();
  });
});

describe('LeaderdClient across failures', () => {
  let cluster: LocalCluster | null = null;
  afterEach(async () => {
    closeClients();
    await cluster?.stop();
    cluster = null;
  });

  it('a watch continues across a SIGKILLed leader with every acknowledged write exactly once, in revision order', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const leader = await c.waitForLeader();
    // Leader first: the watch stream starts on the node that will be killed.
    const order = [leader.leaderId, ...c.specs.map((s) => s.id).filter((id) => id !== leader.leaderId)];
    const watcher = clientOf(c, c.endpoints(order));
    const writer = clientOf(c, c.endpoints(order), { timeoutMs: 10_000 });
    const stop = new AbortController();
    const seen: { revision: number; key: string }[] = [];
    const watching = (async () => {
      for await (const batch of watcher.watch('w/', { prefix: true, signal: stop.signal })) {
        for (const e of batch.events) seen.push({ revision: batch.revision, key: e.kv.key });
      }
    })();
    await sleep(200);

    const written: { revision: number; key: string }[] = [];
    for (let i = 0; i < 60; i++) {
      if (i === 20) await c.kill(leader.leaderId, 'SIGKILL');
      const key = `w/${String(i).padStart(3, '0')}`;
      written.push({ revision: (await writer.put(key, String(i))).revision, key });
    }
    await waitFor('the watch to deliver the last write', () => (seen.length >= written.length ? true : undefined), 15_000, 20);
    await sleep(300); // anything extra (a duplicate) would show up now
    stop.abort();
    await watching;
    expect(seen).toEqual(written);
    const after = await c.waitForLeader({ among: c.running() });
    expect(after.leaderId).not.toBe(leader.leaderId);
  });

  it('a waiting candidate is elected within TTL + election timeout after the holder dies without resigning', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    await c.waitForLeader();
    const holder = clientOf(c);
    const candidate = clientOf(c);
    const observer = clientOf(c);
    const ttlMs = 1000;
    const first = await holder.campaign('svc', 'holder', { ttlMs });
    expect(first.valid()).toBe(true);
    expect(first.key.startsWith('_leaderd/election/svc/')).toBe(true);
    expect((await observer.electionLeader('svc')).value.toString()).toBe('holder');
    expect(await first.proclaim('holder-2')).toBeGreaterThan(0);

    let second: Leadership | null = null;
    const secondP = candidate.campaign('svc', 'candidate', { ttlMs }).then((l) => (second = l));
    await sleep(1500); // the candidate keeps waiting while the holder keeps its lease alive
    expect(second).toBeNull();
    expect(first.valid()).toBe(true);

    const died = performance.now();
    holder.close();
    expect(first.signal.aborted).toBe(true);
    expect((first.signal.reason as LeadershipLostError).reason).toBe('lease-lost');
    const l2 = await secondP;
    const elapsed = performance.now() - died;
    console.log(`[e2e] campaign failover: candidate elected ${elapsed.toFixed(0)} ms after the holder's client closed (TTL ${ttlMs} ms)`);
    // TTL + election timeout (max 600 ms by default) + slack for process scheduling.
    expect(elapsed).toBeLessThan(ttlMs + 600 + 1500);
    expect(l2.token).toBeGreaterThan(first.token);
    expect(l2.valid()).toBe(true);
    const seen = await observer.electionLeader('svc');
    expect(seen).toMatchObject({ found: true, key: l2.key, token: l2.token });

    await l2.resign();
    expect((l2.signal.reason as LeadershipLostError).reason).toBe('resigned');
    await waitFor('the election to be empty', async () => ((await observer.electionLeader('svc')).found ? undefined : true), 5000, 50);
  });

  it('a holder keeps its leadership through a leader SIGKILL (its lease survives the failover) and a waiting campaign is elected after it resigns', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const leader = await c.waitForLeader();
    const holder = clientOf(c);
    const candidate = clientOf(c);
    const first = await holder.campaign('svc2', 'h', { ttlMs: 3000 });
    let second: Leadership | null = null;
    const secondP = candidate.campaign('svc2', 'c', { ttlMs: 3000 }).then((l) => (second = l));
    await sleep(300);
    await c.kill(leader.leaderId, 'SIGKILL');
    await c.waitForLeader({ among: c.running(), not: leader.leaderId });
    await sleep(500);
    expect(second).toBeNull();
    // The holder's lease survived the failover (a new leader extends leases).
    expect(first.valid()).toBe(true);
    expect(first.signal.aborted).toBe(false);
    await first.resign();
    const l2 = await secondP;
    expect(l2.token).toBeGreaterThan(first.token);
    expect(l2.signal.aborted).toBe(false);
  });
});
