// Encoding of large outgoing gRPC messages into reused buffers: peer frames and the
// public API's responses.
//
// A leader replicating 1 MiB values encodes every AppendEntries once per follower, and
// grpc-js then copies the encoding again to prepend its 5-byte frame header; a node
// answering Range reads of 1 MiB values does the same per response. With proto-loader's
// serializer each encoding and each copy is a fresh 1 MiB ArrayBuffer, garbage as soon as
// written, but V8 frees ArrayBuffer memory only at its next full GC, which growth of such
// memory triggers after about +64 MiB: a leader loading 1,000 x 1 MiB values held 30-36
// MiB of dead encodings and as much of dead copies at its peaks (measured by allocation
// site, bench:state --values 1000). Here each large message is encoded into a buffer
// taken from a small pool, after 5 bytes of room where grpc-framing.ts writes gRPC's
// message header so that grpc-js sends it without its copy, and the buffer is given back
// once grpc-js reports the write done (written to the socket, or framed by its own copy
// when the in-place path is unavailable). Small messages (heartbeats, most responses)
// keep the ordinary path.

import protobuf from 'protobufjs';
import { FRAME_HEADER_BYTES, frameInPlace, installFraming } from './grpc-framing.js';

/** Frames below this many bytes are encoded as usual (they come from Node's shared 8 KiB slabs or are too small to matter). */
const POOLED_MIN_BYTES = 64 * 1024;
/** Buffers are sized in steps of this, so frames of about the same size (1 MiB of entries plus framing) reuse one. */
const CAPACITY_STEP = 256 * 1024;

/** The pool the writer being finished takes its buffer from (set around each finish). */
let target: ((size: number) => Buffer) | null = null;

/** A protobufjs writer whose finish() takes a large buffer from `target`. */
class PooledWriter extends protobuf.BufferWriter {
  static override alloc(size: number): Buffer {
    return target === null || size < POOLED_MIN_BYTES ? Buffer.allocUnsafe(size) : target(size);
  }
}

export interface SendBufferStats {
  /** Large frames encoded (each into a buffer of the pool). */
  readonly encoded: number;
  /** Of those, how many needed a newly allocated buffer. */
  readonly allocated: number;
}

/** `value` encoded as `type`, by protobufjs as proto-loader does; `alloc` provides the buffer of a large encoding. */
function encodeWith(type: protobuf.Type, value: object, alloc: (size: number) => Buffer): Buffer {
  const writer = new PooledWriter();
  type.encode(type.fromObject(value), writer);
  target = alloc;
  try {
    return writer.finish() as Buffer;
  } finally {
    target = null;
  }
}

/**
 * A pool of buffers for large encodings, each with room for its frame header before it.
 * At most `maxIdle` buffers are kept while unused; a buffer whose write never completes
 * (stream torn down mid-write), or that was encoded for someone else than grpc-js, is
 * simply left to the garbage collector.
 */
export class SendBuffers {
  private readonly idle: ArrayBuffer[] = [];
  /** Buffers handed out and not yet given back: only these can be given back, and only once. */
  private readonly lent = new WeakSet<ArrayBuffer>();
  /** Which buffer each peer envelope was encoded into, until its write completes. */
  private readonly owner = new WeakMap<object, Buffer>();
  private encodedCount = 0;
  private allocatedCount = 0;
  private readonly taker = (size: number): Buffer => this.take(size);
  private readonly releaser = (bytes: Buffer): void => this.releaseBytes(bytes);

  constructor(private readonly maxIdle = 4) {
    installFraming();
  }

  /**
   * A peer envelope's encoding (`type` is leaderd.raft.v1.PeerEnvelope); a large one is
   * in a pooled buffer until release(envelope), which the sender calls once the write
   * of that envelope has completed.
   */
  encode(type: protobuf.Type, envelope: object): Buffer {
    const bytes = this.encodeFramed(type, envelope);
    if (this.lent.has(bytes.buffer as ArrayBuffer)) this.owner.set(envelope, bytes);
    return bytes;
  }

  /** The write of `envelope` has completed: its frame is on the socket, the buffer is free. */
  release(envelope: object): void {
    const bytes = this.owner.get(envelope);
    if (bytes === undefined) return;
    this.owner.delete(envelope);
    this.releaseBytes(bytes);
  }

  /**
   * A drop-in for proto-loader's serializer of `type` (same bytes) for a server's
   * responses: a large one goes out from a pooled buffer without grpc-js's framing copy,
   * and the buffer comes back when grpc-js reports that write done (grpc-framing.ts).
   */
  responseSerializer(type: protobuf.Type): (value: object) => Buffer {
    return (value) => this.encodeFramed(type, value, this.releaser);
  }

  private encodeFramed(type: protobuf.Type, value: object, release?: (bytes: Buffer) => void): Buffer {
    const bytes = encodeWith(type, value, this.taker);
    if (this.lent.has(bytes.buffer as ArrayBuffer)) frameInPlace(bytes, release);
    return bytes;
  }

  private releaseBytes(bytes: Buffer): void {
    const ab = bytes.buffer as ArrayBuffer;
    if (!this.lent.delete(ab)) return;
    if (this.idle.length < this.maxIdle) this.idle.push(ab);
  }

  /** @internal `size` bytes with FRAME_HEADER_BYTES of room before them (PooledWriter.alloc). */
  take(size: number): Buffer {
    this.encodedCount++;
    const capacity = size + FRAME_HEADER_BYTES;
    const i = this.idle.findIndex((ab) => ab.byteLength >= capacity);
    let ab: ArrayBuffer;
    if (i >= 0) {
      ab = this.idle[i]!;
      this.idle.splice(i, 1);
    } else {
      // A larger frame than any idle buffer: drop the oldest idle one so the pool follows
      // the frame sizes actually sent.
      if (this.idle.length >= this.maxIdle) this.idle.shift();
      this.allocatedCount++;
      ab = Buffer.allocUnsafeSlow(Math.ceil(capacity / CAPACITY_STEP) * CAPACITY_STEP).buffer as ArrayBuffer;
    }
    this.lent.add(ab);
    return Buffer.from(ab, FRAME_HEADER_BYTES, size);
  }

  stats(): SendBufferStats {
    return { encoded: this.encodedCount, allocated: this.allocatedCount };
  }
}

/** The pool of the public API's responses, one per process (protos.ts). */
export const responseBuffers = new SendBuffers(8);
