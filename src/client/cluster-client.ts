// A client for leaderd.v1.Cluster over a list of endpoints (client addresses, like
// etcdctl's --endpoints). Each call goes to the first endpoint that answers within its
// deadline; watches move to another endpoint when theirs fails.
import * as grpc from '@grpc/grpc-js';
import type { ClusterClient as GrpcClusterClient } from '../gen/leaderd/v1/Cluster.js';
import type { LeaderInfo__Output } from '../gen/leaderd/v1/LeaderInfo.js';
import type { NodeStatus__Output } from '../gen/leaderd/v1/NodeStatus.js';
import type { Member__Output } from '../gen/leaderd/v1/Member.js';
import { loadPublicApi } from '../transport/protos.js';
import { sleep } from './backoff.js';
import { service as healthService } from 'grpc-health-check';
import { channelFor, tokenInterceptors, type ClientSecurity } from '../security/client-credentials.js';

export type LeaderInfo = LeaderInfo__Output & { readonly endpoint: string };
export type NodeStatus = NodeStatus__Output;
export type Member = Member__Output;

export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
}

export interface ClusterClientOptions {
  /** Deadline of each call, per endpoint tried; default 2000 ms. */
  readonly timeoutMs?: number;
  /** TLS and token for secured nodes. */
  readonly security?: ClientSecurity;
}

type HealthClient = grpc.Client & {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
};

export class ClusterClient {
  private readonly clients = new Map<string, GrpcClusterClient>();
  private readonly timeoutMs: number;
  private readonly security: ClientSecurity | undefined;
  private readonly interceptors: grpc.Interceptor[];

  constructor(
    readonly endpoints: readonly string[],
    opts: ClusterClientOptions = {},
  ) {
    if (endpoints.length === 0) throw new Error('no endpoints');
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.security = opts.security;
    this.interceptors = tokenInterceptors(opts.security);
  }

  private client(endpoint: string): GrpcClusterClient {
    let c = this.clients.get(endpoint);
    if (!c) {
      const Ctor = loadPublicApi().leaderd.v1.Cluster;
      const { creds, options } = channelFor(this.security, endpoint);
      c = new Ctor(endpoint, creds, {
        ...options,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        interceptors: this.interceptors,
      });
      this.clients.set(endpoint, c);
    }
    return c;
  }

  private deadline(): Date {
    return new Date(Date.now() + this.timeoutMs);
  }

  private unary<T>(
    endpoint: string,
    call: (c: GrpcClusterClient, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => void,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      call(this.client(endpoint), { deadline: this.deadline() }, (err, res) => {
        if (err) reject(err);
        else resolve(res as T);
      });
    });
  }

  /** Try each endpoint in turn; the first answer wins. */
  private async any<T>(f: (endpoint: string) => Promise<T>): Promise<T> {
    const errors: string[] = [];
    for (const e of this.endpoints) {
      try {
        return await f(e);
      } catch (err) {
        errors.push(`${e}: ${(err as grpc.ServiceError).details || (err as Error).message}`);
      }
    }
    throw new UnavailableError(`no endpoint answered (${errors.join('; ')})`);
  }

  getLeader(endpoint?: string): Promise<LeaderInfo> {
    const ask = (e: string) => this.unary<LeaderInfo__Output>(e, (c, o, cb) => c.GetLeader({}, o, cb)).then((l) => ({ ...l, endpoint: e }));
    return endpoint ? ask(endpoint) : this.any(ask);
  }

  /**
   * The node's gRPC health status (SERVING once it knows a leader). Health checks need no
   * token, so probes and load balancers can run without one.
   */
  health(endpoint: string): Promise<string> {
    const Ctor = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');
    const { creds, options } = channelFor(this.security, endpoint);
    const c = new Ctor(endpoint, creds, options) as unknown as HealthClient;
    return new Promise<string>((resolve, reject) => {
      c.Check({ service: '' }, { deadline: this.deadline() }, (err, res) => {
        c.close();
        if (err) reject(err);
        else resolve(res?.status ?? 'UNKNOWN');
      });
    });
  }

  getStatus(endpoint: string): Promise<NodeStatus> {
    return this.unary<NodeStatus__Output>(endpoint, (c, o, cb) => c.GetStatus({}, o, cb));
  }

  async listMembers(): Promise<Member[]> {
    return this.any((e) => this.unary<{ members: Member__Output[] }>(e, (c, o, cb) => c.ListMembers({}, o, cb)).then((r) => r.members));
  }

  /** Ask the leader to hand over leadership (to `targetId`, or the most up-to-date follower). */
  async transferLeader(targetId = ''): Promise<LeaderInfo> {
    const leader = await this.getLeader();
    if (leader.leaderId === '') throw new UnavailableError('no leader is known right now');
    const endpoint = leader.leaderAddress || leader.endpoint;
    return new Promise((resolve, reject) => {
      this.client(endpoint).TransferLeader(
        { targetId },
        { deadline: new Date(Date.now() + Math.max(this.timeoutMs, 10_000)) },
        (err, res) => {
          if (err) reject(err);
          else resolve({ ...(res!.leader ?? { leaderId: '', leaderAddress: '', term: 0 }), endpoint });
        },
      );
    });
  }

  /**
   * Every leadership change seen by the endpoint being watched, current value first.
   * When the stream breaks, it moves on to the next endpoint (and says so by yielding
   * that endpoint's current value). Ends when `signal` aborts.
   */
  async *watchLeader(signal: AbortSignal): AsyncGenerator<LeaderInfo> {
    let i = 0;
    let failures = 0;
    while (!signal.aborted) {
      const endpoint = this.endpoints[i % this.endpoints.length]!;
      const call = this.client(endpoint).WatchLeader({});
      const onAbort = () => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const l of call as AsyncIterable<LeaderInfo__Output>) {
          failures = 0;
          yield { ...l, endpoint };
        }
      } catch {
        // fall through to the next endpoint
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      if (signal.aborted) return;
      i++;
      failures++;
      const backoff = Math.min(1000, 50 * 2 ** Math.min(failures, 5));
      await sleep(backoff, signal);
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
