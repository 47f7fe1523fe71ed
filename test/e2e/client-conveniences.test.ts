// The conveniences users of the etcd3 package expect, against a real cluster:
// lock(name).do(fn) and withLock, `await using` on locks, leadership and leases, a
// client-side runWhileLeader around campaign, text/JSON values, and ClusterClient as
// the deprecated name of the one client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderdClient, LeadershipLostError, jsonOf, type LockHandle } from '../../src/client/leaderd-client.js';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { LocalCluster, waitFor } from './cluster.js';

let cluster: LocalCluster;
const clients: LeaderdClient[] = [];

function client(): LeaderdClient {
  const c = new LeaderdClient({ endpoints: cluster.endpoints(), timeoutMs: 10_000 });
  clients.push(c);
  return c;
}

/** Whether `name` is free: another client takes it within `ms` (and releases it again). */
async function lockIsFree(name: string, ms = 3000): Promise<boolean> {
  const probe = client();
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    const l = await probe.lock(name, { signal: ac.signal });
    await l.unlock();
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(t);
  }
}

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  cluster.startAll();
  await cluster.waitForLeader();
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await cluster?.stop();
});

describe('locks', () => {
  it('lock(name).do(fn) holds the lock while fn runs, returns its value and releases it', async () => {
    const c = client();
    let inside: LockHandle | null = null;
    const result = await c.lock('do-lock').do(async (lock) => {
      inside = lock;
      // Held: nobody else gets it meanwhile.
      expect(await lockIsFree('do-lock', 600)).toBe(false);
      return lock.token;
    });
    expect(result).toBe(inside!.token);
    expect(inside!.signal.aborted).toBe(true); // released
    expect(await lockIsFree('do-lock')).toBe(true);
  });

  it('withLock releases the lock when fn throws, and rethrows fn error', async () => {
    const c = client();
    await expect(
      c.withLock('throwing-lock', () => {
        throw new Error('job failed');
      }),
    ).rejects.toThrow('job failed');
    expect(await lockIsFree('throwing-lock')).toBe(true);
  });

  it('await client.lock(name) still gives the handle; await using releases it at the end of the scope', async () => {
    const c = client();
    {
      await using lock = await c.lock('scoped-lock');
      expect(lock.valid()).toBe(true);
      expect(await lockIsFree('scoped-lock', 600)).toBe(false);
    }
    expect(await lockIsFree('scoped-lock')).toBe(true);
  });

  it('do(fn) rejects when the lock was lost while fn ran, though fn succeeded', async () => {
    const c = client();
    await expect(
      c.lock('lost-lock').do(async (lock) => {
        await lock.lease.revoke(); // the lease goes: the lock is no longer held
        return 'done';
      }),
    ).rejects.toBeInstanceOf(LeadershipLostError);
  });
});

describe('await using on leases and leadership', () => {
  it('a lease is revoked at the end of its scope (its keys go with it)', async () => {
    const c = client();
    let id: number;
    {
      await using lease = await c.lease(5000);
      id = lease.id;
      await c.put('leased/key', 'v', { lease: lease.id });
    }
    expect((await c.get('leased/key')).kv).toBeNull();
    expect((await c.timeToLive(id)).ttlMs).toBeLessThanOrEqual(0);
  });

  it('a leadership resigns at the end of its scope, and an explicit resign before it is not repeated', async () => {
    const c = client();
    {
      await using leadership = await c.campaign('scoped-election', 'me');
      expect((await c.electionLeader('scoped-election')).key).toBe(leadership.key);
      await leadership.resign();
    }
    {
      await using leadership = await c.campaign('scoped-election', 'me again');
      expect((await c.electionLeader('scoped-election')).found).toBe(true);
      void leadership;
    }
    expect((await c.electionLeader('scoped-election')).found).toBe(false);
  });
});

describe('runWhileLeader (client side)', () => {
  it('runs work on one campaigner at a time; when its scope ends the other runs with a higher token', async () => {
    const runs: { who: string; token: number; start: number; end: number }[] = [];
    const stopA = new AbortController();
    const stopB = new AbortController();
    const worker = (who: string) => async (signal: AbortSignal, token: number) => {
      const start = performance.now();
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      runs.push({ who, token, start, end: performance.now() });
    };
    const observer = client();
    const a = client().runWhileLeader('rwl', 'a', worker('a'), { signal: stopA.signal });
    await waitFor('a leads', async () => ((await observer.electionLeader('rwl')).found ? true : undefined), 10_000);
    const b = client().runWhileLeader('rwl', 'b', worker('b'), { signal: stopB.signal });
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toEqual([]); // b waits while a leads
    stopA.abort(); // a resigns
    await a;
    await waitFor('b leads', async () => {
      const l = await observer.electionLeader('rwl');
      return l.found && l.value.toString() === 'b' ? true : undefined;
    });
    stopB.abort();
    await b;
    expect(runs.map((r) => r.who)).toEqual(['a', 'b']);
    expect(runs[1]!.token).toBeGreaterThan(runs[0]!.token);
    expect(runs[1]!.start).toBeGreaterThanOrEqual(runs[0]!.end);
  });
});

describe('values and the old client name', () => {
  it('putJson/getJson round-trip, getText reads text, a missing key is null, a non-JSON value names its key', async () => {
    const c = client();
    await c.putJson('cfg/app', { mode: 'active', replicas: 3 });
    expect(await c.getJson<{ mode: string; replicas: number }>('cfg/app')).toEqual({ mode: 'active', replicas: 3 });
    await c.put('cfg/plain', 'hello');
    expect(await c.getText('cfg/plain')).toBe('hello');
    expect(await c.getText('cfg/none')).toBeNull();
    expect(await c.getJson('cfg/none')).toBeNull();
    await expect(c.getJson('cfg/plain')).rejects.toThrow(/value of cfg\/plain is not JSON/);
    expect(jsonOf((await c.get('cfg/app')).kv)).toEqual({ mode: 'active', replicas: 3 });
    expect(() => c.putJson('cfg/x', undefined)).toThrow(/no JSON form/);
  });

  it('ClusterClient is LeaderdClient under its old constructor', async () => {
    const old = new ClusterClient([cluster.endpoint('n1')], { timeoutMs: 2000 });
    clients.push(old);
    expect(old).toBeInstanceOf(LeaderdClient);
    const l = await old.getLeader(cluster.endpoint('n1'));
    expect(l.endpoint).toBe(cluster.endpoint('n1'));
    expect(l.leaderId).toMatch(/^n[123]$/);
    expect((await old.listMembers()).length).toBe(3);
    expect(await old.health(cluster.endpoint('n1'))).toBe('SERVING');
  });
});
