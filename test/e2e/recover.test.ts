// `leaderd recover` after losing a majority for good, with real leaderd processes: the
// survivor becomes a one-member cluster with every write it held, a fresh member joins it.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { LocalCluster, runCli, waitFor } from './cluster.js';

let cluster: LocalCluster | null = null;
const closers: (() => void)[] = [];
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  for (const close of closers.splice(0)) close();
  await cluster?.stop();
  cluster = null;
});

describe('leaderd recover', () => {
  it('turns the survivor of a lost majority into a one-member cluster with its writes, loudly; a wiped member joins it (added with --priority 0)', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const l = await c.waitForLeader();
    const survivor = c.specs.map((s) => s.id).find((id) => id !== l.leaderId)!;
    const w = new LeaderdClient({ endpoints: c.endpoints(), timeoutMs: 5000 });
    closers.push(() => w.close());
    for (let i = 0; i < 20; i++) await w.put(`k${i}`, `v${i}`);
    // Every acknowledged write reached the survivor before the disaster (it had to, here,
    // for the test to say "nothing of what it held is lost").
    const target = (await c.status(l.leaderId)).commitIndex;
    await waitFor('the survivor to hold every write', async () => ((await c.status(survivor)).appliedIndex >= target ? true : undefined));
    for (const s of c.specs) await c.kill(s.id, 'SIGKILL');

    const dir = c.spec(survivor).dataDir;
    // A running node's data dir is refused, and so is a directory that holds no data.
    c.start(survivor);
    await waitFor('the survivor to answer', () => c.status(survivor));
    const busy = await runCli(['recover', '--data-dir', dir]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/is in use: stop the node running on it first/);
    await c.kill(survivor, 'SIGKILL');
    const empty = await runCli(['recover', '--data-dir', join(c.root, 'nothing-here')]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/is not a leaderd data dir/);

    const dry = await runCli(['recover', '--data-dir', dir, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const before = JSON.parse(dry.stdout) as { lastIndex: number; voters: string[]; applied: boolean };
    expect(before.applied).toBe(false);
    expect(before.voters.sort()).toEqual(['n1', 'n2', 'n3']);
    expect(before.lastIndex).toBeGreaterThanOrEqual(target);

    const r = await runCli(['recover', '--data-dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: FORCED RECOVERY/);
    expect(r.stderr).toMatch(/writes acknowledged to clients shortly before the failure may be missing/);
    expect(r.stdout).toMatch(new RegExp(`recovered ${survivor} of cluster e2e: .*voters ${survivor}`));

    // Alone, it elects itself and serves every write it held, and new ones.
    c.start(survivor);
    const alone = await c.waitForLeader({ among: [survivor] });
    expect(alone.leaderId).toBe(survivor);
    const s = new LeaderdClient({ endpoints: [c.endpoint(survivor)], timeoutMs: 5000 });
    closers.push(() => s.close());
    for (let i = 0; i < 20; i++) expect(await s.getText(`k${i}`)).toBe(`v${i}`);
    expect((await s.put('after-recovery', 'yes')).revision).toBeGreaterThan(0);
    expect((await s.members()).map((m) => m.id)).toEqual([survivor]);

    // A lost member comes back on a wiped data dir, joins, and is added; it serves the data.
    const back = c.specs.map((x) => x.id).find((id) => id !== survivor)!;
    const spec = c.spec(back);
    // The same machine, re-provisioned: same addresses, an empty data dir.
    const fresh = { ...spec, dataDir: join(c.root, `${back}-fresh`) };
    c.specs.splice(c.specs.indexOf(spec), 1, fresh);
    c.start(back, { '--join': '' });
    const added = await runCli(
      [
        'members',
        'add',
        back,
        '--peer-address',
        `127.0.0.1:${fresh.peerPort}`,
        '--client-address',
        `127.0.0.1:${fresh.clientPort}`,
        // Added back as a disaster-recovery replica: the contract's add --priority, end to end.
        '--priority',
        '0',
        '--endpoints',
        c.endpoint(survivor),
      ],
      { timeoutMs: 30_000 },
    );
    expect(added.code, added.stderr).toBe(0);
    const b = new LeaderdClient({ endpoints: [c.endpoint(back)], timeoutMs: 5000 });
    closers.push(() => b.close());
    expect(await waitFor('the new member to serve the data', () => b.getText('after-recovery'), 15_000)).toBe('yes');
    expect((await b.members()).map((m) => `${m.id}:${m.learner ? 'learner' : 'voter'}:${m.priority}`).sort()).toEqual(
      [`${back}:voter:0`, `${survivor}:voter:1`].sort(),
    );
  });
});
