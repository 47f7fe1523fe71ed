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
import type { ClusterSnapshot, NodeStatus, Member } from './leaderd-client.js';

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
}
