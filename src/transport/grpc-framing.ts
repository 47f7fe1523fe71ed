// Frames that are sent as they are, without grpc-js's framing copy.
//
// grpc-js prepends gRPC's 5-byte message header (compressed flag, big-endian length) by
// copying every serialized message into a new buffer (its CompressionFilter, also for
// the "identity" encoding). For a leader sending 1 MiB appends that copy is a fresh
// 1 MiB ArrayBuffer per message and follower, dead once written, which V8 frees only
// at its next full GC (it starts one after about +64 MiB of such memory): 40-50 MiB of a
// leader's memory during a load of large values was these copies. send-buffers.ts
// encodes a large frame after 5 bytes of room in its own buffer and registers the
// framed view here; the filter then passes that view on instead of copying. grpc-js has
// no option for this, so it is done on its CompressionFilter, an internal that is stable
// across 1.x; if it is not where expected nothing is changed, every frame is copied as
// before, and installFraming() says so (the transport test fails then).

import { createRequire } from 'node:module';

/** gRPC's length-prefixed message header: 1 byte compressed flag, 4 bytes length. */
export const FRAME_HEADER_BYTES = 5;

interface WriteObject {
  message: Buffer;
  flags?: number;
}

interface CompressionFilterInternals {
  currentCompressionAlgorithm?: unknown;
  maxSendMessageLength?: unknown;
  sendMessage(message: Promise<WriteObject>): Promise<WriteObject>;
}

/** Serialized messages whose bytes are preceded by their frame header, and that framed view. */
const framed = new WeakMap<Buffer, Buffer>();
let installed: boolean | undefined;
let inPlace = 0;

/** Writes the header into the 5 bytes before `message` and registers the framed view; `message` must start at byteOffset >= 5 of its buffer. */
export function frameInPlace(message: Buffer): void {
  const frame = Buffer.from(message.buffer, message.byteOffset - FRAME_HEADER_BYTES, message.length + FRAME_HEADER_BYTES);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  framed.set(message, frame);
}

/** Frames grpc-js passed on without copying, since start. */
export function framesSentInPlace(): number {
  return inPlace;
}

/** Makes grpc-js send registered frames as they are. Idempotent; false if grpc-js's internals are not where expected. */
export function installFraming(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  let proto: CompressionFilterInternals | undefined;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/compression-filter.js') as {
      CompressionFilter?: { prototype?: CompressionFilterInternals };
    };
    proto = mod.CompressionFilter?.prototype;
  } catch {
    return false;
  }
  if (proto === undefined || typeof proto.sendMessage !== 'function') return false;
  const copying = proto.sendMessage;
  proto.sendMessage = async function (this: CompressionFilterInternals, message: Promise<WriteObject>): Promise<WriteObject> {
    const resolved = await message;
    const frame = framed.get(resolved.message);
    const max = this.maxSendMessageLength;
    // Only uncompressed, and only within the send limit (the copying path reports a
    // message over it as an error, and compresses if the channel asked for it).
    if (
      frame !== undefined &&
      this.currentCompressionAlgorithm === 'identity' &&
      typeof max === 'number' &&
      (max === -1 || resolved.message.length <= max)
    ) {
      inPlace++;
      return resolved.flags === undefined ? { message: frame } : { message: frame, flags: resolved.flags };
    }
    return copying.call(this, Promise.resolve(resolved));
  };
  installed = true;
  return true;
}
