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
  return key.length * 2 + valueBytes + 64;
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
// Encoding: JSON with bytes as base64. Small, readable in a log dump, and versioned by
// the `v` field so a later format can be told apart.

const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const unb64 = (s: unknown): Uint8Array => {
  if (typeof s !== 'string') throw new Error('command: bytes must be base64 text');
  const b = Buffer.from(s, 'base64');
  // A large value comes in an ArrayBuffer of its own: viewed, not copied a second time
  // (each 1 MiB put was decoded, then copied, on every replica). A small one is a slice
  // of Node's shared pool: copied, so a value the store keeps does not pin the pool.
  return b.byteLength === b.buffer.byteLength ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b);
};

function encodeOp(op: Op | Command): unknown {
  switch (op.type) {
    case 'put':
      return { type: 'put', key: op.key, value: b64(op.value), lease: op.lease };
    default:
      return op;
  }
}

export function encodeCommand(env: Envelope): Uint8Array {
  const cmd = env.cmd;
  let c: unknown;
  switch (cmd.type) {
    case 'txn':
      c = {
        type: 'txn',
        compare: cmd.compare.map((x) => ({ ...x, value: x.value ? b64(x.value) : undefined })),
        success: cmd.success.map(encodeOp),
        failure: cmd.failure.map(encodeOp),
      };
      break;
    default:
      c = encodeOp(cmd);
  }
  const tag = env.session ? { session: env.session.id, seq: env.session.seq, firstIncomplete: env.session.firstIncomplete } : {};
  return new TextEncoder().encode(JSON.stringify({ v: 1, cmd: c, clientId: env.clientId, seq: env.seq, quota: env.quota, ...tag }));
}

function decodeOp(o: Record<string, unknown>): Op {
  switch (o['type']) {
    case 'put':
      return { type: 'put', key: str(o['key']), value: unb64(o['value']), lease: num(o['lease']) };
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
  const raw = JSON.parse(new TextDecoder().decode(data)) as Record<string, unknown>;
  if (raw['v'] !== 1) throw new Error(`command: unsupported format ${String(raw['v'])}`);
  const c = raw['cmd'] as Record<string, unknown>;
  let cmd: Command;
  switch (c['type']) {
    case 'put':
    case 'delete':
      cmd = decodeOp(c) as Command;
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
          ...(x['value'] !== undefined ? { value: unb64(x['value']) } : {}),
          ...(x['number'] !== undefined ? { number: num(x['number']) } : {}),
        })),
        success: (c['success'] as Record<string, unknown>[]).map(decodeOp),
        failure: (c['failure'] as Record<string, unknown>[]).map(decodeOp),
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
