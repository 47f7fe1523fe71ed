import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { classify, toLeaderdError, type WriteOutcome } from '../../src/client/errors.js';
import { LeaderdClient, LeaderdError } from '../../src/client/leaderd-client.js';
import { failure, startFakeNode, type FakeNode } from './fake-server.js';
import { ApiError, toStatus } from '../../src/api/errors.js';

const S = grpc.status;

describe('retry classification', () => {
  // [code, outcome, leaderd-error kind, idempotent] -> [kind, retried?]
  const table: [grpc.status, WriteOutcome | undefined, string | undefined, boolean, string, boolean][] = [
    [S.UNAVAILABLE, undefined, undefined, true, 'unavailable', true],
    [S.UNAVAILABLE, 'not-applied', undefined, true, 'unavailable', true],
    [S.UNAVAILABLE, 'unknown', undefined, true, 'unavailable', true],
    // Not exactly-once protected: an unknown outcome must not be re-sent, a not-applied one may.
    [S.UNAVAILABLE, 'unknown', undefined, false, 'unavailable', false],
    [S.UNAVAILABLE, 'not-applied', undefined, false, 'unavailable', true],
    [S.DEADLINE_EXCEEDED, 'unknown', undefined, true, 'deadline', true],
    [S.DEADLINE_EXCEEDED, 'unknown', undefined, false, 'deadline', false],
    // What the server sends for not-leader (the error contract): UNAVAILABLE + label.
    [S.UNAVAILABLE, 'not-applied', 'not-leader', true, 'not-leader', true],
    [S.UNAVAILABLE, 'unknown', 'not-leader', true, 'not-leader', true],
    [S.UNAVAILABLE, 'unknown', 'not-leader', false, 'not-leader', false],
    [S.FAILED_PRECONDITION, 'not-applied', 'session-expired', true, 'session-expired', false],
    [S.FAILED_PRECONDITION, 'not-applied', undefined, true, 'failed-precondition', false],
    [S.FAILED_PRECONDITION, 'not-applied', 'lease-not-found', true, 'failed-precondition', false],
    [S.INVALID_ARGUMENT, 'not-applied', undefined, true, 'invalid-argument', false],
    [S.RESOURCE_EXHAUSTED, 'not-applied', undefined, true, 'resource-exhausted', false],
    [S.NOT_FOUND, undefined, undefined, true, 'not-found', false],
    [S.OUT_OF_RANGE, undefined, undefined, true, 'out-of-range', false],
    [S.CANCELLED, undefined, undefined, true, 'cancelled', false],
    [S.INTERNAL, 'unknown', undefined, true, 'internal', false],
    [S.UNKNOWN, undefined, undefined, true, 'internal', false],
  ];
  it.each(table)('code %s outcome %s kind %s idempotent %s -> %s, retried %s', (code, outcome, kind, idempotent, expectKind, retried) => {
    const c = classify(code, outcome, kind, idempotent);
    expect(c.kind).toBe(expectKind);
    expect(c.retryable).toBe(retried);
  });

  it('reads the outcome and error kind from trailing metadata, and assumes unknown for a write without one', () => {
    const st = toStatus(new ApiError('not-leader', 'whatever the text says', 'not-applied'));
    const e = toLeaderdError({ code: st.code, details: st.details, metadata: st.metadata }, true, false);
    expect(e).toMatchObject({ kind: 'not-leader', outcome: 'not-applied', retryable: true, code: S.UNAVAILABLE });
    const lost = toLeaderdError({ code: S.UNAVAILABLE, details: 'Connection dropped', metadata: new grpc.Metadata() }, true, false);
    expect(lost).toMatchObject({ kind: 'unavailable', outcome: 'unknown', retryable: false });
    // The channel had no connection: the request never left, so even a non-idempotent write may go elsewhere.
    const unsent = toLeaderdError(
      {
        code: S.UNAVAILABLE,
        details: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1',
        metadata: new grpc.Metadata(),
      },
      true,
      false,
    );
    expect(unsent).toMatchObject({ kind: 'unavailable', outcome: 'not-applied', retryable: true });
  });
});

type PutReq = { key: string; session: number; seq: number; firstIncomplete: number };

describe('LeaderdClient retries against real gRPC servers', () => {
  const nodes: FakeNode[] = [];
  const clients: LeaderdClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const n of nodes.splice(0)) await n.stop();
  });

  let sessionsOpened = 0;
  async function node(kv: grpc.UntypedServiceImplementation, leaderAddress = () => ''): Promise<FakeNode> {
    const n = await startFakeNode({
      KV: {
        OpenSession: (_c: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { session: 100 + ++sessionsOpened, ttlMs: 60_000 }),
        ...kv,
      },
      Cluster: {
        GetLeader: (_c: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { leaderId: 'x', leaderAddress: leaderAddress(), term: 1 }),
      },
    });
    nodes.push(n);
    return n;
  }
  function client(endpoints: string[]): LeaderdClient {
    const c = new LeaderdClient({ endpoints, timeoutMs: 3000, retry: { backoffMs: 5, maxBackoffMs: 20 } });
    clients.push(c);
    return c;
  }

  it('re-sends a write whose outcome was unknown with the same session and seq, and a new write with the next seq', async () => {
    const seen: PutReq[] = [];
    const n = await node({
      Put: (call: grpc.ServerUnaryCall<PutReq, object>, cb: grpc.sendUnaryData<object>) => {
        const { key, session, seq, firstIncomplete } = call.request;
        seen.push({ key, session, seq, firstIncomplete });
        if (seen.length === 1) cb(failure(S.UNAVAILABLE, 'lost quorum', { 'leaderd-outcome': 'unknown' }));
        else cb(null, { revision: 10 + seen.length });
      },
    });
    const c = client([n.endpoint]);
    const opened = sessionsOpened;
    expect(await c.put('k', 'v')).toEqual({ revision: 12 });
    expect(await c.put('k2', 'v')).toEqual({ revision: 13 });
    expect(seen.length).toBe(3);
    expect(sessionsOpened - opened).toBe(1);
    expect(seen[0]!.session).toBe(100 + sessionsOpened);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]!.seq).toBeGreaterThan(seen[0]!.seq);
    // The first write's answer was seen: the next one says so.
    expect(seen[2]!.firstIncomplete).toBe(seen[2]!.seq);
  });

  it('runs concurrent writes in one session, each with its own seq, and first_incomplete never passes a write still waiting', async () => {
    const seen: PutReq[] = [];
    const waiting = new Set<number>();
    let violations = 0;
    const n = await node({
      Put: (call: grpc.ServerUnaryCall<PutReq, object>, cb: grpc.sendUnaryData<object>) => {
        const r = call.request;
        for (const q of waiting) if (r.firstIncomplete > q) violations++;
        waiting.add(r.seq);
        seen.push({ key: r.key, session: r.session, seq: r.seq, firstIncomplete: r.firstIncomplete });
        setTimeout(() => (waiting.delete(r.seq), cb(null, { revision: seen.length })), (seen.length * 7) % 30);
      },
    });
    const c = client([n.endpoint]);
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.put(`k${i}`, 'v')));
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.put(`again${i}`, 'v')));
    expect(violations).toBe(0);
    expect(new Set(seen.map((r) => r.session)).size).toBe(1);
    expect(new Set(seen.map((r) => r.seq)).size).toBe(40);
    for (const r of seen) expect(r.firstIncomplete).toBeLessThanOrEqual(r.seq);
    // Once the first 20 were answered, the server may drop their answers.
    expect(Math.min(...seen.slice(20).map((r) => r.firstIncomplete))).toBeGreaterThan(20);
  });

  it('after session-expired it opens a new session and sends the write there, unless an earlier attempt may have applied it', async () => {
    const seen: PutReq[] = [];
    let unknownFirst = false;
    const n = await node({
      Put: (call: grpc.ServerUnaryCall<PutReq, object>, cb: grpc.sendUnaryData<object>) => {
        const r = call.request;
        seen.push({ key: r.key, session: r.session, seq: r.seq, firstIncomplete: r.firstIncomplete });
        if (unknownFirst && seen.length === 1) return cb(failure(S.UNAVAILABLE, 'lost quorum', { 'leaderd-outcome': 'unknown' }));
        if (r.session === 100 + sessionsOpened && sessionsOpened % 2 === 1)
          return cb(toStatus(new ApiError('session-expired', `session ${r.session} has ended`)));
        cb(null, { revision: 1 });
      },
    });
    const c = client([n.endpoint]);
    // The first session (odd) has ended: refused, then sent in the next (even) one.
    expect(await c.put('k', 'v')).toEqual({ revision: 1 });
    expect(seen.map((r) => r.session)).toEqual([seen[0]!.session, seen[0]!.session + 1]);
    expect(seen[1]!.seq).toBe(1);
    // Now an attempt whose outcome is unknown comes first: the refusal is final, outcome unknown.
    seen.length = 0;
    unknownFirst = true;
    const c2 = client([n.endpoint]);
    const err = await c2.put('k', 'v').catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'session-expired', outcome: 'unknown', retryable: false });
    expect(new Set(seen.map((r) => r.session)).size).toBe(1);
  });

  it('sends a membership change (not safe to repeat) to the next endpoint when the first refuses connections', async () => {
    const gone = await node({});
    const dead = gone.endpoint;
    await gone.stop();
    let adds = 0;
    const live = await startFakeNode({
      Cluster: {
        AddMember: (_c: unknown, cb: grpc.sendUnaryData<object>) => {
          adds++;
          cb(null, { members: [{ id: 'n4' }] });
        },
      },
    });
    nodes.push(live);
    const c = client([dead, live.endpoint]);
    const members = await c.addMember({ id: 'n4', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' }, { timeoutMs: 3000 });
    expect(members.map((m) => m.id)).toEqual(['n4']);
    expect(adds).toBe(1);
  });

  it('moves to another endpoint after a not-leader refusal and throws non-retryable errors at once', async () => {
    let refusals = 0;
    let invalids = 0;
    const refuse = (_c: unknown, cb: grpc.sendUnaryData<object>) => {
      refusals++;
      cb(toStatus(new ApiError('not-leader', 'not leader', 'not-applied')));
    };
    // The first call (opening the session) goes to the follower, the first endpoint.
    const follower = await node({ OpenSession: refuse, Put: refuse });
    const leader = await node({
      Put: (call: grpc.ServerUnaryCall<PutReq, object>, cb: grpc.sendUnaryData<object>) => {
        if (call.request.key === 'bad') {
          invalids++;
          cb(toStatus(new ApiError('invalid-argument', 'key too long')));
        } else cb(null, { revision: 5 });
      },
    });
    const c = client([follower.endpoint, leader.endpoint]);
    expect(await c.put('k', 'v')).toEqual({ revision: 5 });
    expect(refusals).toBeGreaterThanOrEqual(1);
    const err = await c.put('bad', 'v').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaderdError);
    expect(err).toMatchObject({ kind: 'invalid-argument', code: S.INVALID_ARGUMENT, outcome: 'not-applied', retryable: false });
    expect(invalids).toBe(1);
  });

  it('sends writes to the leader address that GetLeader names', async () => {
    let followerPuts = 0;
    let leaderPuts = 0;
    let leaderEndpoint = '';
    const leader = await node(
      { Put: (_c: unknown, cb: grpc.sendUnaryData<object>) => (leaderPuts++, cb(null, { revision: 1 })) },
      () => leaderEndpoint,
    );
    leaderEndpoint = leader.endpoint;
    const follower = await node(
      { Put: (_c: unknown, cb: grpc.sendUnaryData<object>) => (followerPuts++, cb(null, { revision: 1 })) },
      () => leaderEndpoint,
    );
    const c = client([follower.endpoint, leader.endpoint]);
    for (let i = 0; i < 5; i++) await c.put(`k${i}`, 'v');
    expect(leaderPuts).toBe(5);
    expect(followerPuts).toBe(0);
  });

  it('reports outcome unknown when any attempt of a failed write may have applied, even if the last said not-applied', async () => {
    let n = 0;
    const node1 = await node({
      Put: (_c: unknown, cb: grpc.sendUnaryData<object>) => {
        n++;
        if (n === 1) cb(failure(S.UNAVAILABLE, 'leader lost after append', { 'leaderd-outcome': 'unknown' }));
        else cb(failure(S.RESOURCE_EXHAUSTED, 'too many pending', { 'leaderd-outcome': 'not-applied' }));
      },
    });
    const c = client([node1.endpoint]);
    const err = await c.put('k', 'v').catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'resource-exhausted', outcome: 'unknown', retryable: false });
    expect(n).toBe(2);
  });

  it('gives up at the deadline with the last transient error, still marked retryable', async () => {
    let attempts = 0;
    const n = await node({ Get: (_c: unknown, cb: grpc.sendUnaryData<object>) => (attempts++, cb(failure(S.UNAVAILABLE, 'no leader'))) });
    const c = new LeaderdClient({ endpoints: [n.endpoint], timeoutMs: 1000, retry: { backoffMs: 10, maxBackoffMs: 20 } });
    clients.push(c);
    const started = performance.now();
    const err = await c.get('k').catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(err).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(attempts).toBeGreaterThanOrEqual(2);
  });
});
