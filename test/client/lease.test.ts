// LeaseHandle validity against a real gRPC Lease service whose answers the test releases
// one by one, with the client's monotonic clock injected.
import { afterEach, describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { LeaderdClient, LeaseLostError } from '../../src/client/leaderd-client.js';
import { driftMarginMs, LeaseValidity } from '../../src/client/lease-validity.js';
import { startFakeNode, type FakeNode } from './fake-server.js';

type KaCall = grpc.ServerDuplexStream<{ id: number }, { id: number; ttlMs: number }>;

/** A Lease service that queues each keep-alive until the test answers it. */
async function leaseNode(opts: { ttlMs: number; endStreams?: boolean }) {
  const pending: { id: number; answer: (ttlMs: number) => void }[] = [];
  const waiters: (() => void)[] = [];
  let received = 0;
  let streams = 0;
  const node = await startFakeNode({
    Lease: {
      Grant: (_c: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { id: 42, ttlMs: opts.ttlMs }),
      Revoke: (_c: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { revision: 1 }),
      KeepAlive: (call: KaCall) => {
        streams++;
        if (opts.endStreams) {
          call.end();
          return;
        }
        call.on('data', (req: { id: number }) => {
          received++;
          pending.push({ id: req.id, answer: (ttlMs) => call.write({ id: req.id, ttlMs }) });
          for (const w of waiters.splice(0)) w();
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    },
  });
  return {
    node,
    received: () => received,
    streams: () => streams,
    /** The next keep-alive request not yet answered (waits up to 3 s for it). */
    async next() {
      const deadline = Date.now() + 3000;
      while (pending.length === 0) {
        if (Date.now() > deadline) throw new Error('no keep-alive arrived within 3 s');
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return pending.shift()!;
    },
  };
}

async function until(what: string, f: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const nodes: FakeNode[] = [];
const clients: LeaderdClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const n of nodes.splice(0)) await n.stop();
});

function clientFor(endpoints: string[], clock: { t: number }): LeaderdClient {
  const c = new LeaderdClient({ endpoints, now: () => clock.t, retry: { backoffMs: 5, maxBackoffMs: 20 } });
  clients.push(c);
  return c;
}

/** The margin given up for a 600 ms TTL: 1% for clock drift + 20 ms for a late timer = 26 ms. */
const M = driftMarginMs(600);

describe('LeaseValidity', () => {
  it('states its drift margin: 1% of the TTL plus 20 ms', () => {
    expect(driftMarginMs(600)).toBe(26);
    expect(driftMarginMs(5000)).toBe(70);
    expect(driftMarginMs(10_000)).toBe(120);
  });

  it('extends from the send time of the acknowledged request minus the margin, never shortens, and ignores answers no request waits for', () => {
    const v = new LeaseValidity(1000, 600);
    expect(v.validUntil).toBe(1600 - M);
    v.sent(1100);
    v.sent(1300);
    expect(v.acked(600)).toBe(true);
    expect(v.validUntil).toBe(1700 - M);
    expect(v.acked(100)).toBe(true); // 1300 + 100 < 1700: kept
    expect(v.validUntil).toBe(1700 - M);
    expect(v.acked(600)).toBe(false);
    v.sent(1500);
    v.streamReset();
    expect(v.acked(600)).toBe(false);
    expect(v.valid(1699 - M)).toBe(true);
    expect(v.valid(1700 - M)).toBe(false);
    expect(v.acked(0)).toBe(false);
  });
});

describe('LeaseHandle', () => {
  it('counts the TTL from when the acknowledged keep-alive was sent, not when its answer arrived, and aborts once that passes', async () => {
    const clock = { t: 1000 };
    const srv = await leaseNode({ ttlMs: 600 });
    nodes.push(srv.node);
    const lease = await clientFor([srv.node.endpoint], clock).lease(600);
    expect(lease.id).toBe(42);
    expect(lease.validUntil).toBe(1600 - M);

    const first = await srv.next(); // sent at t=1000
    clock.t = 1500; // the answer takes "500 ms"
    first.answer(600);
    const second = await srv.next(); // sent after the first answer was processed, at t=1500
    expect(lease.validUntil).toBe(1600 - M); // 1000 + 600, not 1500 + 600
    clock.t = 1550;
    second.answer(600);
    await until('the second answer', () => lease.validUntil === 2100 - M);

    clock.t = 2099 - M;
    expect(lease.valid()).toBe(true);
    expect(lease.signal.aborted).toBe(false);
    clock.t = 2100 - M;
    // Synchronously, as a process resumed from SIGSTOP would ask before any timer ran.
    expect(lease.valid()).toBe(false);
    expect(lease.signal.aborted).toBe(true);
    const reason = lease.signal.reason as LeaseLostError;
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect(reason).toMatchObject({ reason: 'expired', validUntil: 2100 - M, leaseId: 42 });
  });

  it('aborts on a timer set for the deadline itself, not on the next tick of a poll (scenario 6)', async () => {
    // Real monotonic clock. A TTL of 10 s: polling every TTL/10, as before, would notice
    // the expiry up to a second late; the deadline timer fires at validUntil.
    const srv = await leaseNode({ ttlMs: 10_000 });
    nodes.push(srv.node);
    const c = new LeaderdClient({ endpoints: [srv.node.endpoint], retry: { backoffMs: 5, maxBackoffMs: 20 } });
    clients.push(c);
    const lease = await c.lease(10_000);
    await srv.next(); // never answered: nothing extends it
    const firedAt = await new Promise<number>((resolve) =>
      lease.signal.addEventListener('abort', () => resolve(performance.now()), { once: true }),
    );
    const late = firedAt - lease.validUntil;
    expect(late).toBeGreaterThanOrEqual(0);
    // A timer on a loaded machine may run somewhat late, never a poll period late.
    expect(late).toBeLessThan(150);
    expect((lease.signal.reason as LeaseLostError).reason).toBe('expired');
  }, 30_000);

  it('aborts when a keep-alive answer says the lease is gone (ttl 0)', async () => {
    const clock = { t: 0 };
    const srv = await leaseNode({ ttlMs: 600 });
    nodes.push(srv.node);
    const lease = await clientFor([srv.node.endpoint], clock).lease(600);
    (await srv.next()).answer(0);
    await until('the signal to abort', () => lease.signal.aborted);
    expect((lease.signal.reason as LeaseLostError).reason).toBe('gone');
    expect(lease.valid()).toBe(false);
  });

  it('re-establishes the keep-alive stream on another endpoint when its stream ends', async () => {
    const clock = { t: 0 };
    const broken = await leaseNode({ ttlMs: 600, endStreams: true });
    const good = await leaseNode({ ttlMs: 600 });
    nodes.push(broken.node, good.node);
    // Round robin: the session opens on the broken node, the Grant on the good one, the first stream on the broken one.
    const lease = await clientFor([broken.node.endpoint, good.node.endpoint], clock).lease(600);
    clock.t = 100;
    // The first stream may have gone to either node (sent at t=0); every later request, on
    // the good node, is sent at t=100.
    for (let i = 0; i < 2 && lease.validUntil < 700 - M; i++) {
      (await good.next()).answer(600);
      await until('the answer', () => good.received() > i + 1 || lease.validUntil === 700 - M).catch(() => {});
    }
    await until('an answer to a request sent at t=100', () => lease.validUntil === 700 - M);
    clock.t = 650 - M;
    expect(lease.valid()).toBe(true);
    // The stream did start on the broken node and moved.
    expect(broken.streams()).toBeGreaterThanOrEqual(1);
  });

  it('revoke() aborts the signal before the server is asked, and close() aborts every lease with reason closed', async () => {
    const clock = { t: 0 };
    const srv = await leaseNode({ ttlMs: 600 });
    nodes.push(srv.node);
    const c = clientFor([srv.node.endpoint], clock);
    const a = await c.lease(600);
    const b = await c.lease(600);
    const revoking = a.revoke();
    expect(a.signal.aborted).toBe(true);
    expect((a.signal.reason as LeaseLostError).reason).toBe('revoked');
    await revoking;
    c.close();
    expect((b.signal.reason as LeaseLostError).reason).toBe('closed');
  });
});
