// leaderd.v1.KV for LeaderdClient: reads, exactly-once writes, transactions, watches,
// and text/JSON values.
import * as grpc from '@grpc/grpc-js';
import type { KeyValue__Output } from '../gen/leaderd/v1/KeyValue.js';
import type { GetResponse__Output } from '../gen/leaderd/v1/GetResponse.js';
import type { Compare } from '../gen/leaderd/v1/Compare.js';
import type { RequestOp } from '../gen/leaderd/v1/RequestOp.js';
import { LeaderdError } from './errors.js';
import { jsonOf, jsonValue, textOf } from './values.js';
import type {
  CasExpectation,
  CasResult,
  CompareOp,
  CompareTarget,
  DeleteResult,
  GetResult,
  KeyValue,
  RangeResult,
  TxnOp,
  TxnOpResult,
  TxnRequestSpec,
  TxnResult,
  WatchBatch,
} from './types.js';
import { ClusterApi } from './cluster-api.js';
import { toBuffer } from './invoker.js';

export function toKeyValue(kv: KeyValue__Output): KeyValue {
  return {
    key: kv.key,
    value: kv.value,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

function getToResult(key: string, r: GetResponse__Output): GetResult {
  return {
    revision: r.revision,
    kv: r.found
      ? { key, value: r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version, lease: r.lease }
      : null,
  };
}

const COMPARE_RESULT: Record<CompareOp, 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS'> = {
  '=': 'EQUAL',
  '!=': 'NOT_EQUAL',
  '>': 'GREATER',
  '<': 'LESS',
};
const COMPARE_TARGET: Record<CompareTarget, 'VALUE' | 'VERSION' | 'CREATE_REVISION' | 'MOD_REVISION' | 'LEASE'> = {
  value: 'VALUE',
  version: 'VERSION',
  createRevision: 'CREATE_REVISION',
  modRevision: 'MOD_REVISION',
  lease: 'LEASE',
};

function toRequestOp(op: TxnOp): RequestOp {
  switch (op.type) {
    case 'put':
      return { put: { key: op.key, value: toBuffer(op.value), lease: op.lease ?? 0 } };
    case 'delete':
      return { delete: { key: op.key, prefix: op.prefix ?? false } };
    case 'get':
      return { get: { key: op.key } };
    default: {
      const never: never = op;
      throw new Error(`unknown txn op ${JSON.stringify(never)}`);
    }
  }
}

function toCompare(c: TxnCompare): Compare {
  const base = { key: c.key, target: COMPARE_TARGET[c.target], result: COMPARE_RESULT[c.op] };
  if (c.target === 'value') {
    if (typeof c.operand === 'number')
      throw new LeaderdError(
        'invalid-argument',
        grpc.status.INVALID_ARGUMENT,
        'a value comparison needs a string or bytes operand',
        undefined,
        false,
      );
    return { ...base, value: toBuffer(c.operand) };
  }
  if (typeof c.operand !== 'number')
    throw new LeaderdError(
      'invalid-argument',
      grpc.status.INVALID_ARGUMENT,
      `a ${c.target} comparison needs a number operand`,
      undefined,
      false,
    );
  return { ...base, [c.target]: c.operand };
}
type TxnCompare = TxnRequestSpec['compare'][number];

export abstract class KvApi extends ClusterApi {
  async put(key: string, value: string | Uint8Array, opts: { lease?: number; signal?: AbortSignal } = {}): Promise<{ revision: number }> {
    const req = { key, value: toBuffer(value), lease: opts.lease ?? 0 };
    const { res } = await this.exactlyOnce<{ revision: number }>((s, tag, o, cb) => s.kv.Put({ ...req, ...tag }, o, cb), opts);
    return { revision: res.revision };
  }

  /** The value of `key` as UTF-8 text, or null when there is no such key. */
  async getText(key: string, opts: { serializable?: boolean; signal?: AbortSignal } = {}): Promise<string | null> {
    return textOf((await this.get(key, opts)).kv);
  }

  /** The value of `key` parsed as JSON, or null when there is no such key (a value that is not JSON throws). */
  async getJson<T = unknown>(key: string, opts: { serializable?: boolean; signal?: AbortSignal } = {}): Promise<T | null> {
    return jsonOf<T>((await this.get(key, opts)).kv);
  }

  /** Write `value` as JSON text. */
  putJson(key: string, value: unknown, opts: { lease?: number; signal?: AbortSignal } = {}): Promise<{ revision: number }> {
    return this.put(key, jsonValue(value), opts);
  }

  async get(key: string, opts: { serializable?: boolean; signal?: AbortSignal } = {}): Promise<GetResult> {
    const res = await this.read<GetResponse__Output>(
      (s, o, cb) => s.kv.Get({ key, serializable: opts.serializable ?? false }, o, cb),
      opts,
    );
    return getToResult(key, res);
  }

  async delete(key: string, opts: { prefix?: boolean; signal?: AbortSignal } = {}): Promise<DeleteResult> {
    const req = { key, prefix: opts.prefix ?? false };
    const { res } = await this.exactlyOnce<DeleteResult>((s, tag, o, cb) => s.kv.Delete({ ...req, ...tag }, o, cb), opts);
    return { revision: res.revision, deleted: res.deleted };
  }

  async range(
    prefix: string,
    opts: { limit?: number; startAfter?: string; serializable?: boolean; signal?: AbortSignal } = {},
  ): Promise<RangeResult> {
    const req = { prefix, limit: opts.limit ?? 0, startAfter: opts.startAfter ?? '', serializable: opts.serializable ?? false };
    const res = await this.read<{ kvs: KeyValue__Output[]; more: boolean; revision: number }>((s, o, cb) => s.kv.Range(req, o, cb), opts);
    return { revision: res.revision, kvs: res.kvs.map(toKeyValue), more: res.more };
  }

  async compareAndSwap(
    key: string,
    value: string | Uint8Array,
    expect: CasExpectation,
    opts: { lease?: number; signal?: AbortSignal } = {},
  ): Promise<CasResult> {
    const expectation =
      'value' in expect
        ? { expectedValue: toBuffer(expect.value) }
        : 'absent' in expect
          ? { expectAbsent: true }
          : { expectedModRevision: expect.modRevision };
    const req = { key, value: toBuffer(value), lease: opts.lease ?? 0, ...expectation };
    const { res } = await this.exactlyOnce<{
      succeeded: boolean;
      revision: number;
      currentFound: boolean;
      currentValue: Buffer;
      currentModRevision: number;
    }>((s, tag, o, cb) => s.kv.CompareAndSwap({ ...req, ...tag }, o, cb), opts);
    return {
      succeeded: res.succeeded,
      revision: res.revision,
      current: res.currentFound ? { value: res.currentValue, modRevision: res.currentModRevision } : null,
    };
  }

  async txn(spec: TxnRequestSpec, opts: { signal?: AbortSignal } = {}): Promise<TxnResult> {
    const body = {
      compare: spec.compare.map(toCompare),
      success: spec.success.map(toRequestOp),
      failure: (spec.failure ?? []).map(toRequestOp),
    };
    type Out = {
      succeeded: boolean;
      revision: number;
      responses: {
        put?: { revision: number } | null;
        delete?: { revision: number; deleted: number } | null;
        get?: GetResponse__Output | null;
        response?: string;
      }[];
    };
    const { res } = await this.exactlyOnce<Out>((s, tag, o, cb) => s.kv.Txn({ ...body, ...tag }, o, cb), opts);
    const ops = res.succeeded ? spec.success : (spec.failure ?? []);
    const responses: TxnOpResult[] = res.responses.map((r, i) => {
      if (r.response === 'put' && r.put) return { type: 'put', revision: r.put.revision };
      if (r.response === 'delete' && r.delete) return { type: 'delete', revision: r.delete.revision, deleted: r.delete.deleted };
      if (r.response === 'get' && r.get) {
        const g = getToResult(ops[i]?.key ?? '', r.get);
        return { type: 'get', revision: g.revision, kv: g.kv };
      }
      throw new LeaderdError('internal', grpc.status.INTERNAL, `txn response ${i} has no result`, undefined, false);
    });
    return { succeeded: res.succeeded, revision: res.revision, responses };
  }

  /**
   * Changes to `key` (or every key under it with prefix) as batches of one revision each,
   * in revision order. Without startRevision it begins after the current revision, read
   * linearizably first so that a stream broken before its first event still resumes
   * without a gap. A broken stream resumes on another endpoint at the last revision + 1;
   * batches at or below the last revision yielded are dropped (no duplicates). Never skips
   * a revision: throws LeaderdError kind 'out-of-range' when the next revision is gone from
   * the node (compacted, or replaced by a snapshot install), and kind 'resource-exhausted'
   * when the consumer read so slowly that the server's history moved past it; both carry
   * `oldestRevision`, the oldest revision still available (re-read the state, watch from there).
   */
  async *watch(key: string, opts: { prefix?: boolean; startRevision?: number; signal?: AbortSignal } = {}): AsyncGenerator<WatchBatch> {
    const sig = this.linked(opts.signal);
    const prefix = opts.prefix ?? false;
    let last: number;
    if (opts.startRevision !== undefined && opts.startRevision > 0) last = opts.startRevision - 1;
    else {
      const head = prefix ? await this.range(key, { limit: 1, signal: sig }) : await this.get(key, { signal: sig });
      last = head.revision;
    }
    // Each re-open resumes right after the last revision delivered: no gap, no duplicate.
    for await (const { message: m } of this.resumableStream<{ events: { type: string; kv: KeyValue__Output | null }[]; revision: number }>({
      open: (s) => s.kv.Watch({ key, prefix, startRevision: last + 1 }),
      signal: sig,
      resumes: (e) => e.retryable || e.kind === 'internal' || e.kind === 'cancelled',
    })) {
      if (m.revision <= last || m.events.length === 0) continue;
      last = m.revision;
      yield {
        revision: m.revision,
        events: m.events.map((e) => ({
          type: e.type === 'DELETE' ? ('delete' as const) : ('put' as const),
          kv: e.kv
            ? toKeyValue(e.kv)
            : { key: '', value: Buffer.alloc(0), createRevision: 0, modRevision: m.revision, version: 0, lease: 0 },
        })),
      };
    }
  }
}
