// `leaderd recover` on a data dir, without processes: what it keeps, what it appends.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import { writeIdentity } from '../../src/storage/identity.js';
import { LevelStorage } from '../../src/storage/leveldb-storage.js';
import { BOOTSTRAP_META, bootstrapEntries, encodeBootstrap } from '../../src/server/member-registry.js';
import { RecoverError, recoverDataDir } from '../../src/server/recover.js';
import type { Entry } from '../../src/raft/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const open = (dataDir: string, initialMeta?: Map<string, Uint8Array>) =>
  LevelStorage.open({ dir: join(dataDir, 'raft'), clusterId: 'c', nodeId: 'n1', ...(initialMeta ? { initialMeta } : {}) });

/** n1's data dir in a cluster n1,n2,n3: bootstrap entries, then 3 entries of term 2, of which only the first is committed. */
async function survivor(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'leaderd-recover-'));
  dirs.push(dataDir);
  const members = new Map([
    ['n1', 'h:1'],
    ['n2', 'h:2'],
    ['n3', 'h:3'],
  ]);
  const storage = await open(dataDir, new Map([[BOOTSTRAP_META, encodeBootstrap({ join: false, members, inLog: true })]]));
  writeIdentity(dataDir, { clusterId: 'c', nodeId: 'n1' });
  const data = (s: string) => new TextEncoder().encode(s);
  const entries: Entry[] = [
    ...bootstrapEntries(members.keys()),
    ...[4, 5, 6].map((index) => ({ index, term: 2, type: 'normal' as const, data: data(`w${index}`) })),
  ];
  await storage.persist({ hardState: { term: 2, votedFor: 'n2', commit: 4 }, entries, snapshot: null }, true);
  await storage.close();
  return dataDir;
}

describe('recover a data dir', () => {
  it('dry run: reports the log position and members, writes nothing', async () => {
    const dir = await survivor();
    const r = await recoverDataDir(dir, { dryRun: true });
    expect(r).toMatchObject({ nodeId: 'n1', lastIndex: 6, lastTerm: 2, commitIndex: 4, uncommittedKept: 2, applied: false });
    expect([...r.voters].sort()).toEqual(['n1', 'n2', 'n3']);
    const again = await recoverDataDir(dir, { dryRun: true });
    expect(again.lastIndex).toBe(6);
  });

  it('keeps every entry, uncommitted ones included, and appends committed removals of the others in a new term', async () => {
    const dir = await survivor();
    const r = await recoverDataDir(dir, { dryRun: false });
    expect(r.removed).toEqual(['n2', 'n3']);
    const s = await open(dir);
    const st = s.initialState({ voters: [], learners: [] });
    await s.close();
    expect(st.hardState).toEqual({ term: 3, votedFor: null, commit: 8 });
    expect(st.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const appended = st.entries.slice(6);
    expect(appended.map((e) => [e.term, e.type, decodeConfChange(e.data).op, decodeConfChange(e.data).nodeId])).toEqual([
      [3, 'conf', 'removeVoter', 'n2'],
      [3, 'conf', 'removeVoter', 'n3'],
    ]);
    // Recovered again (a second run by mistake): already alone, it only re-commits.
    const twice = await recoverDataDir(dir, { dryRun: false });
    expect(twice.voters).toEqual(['n1']);
    expect(twice.removed).toEqual([]);
  });

  it('refuses a directory that is not a data dir, without creating anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leaderd-recover-'));
    dirs.push(dir);
    await expect(recoverDataDir(dir, { dryRun: false })).rejects.toThrow(RecoverError);
    await expect(recoverDataDir(join(dir, 'missing'), { dryRun: false })).rejects.toThrow(/is not a leaderd data dir/);
  });
});
