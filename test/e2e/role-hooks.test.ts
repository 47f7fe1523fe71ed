// `leaderd start --on-leader CMD --on-follower CMD` on three real nodes. Every hook
// appends one line to a shared file (O_APPEND: lines do not interleave) with its
// environment and the time it ran, so the test reads what ran where, in which term, and
// compares times on this machine's clock.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster, waitFor } from './cluster.js';

interface HookRun {
  role: 'leader' | 'follower';
  node: string;
  term: number;
  leader: string;
  reason: string;
  /** Wall-clock ms at which the node's lease ran out by its own clock (follower, lease-lost). */
  leaseEndMs: number | null;
  /** Wall-clock ms when the hook ran. */
  atMs: number;
}

let cluster: LocalCluster;
let hookLog: string;
let hookFlags: Record<string, string>;

function runs(): HookRun[] {
  if (!existsSync(hookLog)) return [];
  return readFileSync(hookLog, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [role, node, term, leader, reason, end, at] = l.split(' ');
      return {
        role: role as HookRun['role'],
        node: node!,
        term: Number(term),
        leader: leader!.slice(1, -1),
        reason: reason!,
        leaseEndMs: end === 'none' ? null : Number(end),
        atMs: Number(at),
      };
    });
}

function waitForRun(what: string, pred: (r: HookRun) => boolean, timeoutMs = 20_000): Promise<HookRun> {
  return waitFor(what, () => runs().find(pred), timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}\nhook runs:\n${JSON.stringify(runs(), null, 1)}\n${cluster.logTails(15)}`);
  });
}

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  hookLog = join(cluster.root, 'hooks.log');
  const line = `"$LEADERD_ROLE $LEADERD_NODE_ID $LEADERD_TERM [$LEADERD_LEADER_ID] $LEADERD_HOOK_REASON \${LEADERD_LEASE_END_MS:-none} $(date +%s%3N)"`;
  hookFlags = { '--on-leader': `echo ${line} >> ${hookLog}`, '--on-follower': `echo ${line} >> ${hookLog}` };
  for (const s of cluster.specs) cluster.start(s.id, hookFlags);
});

afterAll(async () => {
  await cluster?.stop();
});

describe('role hooks on real nodes', () => {
  let first: string;

  it('the leader runs its leader hook with its id and term; the others their follower hook naming it', async () => {
    const leader = await cluster.waitForLeader();
    first = leader.leaderId;
    const run = await waitForRun('leader hook', (r) => r.role === 'leader');
    expect(run).toMatchObject({ node: first, term: leader.term, leader: first, reason: 'lease-acquired' });
    for (const s of cluster.specs.filter((x) => x.id !== first)) {
      const f = await waitForRun(`follower hook of ${s.id}`, (r) => r.role === 'follower' && r.node === s.id);
      expect(f).toMatchObject({ leader: first, reason: 'startup' });
    }
    expect(runs().filter((r) => r.role === 'leader')).toHaveLength(1);
  });

  it('kill -9 of the leader: the new leader runs its leader hook in a later term', async () => {
    const before = runs().find((r) => r.role === 'leader')!;
    await cluster.kill(first, 'SIGKILL');
    const next = await cluster.waitForLeader({ not: first, among: cluster.running() });
    const run = await waitForRun('new leader hook', (r) => r.role === 'leader' && r.node === next.leaderId);
    expect(run.term).toBe(next.term);
    expect(run.term).toBeGreaterThan(before.term);
    cluster.start(first, hookFlags);
    await waitForRun(
      `restarted ${first} demotes itself at startup`,
      (r) => r.role === 'follower' && r.node === first && r.reason === 'startup',
    );
  });

  it('SIGSTOP of the leader: on resume it runs its follower hook, its lease having ended before the next leader hook ran', async () => {
    const frozen = (await cluster.waitForLeader()).leaderId;
    await waitForRun(`leader hook of ${frozen}`, (r) => r.role === 'leader' && r.node === frozen);
    const seen = runs().length;
    cluster.signal(frozen, 'SIGSTOP');
    let next;
    try {
      next = await cluster.waitForLeader({ not: frozen, among: cluster.running().filter((id) => id !== frozen) });
      await waitForRun('next leader hook', (r) => r.role === 'leader' && r.node === next!.leaderId && r.term === next!.term);
    } finally {
      cluster.signal(frozen, 'SIGCONT');
    }
    const resumedAt = Date.now();
    const demoted = await waitForRun(
      `follower hook of ${frozen} after resume`,
      (r) => r.role === 'follower' && r.node === frozen && r.reason === 'lease-lost',
    );
    const promoted = runs()
      .slice(seen)
      .find((r) => r.role === 'leader' && r.node === next.leaderId)!;
    // It ran when the frozen node woke up (not before: it was frozen)...
    expect(demoted.atMs).toBeGreaterThanOrEqual(resumedAt - 5);
    // ...and says its lease ended, by its own clock, before the next leader's hook ran.
    expect(demoted.leaseEndMs).not.toBeNull();
    expect(demoted.leaseEndMs!).toBeLessThan(promoted.atMs);
    // No second leader hook on the frozen node for its old term after it woke up.
    expect(
      runs()
        .slice(seen)
        .filter((r) => r.role === 'leader' && r.node === frozen),
    ).toEqual([]);
  });
});
