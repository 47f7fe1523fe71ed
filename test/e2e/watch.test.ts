// WatchLeader over a raw gRPC stream: the current value first, then every change, in
// term order, none missing, across planned transfers and a leader crash.
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { LeaderInfo__Output } from '../../src/gen/leaderd/v1/LeaderInfo.js';
import { loadPublicApi } from '../../src/transport/protos.js';
import { readFileSync } from 'node:fs';
import { LocalCluster, lines, waitFor } from './cluster.js';

let cluster: LocalCluster | null = null;
const cleanups: (() => void)[] = [];
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  for (const f of cleanups.splice(0)) f();
  await cluster?.stop();
  cluster = null;
});

type Seen = { leaderId: string; term: number };
const key = (l: Seen) => `${l.leaderId}@${l.term}`;

describe('WatchLeader', () => {
  it('streams the current leader first, then every leadership change (transfers to each node, a SIGKILLed leader) in term order, none missing', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const initial = await c.waitForLeader();
    // n1 is watched and never killed; it leads and loses leadership itself along the way.
    const watched = 'n1';

    const Ctor = loadPublicApi().leaderd.v1.Cluster;
    const raw = new Ctor(c.endpoint(watched), grpc.credentials.createInsecure());
    const got: Seen[] = [];
    let streamProblem: string | null = null;
    let cancelled = false;
    const call = raw.WatchLeader({});
    cleanups.push(() => {
      cancelled = true;
      call.cancel();
      raw.close();
    });
    call.on('data', (l: LeaderInfo__Output) => got.push({ leaderId: l.leaderId, term: l.term }));
    call.on('error', (err: grpc.ServiceError) => {
      if (!cancelled) streamProblem = `stream error: ${err.code} ${err.details}`;
    });
    call.on('end', () => {
      if (!cancelled) streamProblem = 'stream ended by the server';
    });
    await waitFor('the first WatchLeader message', () => (got.length > 0 ? true : undefined), 5000, 5);
    expect(got[0]).toEqual({ leaderId: initial.leaderId, term: initial.term });

    // The leaders the cluster had, as the transfers and GetLeader polling saw them.
    const history: Seen[] = [{ leaderId: initial.leaderId, term: initial.term }];
    const record = (l: Seen) => {
      if (key(l) !== key(history[history.length - 1]!)) history.push({ leaderId: l.leaderId, term: l.term });
    };
    const leadershipTo = (target: string) =>
      waitFor(
        `leadership to move to ${target}`,
        async () => {
          const current = await c.waitForLeader();
          record(current);
          if (current.leaderId === target) return current;
          // Retried: on a loaded machine the leader may change between the poll and the call.
          const moved = await c.client(current.leaderId).transferLeader(target);
          record(moved);
          return moved.leaderId === target ? moved : undefined;
        },
        15_000,
        100,
      );
    for (const target of ['n2', 'n3', 'n1', 'n2']) {
      await leadershipTo(target);
      record(await c.waitForLeader());
    }
    let beforeKill = await c.waitForLeader();
    if (beforeKill.leaderId === watched) beforeKill = await leadershipTo('n3');
    await c.kill(beforeKill.leaderId, 'SIGKILL');
    const afterKill = await c.waitForLeader({ among: c.running(), not: beforeKill.leaderId, timeoutMs: 10_000 });
    record(afterKill);

    // The stream has caught up once it shows the final leader.
    await waitFor('the stream to show the last leader', () => (got.some((l) => key(l) === key(afterKill)) ? true : undefined), 5000, 10);
    console.log(
      `[e2e] WatchLeader on ${watched}: ${got.map((l) => `${l.leaderId || '-'}@${l.term}`).join(' ')}; cluster history: ${history.map(key).join(' ')}`,
    );

    expect(streamProblem).toBeNull();
    for (let i = 1; i < got.length; i++) expect(got[i]!.term, `message ${i} term`).toBeGreaterThanOrEqual(got[i - 1]!.term);
    const leadersStreamed: Seen[] = [];
    for (const l of got) {
      if (l.leaderId !== '' && (leadersStreamed.length === 0 || key(leadersStreamed[leadersStreamed.length - 1]!) !== key(l)))
        leadersStreamed.push(l);
    }
    // Every leader the polling and the transfers saw, in the same order...
    const streamedKeys = leadersStreamed.map(key);
    let at = 0;
    for (const h of history) {
      const i = streamedKeys.indexOf(key(h), at);
      expect(i, `${key(h)} (seen by polling) in the stream ${streamedKeys.join(' ')}`).toBeGreaterThanOrEqual(0);
      at = i + 1;
    }
    // ...and exactly the leaders the nodes themselves say they became, which also covers
    // any short-lived leader that polling happened to miss.
    const logged: Seen[] = [];
    for (const s of c.specs) {
      for (const line of lines(readFileSync(s.logPath, 'utf8'))) {
        const e = JSON.parse(line) as { msg?: string; role?: string; node?: string; term?: number };
        if (e.msg === 'role changed' && e.role === 'leader' && e.node && e.term !== undefined && e.term >= initial.term)
          logged.push({ leaderId: e.node, term: e.term });
      }
    }
    logged.sort((a, b) => a.term - b.term);
    expect(leadersStreamed).toEqual(logged);
    // 1 initial + 4 transfers (at most one skipped because its target already led) + 1 failover.
    expect(history.length).toBeGreaterThanOrEqual(5);
  });
});
