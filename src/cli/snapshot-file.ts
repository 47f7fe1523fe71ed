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
//
// Neither side holds the file whole: a save writes the data as the cluster streams it
// (the node declares the data's length and SHA-256 before the first byte, so the header
// is written first and the trailing SHA-256 hashed as the bytes go by), and a restore
// checks the file and then reads its data a few MiB at a time with positional reads.
// With a state of gigabytes, a whole copy would be gigabytes of the CLI's memory, and
// past Node's largest Buffer (4 GiB) a save could not be made at all.
import { createHash, type Hash } from 'node:crypto';
import { promises as fsp, closeSync, fstatSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { SnapshotData } from '../raft/types.js';
import { piecesOf, readAt, type PieceReadable } from '../storage/snapshot-pieces.js';

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
  const body = Buffer.concat([backupPrefix(header), data]);
  return { bytes: Buffer.concat([body, sha256(body)]), header };
}

/** magic | u32 BE header length | header JSON: every byte of a backup before its data. */
function backupPrefix(header: BackupHeader): Buffer {
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(headerBytes.length);
  return Buffer.concat([BACKUP_MAGIC, len, headerBytes]);
}

/** Bytes read at a time to check a backup file. */
const CHECK_PIECE = 4 << 20;

/** Check and split a backup file; every problem is a BackupFileError with a one-line message. */
export function decodeBackup(bytes: Uint8Array, name = 'the backup'): { header: BackupHeader; data: Uint8Array } {
  const { header, dataAt } = checkBackup(bytes, name);
  return { header, data: bytes.subarray(dataAt, dataAt + header.dataBytes) };
}

/**
 * Every check `decodeBackup` makes, in the same order with the same messages, on bytes
 * read a piece at a time: the header by its length field, then one pass over the rest
 * for both checksums. Returns the header and where the data starts.
 */
function checkBackup(src: PieceReadable, name: string): { header: BackupHeader; dataAt: number } {
  const size = src.byteLength;
  const magicSeen = Buffer.from(src.subarray(0, Math.min(size, BACKUP_MAGIC.length)));
  if (!magicSeen.equals(BACKUP_MAGIC)) {
    if (size < BACKUP_MAGIC.length && BACKUP_MAGIC.subarray(0, size).equals(magicSeen))
      throw new BackupFileError('truncated', `${name} is truncated (${size} bytes)`);
    throw new BackupFileError('not-a-backup', `${name} is not a leaderd snapshot file (no leaderd backup signature at its start)`);
  }
  const at = BACKUP_MAGIC.length;
  if (size < at + 4) throw new BackupFileError('truncated', `${name} is truncated (${size} bytes)`);
  const headerLen = Buffer.from(src.subarray(at, at + 4)).readUInt32BE(0);
  if (headerLen === 0 || headerLen > MAX_HEADER_BYTES)
    throw new BackupFileError('corrupt', `${name} is corrupt (header length ${headerLen})`);
  if (size < at + 4 + headerLen) throw new BackupFileError('truncated', `${name} is truncated (${size} bytes, header cut off)`);
  let header: BackupHeader | null;
  try {
    header = parseHeader(JSON.parse(Buffer.from(src.subarray(at + 4, at + 4 + headerLen)).toString('utf8')));
  } catch {
    header = null;
  }
  if (header !== null && header.version > BACKUP_VERSION)
    throw new BackupFileError('newer-version', `${name} has format version ${header.version}; this leaderd reads up to ${BACKUP_VERSION}`);
  const expected = header === null ? null : at + 4 + headerLen + header.dataBytes + DIGEST_BYTES;
  if (expected !== null && size < expected) throw new BackupFileError('truncated', `${name} is truncated (${size} of ${expected} bytes)`);
  const corrupt = () => new BackupFileError('corrupt', `${name} is corrupt (checksum mismatch): do not restore from it`);
  if (header === null || size !== expected) throw corrupt();
  // One pass for both checksums: the body's (everything before the trailing digest) and
  // the data's alone, which is the body's tail.
  const dataAt = at + 4 + headerLen;
  const bodyEnd = size - DIGEST_BYTES;
  const body = createHash('sha256');
  const data = createHash('sha256');
  let off = 0;
  for (const piece of piecesOf(src, 0, bodyEnd, CHECK_PIECE)) {
    body.update(piece);
    if (off + piece.length > dataAt) data.update(piece.subarray(Math.max(0, dataAt - off)));
    off += piece.length;
  }
  if (!body.digest().equals(Buffer.from(src.subarray(bodyEnd, size)))) throw corrupt();
  if (data.digest('hex') !== header.sha256)
    throw new BackupFileError('corrupt', `${name} is corrupt (data checksum mismatch): do not restore from it`);
  return { header, dataAt };
}

/**
 * A region of a file, read with positional reads (the descriptor belongs to whoever
 * opened it). It is a SnapshotData, so `seedDataDir` reads a backup's data through it a
 * piece at a time.
 */
export class BackupFileRegion implements SnapshotData {
  constructor(
    private readonly fd: number,
    /** Where the region starts in the file. */
    readonly offset: number,
    readonly byteLength: number,
    private readonly name: string,
  ) {}

  subarray(begin: number, end: number): Uint8Array {
    const from = Math.max(0, Math.min(begin, this.byteLength));
    const to = Math.max(from, Math.min(end, this.byteLength));
    return this.readInto(Buffer.allocUnsafe(to - from), from, to);
  }

  /** Bytes [begin, end) read into the start of `target` (at least end - begin long); returns that part of it. */
  readInto(target: Buffer, begin: number, end: number): Uint8Array {
    const from = Math.max(0, Math.min(begin, this.byteLength));
    const to = Math.max(from, Math.min(end, this.byteLength));
    const length = to - from;
    const done = readAt(this.fd, target, length, this.offset + from);
    // The file shrank after it was checked (someone else truncated it).
    if (done < length)
      throw new BackupFileError('truncated', `${this.name} is truncated (it ended at ${this.offset + from + done} bytes while being read)`);
    return new Uint8Array(target.buffer, target.byteOffset, length);
  }
}

/** A backup file opened and checked: its header, and its data read from the file as needed. */
export interface OpenBackup {
  readonly header: BackupHeader;
  readonly data: BackupFileRegion;
  close(): void;
}

/**
 * Opens and checks the backup at `path` as `decodeBackup` checks bytes, reading it a
 * piece at a time: a BackupFileError for a file that is not a sound backup; any other
 * error (errno) for a file that cannot be read.
 */
export function openBackup(path: string, name = 'the backup'): OpenBackup {
  const fd = openSync(path, 'r');
  try {
    const file = new BackupFileRegion(fd, 0, fstatSync(fd).size, name);
    const { header, dataAt } = checkBackup(file, name);
    return { header, data: new BackupFileRegion(fd, dataAt, header.dataBytes, name), close: () => closeSync(fd) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
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
  const tmp = tempPathFor(path);
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
  syncDirOf(path);
}

/** The temp file a write of `path` goes through: beside it (so the rename is atomic), hidden, per process. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

/** fsync the directory holding `path`, so its rename is durable. */
function syncDirOf(path: string): void {
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** A snapshot as its producer describes it before the first byte of data (the node declares length and SHA-256 up front). */
export type BackupHead = Pick<BackupHeader, 'clusterId' | 'index' | 'term' | 'dataBytes' | 'sha256'>;

/** Where a producer puts a backup's data as it arrives (LeaderdClient.snapshotInto's sink fits it). */
export interface BackupSink {
  /** An attempt starts: whatever an earlier attempt wrote is dropped. */
  begin(head: BackupHead): Promise<void>;
  /** The next piece of the data, in order. */
  write(chunk: Uint8Array): Promise<void>;
}

/**
 * Writes the backup at `path` as `produce` streams its data into the sink, holding none
 * of it: a temp file beside `path` (mode 0600) gets the header at `begin` (everything in
 * it is known then) and each piece at its offset, with the trailing SHA-256 hashed as
 * they go by; once `produce` resolves, the digest is appended and the file fsynced,
 * renamed onto `path` and its directory fsynced, as `writeFileAtomic` does. The bytes
 * are exactly `encodeBackup`'s. `produce` must check the data against the head's length
 * and SHA-256 before resolving (snapshotInto does); the length is checked here again.
 * If anything fails, `path` is untouched and the temp file removed.
 */
export async function saveBackupFile(
  path: string,
  meta: Pick<BackupHeader, 'createdAt' | 'leaderdVersion'>,
  produce: (sink: BackupSink) => Promise<void>,
): Promise<{ header: BackupHeader; bytes: number }> {
  const tmp = tempPathFor(path);
  const file = await fsp.open(tmp, 'wx', 0o600);
  let closed = false;
  try {
    let header: BackupHeader | undefined;
    let body: Hash = createHash('sha256');
    let size = 0;
    const put = async (bytes: Uint8Array) => {
      for (let done = 0; done < bytes.length;) done += (await file.write(bytes, done, bytes.length - done, size + done)).bytesWritten;
      size += bytes.length;
    };
    await produce({
      async begin(head) {
        header = {
          version: BACKUP_VERSION,
          clusterId: head.clusterId,
          index: head.index,
          term: head.term,
          ...meta,
          dataBytes: head.dataBytes,
          sha256: head.sha256,
        };
        await file.truncate(0);
        body = createHash('sha256');
        size = 0;
        const prefix = backupPrefix(header);
        body.update(prefix);
        await put(prefix);
      },
      async write(chunk) {
        if (header === undefined) throw new Error('backup data written before its head');
        body.update(chunk);
        await put(chunk);
      },
    });
    if (header === undefined) throw new Error('the snapshot stream ended before its head');
    const dataBytes = size - backupPrefix(header).length;
    if (dataBytes !== header.dataBytes) throw new Error(`the snapshot stream gave ${dataBytes} of ${header.dataBytes} bytes`);
    await put(body.digest());
    await file.sync();
    closed = true;
    await file.close();
    renameSync(tmp, path);
    syncDirOf(path);
    return { header, bytes: size };
  } catch (err) {
    if (!closed) await file.close().catch(() => undefined);
    rmSync(tmp, { force: true });
    throw err;
  }
}
