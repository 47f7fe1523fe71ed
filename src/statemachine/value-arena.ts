// Where the store keeps small values and keys (key-index.ts). A Uint8Array over an ArrayBuffer of its own costs
// about 200 bytes besides its bytes (the view, the ArrayBuffer, its backing store and
// their bookkeeping, measured with npm run bench:kv-memory): at a million keys of 8-byte
// values, that overhead alone was ~200 MiB of a node's memory. Small values are
// instead views into shared slabs, each slab's overhead spread over many values.

/** Values up to this many bytes go into slabs; larger ones keep an ArrayBuffer of their own. */
export const SLAB_VALUE_BYTES = 64;
/**
 * Bytes of one slab. A slab lives as long as any value in it, so one small value that
 * outlives the others written next to it can hold at most this much (against ~200 bytes
 * of overhead for each value kept alone); values written together and replaced together,
 * the common case, cost their bytes and a share of the slab's ~200.
 */
export const SLAB_BYTES = 1024;

const EMPTY_VALUE = new Uint8Array(0);

export class ValueArena {
  /** The current slab, whole. */
  private slab = EMPTY_VALUE;
  private at = 0;
  /** Where the last reserve() placed its bytes: `bytes` from `offset` on. */
  bytes: Uint8Array = EMPTY_VALUE;
  offset = 0;

  /**
   * Places `n` bytes (zeroed; shared with no other value) without making a view of them:
   * `bytes` and `offset` say where. Restoring a million keys makes one object less each.
   */
  reserve(n: number): void {
    if (n === 0) {
      // One shared empty value: it has no bytes anyone could change.
      this.bytes = EMPTY_VALUE;
      this.offset = 0;
      return;
    }
    if (n > SLAB_VALUE_BYTES) {
      this.bytes = new Uint8Array(n);
      this.offset = 0;
      return;
    }
    if (this.at + n > this.slab.length) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.at = 0;
    }
    this.bytes = this.slab;
    this.offset = this.at;
    this.at += n;
  }

  /** `n` bytes to be filled by the caller (zeroed), as a view. */
  alloc(n: number): Uint8Array {
    this.reserve(n);
    return n === 0 || this.bytes.length === n ? this.bytes : this.bytes.subarray(this.offset, this.offset + n);
  }

  /** A small value copied into a slab; a larger one as it is (its owner keeps it whole anyway). */
  keep(value: Uint8Array): Uint8Array {
    if (value.length > SLAB_VALUE_BYTES) return value;
    const v = this.alloc(value.length);
    v.set(value);
    return v;
  }
}
