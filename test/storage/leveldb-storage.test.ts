import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { wholeSnapshot } from '../../src/raft/snapshot-data.js';
import { FORMAT_KEY, HARD_STATE_KEY, SNAPSHOT_KEY, encodeEntry, encodeSnapshotV1, entryKey, sealValue } from '../../src/storage/codec.js';
import { FORMAT_VERSION, LevelStorage, StorageRefusedError, type OpenOptions } from '../../src/storage/leveldb-storage.js';
import { SnapshotFile } from '../../src/storage/snapshot-file.js';
import { crc32 } from '../../src/storage/crc32.js';
import type { StorageRefusedKind } from '../../src/storage/errors.js';
import { dumpStore, entries, entry, makeTempDir, normEntries, normSnapshot, normState, removeDir, snapshot, withRawDb } from './helpers.js';

const BOOT = { voters: ['a', 'b', 'c'], learners: [] };

let dir: string;
let opts: OpenOptions;
const opened: LevelStorage[] = [];
const children: ChildProcess[] = [];

async function open(o: Partial<OpenOptions> = {}): Promise<LevelStorage> {
  const s = await LevelStorage.open({ ...opts, ...o });
  opened.push(s);
  return s;
}

async function reopen(s: LevelStorage): Promise<LevelStorage> {
  await s.close();
  return open();
}

beforeEach(async () => {
  dir = await makeTempDir();
  opts = { dir, clusterId: 'prod-eu', nodeId: 'a' };
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close().catch(() => undefined);
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  }
  await removeDir(dir);
});

/** MiB of this process's memory that maps LevelDB tables under `root`. */
async function tablesMappedMiB(root: string): Promise<number> {
  let kb = 0;
  let table = false;
  for (const line of (await fs.readFile('/proc/self/smaps', 'utf8')).split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) table = line.includes(root) && line.endsWith('.ldb');
    else if (table && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1]);
  }
  return kb / 1024;
}

describe('start-up memory', () => {
  it('leaves none of the tables it scanned at start-up mapped into memory', async () => {
    const s = await open();
    const big = new Uint8Array(256 << 10).fill(7);
    for (let i = 1; i <= 64; i++) await s.persist({ hardState: null, entries: [{ ...entry(i, 1), data: big }], snapshot: null }, false);
    await s.close();
    // Reopened twice: LevelDB writes the first reopen's recovered log to tables, which the
    // second one's scan reads.
    await (await open()).close();
    const again = await open();
    expect(again.lastIndex()).toBe(64);
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.ldb')).length).toBeGreaterThan(0);
    expect(await tablesMappedMiB(dir)).toBe(0);
  });
});

describe('a new store', () => {
  it('starts empty, is marked new, and is not new when reopened', async () => {
    const s = await open({ dir: path.join(dir, 'nested', 'data') });
    expect(s.isNew).toBe(true);
    expect(normState(s.initialState(BOOT))).toEqual({
      hardState: { term: 0, votedFor: null, commit: 0 },
      snapshot: null,
      entries: [],
    });
    expect(s.initialState(BOOT).bootstrapConf).toEqual(BOOT);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([1, 0]);
    await s.close();
    const again = await open({ dir: path.join(dir, 'nested', 'data') });
    expect(again.isNew).toBe(false);
  });
});

describe('compaction with a trailing tail', () => {
  it('keeps the entries after compactTo across a reopen, and the core can start from them', async () => {
    let s = await open();
    await s.persist({ hardState: { term: 2, votedFor: 'a', commit: 10 }, entries: entries(1, 10, 2), snapshot: null }, true);
    await s.compact(snapshot(8, 2), 5);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([6, 10]);
    s = await reopen(s);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([6, 10]);
    const st = s.initialState(BOOT);
    expect(st.snapshot?.meta.index).toBe(8);
    expect(normEntries(st.entries)).toEqual(normEntries(entries(6, 10, 2)));
    // A later compaction drops the tail it no longer needs; appends go on after it.
    await s.persist({ hardState: null, entries: entries(11, 12, 2), snapshot: null }, true);
    await s.compact(snapshot(12, 2), 11);
    s = await reopen(s);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([12, 12]);
    expect(normEntries(s.initialState(BOOT).entries)).toEqual(normEntries(entries(12, 12, 2)));
  });

  it('refuses a tail whose entry at the snapshot index has another term than the snapshot', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 2, votedFor: 'a', commit: 10 }, entries: entries(1, 10, 2), snapshot: null }, true);
    await s.compact(snapshot(8, 2), 5);
    await s.close();
    await withRawDb(dir, (db) => db.put(entryKey(8), encodeEntry(entry(8, 3))));
    const err = await LevelStorage.open(opts).catch((e: unknown) => e);
    expect((err as StorageRefusedError).kind).toBe('corrupt');
    expect((err as StorageRefusedError).message).toMatch(/entry 8 has term 3 but the snapshot there has term 2/);
  });
});

describe('an empty LevelDB (crash before the identity records were written)', () => {
  it('is claimed as a new store', async () => {
    const raw = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await raw.open();
    await raw.close();
    const s = await open();
    expect(s.isNew).toBe(true);
    await s.close();
    expect(await open({ clusterId: 'other' }).catch((e: unknown) => (e as StorageRefusedError).kind)).toBe('wrong-cluster');
  });
});

describe('round trip across close and reopen', () => {
  it('keeps hard state, entries, snapshot and meta', async () => {
    let s = await open();
    await s.persist({ hardState: { term: 3, votedFor: 'b', commit: 2 }, entries: entries(1, 5, 3), snapshot: null }, true);
    await s.persist({ hardState: null, entries: [entry(6, 3, '', 'noop'), entry(7, 3, 'conf-bytes', 'conf')], snapshot: null }, true);
    await s.compact(snapshot(2, 3));
    await s.putMeta('addr/b', new Uint8Array([1, 2, 3]));
    expect([s.firstIndex(), s.lastIndex()]).toEqual([3, 7]);

    s = await reopen(s);
    expect(s.isNew).toBe(false);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([3, 7]);
    const st = s.initialState(BOOT);
    expect(st.hardState).toEqual({ term: 3, votedFor: 'b', commit: 2 });
    expect(normSnapshot(st.snapshot)).toEqual(normSnapshot(snapshot(2, 3)));
    expect(normEntries(st.entries)).toEqual(normEntries([...entries(3, 5, 3), entry(6, 3, '', 'noop'), entry(7, 3, 'conf-bytes', 'conf')]));
    expect(s.getMeta('addr/b')).toEqual(new Uint8Array([1, 2, 3]));
    expect(s.getMeta('addr/c')).toBeUndefined();
  });

  it('clears a vote when a later hard state has none', async () => {
    let s = await open();
    await s.persist({ hardState: { term: 1, votedFor: 'a', commit: 0 }, entries: [], snapshot: null }, true);
    await s.persist({ hardState: { term: 2, votedFor: null, commit: 0 }, entries: [], snapshot: null }, true);
    s = await reopen(s);
    expect(s.initialState(BOOT).hardState).toEqual({ term: 2, votedFor: null, commit: 0 });
  });
});

describe('log replacement', () => {
  it('a conflicting append truncates the stored suffix', async () => {
    let s = await open();
    await s.persist({ hardState: null, entries: entries(1, 5, 1), snapshot: null }, true);
    await s.persist({ hardState: null, entries: entries(3, 4, 2), snapshot: null }, true);
    expect(s.lastIndex()).toBe(4);
    s = await reopen(s);
    expect(normEntries(s.initialState(BOOT).entries)).toEqual(normEntries([...entries(1, 2, 1), ...entries(3, 4, 2)]));
    await s.close();
    const keys = (await dumpStore(dir)).map(([k]) => k);
    expect(keys).not.toContain(Buffer.from(entryKey(5)).toString('hex'));
  });

  it('an append that would leave a hole is rejected, nothing is written, and the storage stops', async () => {
    const s = await open();
    await s.persist({ hardState: null, entries: entries(1, 2, 1), snapshot: null }, true);
    await expect(s.persist({ hardState: null, entries: entries(4, 5, 1), snapshot: null }, true)).rejects.toThrow(/hole/);
    await expect(s.persist({ hardState: null, entries: entries(3, 3, 1), snapshot: null }, true)).rejects.toThrow(
      /stopped after an earlier failure/,
    );
    expect(s.lastIndex()).toBe(2);
    await s.close();
    const again = await open();
    expect(normEntries(again.initialState(BOOT).entries)).toEqual(normEntries(entries(1, 2, 1)));
  });
});

describe('snapshots', () => {
  it('a snapshot deletes the log prefix and keeps the entries after a matching index', async () => {
    let s = await open();
    await s.persist({ hardState: null, entries: entries(1, 6, 1), snapshot: null }, true);
    await s.persist({ hardState: null, entries: [], snapshot: snapshot(4, 1) }, true);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([5, 6]);
    s = await reopen(s);
    const st = s.initialState(BOOT);
    expect(st.snapshot?.meta.index).toBe(4);
    expect(normEntries(st.entries)).toEqual(normEntries(entries(5, 6, 1)));
    await s.close();
    const keys = (await dumpStore(dir)).map(([k]) => k);
    for (let i = 1; i <= 4; i++) expect(keys).not.toContain(Buffer.from(entryKey(i)).toString('hex'));
  });

  it('a snapshot that conflicts with the log discards the whole log (Figure 13, step 7)', async () => {
    let s = await open();
    await s.persist({ hardState: null, entries: entries(1, 6, 1), snapshot: null }, true);
    await s.persist({ hardState: null, entries: [], snapshot: snapshot(3, 2) }, true);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([4, 3]);
    s = await reopen(s);
    expect(s.initialState(BOOT).entries).toEqual([]);
  });

  it('a snapshot beyond the log, with entries after it in the same batch, is installed', async () => {
    let s = await open();
    await s.persist({ hardState: null, entries: entries(1, 3, 1), snapshot: null }, true);
    await s.persist({ hardState: { term: 4, votedFor: null, commit: 10 }, entries: entries(11, 12, 4), snapshot: snapshot(10, 4) }, true);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([11, 12]);
    s = await reopen(s);
    expect(normState(s.initialState(BOOT))).toEqual({
      hardState: { term: 4, votedFor: null, commit: 10 },
      snapshot: normSnapshot(snapshot(10, 4)),
      entries: normEntries(entries(11, 12, 4)),
    });
  });

  it('compact with a snapshot not newer than the stored one changes nothing', async () => {
    const s = await open();
    await s.persist({ hardState: null, entries: entries(1, 6, 1), snapshot: null }, true);
    await s.compact(snapshot(4, 1));
    await s.close();
    const before = await dumpStore(dir);
    const again = await open();
    await again.compact(snapshot(3, 1, 'older'));
    await again.close();
    expect(await dumpStore(dir)).toEqual(before);
  });

  it('initialState is refused once the store has been written to', async () => {
    const s = await open();
    s.initialState(BOOT);
    await s.persist({ hardState: null, entries: entries(1, 1, 1), snapshot: null }, false);
    expect(() => s.initialState(BOOT)).toThrow(/before the first write/);
  });
});

describe('ordering', () => {
  it('concurrent persist calls apply in call order', async () => {
    let s = await open();
    const calls: Array<Promise<void>> = [];
    // Each batch depends on the one before: out of order, the second would leave a hole.
    for (let b = 0; b < 20; b++) {
      calls.push(s.persist({ hardState: null, entries: entries(b * 10 + 1, b * 10 + 10, 1), snapshot: null }, b % 2 === 0));
    }
    calls.push(s.persist({ hardState: { term: 2, votedFor: 'a', commit: 0 }, entries: entries(150, 151, 2), snapshot: null }, true));
    calls.push(s.compact(snapshot(100, 1)));
    calls.push(s.persist({ hardState: { term: 3, votedFor: null, commit: 120 }, entries: entries(152, 152, 3), snapshot: null }, true));
    await Promise.all(calls);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([101, 152]);
    s = await reopen(s);
    expect(normState(s.initialState(BOOT))).toEqual({
      hardState: { term: 3, votedFor: null, commit: 120 },
      snapshot: normSnapshot(snapshot(100, 1)),
      entries: normEntries([...entries(101, 149, 1), ...entries(150, 151, 2), ...entries(152, 152, 3)]),
    });
  });

  it('group commit: persist calls queued behind a write share one batch, with the last hard state and every truncation', async () => {
    let s = await open();
    const first = s.persist({ hardState: { term: 1, votedFor: 'a', commit: 0 }, entries: entries(1, 5, 1), snapshot: null }, true);
    const group = [
      s.persist({ hardState: null, entries: entries(6, 8, 1), snapshot: null }, false),
      // A new leader replaces 7.. in the same group: 8 must not survive.
      s.persist({ hardState: { term: 2, votedFor: 'b', commit: 3 }, entries: entries(7, 7, 2), snapshot: null }, true),
      s.persist({ hardState: { term: 2, votedFor: 'b', commit: 6 }, entries: [], snapshot: null }, false),
    ];
    // One promise for the whole group (the first call joins it too while its write has not started).
    expect(new Set(group).size).toBe(1);
    // A compact keeps its place in the order: the persist after it starts a new group.
    const compacted = s.compact(snapshot(4, 1));
    const after = s.persist({ hardState: null, entries: entries(8, 9, 2), snapshot: null }, true);
    expect(after).not.toBe(group[0]);
    await Promise.all([first, ...group, compacted, after]);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([5, 9]);
    s = await reopen(s);
    expect(normState(s.initialState(BOOT))).toEqual({
      hardState: { term: 2, votedFor: 'b', commit: 6 },
      snapshot: normSnapshot(snapshot(4, 1)),
      entries: normEntries([...entries(5, 6, 1), ...entries(7, 9, 2)]),
    });
  });

  it('close waits for queued writes and later writes are rejected', async () => {
    const s = await open();
    const p = s.persist({ hardState: null, entries: entries(1, 3, 1), snapshot: null }, true);
    const closed = s.close();
    await expect(s.putMeta('k', new Uint8Array([1]))).rejects.toThrow(/closed/);
    await p;
    await closed;
    const again = await open();
    expect(again.lastIndex()).toBe(3);
  });
});

describe('refusals leave the directory untouched', () => {
  async function expectRefused(o: Partial<OpenOptions>, kind: StorageRefusedKind, message: RegExp): Promise<void> {
    const before = await dumpStore(dir);
    const err: unknown = await LevelStorage.open({ ...opts, ...o }).then(
      (s) => {
        opened.push(s);
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageRefusedError);
    expect((err as StorageRefusedError).kind).toBe(kind);
    expect((err as StorageRefusedError).message).toMatch(message);
    expect(await dumpStore(dir)).toEqual(before);
  }

  async function populated(): Promise<void> {
    const s = await open();
    await s.persist({ hardState: { term: 2, votedFor: 'a', commit: 3 }, entries: entries(1, 5, 2), snapshot: null }, true);
    await s.compact(snapshot(2, 2));
    await s.putMeta('addr/a', new Uint8Array([9]));
    await s.close();
  }

  it('refuses a directory of another cluster, naming both clusters', async () => {
    await populated();
    await expectRefused({ clusterId: 'prod-us' }, 'wrong-cluster', /belongs to cluster 'prod-eu', not 'prod-us'/);
  });

  it('refuses a directory of another node, naming both nodes', async () => {
    await populated();
    await expectRefused({ nodeId: 'b' }, 'wrong-node', /belongs to node 'a' .* not 'b'/);
  });

  it('refuses a newer format version', async () => {
    await populated();
    await withRawDb(dir, (db) => db.put(FORMAT_KEY, sealValue(FORMAT_KEY, new Uint8Array([0, 0, 0, FORMAT_VERSION + 1]))));
    await expectRefused({}, 'newer-format', new RegExp(`format ${FORMAT_VERSION + 1}; this leaderd reads formats up to ${FORMAT_VERSION}`));
  });

  it('refuses a log entry with a flipped byte, naming the entry', async () => {
    await populated();
    await withRawDb(dir, async (db) => {
      const value = await db.get(entryKey(4));
      if (value === undefined) throw new Error('entry 4 missing from the fixture');
      const damaged = Uint8Array.from(value);
      damaged[damaged.length - 1]! ^= 0x01;
      await db.put(entryKey(4), damaged);
    });
    await expectRefused({}, 'corrupt', /checksum mismatch in log entry 4/);
  });

  it('refuses a damaged hard state', async () => {
    await populated();
    await withRawDb(dir, async (db) => {
      const value = await db.get(HARD_STATE_KEY);
      if (value === undefined) throw new Error('hard state missing from the fixture');
      const damaged = Uint8Array.from(value);
      damaged[5]! ^= 0x80;
      await db.put(HARD_STATE_KEY, damaged);
    });
    await expectRefused({}, 'corrupt', /checksum mismatch in the hard state/);
  });

  it('refuses an entry moved under another index even though its own bytes are intact', async () => {
    await populated();
    await withRawDb(dir, async (db) => {
      const value = await db.get(entryKey(5));
      if (value === undefined) throw new Error('entry 5 missing from the fixture');
      await db.put(entryKey(6), value);
    });
    await expectRefused({}, 'corrupt', /checksum mismatch in log entry 6/);
  });

  it('refuses a log with a missing entry in the middle', async () => {
    await populated();
    await withRawDb(dir, (db) => db.del(entryKey(4)));
    await expectRefused({}, 'corrupt', /hole: entry 4 is missing/);
  });

  it('refuses a non-empty directory that holds no store, and writes nothing into it', async () => {
    await fs.writeFile(path.join(dir, 'notes.txt'), 'not a database');
    const err = await LevelStorage.open(opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageRefusedError);
    expect((err as StorageRefusedError).kind).toBe('corrupt');
    expect((err as StorageRefusedError).message).toMatch(/holds no leaderd store/);
    expect(await fs.readdir(dir)).toEqual(['notes.txt']);
  });
});

describe('exclusive access', () => {
  it('a second open of an open directory is refused as locked, and the first keeps working', async () => {
    const s = await open();
    const err = await LevelStorage.open(opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageRefusedError);
    expect((err as StorageRefusedError).kind).toBe('locked');
    expect((err as StorageRefusedError).message).toContain(dir);
    await s.persist({ hardState: null, entries: entries(1, 1, 1), snapshot: null }, true);
    expect(s.lastIndex()).toBe(1);
  });

  it('an open by another process is refused as locked', async () => {
    const s = await open();
    await s.persist({ hardState: null, entries: entries(1, 2, 1), snapshot: null }, true);
    await s.close();
    const before = await dumpStore(dir);

    const script =
      "import { Level } from 'level';" +
      'const db = new Level(process.argv[1]); await db.open();' +
      "process.stdout.write('ready\\n'); setInterval(() => {}, 1000);";
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child did not open the store within 10s')), 10_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`child exited early with ${String(code)}`));
      });
    });

    const err = await LevelStorage.open(opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageRefusedError);
    expect((err as StorageRefusedError).kind).toBe('locked');

    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    expect(await dumpStore(dir)).toEqual(before);
  });
});

describe('snapshot bytes in a file', () => {
  const snapDir = () => path.join(dir, 'snap');
  const big = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

  it('keeps the bytes in snap/<index>-<term>.snap, only meta and a reference in LevelDB, and the older file goes', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 2, votedFor: null, commit: 10 }, entries: entries(1, 10, 2), snapshot: null }, true);
    const first = big(100_000, 1);
    await s.compact({ ...snapshot(5, 2), data: first });
    expect(await fs.readdir(snapDir())).toEqual(['0000000000000005-00000002.snap']);
    const second = big(50_000, 2);
    await s.compact({ ...snapshot(8, 2), data: second });
    expect(await fs.readdir(snapDir())).toEqual(['0000000000000008-00000002.snap']);
    expect(new Uint8Array(await fs.readFile(path.join(snapDir(), '0000000000000008-00000002.snap')))).toEqual(second);
    await s.close();
    const raw = await withRawDb(dir, (db) => db.get(SNAPSHOT_KEY));
    expect(raw!.length).toBeLessThan(200);
    const back = (await open()).initialState(BOOT).snapshot!;
    // Read through the file, not handed over as one buffer.
    expect(back.data).toBeInstanceOf(SnapshotFile);
    expect(back.data.byteLength).toBe(50_000);
    expect(back.data.subarray(1000, 1010)).toEqual(second.subarray(1000, 1010));
    expect(wholeSnapshot(back.data)).toEqual(second);
  });

  it('a spool from openSnapshotSink is renamed into place, not copied; spools left by a crash are removed at open', async () => {
    const s = await open();
    const spool = s.openSnapshotSink();
    spool.append(big(1000, 3));
    spool.append(big(24, 4));
    const data = spool.finish(crc32(big(24, 4), crc32(big(1000, 3))));
    await s.persist({ hardState: { term: 3, votedFor: null, commit: 9 }, entries: [], snapshot: { ...snapshot(9, 3), data } }, true);
    expect(data.filePath).toBe(path.join(snapDir(), '0000000000000009-00000003.snap'));
    const left = s.openSnapshotSink();
    left.append(big(10, 5));
    await s.close();
    expect((await fs.readdir(snapDir())).length).toBe(2);
    const again = await open();
    expect(await fs.readdir(snapDir())).toEqual(['0000000000000009-00000003.snap']);
    expect(wholeSnapshot(again.initialState(BOOT).snapshot!.data)).toEqual(Uint8Array.from([...big(1000, 3), ...big(24, 4)]));
  });

  async function withSnapshotFile(): Promise<string> {
    const s = await open();
    await s.persist(
      { hardState: { term: 2, votedFor: null, commit: 4 }, entries: [], snapshot: { ...snapshot(4, 2), data: big(5000, 6) } },
      true,
    );
    await s.close();
    return path.join(snapDir(), '0000000000000004-00000002.snap');
  }

  it('refuses as corrupt a data dir whose snapshot file is missing, of another size, or with a flipped byte', async () => {
    const file = await withSnapshotFile();
    const bytes = await fs.readFile(file);
    const refused = async (message: RegExp) => {
      const err = await LevelStorage.open(opts).then(
        (s) => (opened.push(s), null),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageRefusedError);
      expect((err as StorageRefusedError).kind).toBe('corrupt');
      expect((err as StorageRefusedError).message).toMatch(message);
    };
    await fs.rm(file);
    await refused(/is corrupt: its snapshot file .*0000000000000004-00000002\.snap is missing/);
    await fs.writeFile(file, bytes.subarray(0, 4999));
    await refused(/holds 4999 bytes, not the 5000 its record says/);
    const flipped = Buffer.from(bytes);
    flipped[2500]! ^= 0x10;
    await fs.writeFile(file, flipped);
    await refused(/does not match its checksum/);
    // Put back, it opens again: nothing was repaired or removed meanwhile.
    await fs.writeFile(file, bytes);
    expect(wholeSnapshot((await open()).initialState(BOOT).snapshot!.data)).toEqual(big(5000, 6));
  });

  it('a format 1 data dir (bytes inline in s:snap) loads, and its next snapshot moves to a file and format 2', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 2, votedFor: null, commit: 6 }, entries: entries(1, 6, 2), snapshot: null }, true);
    await s.close();
    const old = { meta: { index: 3, term: 2, conf: { voters: ['a', 'b', 'c'], learners: [] } }, data: big(3000, 7) };
    await withRawDb(dir, (db) =>
      db.batch([
        { type: 'put', key: FORMAT_KEY, value: sealValue(FORMAT_KEY, new Uint8Array([0, 0, 0, 1])) },
        { type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshotV1(old) },
        ...[1, 2, 3].map((i) => ({ type: 'del' as const, key: entryKey(i) })),
      ]),
    );
    const s1 = await open();
    const st = s1.initialState(BOOT);
    expect(st.snapshot!.meta.index).toBe(3);
    expect(Uint8Array.from(wholeSnapshot(st.snapshot!.data))).toEqual(old.data);
    expect(st.entries.map((e) => e.index)).toEqual([4, 5, 6]);
    await s1.compact({ ...snapshot(5, 2), data: big(2000, 8) });
    await s1.close();
    const format = await withRawDb(dir, (db) => db.get(FORMAT_KEY));
    expect(Array.from(format!.subarray(4))).toEqual([0, 0, 0, FORMAT_VERSION]);
    const s2 = await open();
    expect(s2.initialState(BOOT).snapshot!.data).toBeInstanceOf(SnapshotFile);
    expect(wholeSnapshot(s2.initialState(BOOT).snapshot!.data)).toEqual(big(2000, 8));
  });
});
