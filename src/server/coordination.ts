// The coordination API on top of the replicated KvStore: leaderd.v1.KV, Lease,
// Election and Lock. Any node accepts any request:
//  - writes are proposed by the leader; a follower forwards them (forwarder.ts);
//  - linearizable reads use ReadIndex (or the leader's lease) through the local node and
//    are then served from local state; serializable reads are served at once;
//  - lease keep-alives and expiry belong to the leader, whose lease makes it the only
//    node that may vouch for a lease being alive (expiry-keeper.ts);
//  - exactly-once sessions are opened and ended through the log; the leader expires idle
//    ones the way it expires leases (statemachine/sessions.ts says why this is safe).
// Every failed write carries trailing metadata `leaderd-outcome`.
import * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import type { LeaderdNode } from './node.js';
import { NodeError } from './node.js';
import { CompactedError, type KvStore } from '../statemachine/kv-store.js';
import {
  encodeCommand,
  type Command,
  type CommandResult,
  type Compare,
  type Envelope,
  type KeyValue,
  type OkResult,
  type Op,
  STORED_COMPARE_RESULTS,
  STORED_COMPARE_TARGETS,
} from '../statemachine/commands.js';
import {
  ApiError,
  checkKey,
  checkLeaseId,
  checkName,
  checkPrefix,
  checkSession,
  checkTtl,
  checkValue,
  checkWriteTarget,
  DEFAULT_LIMITS,
  flagOf,
  StreamBudget,
  ConnectionGate,
  RESERVED_PREFIX,
  type Limits,
} from './limits.js';
import { FORWARDED_KEY, Forwarder, type CallContext } from './forwarder.js';
import { toStatus } from '../api/errors.js';
import { ExpiryKeeper, type Expirables } from './expiry-keeper.js';
import { KvWatchStream, ObserveStream, pbKv } from './watch-stream.js';
import { loadPublicApi } from '../transport/protos.js';
import type { KVHandlers } from '../gen/leaderd/v1/KV.js';
import type { LeaseHandlers } from '../gen/leaderd/v1/Lease.js';
import type { ElectionHandlers } from '../gen/leaderd/v1/Election.js';
import type { LockHandlers } from '../gen/leaderd/v1/Lock.js';
import type { Compare__Output } from '../gen/leaderd/v1/Compare.js';
import type { RequestOp__Output } from '../gen/leaderd/v1/RequestOp.js';
import type { ResponseOp } from '../gen/leaderd/v1/ResponseOp.js';
import type { LeaderKey__Output } from '../gen/leaderd/v1/LeaderKey.js';
import type { LeaderResponse } from '../gen/leaderd/v1/LeaderResponse.js';

const ELECTION_PREFIX = `${RESERVED_PREFIX}election/`;
const LOCK_PREFIX = `${RESERVED_PREFIX}lock/`;
/** A session opened without a TTL ends after this long without a write or keep-alive. */
const DEFAULT_SESSION_TTL_MS = 60_000;
/** A write with no deadline of its own gives up (outcome unknown) after this long. */
const DEFAULT_WRITE_TIMEOUT_MS = 10_000;
/** A read with no deadline of its own (it may wait for a ReadIndex round) gives up after this long. */
const DEFAULT_READ_TIMEOUT_MS = 10_000;

/** The exactly-once fields every write request carries. */
interface SessionFields {
  readonly clientId: string;
  readonly session: number;
  readonly seq: number;
  readonly firstIncomplete: number;
}

export interface CoordinationOptions {
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
  readonly limits?: Limits;
  /** How to reach the leader's client listener when forwarding (TLS when it has TLS). */
  readonly forwardCredentials?: grpc.ChannelCredentials;
  readonly forwardChannelOptions?: grpc.ChannelOptions;
}

function bytes(b: Buffer | Uint8Array | string | undefined): Uint8Array {
  if (b === undefined) return new Uint8Array(0);
  if (typeof b === 'string') return new TextEncoder().encode(b);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function applyError(r: CommandResult & { ok: false }): ApiError {
  switch (r.error) {
    case 'lease-not-found':
      return new ApiError('lease-not-found', r.message, 'not-applied');
    case 'stale-sequence':
      return new ApiError('stale-sequence', r.message);
    case 'session-expired':
      return new ApiError('session-expired', r.message);
    case 'quota-exceeded':
      return new ApiError('quota-exceeded', r.message);
  }
}

export class CoordinationService {
  private readonly limits: Limits;
  private readonly forwarder: Forwarder;
  /** Watch streams open on this node (KV.Watch, Election.Observe; Cluster.WatchLeader through admitStream). */
  private readonly watchBudget: StreamBudget;
  /** Unary calls in progress per client connection (--max-inflight-per-connection). */
  private readonly gate: ConnectionGate;
  /** Election or lock queue -> Campaign/Lock calls waiting on it here. */
  private readonly waiters = new Map<string, number>();
  private readonly keeper: ExpiryKeeper;
  private readonly sessionKeeper: ExpiryKeeper;
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>>();
  private readonly log: Logger;
  private readonly defs: {
    kv: Record<string, MethodDefinition<unknown, unknown>>;
    lease: Record<string, MethodDefinition<unknown, unknown>>;
    election: Record<string, MethodDefinition<unknown, unknown>>;
    lock: Record<string, MethodDefinition<unknown, unknown>>;
  };

  constructor(
    private readonly node: LeaderdNode,
    private readonly store: KvStore,
    private readonly opts: CoordinationOptions,
  ) {
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.watchBudget = new StreamBudget(this.limits);
    this.gate = new ConnectionGate(this.limits);
    this.log = opts.logger;
    this.forwarder = new Forwarder(opts.forwardCredentials, opts.forwardChannelOptions);
    const keeperOpts = (expire: (id: number) => Command) => ({
      electionTimeoutMs: opts.electionTimeoutMs,
      logger: opts.logger,
      expire: (id: number) => this.proposeLocal({ cmd: expire(id) }, AbortSignal.timeout(DEFAULT_WRITE_TIMEOUT_MS)).then(() => {}),
    });
    const leases: Expirables = {
      what: 'lease',
      list: () => store.leaseIds(),
      ttlOf: (id) => store.leaseInfo(id)?.ttlMs ?? null,
      onChange: (l) => store.onLeaseChange(l),
    };
    const sessions: Expirables = {
      what: 'session',
      list: () => store.sessions.list(),
      ttlOf: (id) => store.sessions.ttlOf(id),
      onChange: (l) =>
        store.sessions.onChange((c) =>
          l(c.type === 'opened' ? { type: 'granted', id: c.id, ttlMs: c.ttlMs } : c.type === 'active' ? { type: 'renewed', id: c.id } : c),
        ),
    };
    this.keeper = new ExpiryKeeper(
      node,
      leases,
      keeperOpts((id) => ({ type: 'leaseExpire', id })),
    );
    this.sessionKeeper = new ExpiryKeeper(
      node,
      sessions,
      keeperOpts((id) => ({ type: 'sessionExpire', id })),
    );
    const api = loadPublicApi().leaderd.v1;
    const asRecord = (s: object) => s as unknown as Record<string, MethodDefinition<unknown, unknown>>;
    this.defs = {
      kv: asRecord(api.KV.service),
      lease: asRecord(api.Lease.service),
      election: asRecord(api.Election.service),
      lock: asRecord(api.Lock.service),
    };
  }

  register(server: grpc.Server): void {
    const api = loadPublicApi().leaderd.v1;
    server.addService(api.KV.service, this.kvHandlers());
    server.addService(api.Lease.service, this.leaseHandlers());
    server.addService(api.Election.service, this.electionHandlers());
    server.addService(api.Lock.service, this.lockHandlers());
  }

  /** What the store holds against the storage quota (GetStatus shows it). */
  storeUse(): { storeBytes: number; quotaBytes: number } {
    return { storeBytes: this.store.bytes, quotaBytes: this.limits.quotaBytes };
  }

  /** Admit a watch-like stream from another service (Cluster.WatchLeader) under the same limits; its release, or ApiError. */
  admitStream(connection: string): () => void {
    return this.watchBudget.admit(connection);
  }

  /**
   * A server stream's request checked by `validate`, then admitted under the stream
   * limits: its release, or null after ending the call with the refusal's status.
   */
  private openStream(call: { getPeer(): string; emit(event: 'error', err: unknown): boolean }, validate: () => void): (() => void) | null {
    try {
      validate();
      return this.watchBudget.admit(call.getPeer());
    } catch (err) {
      call.emit('error', toStatus(err));
      return null;
    }
  }

  close(): void {
    this.keeper.close();
    this.sessionKeeper.close();
    for (const s of this.streams) s.emit('error', { code: grpc.status.UNAVAILABLE, details: 'node shutting down' });
    this.streams.clear();
    this.forwarder.close();
  }

  // -------------------------------------------------------------------------
  // Plumbing

  private context(
    call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
    defaultTimeoutMs: number | null,
  ): CallContext & { dispose(): void } {
    const d = call.getDeadline();
    const deadlineMs = d instanceof Date ? d.getTime() : typeof d === 'number' ? d : Infinity;
    const deadline = Number.isFinite(deadlineMs) ? deadlineMs : defaultTimeoutMs === null ? Infinity : Date.now() + defaultTimeoutMs;
    const ac = new AbortController();
    const events = call as unknown as NodeJS.EventEmitter;
    let t: NodeJS.Timeout | null = null;
    if (Number.isFinite(deadline)) {
      t = setTimeout(() => ac.abort(new Error('deadline')), Math.max(0, deadline - Date.now()));
      t.unref();
    }
    const dispose = () => {
      if (t) clearTimeout(t);
    };
    ac.signal.addEventListener('abort', dispose, { once: true });
    events.on('close', dispose);
    events.on('finish', dispose);
    events.on('cancelled', () => ac.abort(new Error('cancelled')));
    const authorization = call.metadata.get('authorization')[0];
    return {
      signal: ac.signal,
      deadline,
      forwarded: call.metadata.get(FORWARDED_KEY).length > 0,
      authorization: authorization === undefined ? undefined : String(authorization),
      dispose,
    };
  }

  /**
   * A unary handler. `waits`: the call may wait for long by design (Campaign, Lock, which
   * --max-waiters-per-name bounds); it takes no slot of its connection's in-flight limit,
   * or a client holding a few campaigns open would have its other calls queue behind them.
   * Calls forwarded by another node take none either: one connection carries the calls of
   * every client of that node, and each was counted where it arrived.
   */
  private unary<Req, Res>(defaultTimeoutMs: number | null, f: (req: Req, ctx: CallContext) => Promise<Res>, waits = false) {
    return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
      let ctx: CallContext & { dispose(): void };
      try {
        ctx = this.context(call as grpc.ServerUnaryCall<unknown, unknown>, defaultTimeoutMs);
      } catch (err) {
        cb(toStatus(err));
        return;
      }
      let release: (() => void) | null = null;
      Promise.resolve()
        .then(async () => {
          if (!waits && !ctx.forwarded) release = await this.gate.enter(call.getPeer(), ctx.signal);
          return f(call.request, ctx);
        })
        .then(
          (res) => cb(null, res),
          (err) => {
            if (!(err instanceof ApiError) && !(err instanceof NodeError) && !(err instanceof CompactedError))
              this.log.error({ err }, 'unexpected error in request handler');
            cb(toStatus(err));
          },
        )
        .finally(() => {
          release?.();
          ctx.dispose();
        });
    };
  }

  /**
   * The role only, lease or not: where to propose rather than forward. A leader whose lease
   * lapsed still proposes (the entry commits only with a quorum); isLeader() on the node is
   * the stronger "leads with a valid lease" that lease-bound decisions need.
   */
  private hasLeaderRole(): boolean {
    return this.node.status().role === 'leader';
  }

  /** Wait (up to the deadline, at most two election timeouts) for a leader to be known. */
  private async leaderAddress(ctx: CallContext): Promise<string> {
    const waitMs = Math.max(0, Math.min(ctx.deadline - Date.now(), 2 * this.opts.electionTimeoutMs));
    const l = await this.node.whenLeader((v) => v.leaderId !== '' && v.leaderAddress !== '', waitMs, ctx.signal);
    if (l === null) throw new ApiError('unavailable', 'no leader is known: the cluster may have lost its quorum', 'not-applied');
    return l.leaderAddress;
  }

  /**
   * The quota is decided twice. Admission here, before proposing, answers a full store at
   * once and leaves no entry behind; it reads the leader's applied state, which may lag its
   * own uncommitted writes, so the entry also carries the quota and the state machine
   * checks again when applying, the same way on every replica (a per-node check at apply
   * time against each node's own flag would let replicas disagree on what was written).
   */
  private async proposeLocal<C extends Command>(env: Envelope<C>, signal: AbortSignal): Promise<OkResult<C['type']>> {
    if (env.cmd.type === 'put' || env.cmd.type === 'txn') {
      const quota = this.limits.quotaBytes;
      const over = this.store.quotaRefusal(env.cmd, quota);
      if (over !== null) throw new ApiError('quota-exceeded', over);
      env = { ...env, quota };
    }
    const { result } = await this.node.propose(encodeCommand(env), signal);
    // The one place a result is told its type: the state machine answers each command with
    // a result of the command's own type (kv-store.ts apply), checked here rather than trusted.
    const r = result as CommandResult;
    if (!r.ok) throw applyError(r);
    if (r.type !== env.cmd.type) throw new Error(`state machine answered a ${env.cmd.type} command with a ${r.type} result`);
    return r as OkResult<C['type']>;
  }

  /**
   * Run a write: proposed here when this node leads, otherwise forwarded once to the
   * leader with the same request (and the client's deadline).
   */
  private async write<Req, Res, C extends Command>(
    service: keyof CoordinationService['defs'],
    method: string,
    req: Req,
    ctx: CallContext,
    env: Envelope<C>,
    toResponse: (r: OkResult<C['type']>) => Res,
  ): Promise<Res> {
    if (this.hasLeaderRole()) return toResponse(await this.proposeLocal(env, ctx.signal));
    return this.forward(service, method, req, ctx);
  }

  private async forward<Req, Res>(service: keyof CoordinationService['defs'], method: string, req: Req, ctx: CallContext): Promise<Res> {
    if (ctx.forwarded) throw new ApiError('not-leader', 'this node is no longer the leader; retry', 'not-applied');
    const address = await this.leaderAddress(ctx);
    return this.forwarder.unary(this.defs[service][method] as MethodDefinition<Req, Res>, req, address, ctx);
  }

  private async linearizable(serializable: boolean, ctx: CallContext): Promise<void> {
    if (!serializable) await this.node.readBarrier(ctx.signal);
  }

  private trackStream(
    call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
    cleanup: () => void,
  ): void {
    this.streams.add(call);
    const end = () => {
      this.streams.delete(call);
      cleanup();
    };
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);
    call.on('finish', end);
  }

  // -------------------------------------------------------------------------
  // KV

  private kvHandlers(): KVHandlers {
    const L = this.limits;
    return {
      Put: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        const put = this.putOp(req.key, req.value, req.lease);
        checkSession(req);
        return this.write('kv', 'Put', req, ctx, this.env(put, req), (r) => ({ revision: r.revision }));
      }),
      Get: this.unary(DEFAULT_READ_TIMEOUT_MS, async (req, ctx) => {
        checkKey(req.key, L, { write: false });
        await this.linearizable(req.serializable, ctx);
        const kv = this.store.get(req.key);
        const revision = this.store.revision;
        if (!kv) return { found: false, value: Buffer.alloc(0), modRevision: 0, revision, createRevision: 0, version: 0, lease: 0 };
        return {
          found: true,
          value: kv.value,
          modRevision: kv.modRevision,
          revision,
          createRevision: kv.createRevision,
          version: kv.version,
          lease: kv.lease,
        };
      }),
      Delete: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        checkWriteTarget(req.key, req.prefix, L);
        checkSession(req);
        return this.write('kv', 'Delete', req, ctx, this.env({ type: 'delete', key: req.key, prefix: req.prefix }, req), (d) => ({
          revision: d.revision,
          deleted: d.deleted,
        }));
      }),
      Range: this.unary(DEFAULT_READ_TIMEOUT_MS, async (req, ctx) => {
        checkPrefix(req.prefix, L);
        await this.linearizable(req.serializable, ctx);
        const { kvs, more } = this.store.range(req.prefix, req.limit, req.startAfter);
        return { kvs: kvs.map(pbKv), more, revision: this.store.revision };
      }),
      CompareAndSwap: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        const put = this.putOp(req.key, req.value, req.lease);
        checkSession(req);
        let compare: Compare;
        switch (req.expect) {
          case 'expectedValue':
            compare = { key: req.key, target: 'VALUE', result: 'EQUAL', value: bytes(req.expectedValue) };
            break;
          case 'expectAbsent':
            compare = { key: req.key, target: 'CREATE_REVISION', result: 'EQUAL', number: 0 };
            break;
          case 'expectedModRevision':
            compare = { key: req.key, target: 'MOD_REVISION', result: 'EQUAL', number: req.expectedModRevision ?? 0 };
            break;
          default:
            throw new ApiError('invalid-argument', 'one of expected_value, expect_absent or expected_mod_revision is required');
        }
        const cmd: Command = { type: 'txn', compare: [compare], success: [put], failure: [] };
        return this.write('kv', 'CompareAndSwap', req, ctx, this.env(cmd, req), (t) => {
          const cur = t.compared.get(req.key) ?? null;
          return {
            succeeded: t.succeeded,
            revision: t.revision,
            currentFound: cur !== null,
            currentValue: cur ? cur.value : new Uint8Array(0),
            currentModRevision: cur ? cur.modRevision : 0,
          };
        });
      }),
      Txn: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        checkSession(req);
        if (req.compare.length + req.success.length + req.failure.length > L.maxTxnOps) {
          throw new ApiError(
            'too-large',
            `a transaction may hold at most ${L.maxTxnOps} compares and operations, got ${req.compare.length + req.success.length + req.failure.length}`,
          );
        }
        const compare = req.compare.map((c) => this.compareFrom(c));
        const success = req.success.map((o) => this.opFrom(o));
        const failure = req.failure.map((o) => this.opFrom(o));
        return this.write('kv', 'Txn', req, ctx, this.env({ type: 'txn', compare, success, failure }, req), (t) => {
          const responses: ResponseOp[] = t.responses.map((x) =>
            x.type === 'put'
              ? { put: { revision: x.revision } }
              : x.type === 'delete'
                ? { delete: { revision: x.revision, deleted: x.deleted } }
                : {
                    get: x.kv
                      ? {
                          found: true,
                          value: x.kv.value,
                          modRevision: x.kv.modRevision,
                          revision: x.revision,
                          createRevision: x.kv.createRevision,
                          version: x.kv.version,
                          lease: x.kv.lease,
                        }
                      : { found: false, revision: x.revision },
                  },
          );
          return { succeeded: t.succeeded, responses, revision: t.revision };
        });
      }),
      OpenSession: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        const ttlMs = req.ttlMs === 0 ? DEFAULT_SESSION_TTL_MS : req.ttlMs;
        checkTtl(ttlMs, L);
        return this.write('kv', 'OpenSession', req, ctx, { cmd: { type: 'sessionOpen', ttlMs } }, (o) => {
          this.log.debug({ session: o.id, label: req.label, ttlMs }, 'session opened');
          return { session: o.id, ttlMs: o.ttlMs };
        });
      }),
      KeepAliveSession: this.unary(5000, async (req, ctx) => {
        checkLeaseId(req.session, 'session');
        // As for leases: only a leader holding a valid lease, caught up on its log, may
        // vouch for a session (an expiry of it may be among what it has yet to apply).
        if (this.node.isLeaderCaughtUp()) return { session: req.session, ttlMs: this.sessionKeeper.keepAlive(req.session) };
        if (this.node.isLeader()) throw new ApiError('catching-up', 'the leader is still catching up on its log; retry');
        return this.forward('kv', 'KeepAliveSession', req, ctx);
      }),
      CloseSession: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        checkLeaseId(req.session, 'session');
        return this.write('kv', 'CloseSession', req, ctx, { cmd: { type: 'sessionClose', id: req.session } }, () => ({}));
      }),
      Watch: (call) => {
        const req = call.request;
        const release = this.openStream(call, () => {
          if (req.key !== '' || !req.prefix) checkKey(req.key, L, { write: false });
        });
        if (release === null) return;
        const w = new KvWatchStream(call, this.store, req);
        if (!w.start()) return release();
        this.trackStream(call as grpc.ServerWritableStream<unknown, unknown>, () => {
          w.close();
          release();
        });
      },
    };
  }

  private env<C extends Command>(cmd: C, req: SessionFields): Envelope<C> {
    return req.session !== 0 ? { cmd, session: { id: req.session, seq: req.seq, firstIncomplete: req.firstIncomplete } } : { cmd };
  }

  /** A validated put: key writable, value and lease within limits. */
  private putOp(key: string, value: Buffer | Uint8Array | string | undefined, lease: number): Op & { type: 'put' } {
    checkKey(key, this.limits, { write: true });
    const v = bytes(value);
    checkValue(v, this.limits);
    checkLeaseId(lease);
    return { type: 'put', key, value: v, lease };
  }

  private compareFrom(c: Compare__Output): Compare {
    checkKey(c.key, this.limits, { write: false });
    const target = STORED_COMPARE_TARGETS.find((t) => t === c.target);
    const result = STORED_COMPARE_RESULTS.find((r) => r === c.result);
    if (target === undefined) throw new ApiError('invalid-argument', `compare on ${c.key}: unknown target ${String(c.target)}`);
    if (result === undefined) throw new ApiError('invalid-argument', `compare on ${c.key}: unknown result ${String(c.result)}`);
    if (target === 'VALUE') {
      if (c.operand !== 'value' && c.operand !== undefined)
        throw new ApiError('invalid-argument', `compare on VALUE of ${c.key} needs a value operand`);
      return { key: c.key, target, result, value: bytes(c.value) };
    }
    const n =
      c.operand === 'version'
        ? c.version
        : c.operand === 'createRevision'
          ? c.createRevision
          : c.operand === 'modRevision'
            ? c.modRevision
            : c.operand === 'lease'
              ? c.lease
              : 0;
    return { key: c.key, target, result, number: n ?? 0 };
  }

  private opFrom(o: RequestOp__Output): Op {
    switch (o.request) {
      case 'put':
        return this.putOp(o.put!.key, o.put!.value, o.put!.lease);
      case 'delete':
        checkWriteTarget(o.delete!.key, o.delete!.prefix, this.limits);
        return { type: 'delete', key: o.delete!.key, prefix: o.delete!.prefix };
      case 'get':
        checkKey(o.get!.key, this.limits, { write: false });
        return { type: 'get', key: o.get!.key };
      default:
        throw new ApiError('invalid-argument', 'a transaction operation must be one of put, delete, get');
    }
  }

  // -------------------------------------------------------------------------
  // Lease

  private leaseHandlers(): LeaseHandlers {
    return {
      Grant: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        checkTtl(req.ttlMs, this.limits);
        checkSession(req);
        // Leases are replicated state: every node knows (nearly) how many there are.
        if (this.store.counts().leases >= this.limits.maxLeases)
          throw new ApiError(
            'limit-exceeded',
            `the cluster already holds ${this.limits.maxLeases} leases (${flagOf('maxLeases')}); revoke leases no longer used, or raise the limit`,
          );
        return this.write('lease', 'Grant', req, ctx, this.env({ type: 'leaseGrant', ttlMs: req.ttlMs }, req), (g) => ({
          id: g.id,
          ttlMs: g.ttlMs,
        }));
      }),
      Revoke: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        checkLeaseId(req.id);
        return this.write('lease', 'Revoke', req, ctx, { cmd: { type: 'leaseRevoke', id: req.id } }, (r) => ({
          revision: r.revision,
        }));
      }),
      KeepAliveOnce: this.unary(5000, (req, ctx) => this.keepAliveOnce(req.id, req, ctx)),
      KeepAlive: (call) => {
        const ctx = this.context(call as grpc.ServerDuplexStream<unknown, unknown>, null);
        // Requests are answered one at a time, in order, and only while the client reads
        // the answers (gRPC flow control): a client that sends without reading fills
        // `queue` up to the limit and is then refused, instead of growing a promise chain.
        const queue: { id: number }[] = [];
        let busy = false;
        let blocked = false;
        let ended = false;
        let endRequested = false;
        const fail = (err: unknown) => {
          if (ended) return;
          ended = true;
          call.emit('error', toStatus(err));
        };
        const pump = async () => {
          if (busy) return;
          busy = true;
          try {
            while (!ended && !blocked && queue.length > 0) {
              const req = queue.shift()!;
              checkLeaseId(req.id);
              const answer = await this.keepAliveOnce(req.id, req, { ...ctx, deadline: Date.now() + 2000 });
              if (ended) return;
              if (!call.write(answer)) blocked = true;
            }
            if (endRequested && queue.length === 0 && !ended) {
              ended = true;
              call.end();
            }
          } catch (err) {
            // Not the leader and no leader reachable: end the stream so the client
            // moves to another node; its lease clock keeps running meanwhile.
            fail(err);
          } finally {
            busy = false;
          }
        };
        this.trackStream(call as grpc.ServerDuplexStream<unknown, unknown>, () => {
          ended = true;
          queue.length = 0;
        });
        call.on('drain', () => {
          blocked = false;
          void pump();
        });
        call.on('data', (req: { id: number }) => {
          if (ended) return;
          if (queue.length >= this.limits.maxKeepAliveInflight)
            return fail(
              new ApiError(
                'limit-exceeded',
                `more than ${this.limits.maxKeepAliveInflight} keep-alive requests in flight on one stream ` +
                  `(${flagOf('maxKeepAliveInflight')}); read the answers before sending more`,
              ),
            );
          queue.push(req);
          void pump();
        });
        call.on('end', () => {
          endRequested = true;
          void pump();
        });
      },
      TimeToLive: this.unary(5000, async (req, ctx) => {
        checkLeaseId(req.id);
        if (!this.node.isLeader()) return this.forward('lease', 'TimeToLive', req, ctx);
        if (!this.node.isLeaderCaughtUp()) throw new ApiError('catching-up', 'the leader is still catching up on its log; retry');
        const info = this.store.leaseInfo(req.id);
        if (!info) return { id: req.id, ttlMs: -1, grantedTtlMs: 0, keys: [] };
        return { id: req.id, ttlMs: this.keeper.remainingMs(req.id), grantedTtlMs: info.ttlMs, keys: req.keys ? info.keys : [] };
      }),
    };
  }

  private async keepAliveOnce(id: number, req: { id: number }, ctx: CallContext): Promise<{ id: number; ttlMs: number }> {
    // Only a leader holding a valid lease may vouch for a lease (a deposed or paused
    // leader must not extend it: isLeader() delivers missed ticks first), and only once
    // it has applied everything its predecessors committed (an expiry of this very
    // lease may be among it).
    if (this.node.isLeaderCaughtUp()) return { id, ttlMs: this.keeper.keepAlive(id) };
    if (this.node.isLeader()) throw new ApiError('catching-up', 'the leader is still catching up on its log; retry');
    return this.forward('lease', 'KeepAliveOnce', req, ctx);
  }

  // -------------------------------------------------------------------------
  // Election and Lock

  private async grant(
    prefix: string,
    name: string,
    lease: number,
    value: Uint8Array,
    ctx: CallContext,
  ): Promise<{ key: string; rev: number }> {
    const key = `${prefix}${name}/${lease.toString(16).padStart(16, '0')}`;
    const queue = `${prefix}${name}/`;
    const waiting = this.waiters.get(queue) ?? 0;
    if (waiting >= this.limits.maxWaitersPerName)
      throw new ApiError(
        'limit-exceeded',
        `${this.limits.maxWaitersPerName} calls already wait on '${name}' at this node (${flagOf('maxWaitersPerName')}); retry later`,
      );
    this.waiters.set(queue, waiting + 1);
    try {
      return await this.grantWaiting(key, queue, lease, value, ctx);
    } finally {
      const n = (this.waiters.get(queue) ?? 1) - 1;
      if (n === 0) this.waiters.delete(queue);
      else this.waiters.set(queue, n);
    }
  }

  private async grantWaiting(
    key: string,
    queue: string,
    lease: number,
    value: Uint8Array,
    ctx: CallContext,
  ): Promise<{ key: string; rev: number }> {
    // Create our key, or find it if an earlier attempt with this lease already did (a
    // retried Campaign after a failover): first come, first served by creation revision.
    const r = await this.proposeLocal(
      {
        cmd: {
          type: 'txn',
          compare: [{ key, target: 'CREATE_REVISION', result: 'EQUAL', number: 0 }],
          success: [{ type: 'put', key, value, lease }],
          failure: [{ type: 'get', key }],
        },
      },
      ctx.signal,
    );
    const found = r.responses[0];
    const rev = r.succeeded ? r.revision : found?.type === 'get' ? (found.kv?.createRevision ?? 0) : 0;
    if (rev === 0) throw new ApiError('grant-lost', `lease ${lease} ended while campaigning`);
    await this.waitUntilFirst(queue, key, rev, ctx);
    return { key, rev };
  }

  /** Resolve once `key` (created at `rev`) is the oldest key under `prefix`; fail if it disappears. */
  private waitUntilFirst(prefix: string, key: string, rev: number, ctx: CallContext): Promise<void> {
    return new Promise((resolve, reject) => {
      let cancel: (() => void) | null = null;
      const finish = (err?: Error) => {
        cancel?.();
        ctx.signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        const mine = this.store.get(key);
        if (!mine || mine.createRevision !== rev)
          return finish(new ApiError('grant-lost', `${key} is gone (its lease ended) before it was granted`));
        const first = this.first(prefix);
        if (first?.key === key) finish();
      };
      const onAbort = () =>
        finish(new ApiError('timeout', `not granted before the deadline; ${key} keeps its place in the queue while its lease lives`));
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      cancel = this.store.watchKeys(prefix, true, check);
      check();
    });
  }

  /** The holder of an election or lock: its oldest key, from the store's creation-order index (no scan of the queue). */
  private first(prefix: string): KeyValue | null {
    return this.store.oldest(prefix);
  }

  private leaderResponse(name: string): LeaderResponse {
    const kv = this.first(`${ELECTION_PREFIX}${name}/`);
    return kv
      ? { found: true, kv: pbKv(kv), fencingToken: kv.createRevision, revision: this.store.revision }
      : { found: false, revision: this.store.revision };
  }

  private checkLeaderKey(k: LeaderKey__Output | null): LeaderKey__Output {
    if (!k || !k.key.startsWith(ELECTION_PREFIX))
      throw new ApiError('invalid-argument', 'leader must be the LeaderKey returned by Campaign');
    return k;
  }

  private electionHandlers(): ElectionHandlers {
    return {
      Campaign: this.unary(
        this.limits.grantTimeoutMs,
        async (req, ctx) => {
          checkName(req.name, this.limits, 'election');
          checkLeaseId(req.lease);
          if (req.lease === 0) throw new ApiError('invalid-argument', 'campaign needs a lease (grant one with Lease.Grant)');
          const value = bytes(req.value);
          checkValue(value, this.limits);
          if (!this.hasLeaderRole()) return this.forward('election', 'Campaign', req, ctx);
          const { key, rev } = await this.grant(ELECTION_PREFIX, req.name, req.lease, value, ctx);
          return { leader: { name: req.name, key, rev, lease: req.lease }, fencingToken: rev };
        },
        true,
      ),
      Proclaim: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        const k = this.checkLeaderKey(req.leader);
        const value = bytes(req.value);
        checkValue(value, this.limits);
        if (!this.hasLeaderRole()) return this.forward('election', 'Proclaim', req, ctx);
        const r = await this.proposeLocal(
          {
            cmd: {
              type: 'txn',
              compare: [{ key: k.key, target: 'CREATE_REVISION', result: 'EQUAL', number: k.rev }],
              success: [{ type: 'put', key: k.key, value, lease: k.lease }],
              failure: [],
            },
          },
          ctx.signal,
        );
        if (!r.succeeded) throw new ApiError('not-holder', `no longer the leader of ${k.name}: ${k.key} (revision ${k.rev}) is gone`);
        return { revision: r.revision };
      }),
      Leader: this.unary(DEFAULT_READ_TIMEOUT_MS, async (req, ctx) => {
        checkName(req.name, this.limits, 'election');
        await this.linearizable(false, ctx);
        return this.leaderResponse(req.name);
      }),
      Observe: (call) => {
        const release = this.openStream(call, () => checkName(call.request.name, this.limits, 'election'));
        if (release === null) return;
        const o = new ObserveStream(call, this.store, `${ELECTION_PREFIX}${call.request.name}/`, () =>
          this.leaderResponse(call.request.name),
        );
        this.trackStream(call as grpc.ServerWritableStream<unknown, unknown>, () => {
          o.close();
          release();
        });
        o.start();
      },
      Resign: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        const k = this.checkLeaderKey(req.leader);
        if (!this.hasLeaderRole()) return this.forward('election', 'Resign', req, ctx);
        const r = await this.proposeLocal(
          {
            cmd: {
              type: 'txn',
              compare: [{ key: k.key, target: 'CREATE_REVISION', result: 'EQUAL', number: k.rev }],
              success: [{ type: 'delete', key: k.key, prefix: false }],
              failure: [],
            },
          },
          ctx.signal,
        );
        return { revision: r.revision };
      }),
    };
  }

  private lockHandlers(): LockHandlers {
    return {
      Lock: this.unary(
        this.limits.grantTimeoutMs,
        async (req, ctx) => {
          checkName(req.name, this.limits, 'lock');
          checkLeaseId(req.lease);
          if (req.lease === 0) throw new ApiError('invalid-argument', 'a lock needs a lease (grant one with Lease.Grant)');
          if (!this.hasLeaderRole()) return this.forward('lock', 'Lock', req, ctx);
          const { key, rev } = await this.grant(LOCK_PREFIX, req.name, req.lease, new Uint8Array(0), ctx);
          return { key, fencingToken: rev };
        },
        true,
      ),
      Unlock: this.unary(DEFAULT_WRITE_TIMEOUT_MS, async (req, ctx) => {
        if (!req.key.startsWith(LOCK_PREFIX)) throw new ApiError('invalid-argument', 'key must be the key returned by Lock');
        if (!this.hasLeaderRole()) return this.forward('lock', 'Unlock', req, ctx);
        const r = await this.proposeLocal({ cmd: { type: 'delete', key: req.key, prefix: false } }, ctx.signal);
        return { revision: r.revision };
      }),
    };
  }
}
