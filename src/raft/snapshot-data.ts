// A snapshot's bytes as the core sees them (SnapshotData, SnapshotSink in types.ts): the
// default sink that keeps an incoming transfer in memory, and the whole-snapshot checksum
// read a chunk at a time.
import type { SnapshotData, SnapshotSink } from './types.js';

/**
 * The default RaftConfig.openSnapshotSink: one buffer of the declared size, filled in
 * place. Kept as a list of chunks and joined at the end, a transfer held the snapshot
 * twice at that moment. Untouched pages of a fresh allocation cost no memory until
 * written, so a transfer declared large but abandoned holds only what arrived. Null when
 * the buffer cannot be allocated (a size within maxSnapshotBytes, yet more than this
 * process can reserve now).
 */
export function memorySnapshotSink(totalSize: number): SnapshotSink | null {
  let data: Uint8Array;
  try {
    data = new Uint8Array(totalSize);
  } catch {
    return null;
  }
  let size = 0;
  return {
    append(chunk) {
      data.set(chunk, size);
      size += chunk.length;
    },
    finish: () => data,
    discard() {
      data = new Uint8Array(0);
    },
  };
}

/**
 * `checksum` over all of `data`: its known value, else computed `chunkBytes` at a time
 * (a file-backed snapshot is then read once, never held whole).
 */
export function checksumOf(data: SnapshotData, checksum: (bytes: Uint8Array, value: number) => number, chunkBytes: number): number {
  if (data.checksum !== undefined) return data.checksum;
  let sum = 0;
  for (let off = 0; off < data.byteLength; off += chunkBytes) {
    sum = checksum(data.subarray(off, Math.min(off + chunkBytes, data.byteLength)), sum);
  }
  return sum;
}

/**
 * All of `data` as one array: a Uint8Array as it is, anything else read whole. Only for
 * what cannot take the bytes in pieces (a state machine without restoreFromPieces).
 */
export function wholeSnapshot(data: SnapshotData): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray(0, data.byteLength);
}
