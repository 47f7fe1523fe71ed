// The commands leaderd's coordination state machine applies from the Raft log, and
// their results. Everything that decides an outcome travels in the command (including
// the leader's decision that a lease expired), so applying is deterministic: every
// node computes the same state and the same result at every index.

/**
 * A compare's target and result as log entries store them: the proto enum names, upper
 * case (the client library's CompareTarget/CompareOp are the friendlier 'value', '=', …).
 * Entries already in users' logs hold these names, so they never change.
 */
export const STORED_COMPARE_TARGETS = ['VALUE', 'VERSION', 'CREATE_REVISION', 'MOD_REVISION', 'LEASE'] as const;
export type StoredCompareTarget = (typeof STORED_COMPARE_TARGETS)[number];
export const STORED_COMPARE_RESULTS = ['EQUAL', 'NOT_EQUAL', 'GREATER', 'LESS'] as const;
export type StoredCompareResult = (typeof STORED_COMPARE_RESULTS)[number];

export interface Compare {
  readonly key: string;
  readonly target: StoredCompareTarget;
  readonly result: StoredCompareResult;
  /** Operand for VALUE. */
  readonly value?: Uint8Array;
  /** Operand for every other target. */
  readonly number?: number;
}

export type Op =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array; readonly lease: number }
  | { readonly type: 'delete'; readonly key: string; readonly prefix: boolean }
  | { readonly type: 'get'; readonly key: string };

export type Command =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array; readonly lease: number }
  | { readonly type: 'delete'; readonly key: string; readonly prefix: boolean }
  | { readonly type: 'txn'; readonly compare: readonly Compare[]; readonly success: readonly Op[]; readonly failure: readonly Op[] }
  | { readonly type: 'leaseGrant'; readonly ttlMs: number }
  | { readonly type: 'leaseRevoke'; readonly id: number }
  /** Proposed by the leader once a lease's deadline passed without a keep-alive. */
  | { readonly type: 'leaseExpire'; readonly id: number }
  /** Opens an exactly-once session; its id comes from a counter in the replicated state, never reused. */
  | { readonly type: 'sessionOpen'; readonly ttlMs: number }
  /** Ends a session at its client's request. */
  | { readonly type: 'sessionClose'; readonly id: number }
  /** Proposed by the leader once a session was idle for its TTL. */
  | { readonly type: 'sessionExpire'; readonly id: number };

/** Exactly-once (thesis §6.3): a (session, seq) pair is applied at most once, in a live session only. */
export interface SessionTag {
  readonly id: number;
  readonly seq: number;
  /** The lowest seq the client still waits for: every answer below it was seen and may be dropped. */
  readonly firstIncomplete: number;
}

export interface Envelope<C extends Command = Command> {
  readonly cmd: C;
  readonly session?: SessionTag;
  /**
   * The storage quota (bytes, see kvBytes) in force at the leader that proposed this
   * entry. It travels in the entry, like a lease expiry decided by the leader, so every
   * replica refuses the same writes at apply time whatever its own --quota-bytes says.
   */
  readonly quota?: number;
  /**
   * The retired scheme (a bare client id); only entries written to the log before
   * sessions existed carry it, and they are applied as they were then.
   */
  readonly clientId?: string;
  readonly seq?: number;
}

export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly lease: number;
}

export interface WatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: KeyValue;
}

export type OpResult =
  | { readonly type: 'put'; readonly revision: number }
  | { readonly type: 'delete'; readonly revision: number; readonly deleted: number }
  | { readonly type: 'get'; readonly kv: KeyValue | null; readonly revision: number };

export type ApplyError = 'lease-not-found' | 'stale-sequence' | 'session-expired' | 'quota-exceeded';

/**
 * What one key costs against the storage quota: the key as held in memory (UTF-16, two
 * bytes a code unit), its value, and 64 bytes for its revisions, lease and index node.
 * A function of the replicated state only, so every replica counts the same total.
 */
export function kvBytes(key: string, valueBytes: number): number {
  return kvBytesOf(key.length, valueBytes);
}

/** kvBytes of a key of `keyUnits` UTF-16 code units. */
export function kvBytesOf(keyUnits: number, valueBytes: number): number {
  return keyUnits * 2 + valueBytes + 64;
}

export type CommandResult =
  | { readonly ok: false; readonly error: ApplyError; readonly message: string }
  | { readonly ok: true; readonly type: 'put'; readonly revision: number }
  | { readonly ok: true; readonly type: 'delete'; readonly revision: number; readonly deleted: number }
  | {
      readonly ok: true;
      readonly type: 'txn';
      readonly succeeded: boolean;
      readonly responses: readonly OpResult[];
      readonly revision: number;
      readonly compared: ReadonlyMap<string, KeyValue | null>;
    }
  | { readonly ok: true; readonly type: 'leaseGrant'; readonly id: number; readonly ttlMs: number; readonly revision: number }
  | { readonly ok: true; readonly type: 'leaseRevoke'; readonly revision: number }
  | { readonly ok: true; readonly type: 'sessionOpen'; readonly id: number; readonly ttlMs: number }
  | { readonly ok: true; readonly type: 'sessionClose' };

/**
 * What applying a command of type T returns when it succeeds. Commands only a leader's
 * timer proposes (leaseExpire, sessionExpire) have no result anyone reads: never.
 */
export type OkResult<T extends Command['type']> = Extract<CommandResult, { ok: true; type: T }>;

// ---------------------------------------------------------------------------
// Encoding. Format 2 (written now): a byte 0x02, a u32 (big-endian) length, a JSON
// header, then every value's bytes as they are; the header names each value by its
// [offset, length] in that tail. Format 1 (entries already in logs, read forever): JSON
// with bytes as base64, starting with '{'.
//
// Why not base64 any more: a 1 MiB put became a 1.33 MiB entry, encoded on the leader and
// decoded on every replica, and the log held since the last snapshot kept those copies
// beside the store's. Now a large value the store keeps is a view of its entry's bytes,
// so the log and the store share them, and the log is a third smaller.

const FORMAT_2 = 0x02;
/** Decodes every entry's JSON on every replica: one decoder, not one per entry. */
const UTF8 = new TextDecoder();
/** A decoded value is a view of its entry's bytes when it is at least this large and half of the buffer it would pin. */
const VIEW_MIN_BYTES = 4096;

const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const unb64 = (s: unknown): Uint8Array => {
  if (typeof s !== 'string') throw new Error('command: bytes must be base64 text');
  return keptValue(Buffer.from(s, 'base64'));
};

/**
 * A decoded value as the store may keep it. A view pins the whole buffer under it (a
 * base64 decode's pool slice, or on a follower the gRPC message the entry came in), so
 * only a large value that is most of that buffer is kept as a view, not copied a second
 * time (each 1 MiB put was decoded, then copied, on every replica); anything else is
 * copied into a buffer of its own.
 */
function keptValue(view: Uint8Array): Uint8Array {
  return view.byteLength >= VIEW_MIN_BYTES && view.byteLength * 2 >= view.buffer.byteLength
    ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
    : new Uint8Array(view);
}

/** How an entry's bytes fields are written (format 2: a reference into its tail; format 1: base64). */
type WriteBytes = (u: Uint8Array) => unknown;
/** ... and read back. */
type ReadBytes = (v: unknown) => Uint8Array;

/** Format 2's tail of a decoded entry: a reference is checked against it, then viewed or copied. */
function tailReader(tail: Uint8Array): ReadBytes {
  return (v) => {
    if (!Array.isArray(v) || v.length !== 2) throw new Error('command: bytes must be [offset, length]');
    const [at, n] = v as unknown[];
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(n) || (at as number) < 0 || (n as number) < 0) {
      throw new Error('command: bytes must be [offset, length]');
    }
    const end = (at as number) + (n as number);
    if (end > tail.byteLength) throw new Error(`command: bytes [${String(at)}, ${end}) past the entry's ${tail.byteLength}`);
    return keptValue(tail.subarray(at as number, end));
  };
}

function encodeOp(op: Op | Command, write: WriteBytes): unknown {
  switch (op.type) {
    case 'put':
      return { type: 'put', key: op.key, value: write(op.value), lease: op.lease };
    default:
      return op;
  }
}

/** The JSON of an entry of format `v`, its bytes fields written by `write`. */
function encodeHeader(env: Envelope, v: 1 | 2, write: WriteBytes): string {
  const cmd = env.cmd;
  const c =
    cmd.type === 'txn'
      ? {
          type: 'txn',
          compare: cmd.compare.map((x) => ({ ...x, value: x.value ? write(x.value) : undefined })),
          success: cmd.success.map((op) => encodeOp(op, write)),
          failure: cmd.failure.map((op) => encodeOp(op, write)),
        }
      : encodeOp(cmd, write);
  const tag = env.session ? { session: env.session.id, seq: env.session.seq, firstIncomplete: env.session.firstIncomplete } : {};
  return JSON.stringify({ v, cmd: c, clientId: env.clientId, seq: env.seq, quota: env.quota, ...tag });
}

export function encodeCommand(env: Envelope): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  const header = Buffer.from(
    encodeHeader(env, 2, (u) => {
      const ref = [size, u.byteLength];
      parts.push(u);
      size += u.byteLength;
      return ref;
    }),
  );
  const out = new Uint8Array(5 + header.byteLength + size);
  out[0] = FORMAT_2;
  new DataView(out.buffer).setUint32(1, header.byteLength);
  out.set(header, 5);
  let at = 5 + header.byteLength;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** Format 1 (base64 in JSON), the format of every entry written before format 2 (tests read it back). */
export function encodeCommandV1(env: Envelope): Uint8Array {
  return new TextEncoder().encode(encodeHeader(env, 1, b64));
}

function decodeOp(o: Record<string, unknown>, read: ReadBytes): Op {
  switch (o['type']) {
    case 'put':
      return { type: 'put', key: str(o['key']), value: read(o['value']), lease: num(o['lease']) };
    case 'delete':
      return { type: 'delete', key: str(o['key']), prefix: o['prefix'] === true };
    case 'get':
      return { type: 'get', key: str(o['key']) };
    default:
      throw new Error(`command: unknown op ${String(o['type'])}`);
  }
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw new Error('command: expected a string');
  return v;
}

function num(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error('command: expected an integer');
  return v;
}

export function decodeCommand(data: Uint8Array): Envelope {
  let raw: Record<string, unknown>;
  let read: ReadBytes;
  if (data[0] === FORMAT_2) {
    if (data.byteLength < 5) throw new Error('command: truncated header');
    const headerLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
    if (5 + headerLength > data.byteLength) throw new Error('command: truncated header');
    raw = JSON.parse(UTF8.decode(data.subarray(5, 5 + headerLength))) as Record<string, unknown>;
    if (raw['v'] !== 2) throw new Error(`command: format byte 2 with header version ${String(raw['v'])}`);
    read = tailReader(data.subarray(5 + headerLength));
  } else {
    raw = JSON.parse(UTF8.decode(data)) as Record<string, unknown>;
    if (raw['v'] !== 1) throw new Error(`command: unsupported format ${String(raw['v'])}`);
    read = unb64;
  }
  const c = raw['cmd'] as Record<string, unknown>;
  let cmd: Command;
  switch (c['type']) {
    case 'put':
    case 'delete':
      cmd = decodeOp(c, read) as Command;
      break;
    case 'txn':
      cmd = {
        type: 'txn',
        compare: (c['compare'] as Record<string, unknown>[]).map((x) => ({
          key: str(x['key']),
          // Not checked here: an entry every replica applies must decode the same way on
          // every version (a check added later would make new replicas skip what old ones
          // applied). Admission (coordination.ts compareFrom) refuses unknown names.
          target: x['target'] as StoredCompareTarget,
          result: x['result'] as StoredCompareResult,
          ...(x['value'] !== undefined ? { value: read(x['value']) } : {}),
          ...(x['number'] !== undefined ? { number: num(x['number']) } : {}),
        })),
        success: (c['success'] as Record<string, unknown>[]).map((o) => decodeOp(o, read)),
        failure: (c['failure'] as Record<string, unknown>[]).map((o) => decodeOp(o, read)),
      };
      break;
    case 'leaseGrant':
      cmd = { type: 'leaseGrant', ttlMs: num(c['ttlMs']) };
      break;
    case 'leaseRevoke':
    case 'leaseExpire':
    case 'sessionClose':
    case 'sessionExpire':
      cmd = { type: c['type'], id: num(c['id']) };
      break;
    case 'sessionOpen':
      cmd = { type: 'sessionOpen', ttlMs: num(c['ttlMs']) };
      break;
    default:
      throw new Error(`command: unknown type ${String(c['type'])}`);
  }
  const env: { cmd: Command; session?: SessionTag; clientId?: string; seq?: number; quota?: number } = { cmd };
  if (raw['quota'] !== undefined) env.quota = num(raw['quota']);
  if (raw['session'] !== undefined) {
    env.session = { id: num(raw['session']), seq: num(raw['seq']), firstIncomplete: num(raw['firstIncomplete']) };
  } else if (typeof raw['clientId'] === 'string' && raw['clientId'] !== '') {
    env.clientId = raw['clientId'];
    env.seq = num(raw['seq']);
  }
  return env;
}
