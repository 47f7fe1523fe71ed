// `leaderd members` as an operator uses it: replacing a dead member under a write load
// (remove it, start a fresh node with --join, add it) loses no acknowledged write, and the
// list shows each member's role, lag and health.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { LocalCluster, freePort, lines, runCli, waitFor, type NodeSpec } from './cluster.js';

let cluster: LocalCluster | null = null;
const closers: (() => void)[] = [];
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  for (const f of closers.splice(0)) f();
  await cluster?.stop();
  cluster = null;
});

interface Row {
  id: string;
  learner: boolean;
  role: string | null;
  lag: number | null;
  healthy: boolean;
}

interface Acked {
  key: string;
  revision: number;
  /** performance.now() when acknowledged. */
  at: number;
}

/** Writes one key after another until stopped; every acknowledged one is recorded. */
function writeLoad(endpoints: string[]): { stop: () => Promise<Acked[]>; acked: () => number } {
  const c = new LeaderdClient({ endpoints, timeoutMs: 10_000, retry: { attemptTimeoutMs: 500, maxBackoffMs: 200 } });
  closers.push(() => c.close());
  const acked: Acked[] = [];
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped && i < 100_000; i++) {
      const key = `load/${String(i).padStart(6, '0')}`;
      try {
        acked.push({ key, revision: (await c.put(key, String(i))).revision, at: performance.now() });
      } catch {
        // not acknowledged: may or may not be there, nothing to check
      }
    }
  })();
  return {
    acked: () => acked.length,
    stop: async () => {
      stopped = true;
      await loop;
      return acked;
    },
  };
}

/** Every acknowledged write, read back linearizably through `endpoint`, at the revision it was acknowledged with. */
async function lostWrites(endpoint: string, acked: readonly Acked[]): Promise<Acked[]> {
  const reader = new LeaderdClient({ endpoints: [endpoint], timeoutMs: 10_000 });
  closers.push(() => reader.close());
  const found = new Map<string, number>();
  let startAfter = '';
  for (let page = 0; page < 100; page++) {
    const r = await reader.range('load/', { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    for (const kv of r.kvs) found.set(kv.key, kv.modRevision);
    if (!r.more || r.kvs.length === 0) break;
    startAfter = r.kvs[r.kvs.length - 1]!.key;
  }
  return acked.filter((w) => found.get(w.key) !== w.revision);
}

/** A new node `id` on fresh ports and an empty data dir, started with --join (not yet a member). */
async function startJoiner(c: LocalCluster, id: string): Promise<NodeSpec> {
  const spec = {
    id,
    peerPort: await freePort(),
    clientPort: await freePort(),
    dataDir: join(c.root, id),
    logPath: join(c.root, `${id}.log`),
  };
  c.specs.push(spec);
  c.start(id, { '--join': '' });
  return spec;
}

describe('leaderd members', () => {
  it.each(['follower', 'leader'] as const)(
    'replaces a dead %s under a write load: remove, start a fresh node with --join, add; nothing lost, the new member votes and serves',
    async (victim) => {
      const c = (cluster = await LocalCluster.create({ nodes: 3, heartbeatMs: 100, electionTimeoutMs: 800 }));
      c.startAll();
      const l = await c.waitForLeader();
      const dead = victim === 'leader' ? l.leaderId : c.specs.map((s) => s.id).find((id) => id !== l.leaderId)!;
      const survivors = c.specs.map((s) => s.id).filter((id) => id !== dead);
      const load = writeLoad(c.endpoints(survivors));
      await waitFor('writes to flow', () => (load.acked() >= 20 ? true : undefined), 15_000);

      await c.kill(dead, 'SIGKILL');
      const endpoints = c.endpoints(survivors).join(',');
      const removed = await runCli(['members', 'remove', dead, '--json', '--endpoints', endpoints], { timeoutMs: 30_000 });
      expect(removed.code, removed.stderr).toBe(0);
      expect((JSON.parse(removed.stdout) as Row[]).map((r) => r.id).sort()).toEqual(survivors.slice().sort());

      // The replacement: a new id on new ports, an empty data dir, --join.
      const spec = await startJoiner(c, 'n4');
      const added = await runCli(
        [
          'members',
          'add',
          'n4',
          '--peer-address',
          `127.0.0.1:${spec.peerPort}`,
          '--client-address',
          `127.0.0.1:${spec.clientPort}`,
          '--json',
          '--endpoints',
          endpoints,
        ],
        { timeoutMs: 60_000 },
      );
      expect(added.code, added.stderr).toBe(0);
      const afterAdd = JSON.parse(added.stdout) as Row[];
      expect(afterAdd.map((r) => r.id).sort()).toEqual([...survivors, 'n4'].sort());
      expect(afterAdd.find((r) => r.id === 'n4')!.learner).toBe(false);

      await waitFor('writes to flow after the replacement', () => (load.acked() >= 60 ? true : undefined), 15_000);
      const acked = await load.stop();

      // Every member healthy and caught up, as `members list` reports it.
      const all = c.endpoints([...survivors, 'n4']).join(',');
      const rows = await waitFor(
        'every member healthy with no lag',
        async () => {
          const r = await runCli(['members', 'list', '--json', '--endpoints', all]);
          const rs = JSON.parse(r.stdout) as Row[];
          return rs.length === 3 && rs.every((x) => x.healthy && x.lag === 0) ? rs : undefined;
        },
        30_000,
      );
      expect(rows.filter((r) => r.role === 'leader')).toHaveLength(1);
      expect(rows.find((r) => r.id === 'n4')!.role).toMatch(/^(follower|leader)$/);

      // Nothing acknowledged was lost: read back linearizably through the new member.
      expect(acked.length).toBeGreaterThanOrEqual(60);
      expect(await lostWrites(c.endpoint('n4'), acked)).toEqual([]);
      // The new member is a voter: with the other survivor stopped, it and the leader are a majority.
      const leaderNow = await c.waitForLeader({ among: [...survivors, 'n4'] });
      const other = survivors.find((id) => id !== leaderNow.leaderId)!;
      await c.kill(other, 'SIGKILL');
      const w = new LeaderdClient({ endpoints: c.endpoints([leaderNow.leaderId, 'n4']), timeoutMs: 15_000 });
      closers.push(() => w.close());
      expect((await w.put('with-n4-as-majority', 'v')).revision).toBeGreaterThan(0);
    },
  );

  it('a rolling replacement of every member under a write load (add the new one, then remove an old one, three times): writes keep flowing, nothing lost', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3, heartbeatMs: 100, electionTimeoutMs: 800 }));
    c.startAll();
    await c.waitForLeader();
    const olds = ['n1', 'n2', 'n3'];
    // The load knows every endpoint the cluster will ever have, as a client configured
    // for the maintenance would; the new nodes' ports are taken now.
    const fresh: NodeSpec[] = [];
    for (const id of ['n4', 'n5', 'n6'])
      fresh.push({
        id,
        peerPort: await freePort(),
        clientPort: await freePort(),
        dataDir: join(c.root, id),
        logPath: join(c.root, `${id}.log`),
      });
    const load = writeLoad([...c.endpoints(olds), ...fresh.map((s) => `127.0.0.1:${s.clientPort}`)]);
    await waitFor('writes to flow', () => (load.acked() >= 20 ? true : undefined), 15_000);

    const admin = new LeaderdClient({
      endpoints: [...c.endpoints(olds), ...fresh.map((s) => `127.0.0.1:${s.clientPort}`)],
      timeoutMs: 60_000,
    });
    closers.push(() => admin.close());
    // The leader is an old member until it is removed itself: at least one step removes it.
    let leadersRemoved = 0;
    for (const [k, old] of olds.entries()) {
      const spec = fresh[k]!;
      c.specs.push(spec);
      c.start(spec.id, { '--join': '' });
      const added = await admin.addMember({
        id: spec.id,
        peerAddress: `127.0.0.1:${spec.peerPort}`,
        clientAddress: `127.0.0.1:${spec.clientPort}`,
      });
      expect(added.find((m) => m.id === spec.id)?.learner).toBe(false);
      // Removing the leader hands leadership over first; then the old process stops.
      if ((await admin.leader()).leaderId === old) leadersRemoved++;
      const removed = await admin.removeMember(old);
      expect(removed.map((m) => m.id)).not.toContain(old);
      expect((await c.terminate(old)).code).toBe(0);
      await waitFor(`writes to flow without ${old}`, () => (load.acked() >= 20 * (k + 2) ? true : undefined), 15_000);
    }
    const acked = await load.stop();
    expect(leadersRemoved).toBeGreaterThanOrEqual(1);

    const members = await admin.listMembers();
    expect(members.map((m) => m.id).sort()).toEqual(['n4', 'n5', 'n6']);
    expect(members.every((m) => !m.learner)).toBe(true);
    expect(await lostWrites(c.endpoint('n6'), acked)).toEqual([]);
    // Available throughout: the longest stretch without an acknowledged write. Each step
    // may move leadership once (a transfer, not an election); the bound leaves room for
    // a loaded 2-core machine, where an election timeout is 800 ms.
    const gaps = acked.slice(1).map((w, i) => w.at - acked[i]!.at);
    const longest = Math.max(...gaps);
    console.log(`[e2e] rolling replacement: ${acked.length} writes acknowledged, longest gap ${Math.round(longest)} ms`);
    expect(gaps.length).toBeGreaterThan(60);
    expect(longest).toBeLessThan(8000);
  });

  it('add --learner, add again to promote (a retried add resumes), and removing the leader hands leadership over first', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3, heartbeatMs: 100, electionTimeoutMs: 800 }));
    c.startAll();
    await c.waitForLeader();
    const spec = await startJoiner(c, 'n4');
    const endpoints = c.endpoints(['n1', 'n2', 'n3']).join(',');
    const addr = ['--peer-address', `127.0.0.1:${spec.peerPort}`, '--client-address', `127.0.0.1:${spec.clientPort}`];
    const learner = await runCli(['members', 'add', 'n4', ...addr, '--learner', '--json', '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(learner.code, learner.stderr).toBe(0);
    expect((JSON.parse(learner.stdout) as Row[]).find((r) => r.id === 'n4')!.learner).toBe(true);

    // The same add again, as a client retries one whose answer it lost: it changes nothing.
    const again = await runCli(['members', 'add', 'n4', ...addr, '--learner', '--json', '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as Row[]).find((r) => r.id === 'n4')!.learner).toBe(true);
    // At other addresses it is another member: refused, naming the one there.
    const elsewhere = ['--peer-address', '127.0.0.1:1', '--client-address', `127.0.0.1:${spec.clientPort}`];
    const moved = await runCli(['members', 'add', 'n4', ...elsewhere, '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(moved.code).toBe(2);
    // (after the line that says what the add does)
    expect(lines(moved.stderr).at(-1)).toContain(`leaderd: n4 is already a member (peer 127.0.0.1:${spec.peerPort},`);
    // Another priority is a change, not a retry: refused, pointing at the command for it.
    const other = await runCli(['members', 'add', 'n4', ...addr, '--priority', '7', '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(other.code).toBe(2);
    expect(lines(other.stderr).at(-1)).toMatch(/^leaderd: n4 is already a member, at priority \d+: change it with members update$/);
    // An add as a voter of the learner resumes where an add cut short by a leader change
    // stopped (it used to fail with "cannot propose: invalid"): it promotes it.
    const promoted = await runCli(['members', 'add', 'n4', ...addr, '--json', '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(promoted.code, promoted.stderr).toBe(0);
    expect((JSON.parse(promoted.stdout) as Row[]).every((r) => !r.learner)).toBe(true);
    // A refused change says why.
    const twice = await runCli(['members', 'promote', 'n4', '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(twice.code).toBe(2);
    expect(lines(twice.stderr)).toEqual(['leaderd: n4 is not a learner']);

    const l = await c.waitForLeader();
    const removed = await runCli(['members', 'remove', l.leaderId, '--endpoints', endpoints], { timeoutMs: 30_000 });
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stderr).toContain(`${l.leaderId} leads: handing leadership to another voter first`);
    const table = lines(removed.stdout);
    expect(table[0]).toMatch(/^ID\s+PEER\s+CLIENT\s+VOTER\s+PRIORITY\s+ROLE\s+TERM\s+APPLIED\s+LAG\s+HEALTH$/);
    expect(
      table
        .slice(1)
        .map((r) => r.split(/\s+/)[0])
        .sort(),
    ).toEqual(['n1', 'n2', 'n3', 'n4'].filter((id) => id !== l.leaderId));
    const after = await c.waitForLeader({ not: l.leaderId, among: ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== l.leaderId) });
    expect(after.leaderId).not.toBe(l.leaderId);

    const unknown = await runCli(['members', 'remove', 'n9', '--endpoints', endpoints]);
    expect(unknown.code).toBe(2);
    expect(lines(unknown.stderr)).toEqual([expect.stringMatching(/^leaderd: n9 is not a member \(members: /)]);
  });
});
