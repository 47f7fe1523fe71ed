// Conversion between the core's Message union (src/raft/types.ts) and the peer
// protocol's wire objects (proto/leaderd/raft/v1/raft.proto, as decoded by
// proto-loader with the options in protos.ts).
//
// Everything arriving from the network is untrusted: a buggy or hostile peer, a
// version mismatch, or a garbage frame must never reach the core as a half-valid
// Message, and must never throw out of the transport. So fromWire checks every field's
// type and range and returns a ValidationError naming the first bad field instead.

import type { ConfState, Entry, EntryType, Message, MessageType, NodeId, SnapshotMeta } from '../raft/types.js';
import type { PeerEnvelope } from '../gen/leaderd/raft/v1/PeerEnvelope.js';
import type { RaftMessage } from '../gen/leaderd/raft/v1/RaftMessage.js';
import type { Entry as WireEntry } from '../gen/leaderd/raft/v1/Entry.js';
import type { SnapshotMeta as WireSnapshotMeta } from '../gen/leaderd/raft/v1/SnapshotMeta.js';

/** A frame or field that does not describe a valid message; `field` is a dotted path. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** The handshake, first frame on every peer stream (see raft.proto). */
export interface Hello {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  readonly peerAddress: string;
  readonly clientAddress: string;
  /** The sender's data dir incarnation; '' from a node that does not send one. */
  readonly incarnation?: string;
  /** The sender's timing; null from a node that does not send it. */
  readonly timing?: PeerTiming | null;
  /** Incarnations the sender knows for other members (see checkHello). */
  readonly knownIncarnations?: ReadonlyMap<NodeId, string>;
}

/** At most this many known incarnations travel in a Hello (a cluster has a handful of members). */
export const MAX_KNOWN_INCARNATIONS = 64;

/** What every member must agree on for the leader lease to hold (sent in Hello). */
export interface PeerTiming {
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly tickMs: number;
  readonly leaseDriftMs: number;
}

export type Frame = { readonly kind: 'hello'; readonly hello: Hello } | { readonly kind: 'message'; readonly message: Message };

// The oneof member names in RaftMessage.body are the Message `type` tags themselves
// (proto-loader camelCases vote_resp to voteResp, ...), so no mapping table is needed.
const MESSAGE_TYPES: readonly MessageType[] = [
  'vote',
  'voteResp',
  'app',
  'appResp',
  'snap',
  'snapResp',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
];

const ENTRY_TYPE_TO_WIRE = {
  normal: 'ENTRY_TYPE_NORMAL',
  noop: 'ENTRY_TYPE_NOOP',
  conf: 'ENTRY_TYPE_CONF',
} as const satisfies Record<EntryType, string>;

const ENTRY_TYPE_FROM_WIRE: ReadonlyMap<unknown, EntryType> = new Map<unknown, EntryType>([
  ['ENTRY_TYPE_NORMAL', 'normal'],
  ['ENTRY_TYPE_NOOP', 'noop'],
  ['ENTRY_TYPE_CONF', 'conf'],
]);

// ---------------------------------------------------------------------------
// Outgoing. Messages come from our own core and are trusted; this is a plain mapping.

function entryToWire(e: Entry): WireEntry {
  return { index: e.index, term: e.term, type: ENTRY_TYPE_TO_WIRE[e.type], data: e.data };
}

function metaToWire(m: SnapshotMeta): WireSnapshotMeta {
  return {
    index: m.index,
    term: m.term,
    conf: { voters: [...m.conf.voters], learners: [...m.conf.learners] },
  };
}

function bodyToWire(msg: Message): RaftMessage {
  switch (msg.type) {
    case 'vote':
      return {
        vote: {
          preVote: msg.preVote,
          lastLogIndex: msg.lastLogIndex,
          lastLogTerm: msg.lastLogTerm,
          transfer: msg.transfer,
        },
      };
    case 'voteResp':
      return { voteResp: { preVote: msg.preVote, granted: msg.granted } };
    case 'app':
      return {
        app: {
          prevLogIndex: msg.prevLogIndex,
          prevLogTerm: msg.prevLogTerm,
          entries: msg.entries.map(entryToWire),
          leaderCommit: msg.leaderCommit,
          round: msg.round,
        },
      };
    case 'appResp':
      return {
        appResp: {
          success: msg.success,
          matchIndex: msg.matchIndex,
          rejectHint: msg.rejectHint,
          rejectTerm: msg.rejectTerm,
          round: msg.round,
          heartbeatOnly: msg.heartbeatOnly === true,
        },
      };
    case 'snap':
      return {
        snap: {
          meta: metaToWire(msg.meta),
          offset: msg.offset,
          data: msg.data,
          done: msg.done,
          round: msg.round,
          totalSize: msg.totalSize,
          checksum: msg.checksum,
        },
      };
    case 'snapResp':
      return {
        snapResp: {
          snapIndex: msg.snapIndex,
          nextOffset: msg.nextOffset,
          done: msg.done,
          matchIndex: msg.matchIndex,
          round: msg.round,
          refused: msg.refused,
        },
      };
    case 'timeoutNow':
      return { timeoutNow: {} };
    case 'readIndex':
      return { readIndex: { requestId: msg.requestId } };
    case 'readIndexResp':
      return { readIndexResp: { requestId: msg.requestId, index: msg.index } };
    default: {
      const unreachable: never = msg;
      throw new Error(`unknown message type ${String((unreachable as { type?: unknown }).type)}`);
    }
  }
}

/**
 * The envelope carrying `msg`. It also sets the virtual oneof fields (`frame`, `body`)
 * that proto-loader produces on decode, so fromWire(toWire(m)) works without going
 * through protobuf bytes.
 */
export function toWire(msg: Message): PeerEnvelope {
  const message: RaftMessage = {
    clusterId: msg.clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    ...bodyToWire(msg),
    body: msg.type,
  };
  return { message, frame: 'message' };
}

export function helloToWire(hello: Hello): PeerEnvelope {
  return {
    hello: {
      clusterId: hello.clusterId,
      nodeId: hello.nodeId,
      peerAddress: hello.peerAddress,
      clientAddress: hello.clientAddress,
      incarnation: hello.incarnation ?? '',
      timing: hello.timing ?? null,
      knownIncarnations: Object.fromEntries([...(hello.knownIncarnations ?? new Map<NodeId, string>())].slice(0, MAX_KNOWN_INCARNATIONS)),
    },
    frame: 'hello',
  };
}

// ---------------------------------------------------------------------------
// Incoming. Every reader throws ValidationError; the exported functions catch it
// (and anything else a hostile object could throw, such as a getter) and return it.

type Obj = Record<string, unknown>;

function fail(field: string, problem: string): never {
  throw new ValidationError(field, problem);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v;
}

function obj(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    fail(field, `expected a message, got ${describe(v)}`);
  }
  return v as Obj;
}

function str(o: Obj, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(`${path}.${key}`, `expected a string, got ${describe(v)}`);
  return v;
}

function id(o: Obj, key: string, path: string): string {
  const v = str(o, key, path);
  if (v.length === 0) fail(`${path}.${key}`, 'must not be empty');
  return v;
}

function bool(o: Obj, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') fail(`${path}.${key}`, `expected a boolean, got ${describe(v)}`);
  return v;
}

// uint64 on the wire; Number.isSafeInteger also rejects anything proto-loader had to
// round when converting a uint64 above 2^53 to a number.
function uint(o: Obj, key: string, path: string, min = 0): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    fail(`${path}.${key}`, `expected an integer >= ${min} below 2^53, got ${describe(v)}`);
  }
  return v;
}

function bytes(o: Obj, key: string, path: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) fail(`${path}.${key}`, `expected bytes, got ${describe(v)}`);
  // A plain view, not a Buffer: the core compares and stores Uint8Arrays, and a
  // Buffer's extra methods must not leak into code that is meant to be pure.
  return Object.getPrototypeOf(v) === Uint8Array.prototype ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function arr(o: Obj, key: string, path: string): readonly unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) fail(`${path}.${key}`, `expected a list, got ${describe(v)}`);
  return v;
}

function idList(o: Obj, key: string, path: string): NodeId[] {
  return arr(o, key, path).map((v, i) => {
    if (typeof v !== 'string' || v.length === 0) {
      fail(`${path}.${key}[${i}]`, `expected a non-empty string, got ${describe(v)}`);
    }
    return v;
  });
}

function readConf(v: unknown, path: string): ConfState {
  const o = obj(v, path);
  return { voters: idList(o, 'voters', path), learners: idList(o, 'learners', path) };
}

function readMeta(v: unknown, path: string): SnapshotMeta {
  const o = obj(v, path);
  return {
    index: uint(o, 'index', path),
    term: uint(o, 'term', path),
    conf: readConf(o['conf'], `${path}.conf`),
  };
}

function readEntry(v: unknown, path: string): Entry {
  const o = obj(v, path);
  const index = uint(o, 'index', path, 1);
  const term = uint(o, 'term', path);
  const type = ENTRY_TYPE_FROM_WIRE.get(o['type']);
  if (type === undefined) fail(`${path}.type`, `unknown entry type ${describe(o['type'])}`);
  return { index, term, type, data: bytes(o, 'data', path) };
}

function readMessage(v: unknown, path: string): Message {
  const m = obj(v, path);
  const clusterId = id(m, 'clusterId', path);
  const from = id(m, 'from', path);
  const to = id(m, 'to', path);
  const term = uint(m, 'term', path);

  const present = MESSAGE_TYPES.filter((t) => m[t] !== undefined && m[t] !== null);
  if (present.length > 1) fail(`${path}.body`, `more than one member set: ${present.join(', ')}`);
  const type = present[0];
  if (type === undefined) fail(`${path}.body`, 'no known message type set');
  if (m['body'] !== undefined && m['body'] !== type) {
    fail(`${path}.body`, `names ${describe(m['body'])} but ${type} is set`);
  }
  const bp = `${path}.${type}`;
  const b = obj(m[type], bp);
  const base = { clusterId, from, to, term } as const;

  switch (type) {
    case 'vote':
      return {
        ...base,
        type,
        preVote: bool(b, 'preVote', bp),
        lastLogIndex: uint(b, 'lastLogIndex', bp),
        lastLogTerm: uint(b, 'lastLogTerm', bp),
        transfer: bool(b, 'transfer', bp),
      };
    case 'voteResp':
      return { ...base, type, preVote: bool(b, 'preVote', bp), granted: bool(b, 'granted', bp) };
    case 'app': {
      const prevLogIndex = uint(b, 'prevLogIndex', bp);
      const entries = arr(b, 'entries', bp).map((e, i) => readEntry(e, `${bp}.entries[${i}]`));
      // AppendEntries carries the entries immediately following prevLogIndex (Figure 2);
      // a gap or reordering would make the follower's log disagree with the leader's.
      entries.forEach((e, i) => {
        if (e.index !== prevLogIndex + 1 + i) {
          fail(`${bp}.entries[${i}].index`, `expected ${prevLogIndex + 1 + i} (follows prevLogIndex), got ${e.index}`);
        }
      });
      return {
        ...base,
        type,
        prevLogIndex,
        prevLogTerm: uint(b, 'prevLogTerm', bp),
        entries,
        leaderCommit: uint(b, 'leaderCommit', bp),
        round: uint(b, 'round', bp),
      };
    }
    case 'appResp':
      return {
        ...base,
        type,
        success: bool(b, 'success', bp),
        matchIndex: uint(b, 'matchIndex', bp),
        rejectHint: uint(b, 'rejectHint', bp),
        rejectTerm: uint(b, 'rejectTerm', bp),
        round: uint(b, 'round', bp),
        // Absent (false) from members that predate it.
        ...(bool(b, 'heartbeatOnly', bp) ? { heartbeatOnly: true } : {}),
      };
    case 'snap':
      return {
        ...base,
        type,
        meta: readMeta(b['meta'], `${bp}.meta`),
        offset: uint(b, 'offset', bp),
        data: bytes(b, 'data', bp),
        done: bool(b, 'done', bp),
        round: uint(b, 'round', bp),
        totalSize: uint(b, 'totalSize', bp),
        checksum: uint(b, 'checksum', bp),
      };
    case 'snapResp':
      return {
        ...base,
        type,
        snapIndex: uint(b, 'snapIndex', bp),
        nextOffset: uint(b, 'nextOffset', bp),
        done: bool(b, 'done', bp),
        matchIndex: uint(b, 'matchIndex', bp),
        round: uint(b, 'round', bp),
        refused: bool(b, 'refused', bp),
      };
    case 'timeoutNow':
      return { ...base, type };
    case 'readIndex':
      return { ...base, type, requestId: id(b, 'requestId', bp) };
    case 'readIndexResp': {
      const index = b['index'];
      if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < -1) {
        fail(`${bp}.index`, `expected an integer >= -1, got ${describe(index)}`);
      }
      return { ...base, type, requestId: id(b, 'requestId', bp), index };
    }
    default: {
      const unreachable: never = type;
      return fail(`${path}.body`, `unhandled type ${String(unreachable)}`);
    }
  }
}

function readHello(v: unknown, path: string): Hello {
  const h = obj(v, path);
  return {
    clusterId: id(h, 'clusterId', path),
    nodeId: id(h, 'nodeId', path),
    peerAddress: str(h, 'peerAddress', path),
    clientAddress: str(h, 'clientAddress', path),
    incarnation: h['incarnation'] === undefined || h['incarnation'] === null ? '' : str(h, 'incarnation', path),
    timing: h['timing'] === undefined || h['timing'] === null ? null : readTiming(h['timing'], `${path}.timing`),
    knownIncarnations: readKnownIncarnations(h['knownIncarnations'], `${path}.knownIncarnations`),
  };
}

function readKnownIncarnations(v: unknown, path: string): ReadonlyMap<NodeId, string> {
  const out = new Map<NodeId, string>();
  if (v === undefined || v === null) return out;
  const o = obj(v, path);
  const keys = Object.keys(o);
  if (keys.length > MAX_KNOWN_INCARNATIONS) fail(path, `more than ${MAX_KNOWN_INCARNATIONS} entries (${keys.length})`);
  for (const k of keys) {
    if (k === '') fail(path, 'empty member id');
    const inc = str(o, k, path);
    if (inc !== '') out.set(k, inc);
  }
  return out;
}

function readTiming(v: unknown, path: string): PeerTiming {
  const t = obj(v, path);
  return {
    heartbeatMs: uint(t, 'heartbeatMs', path),
    electionTimeoutMs: uint(t, 'electionTimeoutMs', path),
    tickMs: uint(t, 'tickMs', path),
    leaseDriftMs: uint(t, 'leaseDriftMs', path),
  };
}

function guard<T>(f: () => T): T | ValidationError {
  try {
    return f();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    // A hostile object (throwing getter, revoked Proxy) lands here.
    return new ValidationError('envelope', `unreadable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function readFrame(envelope: unknown): Frame {
  const e = obj(envelope, 'envelope');
  const hasHello = e['hello'] !== undefined && e['hello'] !== null;
  const hasMessage = e['message'] !== undefined && e['message'] !== null;
  if (hasHello && hasMessage) fail('envelope.frame', 'both hello and message set');
  if (hasHello) return { kind: 'hello', hello: readHello(e['hello'], 'envelope.hello') };
  if (hasMessage) return { kind: 'message', message: readMessage(e['message'], 'envelope.message') };
  return fail('envelope.frame', 'neither hello nor message set');
}

/** Any frame of the peer protocol: a Hello or a Raft message. Never throws. */
export function parseFrame(envelope: unknown): Frame | ValidationError {
  return guard(() => readFrame(envelope));
}

/** The Raft message in `envelope`; a Hello or anything invalid is an error. Never throws. */
export function fromWire(envelope: unknown): Message | ValidationError {
  return guard(() => {
    const frame = readFrame(envelope);
    if (frame.kind !== 'message') fail('envelope.frame', 'expected a message, got hello');
    return frame.message;
  });
}

/**
 * A cheap upper-bound-ish estimate of a message's encoded size, so the sender can
 * refuse a message the receiver's max_receive_message_length would reject anyway
 * (which would cost the whole stream, not just that message).
 */
export function approxWireSize(msg: Message): number {
  const overhead = 64 + msg.clusterId.length + msg.from.length + msg.to.length;
  switch (msg.type) {
    case 'app':
      return msg.entries.reduce((n, e) => n + e.data.byteLength + 32, overhead);
    case 'snap':
      return overhead + msg.data.byteLength + [...msg.meta.conf.voters, ...msg.meta.conf.learners].reduce((n, v) => n + v.length + 2, 32);
    case 'readIndex':
    case 'readIndexResp':
      return overhead + msg.requestId.length;
    default:
      return overhead;
  }
}
