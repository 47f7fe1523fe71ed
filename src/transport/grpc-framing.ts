// Frames that are sent as they are, without grpc-js's framing copy.
//
// grpc-js prepends gRPC's 5-byte message header (compressed flag, big-endian length) by
// copying every serialized message into a new buffer (its CompressionFilter, also for
// the "identity" encoding). For a leader sending 1 MiB appends that copy is a fresh
// 1 MiB ArrayBuffer per message and follower, dead once written, which V8 frees only
// at its next full GC (it starts one after about +64 MiB of such memory): 40-50 MiB of a
// leader's memory during a load of large values was these copies. send-buffers.ts
// encodes a large frame after 5 bytes of room in its own buffer and registers the
// framed view here; the filter then passes that view on instead of copying. A server
// makes the same copy of every response (its serializeMessage): a node answering Range
// reads of 1 MiB values allocated each twice, the encoding and its framed copy (30-33 MiB
// of each dead at a node's peak while bench:state read every key back), so the public
// API's large responses are encoded after 5 bytes of room too and sent as they are.
// grpc-js has no option for either, so it is done on two internals that are stable
// across 1.x (the client's CompressionFilter, the server call's serializeMessage); one
// that is not where expected is left alone, its frames are copied as before, and
// installFraming() says so (the transport test fails then).

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

interface ServerCallInternals {
  handler?: { serialize?: (value: unknown) => Buffer };
  serializeMessage(value: unknown): Buffer;
  sendMessage(message: unknown, callback: () => void): void;
}

/** Serialized messages whose bytes are preceded by their frame header: that framed view, and who takes the buffer back once written. */
const framed = new WeakMap<Buffer, { frame: Buffer; release: ((message: Buffer) => void) | undefined }>();
/** The message the last serializeMessage of a server call sent in place. */
let servedInPlace: Buffer | null = null;
let installed: boolean | undefined;
let inPlace = 0;

/**
 * Writes the header into the 5 bytes before `message` and registers the framed view;
 * `message` must start at byteOffset >= 5 of its buffer. A server call that sends it
 * calls `release` once the frame is written (a client's sender releases on its own write
 * callback).
 */
export function frameInPlace(message: Buffer, release?: (message: Buffer) => void): void {
  const frame = Buffer.from(message.buffer, message.byteOffset - FRAME_HEADER_BYTES, message.length + FRAME_HEADER_BYTES);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  framed.set(message, { frame, release });
}

/** Frames grpc-js passed on without copying, since start. */
export function framesSentInPlace(): number {
  return inPlace;
}

/** Makes grpc-js send registered frames as they are, from clients and servers. Idempotent; false if either internal is not where expected. */
export function installFraming(): boolean {
  if (installed !== undefined) return installed;
  const client = installClientFraming();
  const server = installServerFraming();
  installed = client && server;
  return installed;
}

/** The prototype of a class grpc-js defines in one of its modules, if it is still there. */
function grpcInternal<T>(file: string, name: string): T | undefined {
  try {
    const mod = createRequire(import.meta.url)(`@grpc/grpc-js/build/src/${file}`) as Record<string, { prototype?: T } | undefined>;
    return mod[name]?.prototype;
  } catch {
    return undefined;
  }
}

function installClientFraming(): boolean {
  const proto = grpcInternal<CompressionFilterInternals>('compression-filter.js', 'CompressionFilter');
  if (proto === undefined || typeof proto.sendMessage !== 'function') return false;
  const copying = proto.sendMessage;
  proto.sendMessage = async function (this: CompressionFilterInternals, message: Promise<WriteObject>): Promise<WriteObject> {
    const resolved = await message;
    const frame = framed.get(resolved.message)?.frame;
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
  return true;
}

function installServerFraming(): boolean {
  const proto = grpcInternal<ServerCallInternals>('server-interceptors.js', 'BaseServerInterceptingCall');
  if (proto === undefined || typeof proto.serializeMessage !== 'function' || typeof proto.sendMessage !== 'function') return false;
  const copying = proto.serializeMessage;
  const sending = proto.sendMessage;
  // sendMessage serializes (synchronously) and writes; its callback runs once the write
  // is done, the moment a pooled buffer may be reused.
  proto.sendMessage = function (this: ServerCallInternals, message: unknown, callback: () => void): void {
    servedInPlace = null;
    let sent: Buffer | null = null;
    sending.call(this, message, () => {
      if (sent !== null) framed.get(sent)?.release?.(sent);
      callback();
    });
    sent = servedInPlace;
    servedInPlace = null;
  };
  proto.serializeMessage = function (this: ServerCallInternals, value: unknown): Buffer {
    const serialize = this.handler?.serialize;
    if (typeof serialize !== 'function') return copying.call(this, value);
    const message = serialize(value);
    const entry = framed.get(message);
    if (entry !== undefined) {
      inPlace++;
      servedInPlace = message;
      return entry.frame;
    }
    // grpc-js's own framing of a response (a grpc-js server does not compress them).
    const output = Buffer.allocUnsafe(message.byteLength + FRAME_HEADER_BYTES);
    output.writeUInt8(0, 0);
    output.writeUInt32BE(message.byteLength, 1);
    message.copy(output, FRAME_HEADER_BYTES);
    return output;
  };
  return true;
}
