// Reading a snapshot's bytes (the core's SnapshotData) a piece at a time, for copies and
// checksums that must not hold them whole: a backup checked by `snapshot restore`, then
// copied into a new data dir.
import { readSync } from 'node:fs';
import type { SnapshotData } from '../raft/types.js';

/**
 * Reads `length` bytes at `position` of the file `fd` into the start of `target`, as
 * many reads as that takes; returns how many it got, less than `length` only at the end
 * of the file (the caller names what that means: a file shorter than its record says).
 */
export function readAt(fd: number, target: Uint8Array, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, target, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * SnapshotData that can also read a piece into a buffer it is given (a file read with
 * positional reads). A pass over a gigabyte then allocates one buffer: a fresh buffer
 * per piece is garbage that the collector lets pile up to tens of MiB before it runs.
 */
export type PieceReadable = SnapshotData & { readInto?(target: Buffer, begin: number, end: number): Uint8Array };

/** Bytes [from, to) of `data` in pieces of at most `size`; a piece is valid only until the next is asked for. */
export function* piecesOf(data: PieceReadable, from: number, to: number, size: number): Generator<Uint8Array, void, void> {
  const scratch = data.readInto ? Buffer.allocUnsafe(Math.max(1, Math.min(size, to - from))) : null;
  for (let off = from; off < to; off += size) {
    const end = Math.min(off + size, to);
    yield scratch !== null && data.readInto ? data.readInto(scratch, off, end) : data.subarray(off, end);
  }
}
