// Who may take part, decided at the peer handshake, with real processes: a member
// restarted with other timing is refused by its peers and never leads (issue 7,
// scenario 4); a member whose data dir was wiped is refused by every peer and stops with
// exit code 2 and one line saying how to recover, while the cluster keeps working
// (scenario 3).
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { LocalCluster, exitOf, lines, sleep, waitFor } from './cluster.js';
import { api, call, putKey } from './api.js';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { GrpcTransport } from '../../src/transport/grpc-transport.js';
import { pino } from 'pino';

let cluster: LocalCluster | null = null;
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  await cluster?.stop();
  cluster = null;
});

/** A follower of the current leader (a node that is running and not leading). */
async function aFollower(c: LocalCluster): Promise<{ follower: string; leader: string }> {
  const l = await c.waitForLeader();
  const follower = c.running().find((id) => id !== l.leaderId)!;
  return { follower, leader: l.leaderId };
}

const putVia = (c: LocalCluster, id: string, key: string): Promise<number> => putKey(c.endpoint(id), key);

describe('the peer handshake', () => {
  it('a member restarted with --election-timeout-ms 3000 --heartbeat-ms 300 among 1000 ms peers is refused both ways, shown in status, and never leads', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3, heartbeatMs: 100, electionTimeoutMs: 1000 }));
    c.startAll();
    const { follower: odd } = await aFollower(c);
    const others = c.specs.map((s) => s.id).filter((id) => id !== odd);
    expect((await c.terminate(odd)).code).toBe(0);
    c.start(odd, { '--election-timeout-ms': '3000', '--heartbeat-ms': '300' });

    // Both peers refuse it, and it refuses them: GetStatus on each side says so.
    const refused = await waitFor(
      `${odd} to list both peers as refused for timing`,
      async () => {
        const s = await c.status(odd);
        const ids = new Set(s.refusedPeers.filter((r) => r.kind === 'timing').map((r) => r.peerId));
        return others.every((id) => ids.has(id)) ? s.refusedPeers : undefined;
      },
      20_000,
    );
    expect(refused.find((r) => r.kind === 'timing')?.reason).toMatch(/election timeout 1000 ms.*election timeout 3000 ms|3000 ms.*1000 ms/);
    for (const id of others) {
      const s = await c.status(id);
      expect(s.refusedPeers).toContainEqual(expect.objectContaining({ peerId: odd, kind: 'timing', byPeer: false }));
      const log = readFileSync(c.spec(id).logPath, 'utf8');
      expect(log).toMatch(/"kind":"timing".*"msg":"refusing peer at the handshake"/);
    }

    // It never leads, even while the others change leaders under it (each change is
    // an opening for a node that is admitted). The cluster keeps serving writes.
    const t0 = Date.now();
    let transfers = 0;
    while (Date.now() - t0 < 8000) {
      const s = await c.status(odd);
      expect(s.role).not.toBe('leader');
      expect(s.leaderId === '' || s.leaderId === odd).toBe(true);
      const l = await c.waitForLeader({ among: others });
      const target = others.find((id) => id !== l.leaderId)!;
      await c
        .client(l.leaderId)
        .transferLeader(target)
        .then(() => transfers++)
        .catch(() => {});
      await sleep(500);
    }
    expect(transfers).toBeGreaterThan(0);
    const now = await c.waitForLeader({ among: others });
    expect(others).toContain(now.leaderId);
    expect(await putVia(c, now.leaderId, 'k')).toBeGreaterThan(0);
    expect((await c.status(odd)).role).not.toBe('leader');
  });

  it('a member whose data dir was wiped is refused by every peer and exits 2 with one line saying how to recover; the cluster keeps working; removed and re-added with --join on an empty dir, it catches up and serves reads', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const { follower: wiped } = await aFollower(c);
    const others = c.specs.map((s) => s.id).filter((id) => id !== wiped);
    await putVia(c, others[0]!, 'before');
    await c.kill(wiped, 'SIGKILL');
    rmSync(c.spec(wiped).dataDir, { recursive: true, force: true });

    const proc = c.start(wiped);
    const exit = await exitOf(proc, 30_000);
    // The process's stderr and stdout both go to its log file; stderr lines start with "leaderd: ".
    const stderr = readFileSync(c.spec(wiped).logPath, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('leaderd: '))
      .join('\n');
    expect(exit.code).toBe(2);
    expect(lines(stderr)).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`member ${wiped}'s data is gone`));
    expect(stderr).toMatch(/remove the member .*--join.*members add/);
    for (const id of others) expect(readFileSync(c.spec(id).logPath, 'utf8')).toMatch(/"kind":"incarnation"/);

    // The two others still form a majority of three and accept writes.
    const l = await c.waitForLeader({ among: others });
    expect(others).toContain(l.leaderId);
    expect(await putVia(c, l.leaderId, 'after')).toBeGreaterThan(0);

    // Recovery as the line says: remove it, start it on an empty dir with --join, add it again.
    // Through the client library, as an operator's tool would: on a loaded machine the
    // leader may change meanwhile, and a refused change (not-applied) is retried there.
    const admin = new LeaderdClient({ endpoints: c.endpoints(others), timeoutMs: 60_000 });
    try {
      const removed = await admin.removeMember(wiped);
      expect(removed.map((m) => m.id).sort()).toEqual(others.slice().sort());
      rmSync(c.spec(wiped).dataDir, { recursive: true, force: true });
      c.start(wiped, { '--join': '' });
      const spec = c.spec(wiped);
      const added = await admin.addMember({
        id: wiped,
        peerAddress: `127.0.0.1:${spec.peerPort}`,
        clientAddress: `127.0.0.1:${spec.clientPort}`,
      });
      expect(added.map((m) => m.id).sort()).toEqual(c.specs.map((x) => x.id).sort());
      expect(added.every((m) => !m.learner)).toBe(true);
    } finally {
      admin.close();
    }
    // It caught up (the writes from before its wipe included) and serves linearizable reads.
    const a = api(c.endpoint(wiped));
    try {
      const got = await waitFor(
        `${wiped} to serve a linearizable read of a key written before it was wiped`,
        async () => {
          const r = await call<{ kvs: { value: Buffer }[] }>((o, cb) => a.kv.Range({ prefix: 'before' }, o, cb), 3000);
          return r.kvs.length === 1 ? r.kvs[0]! : undefined;
        },
        20_000,
      );
      expect(got.value.toString()).toBe('v');
    } finally {
      a.close();
    }
    const s = await c.status(wiped);
    expect(['follower', 'leader']).toContain(s.role);
    expect(s.refusedPeers).toEqual([]);
    expect(await putVia(c, wiped, 'after-rejoin')).toBeGreaterThan(0);

    // AddMember recorded its client address. A plaintext Hello in its name (anyone who
    // reaches the peer port can send one) that names another host does not change what
    // ListMembers, GetLeader and forwarding hand to clients.
    const target = others[0]!;
    const impostor = new GrpcTransport({
      nodeId: wiped,
      clusterId: c.clusterId,
      listenPeer: '127.0.0.1:0',
      advertisePeer: '127.0.0.1:1',
      advertiseClient: '203.0.113.9:7000',
      logger: pino({ level: 'silent' }),
    });
    try {
      await impostor.start();
      impostor.setPeers(new Map([[target, `127.0.0.1:${c.spec(target).peerPort}`]]));
      // Until the Hello arrives and after: ListMembers names the recorded address, and the
      // target logs (once it has heard the Hello) the announced one it did not hand out.
      await waitFor(`${target} to log the announced address it does not hand out`, async () => {
        const members = await c.client(target).listMembers();
        expect(members.find((m) => m.id === wiped)?.clientAddress).toBe(`127.0.0.1:${c.spec(wiped).clientPort}`);
        return /"announced":"203.0.113.9:7000".*other than the member record/.test(readFileSync(c.spec(target).logPath, 'utf8'))
          ? true
          : undefined;
      });
    } finally {
      await impostor.close();
    }
  });
});
