// Membership is replicated state: the bootstrap membership is persisted with the data
// the first time, and afterwards --peers supplies addresses only (issue 7, scenario 2).
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { LocalCluster, freePort, waitFor } from './cluster.js';
import { putKey } from './api.js';

let cluster: LocalCluster | null = null;
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  await cluster?.stop();
  cluster = null;
});

const putVia = (c: LocalCluster, id: string, key: string): Promise<number> => putKey(c.endpoint(id), key);

describe('replicated membership', () => {
  it('a node restarted with two extra members (and one member missing) in --peers still counts 3 voters, warns naming both lists, and the cluster works', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const l = await c.waitForLeader();
    const restarted = c.specs.map((s) => s.id).find((id) => id !== l.leaderId)!;
    const missing = c.specs.map((s) => s.id).find((id) => id !== l.leaderId && id !== restarted)!;
    expect((await c.terminate(restarted)).code).toBe(0);

    // n4 and n5 were never members; `missing` is left out, so its address can only come
    // from what the data dir kept.
    const listed = c.specs.filter((s) => s.id !== missing).map((s) => `${s.id}=127.0.0.1:${s.peerPort}`);
    const peers = [...listed, `n4=127.0.0.1:${await freePort()}`, `n5=127.0.0.1:${await freePort()}`].join(',');
    c.start(restarted, { '--peers': peers });

    const members = await waitFor('the restarted node to answer ListMembers', () => c.client(restarted).listMembers(), 15_000);
    expect(members.map((m) => m.id).sort()).toEqual(c.specs.map((s) => s.id).sort());
    expect(members.every((m) => !m.learner)).toBe(true);
    expect(members.find((m) => m.id === missing)?.peerAddress).toBe(`127.0.0.1:${c.spec(missing).peerPort}`);

    const log = readFileSync(c.spec(restarted).logPath, 'utf8');
    const warning = log.split('\n').find((line) => line.includes('--peers only supplies addresses'));
    expect(warning).toBeDefined();
    const given = [...c.specs.filter((s) => s.id !== missing).map((s) => s.id), 'n4', 'n5'].sort().join(',');
    expect(warning).toContain(`--peers lists ${given} but the replicated membership is n1,n2,n3`);

    // The cluster works with the restarted node in it: it learns the leader, a write
    // through it commits, and it reaches the member that --peers left out (it can even lead).
    const now = await c.waitForLeader();
    expect(await putVia(c, restarted, 'after-restart')).toBeGreaterThan(0);
    await waitFor(
      `${restarted} to catch up`,
      async () => {
        const [a, b] = await Promise.all([c.status(restarted), c.status(now.leaderId)]);
        return a.appliedIndex >= b.commitIndex && a.leaderId === b.nodeId ? true : undefined;
      },
      15_000,
    );
    const moved = await c.client(restarted).transferLeader(restarted);
    expect(moved.leaderId).toBe(restarted);
    const led = await c.waitForLeader();
    expect(led.leaderId).toBe(restarted);
    expect(await putVia(c, missing, 'via-the-missing-one')).toBeGreaterThan(0);
  });
});
