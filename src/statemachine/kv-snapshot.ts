// The bytes of a KvStore snapshot, written and read in pieces.
//
// Format 2 (binary): 'LDKV', u32 version 2, u32 header length, the header (JSON: revision,
// leases, sessions), f64 key count, then per key: u32 key length, the key (UTF-8), u32
// value length, the value, and f64 create revision, mod revision, version, lease. All
// big-endian. Format 1 (data dirs and backups from before it) is one JSON document.
//
// Neither side ever holds the whole snapshot: the encoder hands out pieces of at most
// PIECE_BYTES as it walks the keys, and the decoder takes pieces of any size, split
// anywhere (a record may straddle several), copying each value out so no piece is kept.
// A gigabyte of state is then written to and read from a file a few MiB at a time, not
// held a second time in memory.
import { isUtf8 } from 'node:buffer';
import type { KeyValue } from './commands.js';
import { ValueArena } from './value-arena.js';

/** First bytes of a binary snapshot (a JSON one, format 1, starts with '{'). */
const SNAPSHOT_MAGIC = Buffer.from('LDKV', 'latin1');
const SNAPSHOT_BINARY_VERSION = 2;
/** Bytes after a record's value: create revision, mod revision, version, lease. */
const RECORD_TAIL = 32;

/** Largest piece the encoder hands out. */
export const PIECE_BYTES = 4 << 20;
/** Keys per piece at most, so one step of the encoder is a few milliseconds even for tiny keys. */
export const PIECE_KEYS = 4096;
/**
 * A key, value or header longer than this is taken for a corrupt length: refused at once
 * rather than allocated (no value near it is accepted by any write path).
 */
const MAX_FIELD_BYTES = 1 << 30;

/** The header of a snapshot: everything but the keys. */
export interface SnapshotHeader {
  readonly revision: number;
  readonly appliedIndex: number;
  readonly nextLeaseId: number;
  readonly leases: [number, number][];
  /** The retired client-id scheme: [clientId, seq, result as JSON]. */
  readonly sessions: [string, number, unknown][];
  /** Exactly-once sessions (SessionTable.toJson); absent in snapshots from before them. */
  readonly exactlyOnce?: unknown;
}

/** What a decoder finds, in order: the header once, then every key. */
export interface SnapshotSink {
  /** `format`: 1 for a JSON snapshot, 2 for a binary one (whose header always holds exactlyOnce). */
  header(h: SnapshotHeader, format: 1 | 2): void;
  /**
   * A key whose value (`length` bytes) is the decoder's ValueArena's last placement
   * (its `bytes` from `offset` on), the sink's to keep: no view per key.
   */
  record(key: string, length: number, createRevision: number, modRevision: number, version: number, lease: number): void;
}

/** Bytes of a binary snapshot before its first key (the keys add recordBytes each). */
export function snapshotPreludeBytes(header: Uint8Array): number {
  return SNAPSHOT_MAGIC.length + 8 + header.length + 8;
}

/** Bytes of one key's record in a binary snapshot. */
export function recordBytes(kv: KeyValue): number {
  return 8 + Buffer.byteLength(kv.key) + kv.value.length + RECORD_TAIL;
}

/**
 * The binary snapshot of `kvs` (exactly `count` of them) after `header`, as pieces of at
 * most PIECE_BYTES and PIECE_KEYS keys. Pieces are written into buffers from `space()`,
 * one after the other in each (a piece never overlaps another, and no byte of a piece is
 * written after it was handed out); a new buffer is asked for when a record does not fit
 * in what is left. space() may hand out one buffer of exactly the snapshot's size: the
 * pieces are then consecutive slices of it.
 */
export function* encodeSnapshot(
  header: Uint8Array,
  count: number,
  kvs: Iterable<KeyValue>,
  space: () => Buffer,
  /**
   * Given each buffer from space() that the writer has moved on from, once every piece in it
   * has been handed out and the consumer has asked for the next one: a consumer that is
   * done with a piece when it asks for the next lets space() hand the buffer out again.
   */
  spent?: (buf: Buffer) => void,
): Generator<Uint8Array, void, void> {
  const w = new PieceWriter(space);
  const prelude = Buffer.allocUnsafe(12);
  SNAPSHOT_MAGIC.copy(prelude, 0);
  prelude.writeUInt32BE(SNAPSHOT_BINARY_VERSION, 4);
  prelude.writeUInt32BE(header.length, 8);
  w.bytes(prelude);
  w.bytes(header);
  const countBytes = Buffer.allocUnsafe(8);
  countBytes.writeDoubleBE(count, 0);
  w.bytes(countBytes);
  let written = 0;
  for (const kv of kvs) {
    w.record(kv);
    written++;
    if (w.pieceBytes >= PIECE_BYTES || w.pieceKeys >= PIECE_KEYS) w.flush();
    for (const p of w.take()) yield p;
    // Every piece of a buffer left behind was in take(): all handed out, and asked past.
    if (spent !== undefined) for (const b of w.left()) spent(b);
  }
  if (written !== count) throw new Error(`snapshot: wrote ${written} keys of ${count}`);
  w.flush();
  for (const p of w.take()) yield p;
}

class PieceWriter {
  private buf: Buffer | null = null;
  /** Start of the current piece in buf. */
  private start = 0;
  private at = 0;
  pieceKeys = 0;
  private done: Uint8Array[] = [];
  /** Buffers written full (or too full for the next record) and replaced, since the last left(). */
  private behind: Buffer[] = [];
  private readonly scratch = Buffer.allocUnsafe(RECORD_TAIL);

  constructor(private readonly space: () => Buffer) {}

  get pieceBytes(): number {
    return this.at - this.start;
  }

  /** The pieces completed since the last call. */
  take(): Uint8Array[] {
    const d = this.done;
    if (d.length > 0) this.done = [];
    return d;
  }

  /** The buffers replaced since the last call: their pieces were all flushed into take()'s list first. */
  left(): Buffer[] {
    const b = this.behind;
    if (b.length > 0) this.behind = [];
    return b;
  }

  flush(): void {
    if (this.buf !== null && this.at > this.start) this.done.push(this.buf.subarray(this.start, this.at));
    this.start = this.at;
    this.pieceKeys = 0;
  }

  private fresh(): Buffer {
    this.flush();
    if (this.buf !== null) this.behind.push(this.buf);
    const b = this.space();
    if (b.length === 0) throw new Error('snapshot: no space to write into');
    this.buf = b;
    this.start = this.at = 0;
    return b;
  }

  /** Copies `src`, across as many pieces as it takes. */
  bytes(src: Uint8Array): void {
    let from = 0;
    while (from < src.length) {
      let b = this.buf;
      if (b === null || this.at === b.length) b = this.fresh();
      if (this.pieceBytes >= PIECE_BYTES) this.flush();
      const n = Math.min(b.length - this.at, PIECE_BYTES - this.pieceBytes, src.length - from);
      b.set(src.subarray(from, from + n), this.at);
      this.at += n;
      from += n;
    }
  }

  record(kv: KeyValue): void {
    const keyLength = Buffer.byteLength(kv.key);
    const valueLength = kv.value.length;
    const size = 8 + keyLength + valueLength + RECORD_TAIL;
    if (size <= PIECE_BYTES) {
      let b = this.buf;
      if (b === null || b.length - this.at < size) b = this.fresh();
      else if (this.pieceBytes + size > PIECE_BYTES) this.flush();
      if (b.length - this.at >= size) {
        // The common case: the whole record in this piece, written in place.
        let at = b.writeUInt32BE(keyLength, this.at);
        at += b.write(kv.key, at, keyLength, 'utf8');
        at = b.writeUInt32BE(valueLength, at);
        b.set(kv.value, at);
        at += valueLength;
        this.at = writeTail(b, at, kv);
        this.pieceKeys++;
        return;
      }
    }
    // A record larger than a piece: split across several.
    const s = this.scratch;
    s.writeUInt32BE(keyLength, 0);
    this.bytes(s.subarray(0, 4));
    this.bytes(Buffer.from(kv.key, 'utf8'));
    s.writeUInt32BE(valueLength, 0);
    this.bytes(s.subarray(0, 4));
    this.bytes(kv.value);
    writeTail(s, 0, kv);
    this.bytes(s);
    this.pieceKeys++;
  }
}

function writeTail(b: Buffer, at: number, kv: KeyValue): number {
  at = b.writeDoubleBE(kv.createRevision, at);
  at = b.writeDoubleBE(kv.modRevision, at);
  at = b.writeDoubleBE(kv.version, at);
  return b.writeDoubleBE(kv.lease, at);
}

type Stage =
  /** The first 4 bytes: the magic, or the start of a JSON snapshot. */
  | 'magic'
  /** u32 version, u32 header length. */
  | 'prelude'
  | 'header'
  | 'count'
  /** At a record boundary (records remain). */
  | 'record'
  | 'keyLength'
  | 'key'
  | 'valueLength'
  | 'value'
  | 'tail'
  /** After the last record: any further byte is garbage. */
  | 'done'
  /** A format-1 (JSON) snapshot, gathered whole and parsed at the end. */
  | 'json'
  /** An error was thrown: nothing more is accepted. */
  | 'failed';

/**
 * Reads a snapshot of either format from pieces of any size and split points, handing
 * the header and each key to `sink` as soon as they are complete. push() works in
 * proportion to the piece and keeps none of it (keys are decoded to strings, values
 * copied, partial fields copied into buffers of their own). Throws on a malformed
 * stream, end() on a truncated one; after a throw every call throws.
 */
export class SnapshotDecoder {
  private stage: Stage = 'magic';
  /** Fixed-size fields gather here when they straddle pieces. */
  private readonly scratch = Buffer.allocUnsafe(RECORD_TAIL);
  private have = 0;
  /** The variable-size field being gathered (header, key or value) and how much of it has arrived. */
  private field: Uint8Array = new Uint8Array(0);
  private filled = 0;
  private remaining = 0;
  private key = '';
  private value: Uint8Array = new Uint8Array(0);
  private json: Buffer[] = [];
  private offset = 0;

  constructor(
    private readonly sink: SnapshotSink,
    /** Where values are copied to (the store's, so small ones share its slabs). */
    private readonly arena: ValueArena = new ValueArena(),
  ) {}

  push(piece: Uint8Array): void {
    if (this.stage === 'failed') throw new Error('snapshot: an earlier piece was refused');
    try {
      this.consume(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
    } catch (err) {
      this.stage = 'failed';
      throw err;
    }
  }

  /** The snapshot ended: throws unless it was complete. */
  end(): void {
    const stage = this.stage;
    this.stage = 'failed';
    switch (stage) {
      case 'done':
        break;
      case 'json':
      case 'magic':
        // Fewer than four bytes, or not the binary magic: a snapshot of format 1 (or garbage, which JSON.parse refuses).
        this.endJson(stage === 'magic' ? [this.scratch.subarray(0, this.have)] : this.json);
        break;
      case 'failed':
        throw new Error('snapshot: an earlier piece was refused');
      default:
        throw new Error(
          `snapshot: truncated at byte ${this.offset} (in the ${stage === 'record' ? 'key' : stage} of a record or the prelude)`,
        );
    }
    this.stage = 'done';
  }

  private consume(buf: Buffer): void {
    let at = 0;
    const n = buf.length;
    while (at < n) {
      switch (this.stage) {
        case 'record':
          at = this.records(buf, at);
          break;
        case 'magic':
        case 'prelude':
        case 'count':
        case 'keyLength':
        case 'valueLength':
        case 'tail': {
          const want = fixedSize(this.stage);
          const k = Math.min(want - this.have, n - at);
          buf.copy(this.scratch, this.have, at, at + k);
          this.have += k;
          at += k;
          this.offset += k;
          if (this.have === want) {
            this.have = 0;
            this.fixedDone();
          }
          break;
        }
        case 'header':
        case 'key':
        case 'value': {
          const k = Math.min(this.field.length - this.filled, n - at);
          this.field.set(buf.subarray(at, at + k), this.filled);
          this.filled += k;
          at += k;
          this.offset += k;
          if (this.filled === this.field.length) this.fieldDone();
          break;
        }
        case 'json':
          this.json.push(Buffer.from(buf.subarray(at)));
          this.offset += n - at;
          at = n;
          break;
        case 'done':
          throw new Error(`snapshot: ${n - at} or more bytes after the last key (at byte ${this.offset})`);
        case 'failed':
          throw new Error('snapshot: an earlier piece was refused');
      }
    }
  }

  /** Whole records straight from `buf`, from `at` on; the rest of one straddling the piece's end goes through the stages. */
  private records(buf: Buffer, at: number): number {
    const n = buf.length;
    while (this.remaining > 0) {
      if (n - at < 4) break;
      const keyLength = buf.readUInt32BE(at);
      if (n - at < 8 + keyLength) break;
      const valueLength = buf.readUInt32BE(at + 4 + keyLength);
      const size = 8 + keyLength + valueLength + RECORD_TAIL;
      if (n - at < size) break;
      const key = decodeKey(buf, at + 4, at + 4 + keyLength, this.offset);
      const valueAt = at + 8 + keyLength;
      const arena = this.arena;
      arena.reserve(valueLength);
      buf.copy(arena.bytes, arena.offset, valueAt, valueAt + valueLength);
      this.emit(key, valueLength, buf, valueAt + valueLength);
      at += size;
      this.offset += size;
    }
    if (this.remaining === 0) this.stage = 'done';
    else if (at < n) this.stage = 'keyLength';
    return at;
  }

  private emit(key: string, length: number, tail: Buffer, at: number): void {
    this.sink.record(
      key,
      length,
      small(tail.readDoubleBE(at)),
      small(tail.readDoubleBE(at + 8)),
      small(tail.readDoubleBE(at + 16)),
      small(tail.readDoubleBE(at + 24)),
    );
    this.remaining--;
  }

  /** A fixed-size field is complete in scratch. */
  private fixedDone(): void {
    const s = this.scratch;
    switch (this.stage) {
      case 'magic':
        if (!s.subarray(0, 4).equals(SNAPSHOT_MAGIC)) {
          this.stage = 'json';
          this.json.push(Buffer.from(s.subarray(0, 4)));
          return;
        }
        this.stage = 'prelude';
        return;
      case 'prelude': {
        const version = s.readUInt32BE(0);
        if (version !== SNAPSHOT_BINARY_VERSION) throw new Error(`snapshot: unsupported format ${version}`);
        this.startField('header', s.readUInt32BE(4));
        return;
      }
      case 'count': {
        const count = s.readDoubleBE(0);
        if (!Number.isSafeInteger(count) || count < 0) throw new Error(`snapshot: malformed key count ${count}`);
        this.remaining = count;
        this.stage = count > 0 ? 'record' : 'done';
        return;
      }
      case 'keyLength':
        this.startField('key', s.readUInt32BE(0));
        return;
      case 'valueLength':
        this.startField('value', s.readUInt32BE(0));
        return;
      case 'tail':
        this.emit(this.key, this.value.byteLength, s, 0);
        this.key = '';
        this.value = this.field = new Uint8Array(0);
        this.stage = this.remaining > 0 ? 'record' : 'done';
        return;
      default:
        throw new Error(`snapshot decoder: no fixed field in stage ${this.stage}`);
    }
  }

  private startField(stage: 'header' | 'key' | 'value', length: number): void {
    if (length > MAX_FIELD_BYTES) throw new Error(`snapshot: malformed ${stage} length ${length} at byte ${this.offset}`);
    this.stage = stage;
    this.field = stage === 'value' ? this.arena.alloc(length) : Buffer.allocUnsafe(length);
    this.filled = 0;
    if (length === 0) this.fieldDone();
  }

  private fieldDone(): void {
    const f = this.field;
    switch (this.stage) {
      case 'header': {
        const h = JSON.parse(Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('utf8')) as SnapshotHeader;
        this.field = new Uint8Array(0);
        this.sink.header(h, 2);
        this.stage = 'count';
        return;
      }
      case 'key':
        this.key = decodeKey(Buffer.from(f.buffer, f.byteOffset, f.byteLength), 0, f.byteLength, this.offset);
        this.stage = 'valueLength';
        return;
      case 'value':
        this.value = f;
        this.stage = 'tail';
        return;
      default:
        throw new Error(`snapshot decoder: no field in stage ${this.stage}`);
    }
  }

  private endJson(chunks: Buffer[]): void {
    const s = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SnapshotHeader & {
      v: number;
      kvs: [string, string, number, number, number, number][];
    };
    this.json = [];
    if (s.v !== 1) throw new Error(`snapshot: unsupported format ${s.v}`);
    this.sink.header(s, 1);
    for (const [key, value, createRevision, modRevision, version, lease] of s.kvs) {
      const bytes = Buffer.from(value, 'base64');
      const copy = this.arena.alloc(bytes.length);
      copy.set(bytes);
      this.sink.record(key, copy.byteLength, createRevision, modRevision, version, lease);
    }
  }
}

/**
 * An integer that fits in 32 bits as a small integer, not a heap number: a double read
 * from the bytes, stored into a record's field, would otherwise box that field in every
 * record (16 bytes each, 64 per key; the applied records hold small integers).
 */
function small(v: number): number {
  return v === (v | 0) ? v | 0 : v;
}

/**
 * A key as written: valid UTF-8 (keys are well-formed strings: every command passes
 * through TextEncoder), which a corrupt byte would otherwise turn into U+FFFD silently.
 */
function decodeKey(buf: Buffer, start: number, end: number, offset: number): string {
  // ASCII (the usual key) is valid UTF-8: no view of the bytes needed to check it.
  let ascii = true;
  for (let i = start; i < end; i++)
    if (buf[i]! > 0x7f) {
      ascii = false;
      break;
    }
  if (!ascii && !isUtf8(buf.subarray(start, end))) throw new Error(`snapshot: a key near byte ${offset} is not valid UTF-8`);
  return buf.toString(ascii ? 'latin1' : 'utf8', start, end);
}

function fixedSize(stage: Stage): number {
  switch (stage) {
    case 'magic':
    case 'keyLength':
    case 'valueLength':
      return 4;
    case 'prelude':
    case 'count':
      return 8;
    case 'tail':
      return RECORD_TAIL;
    default:
      throw new Error(`snapshot decoder: no fixed field in stage ${stage}`);
  }
}
