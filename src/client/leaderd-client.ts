// LeaderdClient: the whole leaderd.v1 API over a list of endpoints, with leader
// discovery, retries by error kind, resumable streams, kept-alive leases and
// elections/locks whose AbortSignal follows what the client can prove.
//
// Retry policy (errors.ts classify(), from the one error contract in src/api/errors.ts):
// kinds the contract marks transient (not-leader, unavailable, timeout, ...; on the wire
// UNAVAILABLE or DEADLINE_EXCEEDED) are retried on another endpoint with exponential backoff + jitter until the call's deadline; every other code
// is thrown at once. Writes carry this client's session (opened through the log, kept
// alive by the client) and a fresh seq per logical write; every retry re-sends the SAME
// pair, so a write whose outcome was `unknown` is applied at most once (Raft thesis §6.3).
import { createHash, randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { ClusterClient as GrpcCluster } from '../gen/leaderd/v1/Cluster.js';
import type { KVClient } from '../gen/leaderd/v1/KV.js';
import type { LeaseClient } from '../gen/leaderd/v1/Lease.js';
import type { ElectionClient } from '../gen/leaderd/v1/Election.js';
import type { LockClient } from '../gen/leaderd/v1/Lock.js';
import type { KeyValue__Output } from '../gen/leaderd/v1/KeyValue.js';
import type { GetResponse__Output } from '../gen/leaderd/v1/GetResponse.js';
import type { Compare } from '../gen/leaderd/v1/Compare.js';
import type { RequestOp } from '../gen/leaderd/v1/RequestOp.js';
import type { LeaderResponse__Output } from '../gen/leaderd/v1/LeaderResponse.js';
import type { LeaderKey } from '../gen/leaderd/v1/LeaderKey.js';
import type { LeaderInfo__Output } from '../gen/leaderd/v1/LeaderInfo.js';
import type { NodeStatus__Output } from '../gen/leaderd/v1/NodeStatus.js';
import type { Member__Output } from '../gen/leaderd/v1/Member.js';
import type { SnapshotChunk__Output } from '../gen/leaderd/v1/SnapshotChunk.js';
import { loadPublicApi } from '../transport/protos.js';
import { backoffDelay, sleep } from './backoff.js';
import {
  LeaderdError,
  LeadershipLostError,
  LeaseLostError,
  toLeaderdError,
  type LeadershipLostReason,
  type WriteOutcome,
} from './errors.js';
import { LeaseKeeper, type LeaseHandle, type LeaseHost } from './lease-handle.js';
import { asyncDispose } from './dispose.js';
import { LockRequest } from './lock-request.js';
import { jsonOf, jsonValue, textOf } from './values.js';
import { service as healthService } from 'grpc-health-check';
import { channelFor, tokenInterceptors, type ClientSecurity } from '../security/client-credentials.js';
import type {
  CasExpectation,
  CasResult,
  CompareOp,
  CompareTarget,
  DeleteResult,
  ElectionLeader,
  GetResult,
  KeyValue,
  LeaderInfo,
  LeaseInfo,
  RangeResult,
  TxnOp,
  TxnOpResult,
  TxnRequestSpec,
  TxnResult,
  WatchBatch,
} from './types.js';

export type NodeStatus = NodeStatus__Output;
export type Member = Member__Output;

/** A consistent copy of the replicated state, as `LeaderdClient.snapshot()` returns it. */
export interface ClusterSnapshot {
  readonly clusterId: string;
  /** The log index and term the state machine was at. */
  readonly index: number;
  readonly term: number;
  /** The state machine's snapshot (opaque). */
  readonly data: Buffer;
  /** The endpoint that took it. */
  readonly endpoint: string;
}

export interface RetryOptions {
  /** Attempts per call, across endpoints (default 20; the deadline usually ends it first). */
  readonly attempts?: number;
  /** First backoff, ms (default 50). */
  readonly backoffMs?: number;
  /** Backoff cap, ms (default 1000). */
  readonly maxBackoffMs?: number;
  /**
   * Deadline of one attempt, ms (default 2000, never past the call's deadline), so a
   * hung or SIGSTOPped node costs one attempt, not the whole call.
   */
  readonly attemptTimeoutMs?: number;
}

export interface LeaderdClientOptions {
  /** Client (public API) addresses, host:port. */
  readonly endpoints: readonly string[];
  /** Overall deadline of each call, retries included, ms (default 5000). */
  readonly timeoutMs?: number;
  /**
   * A label for this client in the servers' logs (default: a random UUID). It is not an
   * identity: exactly-once writes use a session the client opens through the cluster, a
   * new one per process, so two processes with the same label never share one.
   */
  readonly clientId?: string;
  /** The session ends on the server after this long without a write or keep-alive, ms (default 60000). */
  readonly sessionTtlMs?: number;
  readonly retry?: RetryOptions;
  /** Monotonic clock for lease validity, ms (default performance.now). Injectable for tests. */
  readonly now?: () => number;
  /** [0, 1) source for backoff jitter (default Math.random). */
  readonly random?: () => number;
  /** TLS (CA, optional client certificate) and bearer token for secured nodes. */
  readonly security?: ClientSecurity;
}

/** What every Election or Lock grant carries. `await using` gives it up at the end of the scope. */
export interface Grant extends AsyncDisposable {
  readonly name: string;
  /** The holder's key under _leaderd/election/<name>/ or _leaderd/lock/<name>/. */
  readonly key: string;
  /** The fencing token: the key's creation revision, strictly increasing cluster-wide. */
  readonly token: number;
  readonly lease: LeaseHandle;
  /** Aborts (reason: LeadershipLostError) when the lease is lost, another holder is observed, or the grant is given up. */
  readonly signal: AbortSignal;
  /** True while the signal has not aborted and the lease is still proven (checks the clock now). */
  valid(): boolean;
}

export interface Leadership extends Grant {
  /** Update the leader's value; throws (and aborts the signal) if no longer leader. */
  proclaim(value: string | Uint8Array): Promise<number>;
  /** Step down: abort the signal, resign, revoke the lease. */
  resign(): Promise<void>;
}

export interface LockHandle extends Grant {
  unlock(): Promise<void>;
}

interface Stubs {
  readonly channel: grpc.Channel;
  readonly cluster: GrpcCluster;
  readonly kv: KVClient;
  readonly lease: LeaseClient;
  readonly election: ElectionClient;
  readonly lock: LockClient;
}

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
type UnaryStart<T> = (s: Stubs, opts: grpc.CallOptions, cb: Callback<T>) => grpc.ClientUnaryCall;

interface CallSpec {
  /** Changes state: an attempt that failed without a server verdict has an unknown outcome. */
  readonly write: boolean;
  /** Safe to re-send after an unknown outcome (session + seq, or naturally idempotent). */
  readonly idempotent: boolean;
  /** Send to the leader's address when known (writes, linearizable reads). */
  readonly preferLeader: boolean;
  readonly timeoutMs?: number;
  readonly attemptTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

interface Sent<T> {
  readonly res: T;
  /**
   * The client clock (`now`) when the first attempt that may have been applied was sent:
   * the answer may come from it (an earlier attempt applied, a retry got the cached
   * answer), so anything the server started counting then started no later than this.
   */
  readonly sentAt: number;
  readonly endpoint: string;
}

/** The exactly-once fields of a write request. */
interface SessionTag {
  readonly session: number;
  readonly seq: number;
  readonly firstIncomplete: number;
}

/** This process's exactly-once session. */
interface ClientSession {
  readonly id: number;
  readonly ttlMs: number;
  nextSeq: number;
  /** Seqs of writes still waiting for their answer. */
  readonly outstanding: Set<number>;
  readonly keepAlive: NodeJS.Timeout;
}

type TaggedStart<T> = (s: Stubs, tag: SessionTag, opts: grpc.CallOptions, cb: Callback<T>) => grpc.ClientUnaryCall;

const DEFAULT_LEASE_TTL_MS = 5000;

function toBuffer(v: string | Uint8Array): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function toKeyValue(kv: KeyValue__Output): KeyValue {
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

export class LeaderdClient {
  readonly endpoints: readonly string[];
  readonly clientId: string;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffOpts: { backoffMs: number; maxBackoffMs: number };
  private readonly attemptTimeoutMs: number;
  readonly now: () => number;
  private readonly random: () => number;
  private readonly stubsByEndpoint = new Map<string, Stubs>();
  private readonly closer = new AbortController();
  private readonly leases = new Set<LeaseKeeper>();
  private readonly calls = new Set<grpc.Call>();
  private readonly sessionTtlMs: number;
  private currentSession: ClientSession | null = null;
  private opening: Promise<ClientSession> | null = null;
  private rr = 0;
  private leaderHint: string | undefined;
  private lastDiscovery = -Infinity;
  private readonly interceptors: grpc.Interceptor[];
  private readonly security: ClientSecurity | undefined;

  constructor(opts: LeaderdClientOptions) {
    if (opts.endpoints.length === 0) throw new Error('LeaderdClient: no endpoints');
    this.endpoints = [...opts.endpoints];
    this.clientId = opts.clientId ?? randomUUID();
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.sessionTtlMs = opts.sessionTtlMs ?? 60_000;
    this.attempts = opts.retry?.attempts ?? 20;
    this.backoffOpts = { backoffMs: opts.retry?.backoffMs ?? 50, maxBackoffMs: opts.retry?.maxBackoffMs ?? 1000 };
    this.attemptTimeoutMs = opts.retry?.attemptTimeoutMs ?? 2000;
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.security = opts.security;
    this.interceptors = tokenInterceptors(opts.security);
    // Every call in flight listens on the close signal until it ends: a client carrying
    // hundreds of writes through a failover has hundreds at once, each removed when its
    // call ends, so Node's default warning at 11 would cry leak where there is none.
    setMaxListeners(0, this.closer.signal);
  }

  // ---------------------------------------------------------------- plumbing

  private checkOpen(): void {
    if (this.closer.signal.aborted) throw new LeaderdError('closed', grpc.status.CANCELLED, 'the client is closed', undefined, false);
  }

  private stubs(endpoint: string): Stubs {
    this.checkOpen();
    let s = this.stubsByEndpoint.get(endpoint);
    if (!s) {
      const api = loadPublicApi().leaderd.v1;
      // One HTTP/2 connection per endpoint shared by every service.
      const { creds: channelCreds, options } = channelFor(this.security, endpoint);
      const channel = new grpc.Channel(endpoint, channelCreds, {
        ...options,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        // A watch on a node that hangs (SIGSTOP, a dead host without RST) would otherwise
        // wait forever; pings only while calls are open (grpc-js servers accept them).
        'grpc.keepalive_time_ms': 2000,
        'grpc.keepalive_timeout_ms': 2000,
      });
      const o = { channelOverride: channel, interceptors: this.interceptors };
      const creds = grpc.credentials.createInsecure();
      s = {
        channel,
        cluster: new api.Cluster(endpoint, creds, o),
        kv: new api.KV(endpoint, creds, o),
        lease: new api.Lease(endpoint, creds, o),
        election: new api.Election(endpoint, creds, o),
        lock: new api.Lock(endpoint, creds, o),
      };
      this.stubsByEndpoint.set(endpoint, s);
    }
    return s;
  }

  private track<C extends grpc.Call>(call: C): C {
    this.calls.add(call);
    const done = () => this.calls.delete(call);
    call.once('status', done);
    return call;
  }

  /** A signal that aborts when `signal` does or the client closes. */
  private linked(signal?: AbortSignal): AbortSignal {
    return signal ? AbortSignal.any([signal, this.closer.signal]) : this.closer.signal;
  }

  /** This process's session, opened through the cluster on first use and kept alive until close(). */
  private session(): Promise<ClientSession> {
    if (this.currentSession) return Promise.resolve(this.currentSession);
    this.opening ??= (async () => {
      try {
        const { res } = await this.invoke<{ session: number; ttlMs: number }>(
          (s, o, cb) => s.kv.OpenSession({ ttlMs: this.sessionTtlMs, label: this.clientId }, o, cb),
          // A retried open may open a second session; the unused one expires on its own.
          { write: true, idempotent: true, preferLeader: true },
        );
        const keepAlive = setInterval(() => void this.keepSessionAlive(), Math.max(100, Math.floor(res.ttlMs / 3)));
        keepAlive.unref();
        this.currentSession = { id: res.session, ttlMs: res.ttlMs, nextSeq: 1, outstanding: new Set(), keepAlive };
        return this.currentSession;
      } finally {
        this.opening = null;
      }
    })();
    return this.opening;
  }

  private async keepSessionAlive(): Promise<void> {
    const s = this.currentSession;
    if (!s || this.closer.signal.aborted) return;
    try {
      const { res } = await this.invoke<{ ttlMs: number }>((st, o, cb) => st.kv.KeepAliveSession({ session: s.id }, o, cb), {
        write: false,
        idempotent: true,
        preferLeader: true,
      });
      if (res.ttlMs <= 0) this.dropSession(s);
    } catch {
      // The next tick tries again; the session's TTL leaves room for two more.
    }
  }

  private dropSession(s: ClientSession): void {
    clearInterval(s.keepAlive);
    if (this.currentSession === s) this.currentSession = null;
  }

  /**
   * Run one logical write exactly once: a new seq of this process's session, re-sent
   * unchanged by every retry. Several may run at once, each with its own seq; each attempt
   * tells the server the lowest seq still waiting (first_incomplete), so it can drop the
   * answers already seen. If the session has ended, the server refused the write and never
   * applies it; it is sent again in a new session only if no earlier attempt may have
   * applied it (else the outcome is unknown and the caller decides).
   */
  private async exactlyOnce<T>(start: TaggedStart<T>, opts: { signal?: AbortSignal } = {}): Promise<Sent<T>> {
    for (let round = 0; ; round++) {
      const s = await this.session();
      const seq = s.nextSeq++;
      s.outstanding.add(seq);
      try {
        return await this.write<T>((st, o, cb) => start(st, { session: s.id, seq, firstIncomplete: lowest(s.outstanding) }, o, cb), opts);
      } catch (err) {
        if (err instanceof LeaderdError && err.kind === 'session-expired') {
          this.dropSession(s);
          if (err.outcome === 'not-applied' && round < 2) continue;
        }
        throw err;
      } finally {
        s.outstanding.delete(seq);
      }
    }
  }

  private roundRobin(avoid?: string): string {
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const e = this.endpoints[this.rr++ % n]!;
      if (e !== avoid || n === 1) return e;
    }
    return this.endpoints[0]!;
  }

  private pickEndpoint(preferLeader: boolean, avoid?: string): string {
    if (preferLeader && this.leaderHint !== undefined && this.leaderHint !== avoid) return this.leaderHint;
    return this.roundRobin(avoid);
  }

  /**
   * Ask the endpoints (other than `avoid`) who leads, and remember the leader's client
   * address. Bounded by `deadline` (performance.now() time) and ~500 ms per endpoint.
   */
  private async discover(deadline: number, avoid: string | undefined, signal: AbortSignal): Promise<void> {
    this.lastDiscovery = performance.now();
    for (const e of this.endpoints) {
      if (e === avoid && this.endpoints.length > 1) continue;
      const remaining = deadline - performance.now();
      if (remaining <= 0 || signal.aborted) return;
      try {
        const info = await this.unaryOnce<LeaderInfo__Output>(
          e,
          (s, o, cb) => s.cluster.GetLeader({}, o, cb),
          Math.min(500, remaining),
          signal,
        );
        if (info.leaderAddress !== '' && info.leaderAddress !== avoid) {
          this.leaderHint = info.leaderAddress;
          return;
        }
      } catch {
        // try the next one
      }
    }
  }

  private unaryOnce<T>(endpoint: string, start: UnaryStart<T>, attemptMs: number, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let call: grpc.ClientUnaryCall;
      const onAbort = () => call.cancel();
      try {
        call = start(this.stubs(endpoint), { deadline: new Date(Date.now() + Math.max(1, attemptMs)) }, (err, res) => {
          signal.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve(res as T);
        });
      } catch (err) {
        reject(err);
        return;
      }
      this.track(call);
      if (signal.aborted) call.cancel();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private abortError(signal: AbortSignal, outcome: WriteOutcome | undefined): LeaderdError {
    if (this.closer.signal.aborted) return new LeaderdError('closed', grpc.status.CANCELLED, 'the client is closed', outcome, false);
    return new LeaderdError(
      'cancelled',
      grpc.status.CANCELLED,
      `cancelled: ${String((signal.reason as Error)?.message ?? signal.reason)}`,
      outcome,
      false,
      undefined,
      {
        cause: signal.reason,
      },
    );
  }

  /** One logical call: attempts on endpoints until success, a non-retryable error, or the deadline. */
  private async invoke<T>(start: UnaryStart<T>, spec: CallSpec): Promise<Sent<T>> {
    this.checkOpen();
    const signal = this.linked(spec.signal);
    const deadline = performance.now() + (spec.timeoutMs ?? this.timeoutMs);
    let last: LeaderdError | undefined;
    let avoid: string | undefined;
    // Every attempt re-sent the same request (same session + seq), so if any of them
    // may have taken effect, the write as a whole may have.
    let mayHaveApplied = false;
    // When the first attempt that may have taken effect was sent (see Sent.sentAt).
    let firstSentAt: number | undefined;
    const finish = (e: LeaderdError): LeaderdError =>
      mayHaveApplied && e.outcome !== 'unknown'
        ? new LeaderdError(e.kind, e.code, e.message, 'unknown', e.retryable, e.endpoint, { cause: e.cause })
        : e;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (signal.aborted) throw this.abortError(signal, spec.write ? (mayHaveApplied ? 'unknown' : 'not-applied') : undefined);
      if (spec.preferLeader && this.leaderHint === undefined && performance.now() - this.lastDiscovery > 200) {
        await this.discover(deadline, avoid, signal);
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;
      const endpoint = this.pickEndpoint(spec.preferLeader, avoid);
      const sentAt = this.now();
      const attemptMs = spec.attemptTimeoutMs ?? this.attemptTimeoutMs;
      const truncated = remaining < attemptMs;
      try {
        const res = await this.unaryOnce(endpoint, start, Math.min(remaining, attemptMs), signal);
        return { res, sentAt: firstSentAt ?? sentAt, endpoint };
      } catch (err) {
        if (signal.aborted) throw this.abortError(signal, spec.write ? 'unknown' : undefined);
        const e = toLeaderdError(err, spec.write, spec.idempotent, endpoint);
        if (e.outcome !== 'not-applied') firstSentAt ??= sentAt;
        // An attempt cut short by the overall deadline says less than the failure before it.
        if (e.outcome === 'unknown') mayHaveApplied = true;
        if (e.kind === 'deadline' && truncated && last) throw finish(last);
        last = e;
        if (!e.retryable) throw finish(e);
        if (this.leaderHint === endpoint) this.leaderHint = undefined;
        avoid = endpoint;
        const delay = backoffDelay(attempt, this.backoffOpts, this.random);
        if (performance.now() + delay >= deadline) break;
        await sleep(delay, signal);
      }
    }
    if (last) throw finish(last);
    throw new LeaderdError(
      'deadline',
      grpc.status.DEADLINE_EXCEEDED,
      'deadline passed before any attempt',
      spec.write ? 'not-applied' : undefined,
      true,
    );
  }

  private async read<T>(start: UnaryStart<T>, opts: { serializable?: boolean; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    const spec: CallSpec = {
      write: false,
      idempotent: true,
      preferLeader: !opts.serializable,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    };
    return (await this.invoke(start, spec)).res;
  }

  private async write<T>(
    start: UnaryStart<T>,
    opts: { signal?: AbortSignal; timeoutMs?: number; attemptTimeoutMs?: number } = {},
  ): Promise<Sent<T>> {
    return this.invoke(start, { write: true, idempotent: true, preferLeader: true, ...opts });
  }

  // ---------------------------------------------------------------- Cluster

  /** The leader as known by some endpoint (the first that answers). */
  async leader(opts: { signal?: AbortSignal } = {}): Promise<LeaderInfo> {
    const { res, endpoint } = await this.invoke<LeaderInfo__Output>((s, o, cb) => s.cluster.GetLeader({}, o, cb), {
      write: false,
      idempotent: true,
      preferLeader: false,
      ...opts,
    });
    if (res.leaderAddress !== '') this.leaderHint = res.leaderAddress;
    return { leaderId: res.leaderId, leaderAddress: res.leaderAddress, term: res.term, endpoint };
  }

  /** The leader as known by `endpoint` alone (no other endpoint is asked), or by the first endpoint that answers. */
  async getLeader(endpointOrOpts: string | { signal?: AbortSignal } = {}): Promise<LeaderInfo> {
    if (typeof endpointOrOpts !== 'string') return this.leader(endpointOrOpts);
    const endpoint = endpointOrOpts;
    const l = await this.askOnly<LeaderInfo__Output>(endpoint, (s, o, cb) => s.cluster.GetLeader({}, o, cb));
    return { leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term, endpoint };
  }

  /** `status(endpoint)`, under the name ClusterClient used. */
  getStatus(endpoint: string): Promise<NodeStatus> {
    return this.status(endpoint);
  }

  /** `members()`, under the name ClusterClient used. */
  listMembers(): Promise<Member[]> {
    return this.members();
  }

  /**
   * The node's gRPC health status (SERVING once it knows a leader). Health checks need no
   * token, so probes and load balancers can run without one.
   */
  health(endpoint: string): Promise<string> {
    this.checkOpen();
    const Ctor = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');
    const { creds, options } = channelFor(this.security, endpoint);
    const c = new Ctor(endpoint, creds, options) as unknown as HealthClient;
    return new Promise<string>((resolve, reject) => {
      c.Check({ service: '' }, { deadline: new Date(Date.now() + this.timeoutMs) }, (err, res) => {
        c.close();
        if (err) reject(toLeaderdError(err, false, true, endpoint));
        else resolve(res?.status ?? 'UNKNOWN');
      });
    });
  }

  /** One node's own view (no retry on other endpoints: the question is about that node). */
  status(endpoint: string): Promise<NodeStatus> {
    return this.askOnly<NodeStatus__Output>(endpoint, (s, o, cb) => s.cluster.GetStatus({}, o, cb));
  }

  /** A question about `endpoint` itself: asked there only, once, within the client's timeout. */
  private askOnly<T>(endpoint: string, start: UnaryStart<T>): Promise<T> {
    return this.unaryOnce<T>(endpoint, start, this.timeoutMs, this.closer.signal).catch((err: unknown) => {
      throw toLeaderdError(err, false, true, endpoint);
    });
  }

  async members(opts: { signal?: AbortSignal } = {}): Promise<Member[]> {
    const res = await this.read<{ members: Member__Output[] }>((s, o, cb) => s.cluster.ListMembers({}, o, cb), {
      serializable: true,
      ...opts,
    });
    return res.members;
  }

  /**
   * Adds a member, answered by the leader once applied: as a learner that is promoted to
   * voter once it has caught up, unless `learner`. The deadline (default 60 s) covers the
   * catch-up, which for a large state is a snapshot transfer.
   */
  async addMember(
    m: { id: string; peerAddress: string; clientAddress: string; learner?: boolean },
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Member[]> {
    const req = { id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: m.learner ?? false };
    return this.memberChange((s, o, cb) => s.cluster.AddMember(req, o, cb), opts);
  }

  /** Removes a member (voter or learner), answered by the leader once applied. */
  async removeMember(id: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Member[]> {
    return this.memberChange((s, o, cb) => s.cluster.RemoveMember({ id }, o, cb), opts);
  }

  /** Promotes a learner to voter, answered by the leader once applied. */
  async promoteMember(id: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Member[]> {
    return this.memberChange((s, o, cb) => s.cluster.PromoteMember({ id }, o, cb), opts);
  }

  private async memberChange(
    start: UnaryStart<{ members: Member__Output[] }>,
    opts: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<Member[]> {
    // Not idempotent: a membership change re-sent after an attempt that may have been
    // applied could meet the changed membership and fail confusingly, so only attempts
    // refused before they reached the log are retried.
    const timeoutMs = opts.timeoutMs ?? Math.max(this.timeoutMs, 60_000);
    const { res } = await this.invoke(start, {
      write: true,
      idempotent: false,
      preferLeader: true,
      timeoutMs,
      attemptTimeoutMs: timeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return res.members;
  }

  /** Planned handover to `targetId` (or the most up-to-date follower); resolves with the new leadership. */
  async transferLeader(targetId = '', opts: { signal?: AbortSignal } = {}): Promise<LeaderInfo> {
    const { res, endpoint } = await this.invoke<{ leader: LeaderInfo__Output | null }>(
      (s, o, cb) => s.cluster.TransferLeader({ targetId }, o, cb),
      {
        write: true,
        idempotent: false,
        preferLeader: true,
        timeoutMs: Math.max(this.timeoutMs, 10_000),
        attemptTimeoutMs: Math.max(this.timeoutMs, 10_000),
        ...opts,
      },
    );
    const l = res.leader ?? { leaderId: '', leaderAddress: '', term: 0 };
    this.leaderHint = l.leaderAddress || undefined;
    return { leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term, endpoint };
  }

  /**
   * The current leader, then every change. When a stream breaks it continues on another
   * endpoint; a value equal to the last one yielded (same leader and term) is skipped.
   * Ends when `signal` aborts or the client closes. `onRetry` hears of each broken or
   * refused stream (so a CLI can say the cluster is down rather than print nothing).
   */
  async *watchLeader(
    signal?: AbortSignal,
    opts: { onRetry?: (err: LeaderdError, delayMs: number) => void } = {},
  ): AsyncGenerator<LeaderInfo> {
    const sig = this.linked(signal);
    let last: string | undefined;
    // After a re-open, the next different leader is a resync (one leader per term, so
    // the same leader and term means nothing was missed).
    for await (const { message: l, reopened, endpoint } of this.resumableStream<LeaderInfo__Output>({
      open: (s) => s.cluster.WatchLeader({}),
      signal: sig,
      resumes: (e) => e.retryable || e.kind === 'internal' || e.kind === 'cancelled',
      ...(opts.onRetry ? { onRetry: opts.onRetry } : {}),
    })) {
      const k = `${l.leaderId}@${l.term}`;
      if (l.leaderAddress !== '') this.leaderHint = l.leaderAddress;
      if (k === last) continue;
      last = k;
      yield { leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term, endpoint, ...(reopened ? { resynced: reopened } : {}) };
    }
  }

  /**
   * One resumable server stream: when it breaks (or is refused with an error `resumes`
   * accepts) it is opened again on another endpoint after a backoff, until `signal`
   * aborts; other errors end it. `open` is called for each attempt, so it can resume
   * from where the last one got to. Each message says whether it is the first of a
   * re-opened stream, after which the caller may have missed something (a resync).
   */
  private async *resumableStream<M>(opts: {
    open: (s: Stubs) => grpc.ClientReadableStream<M>;
    signal: AbortSignal;
    resumes: (e: LeaderdError) => boolean;
    onRetry?: (e: LeaderdError, delayMs: number) => void;
  }): AsyncGenerator<{ message: M; reopened: boolean; endpoint: string }> {
    const sig = opts.signal;
    let failures = 0;
    let avoid: string | undefined;
    let received = false;
    let reopened = false;
    while (!sig.aborted) {
      const endpoint = this.roundRobin(avoid);
      let failed: LeaderdError | undefined;
      try {
        for await (const message of this.serverStream<M>(endpoint, opts.open, sig)) {
          failures = 0;
          received = true;
          const first = reopened;
          reopened = false;
          yield { message, reopened: first, endpoint };
        }
      } catch (err) {
        if (sig.aborted) return;
        const e = toLeaderdError(err, false, true, endpoint);
        if (!opts.resumes(e)) throw e;
        failed = e;
      }
      if (sig.aborted) return;
      reopened = received;
      avoid = endpoint;
      const delay = backoffDelay(failures++, this.backoffOpts, this.random);
      if (failed) opts.onRetry?.(failed, delay);
      await sleep(delay, sig);
    }
  }

  private async *serverStream<M>(
    endpoint: string,
    open: (s: Stubs) => grpc.ClientReadableStream<M>,
    signal: AbortSignal,
  ): AsyncGenerator<M> {
    if (signal.aborted) return;
    const call = this.track(open(this.stubs(endpoint)));
    const onAbort = () => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const m of call as AsyncIterable<M>) yield m;
    } finally {
      signal.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /**
   * A consistent copy of the cluster's replicated state (Cluster.Snapshot, admin role),
   * for `leaderd snapshot save`: every write acknowledged before the call is in it. Tries
   * each endpoint in turn on a retryable failure; the data is checked against the length
   * and SHA-256 the node sent.
   */
  async snapshot(opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ClusterSnapshot> {
    const sig = this.linked(opts.signal);
    const timeoutMs = opts.timeoutMs ?? Math.max(this.timeoutMs, 60_000);
    let avoid: string | undefined;
    let failed: LeaderdError | undefined;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      const endpoint = this.roundRobin(avoid);
      const chunks: Buffer[] = [];
      let head: SnapshotChunk__Output | undefined;
      try {
        const deadline = Date.now() + timeoutMs;
        for await (const c of this.serverStream<SnapshotChunk__Output>(endpoint, (s) => s.cluster.Snapshot({}, { deadline }), sig)) {
          head ??= c;
          chunks.push(c.data);
        }
      } catch (err) {
        if (sig.aborted) throw this.abortError(sig, undefined);
        failed = toLeaderdError(err, false, true, endpoint);
        if (!failed.retryable) throw failed;
        avoid = endpoint;
        continue;
      }
      if (sig.aborted) throw this.abortError(sig, undefined);
      const data = Buffer.concat(chunks);
      if (head === undefined || data.length !== head.totalBytes || !createHash('sha256').update(data).digest().equals(head.sha256))
        throw new LeaderdError(
          'internal',
          grpc.status.DATA_LOSS,
          `${endpoint} sent a snapshot that does not match its own length and checksum (${data.length} of ${head?.totalBytes ?? '?'} bytes)`,
          undefined,
          true,
        );
      return { clusterId: head.clusterId, index: head.index, term: head.term, data, endpoint };
    }
    throw failed!;
  }

  // ---------------------------------------------------------------- KV

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

  // ---------------------------------------------------------------- Lease

  /** Grant a lease without keeping it alive (see lease() for a kept-alive handle). */
  async grantLease(ttlMs: number, opts: { signal?: AbortSignal } = {}): Promise<{ id: number; ttlMs: number }> {
    return (await this.grantLeaseTimed(ttlMs, opts)).res;
  }

  private async grantLeaseTimed(ttlMs: number, opts: { signal?: AbortSignal }): Promise<Sent<{ id: number; ttlMs: number }>> {
    return this.exactlyOnce<{ id: number; ttlMs: number }>((s, tag, o, cb) => s.lease.Grant({ ttlMs, ...tag }, o, cb), opts);
  }

  async revokeLease(id: number, opts: { signal?: AbortSignal } = {}): Promise<{ revision: number }> {
    const { res } = await this.write<{ revision: number }>((s, o, cb) => s.lease.Revoke({ id }, o, cb), opts);
    return { revision: res.revision };
  }

  async timeToLive(id: number, opts: { keys?: boolean; signal?: AbortSignal } = {}): Promise<LeaseInfo> {
    const res = await this.read<{ id: number; ttlMs: number; grantedTtlMs: number; keys: string[] }>(
      (s, o, cb) => s.lease.TimeToLive({ id, keys: opts.keys ?? false }, o, cb),
      opts,
    );
    return { id: res.id, ttlMs: res.ttlMs, grantedTtlMs: res.grantedTtlMs, keys: res.keys };
  }

  /** One keep-alive: the TTL the lease was renewed for (0 = it no longer exists). */
  async keepAliveOnce(id: number, opts: { signal?: AbortSignal } = {}): Promise<{ id: number; ttlMs: number }> {
    const { res } = await this.invoke<{ id: number; ttlMs: number }>((s, o, cb) => s.lease.KeepAliveOnce({ id }, o, cb), {
      write: true,
      idempotent: true,
      preferLeader: true,
      ...opts,
    });
    return { id: res.id, ttlMs: res.ttlMs };
  }

  /**
   * Grant a lease of `ttlMs` and keep it alive (a keep-alive every ttl/3 on a KeepAlive
   * stream that moves to another endpoint when it breaks). See LeaseHandle.
   */
  async lease(ttlMs: number, opts: { signal?: AbortSignal } = {}): Promise<LeaseHandle> {
    const { res, sentAt } = await this.grantLeaseTimed(ttlMs, opts);
    const keeper = new LeaseKeeper(this.leaseHost(), res.id, res.ttlMs, sentAt);
    this.leases.add(keeper);
    keeper.start();
    return keeper;
  }

  private leaseHost(): LeaseHost {
    return {
      now: this.now,
      openKeepAlive: (failures) => {
        const endpoint = failures === 0 ? this.pickEndpoint(true) : this.roundRobin();
        const call = this.stubs(endpoint).lease.KeepAlive();
        this.track(call);
        return { endpoint, call };
      },
      backoff: (failures) => backoffDelay(failures, this.backoffOpts, this.random),
      revokeOnServer: async (id) => {
        try {
          await this.revokeLease(id);
        } catch (err) {
          // A retried Revoke whose first attempt took effect finds nothing to revoke.
          if (!(err instanceof LeaderdError && err.kind === 'not-found')) throw err;
        }
      },
      forget: (k) => this.leases.delete(k),
    };
  }

  // ---------------------------------------------------------------- Election and Lock

  /** The current holder of election `name`, as the cluster sees it (linearizable unless serializable). */
  async electionLeader(name: string, opts: { signal?: AbortSignal } = {}): Promise<ElectionLeader> {
    const res = await this.read<LeaderResponse__Output>((s, o, cb) => s.election.Leader({ name }, o, cb), opts);
    return toElectionLeader(res);
  }

  /**
   * The holder of election `name` now, then every change. A broken stream continues on
   * another endpoint; an answer identical to the last one yielded is skipped.
   */
  async *observe(name: string, signal?: AbortSignal): AsyncGenerator<ElectionLeader> {
    const sig = this.linked(signal);
    let last: string | undefined;
    // After a re-open, the same key at the same mod revision means one holder throughout,
    // so nothing was missed; anything else is a resync.
    for await (const { message: r, reopened } of this.resumableStream<LeaderResponse__Output>({
      open: (s) => s.election.Observe({ name }),
      signal: sig,
      // A stream that cannot continue where it was (a snapshot install, a client too
      // slow) is re-opened: an observer wants the current holder, said to be a resync.
      resumes: (e) => e.retryable || ['internal', 'cancelled', 'out-of-range', 'resource-exhausted'].includes(e.kind),
    })) {
      const l = toElectionLeader(r);
      const k = l.found ? `${l.key}@${l.kv?.modRevision ?? 0}` : 'none';
      const resynced = reopened || r.resync;
      if (k === last) continue;
      last = k;
      yield resynced ? { ...l, resynced } : l;
    }
  }

  /**
   * Campaign in election `name` with `value`: grants a lease (ttlMs, default 5000; the
   * server's minimum is 500), then waits until elected, across failovers (a retried
   * Campaign with the same lease reuses that lease's key). Rejects if `signal` aborts or
   * the lease is lost while waiting (the lease is then revoked).
   */
  async campaign(name: string, value: string | Uint8Array, opts: { ttlMs?: number; signal?: AbortSignal } = {}): Promise<Leadership> {
    const lease = await this.lease(opts.ttlMs ?? DEFAULT_LEASE_TTL_MS, opts.signal ? { signal: opts.signal } : {});
    try {
      const res = await this.blockingUntilGranted<{ leader: LeaderKey | null; fencingToken: number }>(
        (s, o, cb) => s.election.Campaign({ name, lease: lease.id, value: toBuffer(value) }, o, cb),
        lease,
        opts.signal,
      );
      const key = res.leader?.key ?? '';
      const leaderKey: LeaderKey = res.leader ?? { name, key, rev: res.fencingToken, lease: lease.id };
      return this.makeLeadership(name, key, res.fencingToken, leaderKey, lease);
    } catch (err) {
      await this.dropLease(lease);
      throw err;
    }
  }

  /**
   * Lock `name`: `await client.lock(name)` waits until held and gives the handle (its
   * signal follows its lease; `await using` releases it), `client.lock(name).do(fn)` holds
   * it while `fn` runs and releases it however `fn` ends.
   */
  lock(name: string, opts: { ttlMs?: number; signal?: AbortSignal } = {}): LockRequest {
    return new LockRequest(name, () => this.takeLock(name, opts));
  }

  /** Run `fn` holding lock `name` (`client.lock(name, opts).do(fn)`). */
  withLock<T>(name: string, fn: (lock: LockHandle) => T | Promise<T>, opts: { ttlMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    return this.lock(name, opts).do(fn);
  }

  /**
   * Campaign in election `name` with `value`, and run `work` each time this client is
   * elected, with a signal that aborts when the leadership ends (lease lost, another
   * holder seen) or `opts.signal` aborts, and the fencing token; the client-side twin of the embedded node's
   * runWhileLeader. When `work` returns while still leading, the leadership is held until
   * lost, then the client campaigns again. Resolves (after resigning) when `opts.signal`
   * aborts; rejects with `work`'s error if it throws while still leading (after resigning).
   */
  async runWhileLeader(
    name: string,
    value: string | Uint8Array,
    work: (signal: AbortSignal, fencingToken: number, leadership: Leadership) => Promise<void>,
    opts: { ttlMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    const outer = this.linked(opts.signal);
    while (!outer.aborted) {
      let leadership: Leadership;
      try {
        leadership = await this.campaign(name, value, { ...(opts.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}), signal: outer });
      } catch (err) {
        if (outer.aborted) return;
        // The lease was lost while waiting (a partition, a failover too slow): campaign anew.
        if (err instanceof LeaseLostError) continue;
        throw err;
      }
      const both = AbortSignal.any([leadership.signal, outer]);
      try {
        await work(both, leadership.token, leadership);
      } catch (err) {
        if (!leadership.signal.aborted) {
          await leadership.resign().catch(() => {});
          if (!outer.aborted) throw err;
        }
      }
      if (!both.aborted) await new Promise<void>((resolve) => both.addEventListener('abort', () => resolve(), { once: true }));
      if (outer.aborted && !leadership.signal.aborted) await leadership.resign().catch(() => {});
    }
  }

  private async takeLock(name: string, opts: { ttlMs?: number; signal?: AbortSignal }): Promise<LockHandle> {
    const lease = await this.lease(opts.ttlMs ?? DEFAULT_LEASE_TTL_MS, opts.signal ? { signal: opts.signal } : {});
    try {
      const res = await this.blockingUntilGranted<{ key: string; fencingToken: number }>(
        (s, o, cb) => s.lock.Lock({ name, lease: lease.id }, o, cb),
        lease,
        opts.signal,
      );
      const controller = new AbortController();
      const abort = (reason: LeadershipLostReason, msg: string, cause?: unknown) => {
        if (!controller.signal.aborted) controller.abort(new LeadershipLostError(reason, res.key, res.fencingToken, msg, { cause }));
      };
      const onLeaseLost = () => abort('lease-lost', `lock ${name}: ${(lease.signal.reason as Error).message}`, lease.signal.reason);
      if (lease.signal.aborted) onLeaseLost();
      else lease.signal.addEventListener('abort', onLeaseLost, { once: true });
      const unlock = once(async () => {
        abort('unlocked', `lock ${name} released`);
        try {
          await this.write((s, o, cb) => s.lock.Unlock({ key: res.key }, o, cb));
        } finally {
          await lease.revoke();
        }
      });
      return {
        name,
        key: res.key,
        token: res.fencingToken,
        lease,
        signal: controller.signal,
        valid: () => lease.valid() && !controller.signal.aborted,
        unlock,
        [asyncDispose]: unlock,
      };
    } catch (err) {
      await this.dropLease(lease);
      throw err;
    }
  }

  private async dropLease(lease: LeaseHandle): Promise<void> {
    if (this.closer.signal.aborted) return;
    await lease.revoke().catch(() => {});
  }

  /**
   * A call that blocks server-side until granted (Campaign, Lock): retried across
   * failovers for as long as the lease lives and `signal` has not aborted. Each attempt
   * gets a long deadline; one that expires is simply re-sent.
   */
  private async blockingUntilGranted<T>(start: UnaryStart<T>, lease: LeaseHandle, signal?: AbortSignal): Promise<T> {
    const sig = signal ? AbortSignal.any([signal, lease.signal]) : lease.signal;
    for (;;) {
      try {
        return (
          await this.invoke(start, {
            write: true,
            idempotent: true,
            preferLeader: true,
            timeoutMs: 60_000,
            attemptTimeoutMs: 30_000,
            signal: sig,
          })
        ).res;
      } catch (err) {
        if (lease.signal.aborted) throw lease.signal.reason as Error;
        if (err instanceof LeaderdError && (err.kind === 'deadline' || err.retryable) && !sig.aborted) continue;
        throw err;
      }
    }
  }

  private makeLeadership(name: string, key: string, token: number, leaderKey: LeaderKey, lease: LeaseHandle): Leadership {
    const controller = new AbortController();
    const observer = new AbortController();
    const abort = (reason: LeadershipLostReason, msg: string, cause?: unknown) => {
      observer.abort();
      if (!controller.signal.aborted) controller.abort(new LeadershipLostError(reason, key, token, msg, { cause }));
    };
    const onLeaseLost = () => abort('lease-lost', `election ${name}: ${(lease.signal.reason as Error).message}`, lease.signal.reason);
    if (lease.signal.aborted) onLeaseLost();
    else lease.signal.addEventListener('abort', onLeaseLost, { once: true });
    this.closer.signal.addEventListener('abort', () => abort('closed', `election ${name}: client closed`), {
      once: true,
      signal: observer.signal,
    });

    // Watch for another holder. A lagging node may still show the previous holder for
    // a while, so only an answer at a revision after one that showed us counts, or a
    // holder whose key was created after ours (then ours was certainly deleted).
    void (async () => {
      let selfSeenAt = Infinity;
      try {
        for await (const l of this.observe(name, observer.signal)) {
          const isSelf = l.found && l.key === key;
          if (isSelf) selfSeenAt = Math.min(selfSeenAt, l.revision);
          else if ((l.found && l.token > token) || l.revision > selfSeenAt) {
            abort(
              'superseded',
              `election ${name}: ${l.found ? `${l.key} (token ${l.token})` : 'nobody'} holds it now, not ${key} (token ${token})`,
            );
            return;
          }
        }
      } catch (err) {
        // Observe failing for good (not transiently) leaves only the lease to go by; it still bounds the leadership.
        void err;
      }
    })();

    const resign = once(async () => {
      abort('resigned', `election ${name}: resigned`);
      try {
        await this.write((s, o, cb) => s.election.Resign({ leader: leaderKey }, o, cb));
      } finally {
        await lease.revoke();
      }
    });
    return {
      name,
      key,
      token,
      lease,
      signal: controller.signal,
      valid: () => lease.valid() && !controller.signal.aborted,
      proclaim: async (value) => {
        if (!lease.valid() || controller.signal.aborted) throw controller.signal.reason ?? lease.signal.reason;
        try {
          const { res } = await this.write<{ revision: number }>((s, o, cb) =>
            s.election.Proclaim({ leader: leaderKey, value: toBuffer(value) }, o, cb),
          );
          return res.revision;
        } catch (err) {
          if (err instanceof LeaderdError && err.kind === 'failed-precondition')
            abort('superseded', `election ${name}: proclaim refused: ${err.message}`, err);
          throw err;
        }
      },
      resign,
      [asyncDispose]: resign,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * End every stream, keep-alive, timer and connection. Leases are NOT revoked (they
   * expire on the server after their TTL); every handle's signal aborts with reason 'closed'.
   */
  close(): void {
    if (this.closer.signal.aborted) return;
    if (this.currentSession) this.dropSession(this.currentSession);
    for (const k of [...this.leases]) k.lose('closed');
    this.closer.abort(new LeaderdError('closed', grpc.status.CANCELLED, 'the client is closed', undefined, false));
    for (const c of this.calls) c.cancel();
    this.calls.clear();
    for (const s of this.stubsByEndpoint.values()) s.channel.close();
    this.stubsByEndpoint.clear();
  }
}

/** `f` run at most once: later calls share the first call's promise (release twice = release once). */
function once(f: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= f());
}

type HealthClient = grpc.Client & {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
};

/** The lowest of a non-empty set of seqs. */
function lowest(seqs: ReadonlySet<number>): number {
  let min = Infinity;
  for (const q of seqs) if (q < min) min = q;
  return min;
}

function toElectionLeader(r: LeaderResponse__Output): ElectionLeader {
  const kv = r.found && r.kv ? toKeyValue(r.kv) : null;
  return { found: r.found, key: kv?.key ?? '', value: kv?.value ?? Buffer.alloc(0), token: r.fencingToken, revision: r.revision, kv };
}

export { LeaderdError, LeaseLostError, LeadershipLostError };
export type { LeaderdErrorKind, WriteOutcome, LeaseLostReason, LeadershipLostReason } from './errors.js';
export type { LeaseHandle };
export { LockRequest };
export { textOf, jsonOf } from './values.js';
export type * from './types.js';
