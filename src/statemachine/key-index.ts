// The store's keys, in order, kept off the V8 heap.
//
// A million small keys as JavaScript objects cost ~150 bytes each on the heap (a record
// object of ~88 bytes, a key string of ~32, B+ tree slots): ~140 MiB at 1,000,000 keys,
// which V8's heap then grows by half again before collecting, and a full collection
// walks it all. Here a key's record is a row of typed-array columns (its revisions,
// version, lease, and where its key and value bytes are), its key's bytes sit in shared
// slabs next to small values, and the B+ tree holds only the row's number (a small
// integer, no object). A key costs ~16 bytes of heap and ~80 outside it.
//
// Rows are never changed once written: a put writes a new row and lets go of the old one.
// That keeps a copy-on-write clone of the tree (a snapshot being written) valid while the
// store goes on applying: a row a clone may still reach is freed only when no clone is
// open. A row is freed when nothing refers to it: the tree (one reference) and each
// retained watch event about it (the history holds rows, not objects).
import BTreeModule from 'sorted-btree';
import * as bulkLoadModule from 'sorted-btree/extended/bulkLoad.js';
import unionModule from 'sorted-btree/extended/union.js';
import type { KeyValue } from './commands.js';
import { SLAB_VALUE_BYTES, ValueArena } from './value-arena.js';

// sorted-btree is CommonJS with `exports.default`: Node's ESM loader hands over the module
// object as the default import, vitest's loader hands over the class itself.
type BTreeClass = typeof BTreeModule.default;
export const BTree: BTreeClass = (BTreeModule as unknown as { default?: BTreeClass }).default ?? (BTreeModule as unknown as BTreeClass);
export type BTree<K, V> = InstanceType<typeof BTreeModule.default<K, V>>;
type BulkLoad = <K, V>(keys: K[], values: V[], maxNodeSize: number, compare: (a: K, b: K) => number, loadFactor?: number) => BTree<K, V>;
type Union = <K, V>(a: BTree<K, V>, b: BTree<K, V>, combine: (key: K, left: V, right: V) => V | undefined) => BTree<K, V>;
// The same two loaders' difference as for the class above: the module object, or its exports interop'd.
const bulkLoadExports = bulkLoadModule as unknown as { bulkLoad?: BulkLoad; default?: { bulkLoad: BulkLoad } };
const bulkLoad = bulkLoadExports.bulkLoad ?? bulkLoadExports.default!.bulkLoad;
const union = (unionModule as unknown as { default?: Union }).default ?? (unionModule as unknown as Union);
/** sorted-btree's default node size, which bulkLoad and union must be given the same as the tree's. */
const BTREE_NODE_SIZE = 32;

/** Keys compare by UTF-16 code unit, as JavaScript's `<` does. */
export const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** No row: what find() returns for an absent key. */
export const NONE = -1;
/** Rows 0 and 1 are probes: a key being looked up, compared against rows without being stored. */
const PROBES = 2;
const CHUNK_BITS = 14;
const CHUNK_ROWS = 1 << CHUNK_BITS;
const ROW_MASK = CHUNK_ROWS - 1;
/**
 * A version or lease id of 2^32 - 1 or more: kept in a map instead (a key written four
 * billion times, a cluster past four billion leases), so the common row holds 4 bytes
 * for each rather than 8.
 */
const WIDE = 0xffffffff;
/** Slab 0 holds nothing: the empty key or value. It is never let go. */
const EMPTY_SLAB = 0;
const EMPTY = Buffer.alloc(0);

/**
 * Rows in chunks of 16,384, not one array per column grown by doubling: growing would
 * copy every column and hold the old and new arrays at once (2x the rows' memory).
 */
class Chunk {
  readonly keySlab = new Uint32Array(CHUNK_ROWS);
  /** Offsets within a slab: a shared slab is SLAB_BYTES (1 KiB), a value or key kept alone starts at 0. */
  readonly keyAt = new Uint16Array(CHUNK_ROWS);
  /** The key's length in UTF-16 code units; negative when stored two bytes a unit (a unit above U+00FF). */
  readonly keyLength = new Int32Array(CHUNK_ROWS);
  readonly valueSlab = new Uint32Array(CHUNK_ROWS);
  readonly valueAt = new Uint16Array(CHUNK_ROWS);
  readonly valueLength = new Uint32Array(CHUNK_ROWS);
  readonly createRevision = new Float64Array(CHUNK_ROWS);
  readonly modRevision = new Float64Array(CHUNK_ROWS);
  /** Version and lease id, or WIDE when they do not fit in 32 bits (KeyIndex.wide holds them then). */
  readonly version = new Uint32Array(CHUNK_ROWS);
  readonly lease = new Uint32Array(CHUNK_ROWS);
  /** The tree's reference and retained watch events' (at most 3: the tree, the PUT that wrote it, the DELETE that removed it). */
  readonly refs = new Uint8Array(CHUNK_ROWS);
}

/** A stack of row numbers outside the heap (a million deleted keys would be 8 MiB of heap as a JS array). */
class RowStack {
  private rows = new Uint32Array(1024);
  length = 0;
  push(row: number): void {
    if (this.length === this.rows.length) {
      const grown = new Uint32Array(this.rows.length * 2);
      grown.set(this.rows);
      this.rows = grown;
    }
    this.rows[this.length++] = row;
  }
  pop(): number {
    return this.rows[--this.length]!;
  }
}

/**
 * Where key and value bytes live: slabs, each referenced by the rows placed in it. A
 * slab is let go when its last row is (the one being filled is held while it is).
 */
class Slabs {
  readonly bytes: Buffer[] = [EMPTY];
  private readonly refs: number[] = [1];
  private readonly free: number[] = [];

  open(bytes: Uint8Array): number {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const id = this.free.pop();
    if (id === undefined) {
      this.bytes.push(b);
      this.refs.push(0);
      return this.bytes.length - 1;
    }
    this.bytes[id] = b;
    return id;
  }
  retain(id: number): void {
    if (id !== EMPTY_SLAB) this.refs[id]!++;
  }
  release(id: number): void {
    if (id === EMPTY_SLAB || --this.refs[id]! > 0) return;
    this.bytes[id] = EMPTY;
    this.free.push(id);
  }
}

/** ValueArena that also names the slab of each placement, so a row can refer to it by number. */
class SlabArena extends ValueArena {
  /** The slab of the last reserve(), or of the last value kept whole by keepValue(). */
  slabId = EMPTY_SLAB;
  private current: Uint8Array = EMPTY;
  private currentSlab = EMPTY_SLAB;

  constructor(private readonly slabs: Slabs) {
    super();
  }

  override reserve(n: number): void {
    super.reserve(n);
    if (n === 0) this.slabId = EMPTY_SLAB;
    else if (this.bytes === this.current) this.slabId = this.currentSlab;
    else if (n > SLAB_VALUE_BYTES) this.slabId = this.slabs.open(this.bytes);
    else {
      // A new shared slab: held while it is being filled, so rows placed in it and let go
      // before it is full do not free it under the next placement.
      if (this.currentSlab !== EMPTY_SLAB) this.slabs.release(this.currentSlab);
      this.current = this.bytes;
      this.slabId = this.currentSlab = this.slabs.open(this.bytes);
      this.slabs.retain(this.slabId);
    }
  }

  /** A value placed as keep() does (a small one copied into a slab, a larger one kept as it is): `slab` and `offset` say where. */
  keepValue(value: Uint8Array): void {
    if (value.length > SLAB_VALUE_BYTES) {
      this.slabId = this.slabs.open(value);
      this.bytes = value;
      this.offset = 0;
      return;
    }
    this.reserve(value.length);
    this.bytes.set(value, this.offset);
  }
}

/** Open snapshot captures end through this when their iterator is dropped without being finished. */
const abandoned = new FinalizationRegistry<KeyIndex>((index) => index.endCapture());

/** A copy-on-write view of the index as of one moment (a snapshot being written). */
export interface IndexCapture {
  readonly size: number;
  /** The captured rows in key order; may be called more than once. */
  rows(): IterableIterator<number>;
  /** Lets go of the capture (idempotent); rows freed since are then reused. */
  end(): void;
}

export class KeyIndex {
  private tree: BTree<number, undefined>;
  private readonly chunks: Chunk[] = [];
  private nextRow = PROBES;
  private readonly freeRows = new RowStack();
  private readonly slabs = new Slabs();
  /** Where keys and small values are placed (a restore's decoder copies values through it too). */
  readonly arena: SlabArena;
  private readonly probes: string[] = ['', ''];
  private readonly pair: [number, undefined] = [0, undefined];
  /** The tree's comparator (one function: sorted-btree joins only trees with the same). */
  private readonly order = (a: number, b: number): number => this.compare(a, b);
  private captures = 0;
  /** Versions (at 2 x row) and lease ids (at 2 x row + 1) of WIDE or more. */
  private readonly wide = new Map<number, number>();
  /** Rows let go while a capture was open: freed when the last capture ends. */
  private readonly deferred = new RowStack();

  constructor() {
    this.arena = new SlabArena(this.slabs);
    this.tree = new BTree<number, undefined>(undefined, this.order);
  }

  get size(): number {
    return this.tree.size;
  }

  /** Rows in use: the tree's, those retained watch events hold, and those waiting for a capture to end. */
  get heldRows(): number {
    return this.nextRow - PROBES - this.freeRows.length;
  }

  // ---------------------------------------------------------------------------
  // Rows

  /** The row of `key`, or NONE. */
  find(key: string): number {
    this.probes[0] = key;
    const pair = this.tree.getPairOrNextHigher(0, this.pair);
    return pair !== undefined && this.compareToKey(pair[0], key) === 0 ? pair[0] : NONE;
  }

  key(row: number): string {
    const c = this.chunks[row >>> CHUNK_BITS]!;
    const i = row & ROW_MASK;
    const n = c.keyLength[i]!;
    const slab = this.slabs.bytes[c.keySlab[i]!]!;
    const at = c.keyAt[i]!;
    return n >= 0 ? slab.toString('latin1', at, at + n) : slab.toString('utf16le', at, at - 2 * n);
  }

  /** A view of the value's bytes (never copied; they are never written again). */
  value(row: number): Uint8Array {
    const c = this.chunks[row >>> CHUNK_BITS]!;
    const i = row & ROW_MASK;
    const slab = this.slabs.bytes[c.valueSlab[i]!]!;
    return new Uint8Array(slab.buffer, slab.byteOffset + c.valueAt[i]!, c.valueLength[i]!);
  }

  valueLength(row: number): number {
    return this.chunks[row >>> CHUNK_BITS]!.valueLength[row & ROW_MASK]!;
  }
  /** The key's length in UTF-16 code units (what kvBytes counts). */
  keyLength(row: number): number {
    return Math.abs(this.chunks[row >>> CHUNK_BITS]!.keyLength[row & ROW_MASK]!);
  }
  createRevision(row: number): number {
    return this.chunks[row >>> CHUNK_BITS]!.createRevision[row & ROW_MASK]!;
  }
  modRevision(row: number): number {
    return this.chunks[row >>> CHUNK_BITS]!.modRevision[row & ROW_MASK]!;
  }
  version(row: number): number {
    const v = this.chunks[row >>> CHUNK_BITS]!.version[row & ROW_MASK]!;
    return v === WIDE ? this.wide.get(2 * row)! : v;
  }
  lease(row: number): number {
    const v = this.chunks[row >>> CHUNK_BITS]!.lease[row & ROW_MASK]!;
    return v === WIDE ? this.wide.get(2 * row + 1)! : v;
  }

  /** The row as a KeyValue of its own (a new object each call; its value a view). */
  kv(row: number): KeyValue {
    return {
      key: this.key(row),
      value: this.value(row),
      createRevision: this.createRevision(row),
      modRevision: this.modRevision(row),
      version: this.version(row),
      lease: this.lease(row),
    };
  }

  /**
   * Whether the value is a view into a larger buffer rather than bytes of its own or a
   * slab's: the entry it was decoded from (commands.ts keeps a large value that way), whose
   * bytes the Raft log holds too.
   */
  sharesEntry(row: number): boolean {
    const c = this.chunks[row >>> CHUNK_BITS]!;
    const i = row & ROW_MASK;
    const n = c.valueLength[i]!;
    return n > SLAB_VALUE_BYTES && this.slabs.bytes[c.valueSlab[i]!]!.buffer.byteLength > n;
  }

  /**
   * A new row for `key` whose value is `value` (a small one copied into a slab, a larger
   * one kept as it is), put in the tree in place of the key's current row `old` (find(key),
   * or NONE), which the tree lets go of. Returns the new row.
   */
  put(key: string, old: number, value: Uint8Array, createRevision: number, modRevision: number, version: number, lease: number): number {
    this.arena.keepValue(value);
    const row = this.placed(key, value.length, createRevision, modRevision, version, lease);
    this.tree.set(row, undefined, true);
    if (old !== NONE) this.release(old);
    return row;
  }

  /**
   * A new row for `key` whose value is the arena's last placement (a restore's decoder
   * placed it), not yet in the tree (load() or add() puts it there).
   */
  placed(key: string, valueLength: number, createRevision: number, modRevision: number, version: number, lease: number): number {
    const a = this.arena;
    const valueSlab = a.slabId;
    const valueAt = a.offset;
    this.slabs.retain(valueSlab);
    let wide = false;
    for (let i = 0; i < key.length && !wide; i++) wide = key.charCodeAt(i) > 0xff;
    a.reserve(wide ? key.length * 2 : key.length);
    // A slab's Buffer covers the same bytes as the arena's view of it: offsets agree.
    if (key.length > 0) this.slabs.bytes[a.slabId]!.write(key, a.offset, wide ? 'utf16le' : 'latin1');
    this.slabs.retain(a.slabId);
    const row = this.freeRows.length > 0 ? this.freeRows.pop() : this.nextRow++;
    let c = this.chunks[row >>> CHUNK_BITS];
    if (c === undefined) this.chunks.push((c = new Chunk()));
    const i = row & ROW_MASK;
    c.keySlab[i] = a.slabId;
    c.keyAt[i] = a.offset;
    c.keyLength[i] = wide ? -key.length : key.length;
    c.valueSlab[i] = valueSlab;
    c.valueAt[i] = valueAt;
    c.valueLength[i] = valueLength;
    c.createRevision[i] = createRevision;
    c.modRevision[i] = modRevision;
    c.version[i] = Math.min(version, WIDE);
    if (version >= WIDE) this.wide.set(2 * row, version);
    c.lease[i] = Math.min(lease, WIDE);
    if (lease >= WIDE) this.wide.set(2 * row + 1, lease);
    c.refs[i] = 1;
    return row;
  }

  /** A row from placed() into the tree; false (and the row let go) if its key is there already. */
  add(row: number): boolean {
    if (this.tree.setIfNotPresent(row, undefined)) return true;
    this.release(row);
    return false;
  }

  /** Rows from placed(), in strictly ascending key order, into the tree at once (O(n), full leaves). Throws on a key already there. */
  load(rows: number[]): void {
    if (rows.length === 0) return;
    const chunk = bulkLoad(rows, new Array<undefined>(rows.length), BTREE_NODE_SIZE, this.order, 1);
    this.tree = union(this.tree, chunk, (row) => {
      throw new Error(`snapshot: key ${JSON.stringify(this.key(row))} appears twice`);
    });
  }

  /** Takes `row`'s key out of the tree; the caller must hold its own reference if it still reads the row. */
  remove(row: number): void {
    this.tree.delete(row);
    this.release(row);
  }

  /**
   * Takes every key from `low` (inclusive) up to `high` (exclusive; null: to the end) out of
   * the tree and lets go of the tree's references to `rows`, which must be exactly the rows
   * in that range (rowsFrom found them).
   */
  removeRange(low: string, high: string | null, rows: readonly number[]): void {
    this.probes[0] = low;
    if (high !== null) {
      this.probes[1] = high;
      this.tree.deleteRange(0, 1, false);
    } else if (low === '') this.tree.clear();
    else for (const row of rows) this.tree.delete(row);
    for (const row of rows) this.release(row);
  }

  retain(row: number): void {
    this.chunks[row >>> CHUNK_BITS]!.refs[row & ROW_MASK]!++;
  }

  release(row: number): void {
    const c = this.chunks[row >>> CHUNK_BITS]!;
    const i = row & ROW_MASK;
    if (--c.refs[i]! > 0) return;
    if (this.captures > 0) this.deferred.push(row);
    else this.free(row);
  }

  private free(row: number): void {
    const c = this.chunks[row >>> CHUNK_BITS]!;
    const i = row & ROW_MASK;
    this.slabs.release(c.keySlab[i]!);
    this.slabs.release(c.valueSlab[i]!);
    if (c.version[i] === WIDE) this.wide.delete(2 * row);
    if (c.lease[i] === WIDE) this.wide.delete(2 * row + 1);
    this.freeRows.push(row);
  }

  // ---------------------------------------------------------------------------
  // Order

  /** Rows in key order from `from` on (inclusive). */
  rowsFrom(from: string): IterableIterator<number> {
    this.probes[1] = from;
    // keys() finds its start at once: the probe may be reused after this call.
    return this.tree.keys(1);
  }

  /** Whether `row`'s key starts with `prefix`. */
  hasPrefix(row: number, prefix: string): boolean {
    return this.keyLength(row) >= prefix.length && this.compareToKey(row, prefix, prefix.length) === 0;
  }

  /** Whether `row`'s key is `key`. */
  isKey(row: number, key: string): boolean {
    return this.compareToKey(row, key) === 0;
  }

  capture(): IndexCapture {
    const tree = this.tree.clone();
    this.captures++;
    let open = true;
    const token = {};
    const capture: IndexCapture = {
      size: tree.size,
      rows: () => tree.keys(),
      end: () => {
        if (!open) return;
        open = false;
        abandoned.unregister(token);
        this.endCapture();
      },
    };
    abandoned.register(capture, this, token);
    return capture;
  }

  /** @internal One capture ended: with none left, rows let go meanwhile are freed. */
  endCapture(): void {
    if (--this.captures > 0) return;
    while (this.deferred.length > 0) this.free(this.deferred.pop());
  }

  private compare(a: number, b: number): number {
    if (a < PROBES) return b < PROBES ? compareKeys(this.probes[a]!, this.probes[b]!) : -this.compareToKey(b, this.probes[a]!);
    if (b < PROBES) return this.compareToKey(a, this.probes[b]!);
    return this.compareRows(a, b);
  }

  /** `row`'s key against `key` (its first `units` code units only, if given), by UTF-16 code unit. */
  private compareToKey(row: number, key: string, units = Infinity): number {
    const c = this.chunks[row >>> CHUNK_BITS]!;
    const i = row & ROW_MASK;
    const len = c.keyLength[i]!;
    const slab = this.slabs.bytes[c.keySlab[i]!]!;
    const at = c.keyAt[i]!;
    const n = Math.min(Math.abs(len), key.length, units);
    if (len >= 0) {
      for (let j = 0; j < n; j++) {
        const d = slab[at + j]! - key.charCodeAt(j);
        if (d !== 0) return d;
      }
    } else {
      for (let j = 0; j < n; j++) {
        const d = (slab[at + 2 * j]! | (slab[at + 2 * j + 1]! << 8)) - key.charCodeAt(j);
        if (d !== 0) return d;
      }
    }
    return units === Infinity ? Math.abs(len) - key.length : 0;
  }

  private compareRows(a: number, b: number): number {
    const ca = this.chunks[a >>> CHUNK_BITS]!;
    const ia = a & ROW_MASK;
    const cb = this.chunks[b >>> CHUNK_BITS]!;
    const ib = b & ROW_MASK;
    const la = ca.keyLength[ia]!;
    const lb = cb.keyLength[ib]!;
    const sa = this.slabs.bytes[ca.keySlab[ia]!]!;
    const sb = this.slabs.bytes[cb.keySlab[ib]!]!;
    const pa = ca.keyAt[ia]!;
    const pb = cb.keyAt[ib]!;
    const na = Math.abs(la);
    const nb = Math.abs(lb);
    const n = Math.min(na, nb);
    if (la >= 0 && lb >= 0) {
      for (let j = 0; j < n; j++) {
        const d = sa[pa + j]! - sb[pb + j]!;
        if (d !== 0) return d;
      }
    } else {
      for (let j = 0; j < n; j++) {
        const ua = la >= 0 ? sa[pa + j]! : sa[pa + 2 * j]! | (sa[pa + 2 * j + 1]! << 8);
        const ub = lb >= 0 ? sb[pb + j]! : sb[pb + 2 * j]! | (sb[pb + 2 * j + 1]! << 8);
        if (ua !== ub) return ua - ub;
      }
    }
    return na - nb;
  }
}
