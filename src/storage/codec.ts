// Key layout and value encoding of the LevelDB store. The layout itself is described
// at the top of leveldb-storage.ts; this file only turns records into bytes and back.
//
// Every value is framed as  [crc32: u32 BE][payload]  where the checksum is
// crc32(payload) continued from crc32(key). Seeding with the key binds a value to the
// key it was written under, so a value that ends up under another key (a damaged key,
// a misdirected write) fails its checksum just like a flipped payload bit.

import type { ConfState, Entry, EntryType, HardState, SnapshotMeta } from '../raft/types.js';
import { crc32 } from './crc32.js';

/** A record failed to decode; the storage layer turns this into a 'corrupt' refusal. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

function fromUtf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new CodecError(`${what} is not valid UTF-8`);
  }
}

// ---------------------------------------------------------------------------
// Keys

export const FORMAT_KEY: Uint8Array = utf8('s:format');
export const CLUSTER_KEY: Uint8Array = utf8('s:cluster');
export const NODE_KEY: Uint8Array = utf8('s:node');
export const HARD_STATE_KEY: Uint8Array = utf8('s:hard');
export const SNAPSHOT_KEY: Uint8Array = utf8('s:snap');

const ENTRY_PREFIX = 0x65; // 'e'
const META_PREFIX: Uint8Array = utf8('m:');

/** 'e' followed by the index as 8 big-endian bytes, so bytewise key order is index order. */
export function entryKey(index: number): Uint8Array {
  checkU53(index, 'entry index');
  const key = new Uint8Array(9);
  key[0] = ENTRY_PREFIX;
  writeU64(new DataView(key.buffer), 1, index);
  return key;
}

export function metaKey(name: string): Uint8Array {
  const suffix = utf8(name);
  const key = new Uint8Array(META_PREFIX.length + suffix.length);
  key.set(META_PREFIX, 0);
  key.set(suffix, META_PREFIX.length);
  return key;
}

export type ParsedKey =
  | { readonly kind: 'format' | 'cluster' | 'node' | 'hard' | 'snap' }
  | { readonly kind: 'entry'; readonly index: number }
  | { readonly kind: 'meta'; readonly name: string }
  | { readonly kind: 'unknown' };

const SYSTEM_KEYS: ReadonlyArray<[Uint8Array, 'format' | 'cluster' | 'node' | 'hard' | 'snap']> = [
  [FORMAT_KEY, 'format'],
  [CLUSTER_KEY, 'cluster'],
  [NODE_KEY, 'node'],
  [HARD_STATE_KEY, 'hard'],
  [SNAPSHOT_KEY, 'snap'],
];

export function parseKey(key: Uint8Array): ParsedKey {
  for (const [k, kind] of SYSTEM_KEYS) if (bytesEqual(key, k)) return { kind };
  if (key.length === 9 && key[0] === ENTRY_PREFIX) {
    const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
    const index = readU64(view, 1);
    if (index !== undefined) return { kind: 'entry', index };
  }
  if (key.length > META_PREFIX.length && bytesEqual(key.subarray(0, META_PREFIX.length), META_PREFIX)) {
    try {
      return { kind: 'meta', name: decoder.decode(key.subarray(META_PREFIX.length)) };
    } catch {
      return { kind: 'unknown' };
    }
  }
  return { kind: 'unknown' };
}

/** How a key is named in error messages. */
export function describeKey(key: Uint8Array): string {
  const parsed = parseKey(key);
  switch (parsed.kind) {
    case 'format':
      return 'the format record';
    case 'cluster':
      return 'the cluster id record';
    case 'node':
      return 'the node id record';
    case 'hard':
      return 'the hard state';
    case 'snap':
      return 'the snapshot';
    case 'entry':
      return `log entry ${parsed.index}`;
    case 'meta':
      return `meta record '${parsed.name}'`;
    case 'unknown':
      return `unknown key 0x${Buffer.from(key).toString('hex')}`;
    default: {
      const never: never = parsed;
      return never;
    }
  }
}

// ---------------------------------------------------------------------------
// Framing

const CRC_BYTES = 4;

/** Allocates a framed value with `payloadLength` bytes of payload, lets `fill` write it, then seals it. */
function sealed(key: Uint8Array, payloadLength: number, fill: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const bytes = new Uint8Array(CRC_BYTES + payloadLength);
  const view = new DataView(bytes.buffer);
  fill(view, bytes);
  view.setUint32(0, checksum(key, bytes.subarray(CRC_BYTES)));
  return bytes;
}

function checksum(key: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(key));
}

/** Frames an arbitrary payload under `key` (exported for tests that forge records). */
export function sealValue(key: Uint8Array, payload: Uint8Array): Uint8Array {
  return sealed(key, payload.length, (_view, bytes) => bytes.set(payload, CRC_BYTES));
}

/** Checks the frame and returns the payload (a view into `value`). */
export function unsealValue(key: Uint8Array, value: Uint8Array): Uint8Array {
  if (value.length < CRC_BYTES) throw new CodecError(`${describeKey(key)} is truncated (${value.length} bytes)`);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const payload = value.subarray(CRC_BYTES);
  if (view.getUint32(0) !== checksum(key, payload)) throw new CodecError(`checksum mismatch in ${describeKey(key)}`);
  return payload;
}

// ---------------------------------------------------------------------------
// Payloads

/**
 * The format record is [crc][u32 version]. This layout is frozen for all versions so
 * that any build can tell "newer format" from "corrupt" before interpreting anything else.
 */
export function encodeFormat(version: number): Uint8Array {
  return sealed(FORMAT_KEY, 4, (view) => view.setUint32(CRC_BYTES, version));
}

export function decodeFormat(value: Uint8Array): number {
  const payload = unsealValue(FORMAT_KEY, value);
  if (payload.length !== 4) throw new CodecError(`the format record has ${payload.length} bytes, expected 4`);
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}

export function encodeString(key: Uint8Array, s: string): Uint8Array {
  return sealValue(key, utf8(s));
}

export function decodeString(key: Uint8Array, value: Uint8Array): string {
  return fromUtf8(unsealValue(key, value), describeKey(key));
}

/** Hard state: [u64 term][u64 commit][u8 hasVote][votedFor UTF-8...]. */
export function encodeHardState(hs: HardState): Uint8Array {
  checkU53(hs.term, 'term');
  checkU53(hs.commit, 'commit');
  const vote = hs.votedFor === null ? new Uint8Array(0) : utf8(hs.votedFor);
  return sealed(HARD_STATE_KEY, 17 + vote.length, (view, bytes) => {
    writeU64(view, CRC_BYTES, hs.term);
    writeU64(view, CRC_BYTES + 8, hs.commit);
    view.setUint8(CRC_BYTES + 16, hs.votedFor === null ? 0 : 1);
    bytes.set(vote, CRC_BYTES + 17);
  });
}

export function decodeHardState(value: Uint8Array): HardState {
  const p = unsealValue(HARD_STATE_KEY, value);
  if (p.length < 17) throw new CodecError(`the hard state is truncated (${p.length} bytes)`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const term = readU64(view, 0);
  const commit = readU64(view, 8);
  const hasVote = view.getUint8(16);
  if (term === undefined || commit === undefined || hasVote > 1) throw new CodecError('the hard state is malformed');
  if (hasVote === 0 && p.length !== 17) throw new CodecError('the hard state is malformed');
  const votedFor = hasVote === 1 ? fromUtf8(p.subarray(17), 'votedFor') : null;
  return { term, votedFor, commit };
}

const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop', 'conf'];

/** Entry: [u64 term][u8 type][data...]; the index lives in the key only. */
export function encodeEntry(entry: Entry): Uint8Array {
  checkU53(entry.term, 'entry term');
  const type = ENTRY_TYPES.indexOf(entry.type);
  if (type < 0) throw new RangeError(`unknown entry type ${String(entry.type)}`);
  return sealed(entryKey(entry.index), 9 + entry.data.length, (view, bytes) => {
    writeU64(view, CRC_BYTES, entry.term);
    view.setUint8(CRC_BYTES + 8, type);
    bytes.set(entry.data, CRC_BYTES + 9);
  });
}

export function decodeEntry(index: number, value: Uint8Array): Entry {
  const key = entryKey(index);
  const p = unsealValue(key, value);
  if (p.length < 9) throw new CodecError(`${describeKey(key)} is truncated`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const term = readU64(view, 0);
  const type = ENTRY_TYPES[view.getUint8(8)];
  if (term === undefined || type === undefined) throw new CodecError(`${describeKey(key)} is malformed`);
  return { index, term, type, data: p.subarray(9) };
}

/** Where a snapshot's bytes are (format 2): a file in the store's snapshot directory. */
export interface SnapshotFileRef {
  /** A name in the snapshot directory, no path. */
  readonly name: string;
  readonly size: number;
  /** CRC-32 of the file's bytes. */
  readonly checksum: number;
}

/** Format 2 snapshot record: [u64 index][u64 term][u32 confLength][conf JSON][u64 size][u32 crc32][file name]. */
export function encodeSnapshotRecord(meta: SnapshotMeta, file: SnapshotFileRef): Uint8Array {
  const conf = encodeConf(meta);
  const name = utf8(file.name);
  checkU53(file.size, 'snapshot size');
  return sealed(SNAPSHOT_KEY, 20 + conf.length + 12 + name.length, (view, bytes) => {
    writeMeta(view, bytes, meta, conf);
    writeU64(view, CRC_BYTES + 20 + conf.length, file.size);
    view.setUint32(CRC_BYTES + 28 + conf.length, file.checksum >>> 0);
    bytes.set(name, CRC_BYTES + 32 + conf.length);
  });
}

export function decodeSnapshotRecord(value: Uint8Array): { meta: SnapshotMeta; file: SnapshotFileRef } {
  const { meta, rest } = readMeta(value);
  if (rest.length < 13) throw new CodecError('the snapshot record is truncated');
  const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  const size = readU64(view, 0);
  const checksum = view.getUint32(8);
  const name = fromUtf8(rest.subarray(12), 'the snapshot file name');
  // Only a plain name in the snapshot directory: a record may not point the node elsewhere.
  if (size === undefined || !/^[0-9A-Za-z._-]+$/.test(name) || name.startsWith('.')) {
    throw new CodecError('the snapshot record is malformed');
  }
  return { meta, file: { name, size, checksum } };
}

/**
 * Format 1 snapshot record, the bytes inline: [u64 index][u64 term][u32 confLength][conf
 * JSON][data...]. Read to load a data dir written before snapshot files; written only by
 * tests that make one.
 */
export function encodeSnapshotV1(snap: { readonly meta: SnapshotMeta; readonly data: Uint8Array }): Uint8Array {
  const conf = encodeConf(snap.meta);
  return sealed(SNAPSHOT_KEY, 20 + conf.length + snap.data.length, (view, bytes) => {
    writeMeta(view, bytes, snap.meta, conf);
    bytes.set(snap.data, CRC_BYTES + 20 + conf.length);
  });
}

export function decodeSnapshotV1(value: Uint8Array): { meta: SnapshotMeta; data: Uint8Array } {
  const { meta, rest } = readMeta(value);
  return { meta, data: rest };
}

function encodeConf(meta: SnapshotMeta): Uint8Array {
  checkU53(meta.index, 'snapshot index');
  checkU53(meta.term, 'snapshot term');
  return utf8(JSON.stringify({ voters: meta.conf.voters, learners: meta.conf.learners }));
}

function writeMeta(view: DataView, bytes: Uint8Array, meta: SnapshotMeta, conf: Uint8Array): void {
  writeU64(view, CRC_BYTES, meta.index);
  writeU64(view, CRC_BYTES + 8, meta.term);
  view.setUint32(CRC_BYTES + 16, conf.length);
  bytes.set(conf, CRC_BYTES + 20);
}

function readMeta(value: Uint8Array): { meta: SnapshotMeta; rest: Uint8Array } {
  const p = unsealValue(SNAPSHOT_KEY, value);
  if (p.length < 20) throw new CodecError('the snapshot is truncated');
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const index = readU64(view, 0);
  const term = readU64(view, 8);
  const confLength = view.getUint32(16);
  if (index === undefined || term === undefined || 20 + confLength > p.length) {
    throw new CodecError('the snapshot is malformed');
  }
  const conf = parseConf(fromUtf8(p.subarray(20, 20 + confLength), 'the snapshot configuration'));
  return { meta: { index, term, conf }, rest: p.subarray(20 + confLength) };
}

function parseConf(json: string): ConfState {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new CodecError('the snapshot configuration is not valid JSON');
  }
  const isIds = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (typeof raw !== 'object' || raw === null) throw new CodecError('the snapshot configuration is malformed');
  const { voters, learners } = raw as { voters?: unknown; learners?: unknown };
  if (!isIds(voters) || !isIds(learners)) throw new CodecError('the snapshot configuration is malformed');
  return { voters, learners };
}

// ---------------------------------------------------------------------------
// Helpers

const TWO_32 = 2 ** 32;

function checkU53(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
}

function writeU64(view: DataView, offset: number, n: number): void {
  view.setUint32(offset, Math.floor(n / TWO_32));
  view.setUint32(offset + 4, n >>> 0);
}

/** Undefined when the stored value exceeds 2^53 - 1 (never written by this code). */
function readU64(view: DataView, offset: number): number | undefined {
  const n = view.getUint32(offset) * TWO_32 + view.getUint32(offset + 4);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
