// The plumbing every service module of LeaderdClient shares: one connection per endpoint,
// one invoker (deadline, retries by error kind with one backoff, leader discovery),
// exactly-once sessions, and one resumable-stream helper. Internal: LeaderdClient is
// the API; the service modules (cluster-api, kv-api, lease-api, election-api,
// lock-api) build on this class in that order, each adding one service.
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { ClusterClient as GrpcCluster } from '../gen/leaderd/v1/Cluster.js';
import type { KVClient } from '../gen/leaderd/v1/KV.js';
import type { LeaseClient } from '../gen/leaderd/v1/Lease.js';
import type { ElectionClient } from '../gen/leaderd/v1/Election.js';
import type { LockClient } from '../gen/leaderd/v1/Lock.js';
import type { LeaderInfo__Output } from '../gen/leaderd/v1/LeaderInfo.js';
import { loadPublicApi } from '../transport/protos.js';
import { backoffDelay, sleep } from './backoff.js';
import { LeaderdError, toLeaderdError, type WriteOutcome } from './errors.js';
import type { LeaseKeeper } from './lease-handle.js';
import { channelFor, tokenInterceptors, type ClientSecurity } from '../security/client-credentials.js';
import type { LeaderdClientOptions } from './leaderd-client.js';

export interface Stubs {
  readonly channel: grpc.Channel;
  readonly cluster: GrpcCluster;
  readonly kv: KVClient;
  readonly lease: LeaseClient;
  readonly election: ElectionClient;
  readonly lock: LockClient;
}

export type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
export type UnaryStart<T> = (s: Stubs, opts: grpc.CallOptions, cb: Callback<T>) => grpc.ClientUnaryCall;

export interface CallSpec {
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

export interface Sent<T> {
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
export interface SessionTag {
  readonly session: number;
  readonly seq: number;
  readonly firstIncomplete: number;
}

/** This process's exactly-once session. */
export interface ClientSession {
  readonly id: number;
  readonly ttlMs: number;
  nextSeq: number;
  /** Seqs of writes still waiting for their answer. */
  readonly outstanding: Set<number>;
  readonly keepAlive: NodeJS.Timeout;
}

export type TaggedStart<T> = (s: Stubs, tag: SessionTag, opts: grpc.CallOptions, cb: Callback<T>) => grpc.ClientUnaryCall;

export const DEFAULT_LEASE_TTL_MS = 5000;

export function toBuffer(v: string | Uint8Array): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** `f` run at most once: later calls share the first call's promise (release twice = release once). */
export function once(f: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= f());
}

/** The lowest of a non-empty set of seqs. */
function lowest(seqs: ReadonlySet<number>): number {
  let min = Infinity;
  for (const q of seqs) if (q < min) min = q;
  return min;
}

export abstract class Invoker {
  readonly endpoints: readonly string[];

  readonly clientId: string;

  protected readonly timeoutMs: number;

  protected readonly attempts: number;

  protected readonly backoffOpts: { backoffMs: number; maxBackoffMs: number };

  protected readonly attemptTimeoutMs: number;

  readonly now: () => number;

  protected readonly random: () => number;

  protected readonly stubsByEndpoint = new Map<string, Stubs>();

  protected readonly closer = new AbortController();

  protected readonly leases = new Set<LeaseKeeper>();

  protected readonly calls = new Set<grpc.Call>();

  protected readonly sessionTtlMs: number;

  protected currentSession: ClientSession | null = null;

  protected opening: Promise<ClientSession> | null = null;

  protected rr = 0;

  protected leaderHint: string | undefined;

  protected lastDiscovery = -Infinity;

  protected readonly interceptors: grpc.Interceptor[];

  protected readonly security: ClientSecurity | undefined;

  protected constructor(opts: LeaderdClientOptions) {
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

  protected checkOpen(): void {
    if (this.closer.signal.aborted) throw new LeaderdError('closed', grpc.status.CANCELLED, 'the client is closed', undefined, false);
  }

  protected stubs(endpoint: string): Stubs {
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

  protected track<C extends grpc.Call>(call: C): C {
    this.calls.add(call);
    const done = () => this.calls.delete(call);
    call.once('status', done);
    return call;
  }

  /** A signal that aborts when `signal` does or the client closes. */
  protected linked(signal?: AbortSignal): AbortSignal {
    return signal ? AbortSignal.any([signal, this.closer.signal]) : this.closer.signal;
  }

  /** This process's session, opened through the cluster on first use and kept alive until close(). */
  protected session(): Promise<ClientSession> {
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

  protected async keepSessionAlive(): Promise<void> {
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

  protected dropSession(s: ClientSession): void {
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
  protected async exactlyOnce<T>(start: TaggedStart<T>, opts: { signal?: AbortSignal } = {}): Promise<Sent<T>> {
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

  protected roundRobin(avoid?: string): string {
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const e = this.endpoints[this.rr++ % n]!;
      if (e !== avoid || n === 1) return e;
    }
    return this.endpoints[0]!;
  }

  protected pickEndpoint(preferLeader: boolean, avoid?: string): string {
    if (preferLeader && this.leaderHint !== undefined && this.leaderHint !== avoid) return this.leaderHint;
    return this.roundRobin(avoid);
  }

  /**
   * Ask the endpoints (other than `avoid`) who leads, and remember the leader's client
   * address. Bounded by `deadline` (performance.now() time) and ~500 ms per endpoint.
   */
  protected async discover(deadline: number, avoid: string | undefined, signal: AbortSignal): Promise<void> {
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

  protected unaryOnce<T>(endpoint: string, start: UnaryStart<T>, attemptMs: number, signal: AbortSignal): Promise<T> {
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

  protected abortError(signal: AbortSignal, outcome: WriteOutcome | undefined): LeaderdError {
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
  protected async invoke<T>(start: UnaryStart<T>, spec: CallSpec): Promise<Sent<T>> {
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

  protected async read<T>(
    start: UnaryStart<T>,
    opts: { serializable?: boolean; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<T> {
    const spec: CallSpec = {
      write: false,
      idempotent: true,
      preferLeader: !opts.serializable,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    };
    return (await this.invoke(start, spec)).res;
  }

  protected async write<T>(
    start: UnaryStart<T>,
    opts: { signal?: AbortSignal; timeoutMs?: number; attemptTimeoutMs?: number } = {},
  ): Promise<Sent<T>> {
    return this.invoke(start, { write: true, idempotent: true, preferLeader: true, ...opts });
  }

  /** A question about `endpoint` itself: asked there only, once, within the client's timeout. */
  protected askOnly<T>(endpoint: string, start: UnaryStart<T>): Promise<T> {
    return this.unaryOnce<T>(endpoint, start, this.timeoutMs, this.closer.signal).catch((err: unknown) => {
      throw toLeaderdError(err, false, true, endpoint);
    });
  }

  /**
   * One resumable server stream: when it breaks (or is refused with an error `resumes`
   * accepts) it is opened again on another endpoint after a backoff, until `signal`
   * aborts; other errors end it. `open` is called for each attempt, so it can resume
   * from where the last one got to. Each message says whether it is the first of a
   * re-opened stream, after which the caller may have missed something (a resync).
   */
  protected async *resumableStream<M>(opts: {
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

  protected async *serverStream<M>(
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
