// Backup and disaster recovery with real processes: `leaderd snapshot save` from a live
// cluster, `leaderd snapshot restore` into three fresh data dirs of a new cluster, which
// then starts and serves every key; a damaged backup is refused with one line, exit 2.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { LocalCluster, lines, runCli } from './cluster.js';

let source: LocalCluster;
let restored: LocalCluster | undefined;
const clients: LeaderdClient[] = [];
const KEYS = 200;

function clientOf(c: LocalCluster): LeaderdClient {
  const client = new LeaderdClient({ endpoints: c.endpoints(), timeoutMs: 10_000 });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  source = await LocalCluster.create({ nodes: 3, clusterId: 'before' });
  source.startAll();
  await source.waitForLeader();
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await restored?.stop();
  await source?.stop();
});

describe('snapshot save and restore', () => {
  let backup: string;

  it('saves a consistent snapshot of a live cluster, with every acknowledged key', async () => {
    const c = clientOf(source);
    for (let i = 0; i < KEYS; i++) await c.put(`app/k${String(i).padStart(3, '0')}`, `v${i}`);
    await c.put('app/big', 'x'.repeat(300_000));
    backup = join(source.root, 'backup.snap');
    // Through a follower: the node answering takes it after a linearizable read barrier.
    const leader = (await source.waitForLeader()).leaderId;
    const follower = source.specs.find((s) => s.id !== leader)!.id;
    const r = await runCli(['snapshot', 'save', backup, '--endpoints', source.endpoint(follower), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const saved = JSON.parse(r.stdout) as { clusterId: string; index: number; bytes: number };
    expect(saved.clusterId).toBe('before');
    expect(saved.index).toBeGreaterThan(KEYS);
    expect(readFileSync(backup).length).toBe(saved.bytes);
  });

  it('restores into three fresh data dirs of a new cluster, which starts and serves every key', async () => {
    restored = await LocalCluster.create({ nodes: 3, clusterId: 'after' });
    for (const s of restored.specs) {
      const r = await runCli([
        'snapshot',
        'restore',
        backup,
        '--data-dir',
        s.dataDir,
        '--name',
        s.id,
        '--peers',
        restored.peersFlag(),
        '--cluster-id',
        'after',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^restored .* as n\d of new cluster after/);
    }
    restored.startAll();
    await restored.waitForLeader();
    const c = clientOf(restored);
    const got = await c.range('app/');
    expect(got.kvs.length).toBe(KEYS + 1);
    expect(new TextDecoder().decode(got.kvs.find((kv) => kv.key === 'app/k123')!.value)).toBe('v123');
    expect((await c.get('app/big')).kv?.value.length).toBe(300_000);
    // The new cluster takes writes, and its members are the restore's, not the old ones.
    await c.put('app/new', 'after restore');
    expect((await c.members()).map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    const st = await restored.status('n1');
    expect(st.commitIndex).toBeGreaterThan(KEYS);
  });

  it('refuses a truncated or corrupted backup, a non-empty data dir and the old cluster id, each with one line and exit 2', async () => {
    const good = readFileSync(backup);
    const truncated = join(source.root, 'truncated.snap');
    writeFileSync(truncated, good.subarray(0, good.length - 1000));
    const flipped = join(source.root, 'flipped.snap');
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x01;
    writeFileSync(flipped, bad);
    const dir = join(source.root, 'fresh');
    const restore = (file: string, over: string[] = []) =>
      runCli(['snapshot', 'restore', file, '--data-dir', dir, '--name', 'n1', '--peers', 'n1=127.0.0.1:1', '--cluster-id', 'x', ...over]);
    const t = await restore(truncated);
    expect([t.code, lines(t.stderr)]).toEqual([2, [expect.stringMatching(/^leaderd: refusing to restore: .*truncated.snap is truncated/)]]);
    const f = await restore(flipped);
    expect([f.code, lines(f.stderr)]).toEqual([2, [expect.stringMatching(/^leaderd: refusing to restore: .*flipped.snap is corrupt/)]]);
    const used = await restore(backup, ['--data-dir', restored!.spec('n1').dataDir]);
    expect([used.code, lines(used.stderr)]).toEqual([
      2,
      [expect.stringMatching(/^leaderd: refusing to restore into .*not an empty directory/)],
    ]);
    const same = await restore(backup, ['--cluster-id', 'before']);
    expect([same.code, lines(same.stderr)]).toEqual([
      2,
      [expect.stringMatching(/^leaderd: --cluster-id before is the backed-up cluster's own id/)],
    ]);
    // Nothing was created for any refused restore.
    expect(() => readFileSync(join(dir, 'leaderd-identity.json'))).toThrow();
  });
});
