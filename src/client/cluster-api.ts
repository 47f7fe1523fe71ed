// leaderd.v1.Cluster for LeaderdClient: who leads, each node's status, membership,
// switchover, the leader watch, backups, health checks.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { LeaderInfo__Output } from '../gen/leaderd/v1/LeaderInfo.js';
import type { NodeStatus__Output } from '../gen/leaderd/v1/NodeStatus.js';
import type { Member__Output } from '../gen/leaderd/v1/Member.js';
import type { SnapshotChunk__Output } from '../gen/leaderd/v1/SnapshotChunk.js';
import { LeaderdError, toLeaderdError } from './errors.js';
import { service as healthService } from 'grpc-health-check';
import { channelFor } from '../security/client-credentials.js';
import type { LeaderInfo } from './types.js';
import { Invoker, type UnaryStart } from './invoker.js';
import type { ClusterSnapshot, ClusterSnapshotHead, NodeStatus, Member } from './leaderd-client.js';

type HealthClient = grpc.Client & {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
};

export abstract class ClusterApi extends Invoker {
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
    m: { id: string; peerAddress: string; clientAddress: string; learner?: boolean; priority?: number },
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Member[]> {
    const req = {
      id: m.id,
      peerAddress: m.peerAddress,
      clientAddress: m.clientAddress,
      learner: m.learner ?? false,
      ...(m.priority !== undefined ? { priority: m.priority } : {}),
    };
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

  /**
   * Changes a member's priority or drained flag (replicated), answered by the leader once
   * applied. A drained leader hands leadership over right after; this does not wait for it.
   */
  async updateMember(
    id: string,
    change: { priority?: number; drained?: boolean },
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Member[]> {
    return this.memberChange((s, o, cb) => s.cluster.UpdateMember({ id, ...change }, o, cb), opts);
  }

  protected async memberChange(
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
   * A consistent copy of the cluster's replicated state (Cluster.Snapshot, admin role),
   * held in memory: `snapshotInto` with a sink that keeps the chunks. For a large state
   * use `snapshotInto` with a sink that writes them out (as `leaderd snapshot save` does).
   */
  async snapshot(opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ClusterSnapshot> {
    let chunks: Buffer[] = [];
    const head = await this.snapshotInto(
      {
        begin: () => {
          chunks = [];
        },
        write: (chunk) => {
          chunks.push(chunk);
        },
      },
      opts,
    );
    return { clusterId: head.clusterId, index: head.index, term: head.term, data: Buffer.concat(chunks), endpoint: head.endpoint };
  }

  /**
   * A consistent copy of the cluster's replicated state (Cluster.Snapshot, admin role),
   * for `leaderd snapshot save`: every write acknowledged before the call is in it. The
   * chunks go to `sink` as they arrive, never gathered here: a state of gigabytes passes
   * through a few MiB of memory. Tries each endpoint in turn on a retryable failure;
   * each attempt starts with `sink.begin` (the sink drops what an attempt that failed on
   * another endpoint gave it). A `write` that returns a promise is awaited before the
   * next chunk is read, so a slow disk slows the stream instead of filling memory. The
   * data is checked as it passes against the length and SHA-256 the node declared in its
   * first chunk: a mismatch is DATA_LOSS, after which the sink's data must not be used.
   * An error thrown by the sink ends the call with that error, untouched.
   */
  async snapshotInto(sink: ClusterSnapshotSink, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ClusterSnapshotHead> {
    const sig = this.linked(opts.signal);
    const timeoutMs = opts.timeoutMs ?? Math.max(this.timeoutMs, 60_000);
    let avoid: string | undefined;
    let failed: LeaderdError | undefined;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      const endpoint = this.roundRobin(avoid);
      let head: ClusterSnapshotHead | undefined;
      let received = 0;
      const hash = createHash('sha256');
      const mismatch = () =>
        new LeaderdError(
          'internal',
          grpc.status.DATA_LOSS,
          `${endpoint} sent a snapshot that does not match its own length and checksum (${received} of ${head?.dataBytes ?? '?'} bytes)`,
          undefined,
          true,
        );
      try {
        const deadline = Date.now() + timeoutMs;
        for await (const c of this.serverStream<SnapshotChunk__Output>(endpoint, (s) => s.cluster.Snapshot({}, { deadline }), sig)) {
          if (head === undefined) {
            head = {
              clusterId: c.clusterId,
              index: c.index,
              term: c.term,
              dataBytes: c.totalBytes,
              sha256: c.sha256.toString('hex'),
              endpoint,
            };
            await toSink(() => sink.begin(head!));
          }
          received += c.data.length;
          if (received > head.dataBytes) throw mismatch();
          hash.update(c.data);
          await toSink(() => sink.write(c.data));
        }
      } catch (err) {
        if (err instanceof SinkFailure) throw err.cause;
        if (err instanceof LeaderdError && err.code === grpc.status.DATA_LOSS) throw err;
        if (sig.aborted) throw this.abortError(sig, undefined);
        failed = toLeaderdError(err, false, true, endpoint);
        if (!failed.retryable) throw failed;
        avoid = endpoint;
        continue;
      }
      if (sig.aborted) throw this.abortError(sig, undefined);
      if (head === undefined || received !== head.dataBytes || hash.digest('hex') !== head.sha256) throw mismatch();
      return head;
    }
    throw failed!;
  }
}

/** Where `snapshotInto` puts a snapshot as it arrives. */
export interface ClusterSnapshotSink {
  /** An attempt starts (on `head.endpoint`): drop whatever an earlier attempt wrote. */
  begin(head: ClusterSnapshotHead): void | Promise<void>;
  /** The next piece of the data, in order; the call waits for a returned promise. */
  write(chunk: Buffer): void | Promise<void>;
}

/** An error thrown by the sink, carried past the endpoint retry (it is not the endpoint's fault). */
class SinkFailure {
  constructor(readonly cause: unknown) {}
}

async function toSink(call: () => void | Promise<void>): Promise<void> {
  try {
    await call();
  } catch (err) {
    throw new SinkFailure(err);
  }
}
