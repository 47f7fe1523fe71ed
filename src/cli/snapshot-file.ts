// The backup file `leaderd snapshot save` writes and `snapshot restore` reads:
//
//   magic (16 bytes) | u32 BE header length | header (JSON) | data | SHA-256 (32 bytes)
//
// The magic starts with a non-ASCII byte and holds CR LF and ^Z, so a file mangled by a
// text-mode transfer is recognised as such (the trick of the PNG signature). The header
// says which cluster, index and term the data is from, its length and its own SHA-256;
// the trailing SHA-256 covers every byte before it, header included, so a flipped bit
// anywhere is caught, and the length in the header tells a truncated file from a
// corrupt one. Written atomically: a crash mid-save leaves no file that looks whole.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const BACKUP_MAGIC = Buffer.from('\x89LEADERD-BKUP\r\n\x1a', 'latin1');
export const BACKUP_VERSION = 1;
const DIGEST_BYTES = 32;
/** A header is a few hundred bytes; anything near this is not a header. */
const MAX_HEADER_BYTES = 64 * 1024;

export interface BackupHeader {
  readonly version: number;
  /** The cluster the snapshot was taken from (a restore must seed another). */
  readonly clusterId: string;
  /** The log index and term the state machine was at. */
  readonly index: number;
  readonly term: number;
  /** ISO time of the save, and the leaderd version that made it (for the operator). */
  readonly createdAt: string;
  readonly leaderdVersion: string;
  readonly dataBytes: number;
  /** Hex SHA-256 of the data alone. */
  readonly sha256: string;
}

export type BackupProblem = 'not-a-backup' | 'newer-version' | 'truncated' | 'corrupt';

export class BackupFileError extends Error {
  override readonly name = 'BackupFileError';
  constructor(
    readonly kind: BackupProblem,
    message: string,
  ) {
    super(message);
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

export function encodeBackup(
  meta: Omit<BackupHeader, 'version' | 'dataBytes' | 'sha256'>,
  data: Uint8Array,
): { bytes: Buffer; header: BackupHeader } {
  const header: BackupHeader = {
    version: BACKUP_VERSION,
    ...meta,
    dataBytes: data.length,
    sha256: sha256(data).toString('hex'),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(headerBytes.length);
  const body = Buffer.concat([BACKUP_MAGIC, len, headerBytes, data]);
  return { bytes: Buffer.concat([body, sha256(body)]), header };
}

/** Check and split a backup file; every problem is a BackupFileError with a one-line message. */
export function decodeBackup(bytes: Uint8Array, name = 'the backup'): { header: BackupHeader; data: Uint8Array } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicSeen = buf.subarray(0, BACKUP_MAGIC.length);
  if (!magicSeen.equals(BACKUP_MAGIC)) {
    if (buf.length < BACKUP_MAGIC.length && BACKUP_MAGIC.subarray(0, buf.length).equals(buf))
      throw new BackupFileError('truncated', `${name} is truncated (${buf.length} bytes)`);
    throw new BackupFileError('not-a-backup', `${name} is not a leaderd snapshot file (no leaderd backup signature at its start)`);
  }
  const at = BACKUP_MAGIC.length;
  if (buf.length < at + 4) throw new BackupFileError('truncated', `${name} is truncated (${buf.length} bytes)`);
  const headerLen = buf.readUInt32BE(at);
  if (headerLen === 0 || headerLen > MAX_HEADER_BYTES)
    throw new BackupFileError('corrupt', `${name} is corrupt (header length ${headerLen})`);
  if (buf.length < at + 4 + headerLen) throw new BackupFileError('truncated', `${name} is truncated (${buf.length} bytes, header cut off)`);
  let header: BackupHeader | null;
  try {
    header = parseHeader(JSON.parse(buf.subarray(at + 4, at + 4 + headerLen).toString('utf8')));
  } catch {
    header = null;
  }
  if (header !== null && header.version > BACKUP_VERSION)
    throw new BackupFileError('newer-version', `${name} has format version ${header.version}; this leaderd reads up to ${BACKUP_VERSION}`);
  const expected = header === null ? null : at + 4 + headerLen + header.dataBytes + DIGEST_BYTES;
  if (expected !== null && buf.length < expected)
    throw new BackupFileError('truncated', `${name} is truncated (${buf.length} of ${expected} bytes)`);
  const body = buf.subarray(0, buf.length - DIGEST_BYTES);
  if (header === null || buf.length !== expected || !sha256(body).equals(buf.subarray(buf.length - DIGEST_BYTES)))
    throw new BackupFileError('corrupt', `${name} is corrupt (checksum mismatch): do not restore from it`);
  const data = buf.subarray(at + 4 + headerLen, at + 4 + headerLen + header.dataBytes);
  if (sha256(data).toString('hex') !== header.sha256)
    throw new BackupFileError('corrupt', `${name} is corrupt (data checksum mismatch): do not restore from it`);
  return { header, data };
}

function parseHeader(raw: unknown): BackupHeader | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  const nat = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const text = (v: unknown) => typeof v === 'string';
  if (!nat(r.version) || !text(r.clusterId) || !nat(r.index) || !nat(r.term) || !nat(r.dataBytes) || !text(r.sha256)) return null;
  return {
    version: r.version as number,
    clusterId: r.clusterId as string,
    index: r.index as number,
    term: r.term as number,
    createdAt: text(r.createdAt) ? (r.createdAt as string) : '',
    leaderdVersion: text(r.leaderdVersion) ? (r.leaderdVersion as string) : '',
    dataBytes: r.dataBytes as number,
    sha256: r.sha256 as string,
  };
}

/**
 * Write `bytes` to `path` so that `path` is either absent/unchanged or the whole new
 * file, even across a crash: a temp file beside it, fsync, rename, fsync the directory.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd = openSync(tmp, 'wx', 0o600);
  try {
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
