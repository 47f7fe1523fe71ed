// What is born with a data dir (its incarnation, the bootstrap membership) is written in
// the batch that claims the store, and only then: reopening never replaces it.
import { afterEach, describe, expect, it } from 'vitest';
import { LevelStorage } from '../../src/storage/leveldb-storage.js';
import { makeTempDir, removeDir } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeDir(d);
});

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

describe('LevelStorage initialMeta', () => {
  it('is stored when the store is created, and ignored when it already exists', async () => {
    const dir = await makeTempDir();
    dirs.push(dir);
    const open = (incarnation: string) =>
      LevelStorage.open({ dir, clusterId: 'c', nodeId: 'n1', initialMeta: new Map([['incarnation', enc(incarnation)]]) });
    const first = await open('one');
    expect(first.isNew).toBe(true);
    expect(dec(first.getMeta('incarnation'))).toBe('one');
    await first.close();

    const second = await open('two');
    expect(second.isNew).toBe(false);
    expect(dec(second.getMeta('incarnation'))).toBe('one');
    await second.close();
  });
});
