// Snapshot bytes in a file of the data dir, never whole in memory. The LevelDB record of
// a snapshot names its file, size and checksum (codec.ts); the file is written under a
// spool name, synced, renamed to `<index>-<term>.snap` and its directory synced before
// the record that names it is written, so a crash leaves either the old snapshot or the
// new one, never a record naming a file that is not all there.
//
// Reads and writes are synchronous positional calls on a descriptor: the Raft core reads
// a chunk to send (SnapshotData.subarray) and writes a chunk that arrived
// (SnapshotSink.append) from inside step(), which cannot wait. A chunk is at most a few
// MiB and the page cache absorbs it; fsync, the slow part, is asynchronous (sync()).
import { readAt } from './snapshot-pieces.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SnapshotData, SnapshotSink } from '../raft/types.js';
import { crc32 } from './crc32.js';

/** Where a store keeps its snapshot files, inside its LevelDB directory (LevelDB ignores what it did not write). */
export const SNAP_DIR = 'snap';
const SPOOL_SUFFIX = '.spool';
/** Bytes read at a time to check a file's checksum. */
const CHECK_PIECE = 8 << 20;

/** The file name of the snapshot at `index`, `term`. */
export function snapshotFileName(index: number, term: number): string {
  return `${String(index).padStart(16, '0')}-${String(term).padStart(8, '0')}.snap`;
}

/**
 * A snapshot's bytes in a file, read a chunk at a time with positional reads. Holds a
 * descriptor until close(): a file renamed or unlinked meanwhile stays readable, so a
 * leader sending it to a follower is not cut off when a newer snapshot replaces it on disk.
 */
export class SnapshotFile implements SnapshotData {
  #fd: number | null;

  constructor(
    fd: number,
    /** Where the file is now (it moves once, from its spool name to its final one). */
    public filePath: string,
    readonly byteLength: number,
    readonly checksum: number,
  ) {
    this.#fd = fd;
  }

  /** Opens the file at `filePath`, which must hold `byteLength` bytes (else a SnapshotFileError). */
  static open(filePath: string, byteLength: number, checksum: number): SnapshotFile {
    let fd: number;
    try {
      fd = fs.openSync(filePath, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SnapshotFileError(`its snapshot file ${filePath} is missing`);
      throw err;
    }
    const size = fs.fstatSync(fd).size;
    if (size !== byteLength) {
      fs.closeSync(fd);
      throw new SnapshotFileError(`its snapshot file ${filePath} holds ${size} bytes, not the ${byteLength} its record says`);
    }
    return new SnapshotFile(fd, filePath, byteLength, checksum);
  }

  subarray(begin: number, end: number): Uint8Array {
    const fd = this.fd();
    const from = Math.max(0, Math.min(begin, this.byteLength));
    const to = Math.max(from, Math.min(end, this.byteLength));
    const out = Buffer.allocUnsafe(to - from);
    const done = readAt(fd, out, out.length, from);
    if (done < out.length)
      throw new SnapshotFileError(`snapshot file ${this.filePath} ended at ${from + done} of ${this.byteLength} bytes`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  /** Reads the whole file a piece at a time (yielding to the event loop) and checks its checksum. */
  async verify(): Promise<void> {
    const fd = this.fd();
    const buf = Buffer.allocUnsafe(Math.min(CHECK_PIECE, Math.max(1, this.byteLength)));
    let sum = 0;
    for (let off = 0; off < this.byteLength;) {
      const want = Math.min(buf.length, this.byteLength - off);
      const { bytesRead } = await new Promise<{ bytesRead: number }>((resolve, reject) =>
        fs.read(fd, buf, 0, want, off, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))),
      );
      if (bytesRead === 0) throw new SnapshotFileError(`snapshot file ${this.filePath} ended at ${off} of ${this.byteLength} bytes`);
      sum = crc32(buf.subarray(0, bytesRead), sum);
      off += bytesRead;
    }
    if (sum !== this.checksum) {
      throw new SnapshotFileError(
        `its snapshot file ${this.filePath} does not match its checksum (${sum.toString(16)}, recorded ${this.checksum.toString(16)})`,
      );
    }
  }

  /** fsync, off the event loop. */
  sync(): Promise<void> {
    const fd = this.fd();
    return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** Releases the descriptor; later reads throw. Idempotent. */
  close(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    fs.closeSync(fd);
  }

  /** Closes the descriptor and removes the file (a spool read once, say, for a backup). */
  release(): void {
    this.close();
    fs.rmSync(this.filePath, { force: true });
  }

  get closed(): boolean {
    return this.#fd === null;
  }

  private fd(): number {
    if (this.#fd === null) throw new Error(`snapshot file ${this.filePath} is closed`);
    return this.#fd;
  }
}

/** A snapshot file that is missing, of the wrong size, or does not match its checksum. */
export class SnapshotFileError extends Error {
  override readonly name = 'SnapshotFileError';
}

/**
 * A snapshot being written: appended in order to a spool file in `dir`; finish() hands
 * it back as a SnapshotFile (not yet synced: the store syncs and renames it when it
 * records it). Whoever writes computes the checksum as it goes (the core verifying a
 * transfer, the node producing a snapshot): it is not computed twice.
 */
export class SnapshotSpool implements SnapshotSink {
  #fd: number | null;
  #size = 0;

  private constructor(
    fd: number,
    readonly filePath: string,
  ) {
    this.#fd = fd;
  }

  /** A new spool file in `dir` (created if absent). */
  static create(dir: string, seq: number): SnapshotSpool {
    fs.mkdirSync(dir, { recursive: true });
    const filePath = path.join(dir, `${process.pid}-${seq}${SPOOL_SUFFIX}`);
    return new SnapshotSpool(fs.openSync(filePath, 'w+'), filePath);
  }

  get size(): number {
    return this.#size;
  }

  append(chunk: Uint8Array): void {
    const fd = this.fd();
    let done = 0;
    while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done, this.#size + done);
    this.#size += chunk.length;
  }

  finish(checksum: number): SnapshotFile {
    const fd = this.fd();
    this.#fd = null;
    return new SnapshotFile(fd, this.filePath, this.#size, checksum);
  }

  discard(): void {
    if (this.#fd === null) return;
    fs.closeSync(this.#fd);
    this.#fd = null;
    fs.rmSync(this.filePath, { force: true });
  }

  private fd(): number {
    if (this.#fd === null) throw new Error(`snapshot spool ${this.filePath} is finished or discarded`);
    return this.#fd;
  }
}

/** True for a name spool files get: left over by a process that stopped before finishing one. */
export function isSpoolName(name: string): boolean {
  return name.endsWith(SPOOL_SUFFIX);
}

/** fsync a directory, so a rename or unlink in it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
