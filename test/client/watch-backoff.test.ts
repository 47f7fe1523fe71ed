// A leadership watch against a cluster that is down retries with a backoff; each wait must
// remove its abort listener when it ends, or a long outage piles them up on the caller's
// signal (Node warns with MaxListenersExceededWarning after 10).
import { afterEach, describe, expect, it } from 'vitest';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:net';
import { sleep } from '../../src/client/backoff.js';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { LeaderdClient, type LeaderdError } from '../../src/client/leaderd-client.js';

async function deadEndpoint(): Promise<string> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(`127.0.0.1:${port}`));
    });
  });
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('backoff waits leave no abort listener behind', () => {
  it('sleep() removes its listener when the time is up', async () => {
    const ac = new AbortController();
    for (let i = 0; i < 20; i++) await sleep(1, ac.signal);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('ClusterClient.watchLeader against a dead endpoint keeps at most one listener on the caller signal', async () => {
    const c = new ClusterClient([await deadEndpoint()], { timeoutMs: 200 });
    closers.push(() => c.close());
    const ac = new AbortController();
    closers.push(() => ac.abort());
    const it = c.watchLeader(ac.signal)[Symbol.asyncIterator]();
    const done = it.next();
    // Backoffs of 100, 200, 400 and 800 ms: at least four failed attempts in 2 s.
    await new Promise((r) => setTimeout(r, 2000));
    expect(getEventListeners(ac.signal, 'abort').length).toBeLessThanOrEqual(1);
    ac.abort();
    expect((await done).done).toBe(true);
  });

  it('LeaderdClient.watchLeader reports each failed attempt to onRetry and keeps no listener per attempt', async () => {
    const dead = await deadEndpoint();
    const c = new LeaderdClient({ endpoints: [dead], timeoutMs: 200, retry: { backoffMs: 10, maxBackoffMs: 20 } });
    closers.push(() => c.close());
    const ac = new AbortController();
    closers.push(() => ac.abort());
    const retries: LeaderdError[] = [];
    const it = c.watchLeader(ac.signal, { onRetry: (e) => retries.push(e) })[Symbol.asyncIterator]();
    const done = it.next();
    await new Promise((r) => setTimeout(r, 1000));
    expect(retries.length).toBeGreaterThanOrEqual(10);
    expect(retries.every((e) => e.kind === 'unavailable' && e.endpoint === dead)).toBe(true);
    expect(getEventListeners(ac.signal, 'abort').length).toBeLessThanOrEqual(1);
    ac.abort();
    expect((await done).done).toBe(true);
  });
});

describe('concurrent calls', () => {
  it('fifty calls in flight against a dead endpoint raise no MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    closers.push(() => process.off('warning', onWarning));
    const c = new LeaderdClient({ endpoints: [await deadEndpoint()], timeoutMs: 300, retry: { backoffMs: 10, maxBackoffMs: 20 } });
    closers.push(() => c.close());
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => c.get(`k${i}`)));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });
});
