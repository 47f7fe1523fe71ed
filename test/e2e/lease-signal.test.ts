// Issue 7, scenario 6: the client's lease signal fires before the server can hand the
// lease's lock to anyone else. A lock holder reaches the cluster only through user-space
// TCP proxies (each node advertises its proxy as its client address, so the holder's
// leader discovery leads it there too); freezing them silences its keep-alives (no error,
// no reset: a stalled path). The holder's signal must fire before a second client,
// talking to the leader directly, is granted the lock.
// Times are compared on one monotonic clock (this process's performance.now()), and
// against the moment the leader decided the expiry (its log line, same machine); the
// test waits for events, never for a fixed time.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderdClient, type LockHandle } from '../../src/client/leaderd-client.js';
import { LocalCluster, waitFor } from './cluster.js';
import { TcpProxy } from './tcp-proxy.js';
import { api, call, type Api } from './api.js';

let cluster: LocalCluster;
let leaderId: string;
const proxies: TcpProxy[] = [];
const clients: LeaderdClient[] = [];
let direct: Api | undefined;

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  for (const s of cluster.specs) {
    const proxy = await TcpProxy.start(cluster.endpoint(s.id));
    proxies.push(proxy);
    cluster.start(s.id, { '--advertise-client': proxy.endpoint });
  }
  leaderId = (await cluster.waitForLeader()).leaderId;
  direct = api(cluster.endpoint(leaderId));
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  direct?.close();
  for (const p of proxies.splice(0)) await p.close();
  await cluster?.stop();
});

/** `p`, or a rejection after `ms` naming `what` (every wait in this test is bounded). */
function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

/** Resolves with this process's monotonic and wall-clock times when `signal` aborts. */
function abortTime(signal: AbortSignal): Promise<{ mono: number; wall: number }> {
  return new Promise((resolve) => {
    const at = () => resolve({ mono: performance.now(), wall: Date.now() });
    if (signal.aborted) at();
    else signal.addEventListener('abort', at, { once: true });
  });
}

/** Epoch ms at which some node's log says it decided that `lease` expired. */
function expiryDecidedAt(lease: number): number | undefined {
  for (const s of cluster.specs) {
    for (const line of readFileSync(s.logPath, 'utf8').split('\n')) {
      if (!line.includes('"lease expired"') && !line.includes('lease expired')) continue;
      try {
        const o = JSON.parse(line) as { lease?: number; time?: number; msg?: string };
        if (o.msg === 'lease expired' && o.lease === lease && typeof o.time === 'number') return o.time;
      } catch {
        // not a JSON line
      }
    }
  }
  return undefined;
}

describe('lease signal on time (scenario 6)', () => {
  it('a holder whose connection freezes sees its signal fire before the lock is granted to another client', async () => {
    // Long enough that a signal noticed by polling (every TTL/10, as before) would come
    // hundreds of ms late, while the margin given up (driftMarginMs: 120 ms) stays small.
    const ttlMs = 10_000;
    const holder = new LeaderdClient({ endpoints: proxies.map((p) => p.endpoint), clientId: 'holder' });
    clients.push(holder);
    const held: LockHandle = await holder.lock('frozen', { ttlMs });
    const lost = abortTime(held.signal);
    // The second client talks to the leader directly, with a lease long enough to outlast the test.
    const { id: otherLease } = await call<{ id: number }>((o, cb) => direct!.lease.Grant({ ttlMs: 60_000 }, o, cb));
    let grantedAt: number | undefined;
    const waiting = call<{ key: string; fencingToken: number }>(
      (o, cb) => direct!.lock.Lock({ name: 'frozen', lease: otherLease }, o, cb),
      30_000,
    ).then((r) => {
      grantedAt = performance.now();
      return r;
    });
    // The second client is queued behind the holder before the path freezes.
    await waitFor('the second lock request to be queued', async () => {
      const r = await call<{ kvs: unknown[] }>((o, cb) => direct!.kv.Range({ prefix: '_leaderd/lock/frozen/' }, o, cb));
      return r.kvs.length === 2 ? true : undefined;
    });
    expect(held.valid()).toBe(true);
    for (const p of proxies) p.freeze();
    const frozeAt = performance.now();

    const signalled = await within('the holder signal', 3 * ttlMs, lost);
    const second = await within('the grant to the second client', 3 * ttlMs, waiting);
    expect(grantedAt).toBeDefined();
    expect(second.fencingToken).toBeGreaterThan(held.token);
    // The holder stopped before the other client was granted...
    expect(signalled.mono).toBeLessThan(grantedAt!);
    // ...and before the leader even decided that its lease expired (which precedes the grant).
    const decided = await waitFor('the expiry decision in a node log', () => expiryDecidedAt(held.lease.id));
    expect(signalled.wall).toBeLessThanOrEqual(decided);
    // It did not give up long before it had to: within a TTL of the freeze.
    expect(signalled.mono - frozeAt).toBeLessThan(ttlMs);
    expect((held.signal.reason as Error).name).toBe('LeadershipLostError');
    console.log(
      `[e2e] scenario 6: holder signal ${(signalled.mono - frozeAt).toFixed(0)} ms after the freeze, ` +
        `${(grantedAt! - signalled.mono).toFixed(0)} ms before the second grant, ${decided - signalled.wall} ms before the expiry decision; ` +
        `fired ${(signalled.mono - (held.signal.reason as { cause: { validUntil: number } }).cause.validUntil).toFixed(1)} ms after validUntil`,
    );
    for (const p of proxies) p.thaw();
    await call((o, cb) => direct!.lock.Unlock({ key: second.key }, o, cb));
  }, 90_000);
});
