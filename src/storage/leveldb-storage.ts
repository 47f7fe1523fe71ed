// Durable state of one leaderd node in LevelDB: the Raft hard state, the log, the
// latest snapshot, who the directory belongs to, and a small meta area for the runtime.
//
// On-disk layout (one LevelDB database per data dir; keys are raw bytes and LevelDB's
// bytewise comparator orders them):
//
//   key                        value payload (see codec.ts)
//   "e" + u64 BE index         log entry: u64 term, u8 type (0 normal, 1 noop, 2 conf), data
//   "m:" + UTF-8 name          meta record: opaque bytes chosen by the runtime
//   "s:cluster"                cluster id, UTF-8
//   "s:format"                 format version, u32 (this record is frozen across versions)
//   "s:hard"                   hard state: u64 term, u64 commit, u8 hasVote, votedFor UTF-8
//   "s:node"                   node id, UTF-8
//   "s:snap"                   latest snapshot: u64 index, u64 term, u32 n, conf JSON (n bytes), then
//                              format 2: u64 size, u32 crc32, file name (the bytes are in snap/<name>);
//                              format 1: the bytes themselves (read to load an old data dir)
//
// Every value is [u32 BE crc32][payload], the CRC computed over the payload continued
// from the CRC of the key, so each record is checked on its own and bound to its key.
// Big-endian indexes make iteration order equal log order.
//
// Snapshot bytes live in a file, `snap/<index>-<term>.snap` inside the LevelDB directory,
// never in a LevelDB value: a value is copied into LevelDB's write-ahead log and memtable
// and read back whole, which for a gigabyte of state held it two or three times over.
// A file is written under a spool name, synced, renamed and its directory synced before
// the batch whose record names it; the file it replaces is removed only after that batch
// is synced. At open the file must be there with the recorded size and checksum. A data
// dir of format 1 (bytes inline) loads as it is, and moves to format 2 with the batch
// that records its next snapshot.
//
// Invariants kept by every batch and checked at open: entries are firstIndex .. lastIndex
// with no hole, where firstIndex <= snapshot.index+1 (a compaction may keep a trailing
// tail of entries the snapshot covers, for followers slightly behind; index 1.. when
// there is no snapshot), an entry at the snapshot's index has the snapshot's term, terms
// never decrease along the log, and the three identity records are present. A store
// that breaks any of them is refused as corrupt rather than repaired: silently dropping
// a suffix could drop an entry this node acknowledged, which a leader may already have
// counted towards a commit (Raft paper §5.4; thesis §3.8 on persisted state).
//
// Failure policy: a failed write is fail-stop, as in etcd-io/raft (storage.go): after a
// failed write the disk may hold less than the core was told, and retrying could persist
// a later write over a hole.
// After any rejected persist/compact/putMeta every later call rejects too; the node must
// stop rather than carry on with a memory view that may disagree with the disk.

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Level } from 'level';
import type { ConfState, Entry, HardState, InitialState, Snapshot, SnapshotMeta } from '../raft/types.js';
import {
  CLUSTER_KEY,
  CodecError,
  FORMAT_KEY,
  HARD_STATE_KEY,
  NODE_KEY,
  SNAPSHOT_KEY,
  decodeEntry,
  decodeFormat,
  decodeHardState,
  decodeSnapshotRecord,
  decodeSnapshotV1,
  decodeString,
  describeKey,
  encodeEntry,
  encodeFormat,
  encodeHardState,
  encodeSnapshotRecord,
  encodeString,
  entryKey,
  metaKey,
  parseKey,
  sealValue,
  unsealValue,
} from './codec.js';
import { StorageRefusedError, newerFormat, wrongCluster, wrongNode } from './errors.js';
import { crc32 } from './crc32.js';
import { SNAP_DIR, SnapshotFile, SnapshotFileError, SnapshotSpool, isSpoolName, snapshotFileName, syncDir } from './snapshot-file.js';

export { StorageRefusedError } from './errors.js';
export type { StorageRefusedKind } from './errors.js';

/**
 * The on-disk format this build writes and the newest it can read. 2: snapshot bytes in
 * files (1: inline in the snapshot record; still read).
 */
export const FORMAT_VERSION = 2;
/** Bytes copied at a time when a snapshot handed over in memory is written to its file. */
const COPY_PIECE = 4 << 20;

export interface OpenOptions {
  readonly dir: string;
  readonly clusterId: string;
  readonly nodeId: string;
  /**
   * Meta records written only when this open creates the store, in the same synced batch
   * as the identity records: what must be born with the data dir (its incarnation, the
   * bootstrap membership) is then there whenever the store is.
   */
  readonly initialMeta?: ReadonlyMap<string, Uint8Array>;
}

export interface PersistInput {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

type Db = Level<Uint8Array, Uint8Array>;

/** Persist calls merged into one batch (group commit). */
interface PersistGroup {
  readonly inputs: PersistInput[];
  sync: boolean;
  done: Promise<void>;
}
type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

const INITIAL_HARD_STATE: HardState = { term: 0, votedFor: null, commit: 0 };

/**
 * The log as storage tracks it in memory: only terms, by position. Entries are always
 * exactly offset+1 .. offset+terms.length, with offset <= snapIndex (the entries between
 * are the tail kept after a compaction).
 */
interface LogView {
  readonly snapIndex: number;
  readonly snapTerm: number;
  readonly offset: number;
  readonly terms: readonly number[];
}

interface Loaded {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
}

export class LevelStorage {
  /** True if this open created the store (the directory was absent, empty, or an empty LevelDB). */
  readonly isNew: boolean;
  readonly dir: string;

  readonly #db: Db;
  #log: LogView;
  readonly #meta: Map<string, Uint8Array>;
  /** What open() read, handed out by initialState(); released at the first write so the log is not held twice. */
  #loaded: Loaded | null;
  /** Every write runs after the previous one settles, in call order. */
  #tail: Promise<void> = Promise.resolve();
  /** The persist group queued behind the write in flight, still open to later persist calls (group commit). */
  #group: PersistGroup | null = null;
  #failure: Error | null = null;
  #closing: Promise<void> | null = null;
  /** The format of the store as on disk: 1 until the batch that records its first snapshot file. */
  #format: number;
  /** The file the snapshot record names (null without one, or for a format 1 snapshot). */
  #snapFile: SnapshotFile | null;
  #spoolSeq = 0;

  private constructor(db: Db, dir: string, isNew: boolean, loaded: Loaded, meta: Map<string, Uint8Array>, format: number) {
    this.#db = db;
    this.dir = dir;
    this.isNew = isNew;
    this.#loaded = loaded;
    this.#meta = meta;
    this.#format = format;
    this.#snapFile = loaded.snapshot?.data instanceof SnapshotFile ? loaded.snapshot.data : null;
    const snapIndex = loaded.snapshot?.meta.index ?? 0;
    const snapTerm = loaded.snapshot?.meta.term ?? 0;
    const offset = Math.min(snapIndex, (loaded.entries[0]?.index ?? Infinity) - 1);
    this.#log = { snapIndex, snapTerm, offset, terms: loaded.entries.map((e) => e.term) };
  }

  /**
   * Opens (or creates) the store in `opts.dir`. An existing store must belong to the same
   * cluster and node, use a format this build reads, and pass every checksum; otherwise
   * this rejects with a StorageRefusedError and writes nothing.
   */
  static async open(opts: OpenOptions): Promise<LevelStorage> {
    if (opts.clusterId.length === 0) throw new TypeError('clusterId must not be empty');
    if (opts.nodeId.length === 0) throw new TypeError('nodeId must not be empty');
    const dir = path.resolve(opts.dir);

    const found = await inspectDir(dir);
    if (found === 'foreign') {
      throw new StorageRefusedError(
        'corrupt',
        dir,
        `data dir ${dir} is not empty but holds no leaderd store; refusing to start an empty log on top of it`,
      );
    }

    const db: Db = new Level<Uint8Array, Uint8Array>(dir, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      // Only a directory without a LevelDB in it may be initialised. If CURRENT vanished
      // between inspectDir and here, LevelDB's refusal surfaces as an open error.
      createIfMissing: found !== 'leveldb',
      errorIfExists: false,
    });
    try {
      await db.open();
    } catch (err) {
      throw refusalFromOpenError(dir, err);
    }

    try {
      const loaded = await load(db, dir, opts);
      if (loaded === 'empty') {
        // An empty database (new, or a crash before this first batch) is claimed by
        // writing the identity records; until they are durable nothing else is written.
        const meta = new Map<string, Uint8Array>();
        const metaOps: BatchOp[] = [];
        for (const [name, value] of opts.initialMeta ?? []) {
          if (name.length === 0) throw new TypeError('meta key must not be empty');
          const copy = Uint8Array.from(value);
          const k = metaKey(name);
          metaOps.push({ type: 'put', key: k, value: sealValue(k, copy) });
          meta.set(name, copy);
        }
        await db.batch(
          [
            { type: 'put', key: FORMAT_KEY, value: encodeFormat(FORMAT_VERSION) },
            { type: 'put', key: CLUSTER_KEY, value: encodeString(CLUSTER_KEY, opts.clusterId) },
            { type: 'put', key: NODE_KEY, value: encodeString(NODE_KEY, opts.nodeId) },
            ...metaOps,
          ],
          { sync: true },
        );
        await removeStaleSnapshotFiles(dir, null);
        return new LevelStorage(db, dir, true, { hardState: INITIAL_HARD_STATE, snapshot: null, entries: [] }, meta, FORMAT_VERSION);
      }
      const file = loaded.state.snapshot?.data instanceof SnapshotFile ? loaded.state.snapshot.data : null;
      try {
        await removeStaleSnapshotFiles(dir, file);
        // LevelDB maps every table it reads into memory and keeps it mapped while the table
        // stays open: the scan above left up to the whole store's tables resident (54 MiB
        // of a restarted node's RSS in bench:state), though from here on the log is served
        // from memory and only LevelDB's own compactions read the tables. Reopening unmaps them.
        await db.close();
        await db.open();
      } catch (err) {
        file?.close();
        throw err;
      }
      return new LevelStorage(db, dir, false, loaded.state, loaded.meta, loaded.format);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  /** What was read at open. Only available before the first write (the core then owns the log). */
  initialState(bootstrapConf: ConfState): InitialState {
    const loaded = this.#loaded;
    if (loaded === null) throw new Error('initialState() is only available before the first write');
    return { hardState: loaded.hardState, snapshot: loaded.snapshot, entries: loaded.entries, bootstrapConf };
  }

  /**
   * Writes one Ready's worth of state in a single LevelDB batch (synced when `sync`).
   *
   * - `snapshot`: stored; entries up to its index are deleted. Entries after it are kept
   *   only if the log holds the snapshot's own index with the snapshot's term (then they
   *   extend it); otherwise the whole log is discarded (Raft paper Figure 13, steps 6-7).
   * - `entries` (contiguous): replace everything from entries[0].index on, so a stored
   *   suffix beyond the last new entry is deleted (§5.3, conflicting entries). Entries at
   *   or below the snapshot index are skipped: they are committed, hence identical to what
   *   the snapshot covers (§5.4.3, State Machine Safety).
   * - `hardState`: stored if non-null.
   *
   * Calls are applied in call order even when not awaited. Group commit: consecutive calls
   * queued behind another write (or made before the first of them started) are merged
   * into one batch (synced if any of them asks); they return the same promise, which
   * resolves when that batch is written. A
   * runtime that keeps taking Readies while its disk syncs thus pays one fsync for
   * everything that arrived meanwhile, however many Readies that was.
   */
  persist(p: PersistInput, sync: boolean): Promise<void> {
    const open = this.#group;
    if (open !== null && this.#closing === null) {
      open.inputs.push(p);
      open.sync ||= sync;
      return open.done;
    }
    const group: PersistGroup = { inputs: [p], sync, done: Promise.resolve() };
    group.done = this.#enqueue(async () => {
      // Closed to later calls from the moment it starts: they form the next group.
      if (this.#group === group) this.#group = null;
      const ops: BatchOp[] = [];
      let log = this.#log;
      let hard: HardState | null = null;
      let file: SnapshotFile | null = null;
      const replaced: SnapshotFile[] = [];
      for (const input of group.inputs) {
        if (input.snapshot !== null) {
          if (input.snapshot.meta.index < log.snapIndex) {
            throw new Error(`persist: snapshot at index ${input.snapshot.meta.index} is older than the stored one at ${log.snapIndex}`);
          }
          if (file !== null) replaced.push(file);
          file = await this.#fileFor(input.snapshot);
          log = installSnapshot(log, input.snapshot.meta, file, ops);
        }
        log = appendEntries(log, input.entries, ops);
        if (input.hardState !== null) hard = input.hardState;
      }
      // One record: the last hard state handed over is the one that holds.
      if (hard !== null) ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardState(hard) });
      if (file !== null) {
        this.#upgradeFormat(ops);
        // A batch that records a snapshot is synced: the old file goes once it is.
        await this.#db.batch(ops, { sync: true });
        await this.#replaceSnapshotFile(file, replaced);
      } else if (ops.length > 0) await this.#db.batch(ops, { sync: group.sync });
      this.#log = log;
    });
    this.#group = group;
    return group.done;
  }

  /**
   * The local state machine took `snapshot`: store it and drop the entries up to
   * `compactTo` (default: every entry it covers; the core keeps the ones after as a tail
   * for lagging followers), in one synced batch. A snapshot not newer than the stored one
   * is ignored (a snapshot installed from the leader may have overtaken it).
   */
  compact(snapshot: Snapshot, compactTo: number = snapshot.meta.index): Promise<void> {
    return this.#enqueue(async () => {
      const log = this.#log;
      if (snapshot.meta.index <= log.snapIndex) return;
      const held = termAt(log, snapshot.meta.index);
      if (held !== undefined && held !== snapshot.meta.term) {
        throw new Error(
          `compact: snapshot at index ${snapshot.meta.index} has term ${snapshot.meta.term} but the log holds term ${held} there`,
        );
      }
      const ops: BatchOp[] = [];
      const file = await this.#fileFor(snapshot);
      const next = installSnapshot(log, snapshot.meta, file, ops, compactTo);
      this.#upgradeFormat(ops);
      await this.#db.batch(ops, { sync: true });
      this.#log = next;
      await this.#replaceSnapshotFile(file, []);
    });
  }

  /**
   * Somewhere to write a snapshot's bytes before handing them to persist() or compact():
   * a spool file in this store's snapshot directory, which they then sync and rename
   * rather than copy. Synchronous, for the core's incoming transfers (RaftConfig.openSnapshotSink).
   */
  openSnapshotSink(): SnapshotSpool {
    return SnapshotSpool.create(path.join(this.dir, SNAP_DIR), ++this.#spoolSeq);
  }

  /**
   * The file `snapshot`'s bytes are to be recorded in, synced and under its final name:
   * a spool of this store's is renamed; bytes from anywhere else (memory, say) are copied
   * into a new one first.
   */
  async #fileFor(snapshot: Snapshot): Promise<SnapshotFile> {
    const snapDir = path.join(this.dir, SNAP_DIR);
    const data = snapshot.data;
    let file: SnapshotFile;
    if (data instanceof SnapshotFile && path.dirname(data.filePath) === snapDir && !data.closed) file = data;
    else {
      const spool = this.openSnapshotSink();
      let sum = 0;
      try {
        for (let off = 0; off < data.byteLength; off += COPY_PIECE) {
          const piece = data.subarray(off, Math.min(off + COPY_PIECE, data.byteLength));
          spool.append(piece);
          sum = crc32(piece, sum);
        }
      } catch (err) {
        spool.discard();
        throw err;
      }
      file = spool.finish(sum);
    }
    const final = path.join(snapDir, snapshotFileName(snapshot.meta.index, snapshot.meta.term));
    if (file.filePath !== final) {
      await file.sync();
      await fs.rename(file.filePath, final);
      file.filePath = final;
      await syncDir(snapDir);
    }
    return file;
  }

  /** After the batch recording `file` is synced: close and remove the files it replaces. */
  async #replaceSnapshotFile(file: SnapshotFile, replaced: SnapshotFile[]): Promise<void> {
    const old = this.#snapFile;
    this.#snapFile = file;
    if (old !== null && old !== file) replaced.push(old);
    for (const f of replaced) {
      if (f === file) continue;
      f.close();
      // The same name may now be the new file's (a snapshot at the same index and term written again).
      if (f.filePath !== file.filePath) await fs.rm(f.filePath, { force: true });
    }
  }

  #upgradeFormat(ops: BatchOp[]): void {
    if (this.#format >= FORMAT_VERSION) return;
    ops.push({ type: 'put', key: FORMAT_KEY, value: encodeFormat(FORMAT_VERSION) });
    // A format 1 record holds the bytes inline; the one just pushed replaces it.
    this.#format = FORMAT_VERSION;
  }

  /** Index of the last entry in the log; the snapshot index when no entries are held (0 if neither). */
  lastIndex(): number {
    return lastOf(this.#log);
  }

  /** Index of the first entry held: at most snapshot index + 1 (lastIndex() + 1 when no entries are held). */
  firstIndex(): number {
    return this.#log.offset + 1;
  }

  getMeta(key: string): Uint8Array | undefined {
    return this.#meta.get(key);
  }

  /** Stores an opaque meta value (synced), ordered with the other writes. */
  putMeta(key: string, value: Uint8Array): Promise<void> {
    if (key.length === 0) return Promise.reject(new TypeError('meta key must not be empty'));
    const copy = Uint8Array.from(value);
    return this.#enqueue(async () => {
      const k = metaKey(key);
      await this.#db.put(k, sealValue(k, copy), { sync: true });
      this.#meta.set(key, copy);
    });
  }

  /** Waits for queued writes, then closes the database. Later writes reject. */
  close(): Promise<void> {
    this.#closing ??= this.#tail.then(() => {
      this.#snapFile?.close();
      return this.#db.close();
    });
    return this.#closing;
  }

  #enqueue(write: () => Promise<void>): Promise<void> {
    if (this.#closing !== null) return Promise.reject(new Error(`storage ${this.dir} is closed`));
    this.#loaded = null;
    // A compact or meta write queued after a persist group keeps its place: later persists start a new group.
    this.#group = null;
    const run = this.#tail.then(async () => {
      if (this.#failure !== null) {
        throw new Error(`storage ${this.dir} stopped after an earlier failure: ${this.#failure.message}`, {
          cause: this.#failure,
        });
      }
      try {
        await write();
      } catch (err) {
        this.#failure = err instanceof Error ? err : new Error(String(err));
        throw err;
      }
    });
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

// ---------------------------------------------------------------------------
// Log bookkeeping shared by persist and compact. Each function returns the new view
// and pushes the batch operations that make the disk match it.

function lastOf(log: LogView): number {
  return Math.max(log.snapIndex, log.offset + log.terms.length);
}

function termAt(log: LogView, index: number): number | undefined {
  if (index === log.snapIndex) return log.snapTerm;
  if (index <= log.offset || index > lastOf(log)) return undefined;
  return log.terms[index - log.offset - 1];
}

function deleteRange(from: number, to: number, ops: BatchOp[]): void {
  for (let i = from; i <= to; i++) ops.push({ type: 'del', key: entryKey(i) });
}

function installSnapshot(log: LogView, meta: SnapshotMeta, file: SnapshotFile, ops: BatchOp[], compactTo: number = meta.index): LogView {
  const { index, term } = meta;
  const ref = { name: path.basename(file.filePath), size: file.byteLength, checksum: file.checksum };
  ops.push({ type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshotRecord(meta, ref) });
  const last = lastOf(log);
  if (termAt(log, index) === term && log.offset + log.terms.length >= index) {
    const to = Math.max(log.offset, Math.min(compactTo, index));
    deleteRange(log.offset + 1, to, ops);
    return { snapIndex: index, snapTerm: term, offset: to, terms: log.terms.slice(to - log.offset) };
  }
  deleteRange(log.offset + 1, last, ops);
  return { snapIndex: index, snapTerm: term, offset: index, terms: [] };
}

function appendEntries(log: LogView, entries: readonly Entry[], ops: BatchOp[]): LogView {
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.index !== entries[i - 1]!.index + 1) {
      throw new Error(`persist: entries are not contiguous (${entries[i - 1]!.index} then ${entries[i]!.index})`);
    }
  }
  const fresh = entries.filter((e) => e.index > log.snapIndex);
  const head = fresh[0];
  const tail = fresh[fresh.length - 1];
  if (head === undefined || tail === undefined) return log;
  const last = lastOf(log);
  if (head.index > last + 1) {
    throw new Error(`persist: entries start at ${head.index} but the log ends at ${last}; that would leave a hole`);
  }
  deleteRange(tail.index + 1, last, ops);
  for (const e of fresh) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
  const terms = log.terms.slice(0, head.index - log.offset - 1);
  for (const e of fresh) terms.push(e.term);
  return { snapIndex: log.snapIndex, snapTerm: log.snapTerm, offset: log.offset, terms };
}

// ---------------------------------------------------------------------------
// Opening

/** What is in the directory before LevelDB touches it. */
async function inspectDir(dir: string): Promise<'absent' | 'empty' | 'leveldb' | 'foreign'> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  if (names.includes('CURRENT')) return 'leveldb';
  return names.length === 0 ? 'empty' : 'foreign';
}

function refusalFromOpenError(dir: string, err: unknown): unknown {
  const codes = [errCode(err), errCode((err as { cause?: unknown } | null)?.cause)];
  const detail = (err as { cause?: { message?: string } } | null)?.cause?.message ?? String(err);
  if (codes.includes('LEVEL_LOCKED')) {
    return new StorageRefusedError('locked', dir, `data dir ${dir} is already open (by another process or handle): ${detail}`, {
      cause: err,
    });
  }
  if (codes.includes('LEVEL_CORRUPTION')) {
    return new StorageRefusedError('corrupt', dir, `data dir ${dir} is corrupt (LevelDB: ${detail})`, { cause: err });
  }
  return err;
}

function errCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

interface LoadedStore {
  readonly state: Loaded;
  readonly meta: Map<string, Uint8Array>;
  readonly format: number;
}

/**
 * Removes what a crash or an interrupted replacement left in the snapshot directory:
 * spool files never recorded, and snapshot files other than `keep` (the one the record names).
 */
async function removeStaleSnapshotFiles(dir: string, keep: SnapshotFile | null): Promise<void> {
  const snapDir = path.join(dir, SNAP_DIR);
  let names: string[];
  try {
    names = await fs.readdir(snapDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const kept = keep === null ? null : path.basename(keep.filePath);
  for (const name of names) {
    if (name !== kept && (isSpoolName(name) || name.endsWith('.snap'))) await fs.rm(path.join(snapDir, name), { force: true });
  }
}

/**
 * Reads the whole store once and validates it. Checks run from the most to the least
 * fundamental, so the refusal names the real problem: a newer format may encode
 * anything differently, and a foreign cluster's log is wrong however intact it is.
 */
async function load(db: Db, dir: string, opts: OpenOptions): Promise<LoadedStore | 'empty'> {
  let format: Uint8Array | undefined;
  let cluster: Uint8Array | undefined;
  let node: Uint8Array | undefined;
  let hard: Uint8Array | undefined;
  let snap: Uint8Array | undefined;
  const rawEntries: Array<[number, Uint8Array]> = [];
  const rawMeta: Array<[string, Uint8Array, Uint8Array]> = [];
  const unknown: Uint8Array[] = [];
  let any = false;

  for await (const [key, value] of db.iterator()) {
    any = true;
    const parsed = parseKey(key);
    switch (parsed.kind) {
      case 'format':
        format = value;
        break;
      case 'cluster':
        cluster = value;
        break;
      case 'node':
        node = value;
        break;
      case 'hard':
        hard = value;
        break;
      case 'snap':
        snap = value;
        break;
      case 'entry':
        rawEntries.push([parsed.index, value]);
        break;
      case 'meta':
        rawMeta.push([parsed.name, key, value]);
        break;
      case 'unknown':
        unknown.push(key);
        break;
      default: {
        const never: never = parsed;
        return never;
      }
    }
  }
  if (!any) return 'empty';

  const corrupt = (problem: string, cause?: unknown): StorageRefusedError =>
    new StorageRefusedError('corrupt', dir, `data dir ${dir} is corrupt: ${problem}`, { cause });
  const decode = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof CodecError) throw corrupt(err.message, err);
      throw err;
    }
  };

  if (format === undefined) throw corrupt('it has no format record');
  const fmt = format;
  const version = decode(() => decodeFormat(fmt));
  if (version > FORMAT_VERSION) {
    throw newerFormat(dir, version, FORMAT_VERSION);
  }
  if (version < 1) throw corrupt(`invalid format version ${version}`);

  if (cluster === undefined) throw corrupt('it has no cluster id record');
  const cl = cluster;
  const clusterId = decode(() => decodeString(CLUSTER_KEY, cl));
  if (clusterId !== opts.clusterId) {
    throw wrongCluster(dir, clusterId, opts.clusterId);
  }

  if (node === undefined) throw corrupt('it has no node id record');
  const nd = node;
  const nodeId = decode(() => decodeString(NODE_KEY, nd));
  if (nodeId !== opts.nodeId) {
    throw wrongNode(dir, nodeId, clusterId, opts.nodeId);
  }

  const firstUnknown = unknown[0];
  if (firstUnknown !== undefined) throw corrupt(`${describeKey(firstUnknown)} is not part of format ${version}`);

  const hs = hard;
  const hardState = hs === undefined ? INITIAL_HARD_STATE : decode(() => decodeHardState(hs));
  const sn = snap;
  let snapshot: Snapshot | null = null;
  if (sn !== undefined && version === 1) snapshot = decode(() => decodeSnapshotV1(sn));
  else if (sn !== undefined) {
    const { meta: snapMeta, file } = decode(() => decodeSnapshotRecord(sn));
    const data = openSnapshotFile(path.join(dir, SNAP_DIR, file.name), file.size, file.checksum, corrupt);
    try {
      await data.verify();
    } catch (err) {
      data.close();
      throw err instanceof SnapshotFileError ? corrupt(err.message, err) : err;
    }
    snapshot = { meta: snapMeta, data };
  }
  const meta = new Map<string, Uint8Array>();
  // Copied out of LevelDB's Buffer so callers get the same plain Uint8Array putMeta keeps.
  for (const [name, key, value] of rawMeta) meta.set(name, Uint8Array.from(decode(() => unsealValue(key, value))));

  // Entries: all checksums first, so a flipped byte is reported as such even when it
  // also breaks the ordering checks below.
  const entries = rawEntries.map(([index, value]) => decode(() => decodeEntry(index, value)));
  const snapIndex = snapshot?.meta.index ?? 0;
  const first = entries[0];
  // A tail kept before the snapshot starts the log earlier; without one it starts right after it.
  const tailed = first !== undefined && first.index <= snapIndex;
  let prevIndex = tailed ? first.index - 1 : snapIndex;
  let prevTerm = tailed ? 0 : (snapshot?.meta.term ?? 0);
  for (const e of entries) {
    if (e.index !== prevIndex + 1) throw corrupt(`the log has a hole: entry ${prevIndex + 1} is missing before ${e.index}`);
    if (e.term < prevTerm) throw corrupt(`log entry ${e.index} has term ${e.term}, lower than ${prevTerm} before it`);
    if (e.index === snapIndex && e.term !== snapshot?.meta.term) {
      throw corrupt(`log entry ${e.index} has term ${e.term} but the snapshot there has term ${snapshot?.meta.term}`);
    }
    prevIndex = e.index;
    prevTerm = e.term;
  }
  if (tailed && prevIndex < snapIndex) throw corrupt(`the log ends at ${prevIndex}, before its snapshot at ${snapIndex}`);

  return { state: { hardState, snapshot, entries }, meta, format: version };
}

function openSnapshotFile(
  filePath: string,
  size: number,
  checksum: number,
  corrupt: (problem: string, cause?: unknown) => StorageRefusedError,
): SnapshotFile {
  try {
    return SnapshotFile.open(filePath, size, checksum);
  } catch (err) {
    throw err instanceof SnapshotFileError ? corrupt(err.message, err) : err;
  }
}
