// Shared fixtures for the storage tests: temp dirs, a raw LevelDB handle for looking at
// (and damaging) what is on disk, and a normal form for comparing logs.

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Level } from 'level';
import { wholeSnapshot } from '../../src/raft/snapshot-data.js';
import type { Entry, EntryType, InitialState, Snapshot } from '../../src/raft/types.js';

export type RawDb = Level<Uint8Array, Uint8Array>;

export async function makeTempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'leaderd-storage-'));
}

export async function removeDir(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
}

/** Runs `fn` against the store in `dir` through a plain `level` handle, bypassing LevelStorage. */
export async function withRawDb<T>(dir: string, fn: (db: RawDb) => Promise<T>): Promise<T> {
  const db: RawDb = new Level<Uint8Array, Uint8Array>(dir, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    createIfMissing: false,
  });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Every key and value in the store, hex-encoded, in key order. */
export async function dumpStore(dir: string): Promise<Array<[string, string]>> {
  return withRawDb(dir, async (db) => {
    const out: Array<[string, string]> = [];
    for await (const [k, v] of db.iterator()) out.push([Buffer.from(k).toString('hex'), Buffer.from(v).toString('hex')]);
    return out;
  });
}

export function entry(index: number, term: number, data: string = `e${index}`, type: EntryType = 'normal'): Entry {
  return { index, term, type, data: new TextEncoder().encode(data) };
}

export function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, `t${term}-e${i}`));
  return out;
}

export function snapshot(index: number, term: number, data = `state@${index}`): Snapshot {
  return { meta: { index, term, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data: new TextEncoder().encode(data) };
}

export interface NormEntry {
  index: number;
  term: number;
  type: EntryType;
  data: string;
}

export function normEntries(es: readonly Entry[]): NormEntry[] {
  return es.map((e) => ({ index: e.index, term: e.term, type: e.type, data: Buffer.from(e.data).toString('hex') }));
}

export function normSnapshot(s: Snapshot | null): unknown {
  return s === null ? null : { meta: s.meta, data: Buffer.from(wholeSnapshot(s.data)).toString('hex') };
}

export function normState(st: InitialState): unknown {
  return { hardState: st.hardState, snapshot: normSnapshot(st.snapshot), entries: normEntries(st.entries) };
}
