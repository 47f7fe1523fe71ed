// The disk's own limit for the write path, measured on the data dir's file system in the
// same run: how many small synced writes per second, one after another, when
//   append     each write extends a file, then fdatasync (the size must be journaled too)
//   overwrite  each write lands in a file already written out, then fdatasync (data only:
//              what a preallocated WAL segment gets, as etcd's)
//   leveldb    each write is a one-op LevelDB batch with { sync: true } (what leaderd does
//              per Ready batch)
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Level } from 'level';
import { stats, type Stats } from './procs.js';

export interface SyncResult {
  readonly perSecond: number;
  readonly latency: Stats | undefined;
}

const RECORD = Buffer.alloc(150, 'w');

async function timed(seconds: number, op: (i: number) => Promise<void>): Promise<SyncResult> {
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const s = performance.now();
    await op(i);
    lat.push(performance.now() - s);
  }
  return { perSecond: lat.length / ((performance.now() - t0) / 1000), latency: stats(lat) };
}

export async function diskCeiling(dir: string, seconds: number): Promise<Record<'append' | 'overwrite' | 'leveldb', SyncResult>> {
  const a = join(dir, 'append.bin');
  const fa = await open(a, 'w');
  const append = await timed(seconds, async () => {
    await fa.write(RECORD);
    await fa.datasync();
  });
  await fa.close();

  const o = join(dir, 'overwrite.bin');
  const fo = await open(o, 'w');
  const size = 64 * 2 ** 20;
  const chunk = Buffer.alloc(2 ** 20);
  for (let off = 0; off < size; off += chunk.length) await fo.write(chunk, 0, chunk.length, off);
  await fo.sync();
  const slots = size / RECORD.length;
  const overwrite = await timed(seconds, async (i) => {
    await fo.write(RECORD, 0, RECORD.length, (i % slots) * RECORD.length);
    await fo.datasync();
  });
  await fo.close();

  const l = join(dir, 'level');
  const db = new Level<string, Buffer>(l, { valueEncoding: 'buffer' });
  await db.open();
  const leveldb = await timed(seconds, async (i) => {
    await db.batch([{ type: 'put', key: `k${i}`, value: RECORD }], { sync: true });
  });
  await db.close();
  for (const p of [a, o, l]) await rm(p, { recursive: true, force: true });
  return { append, overwrite, leveldb };
}
