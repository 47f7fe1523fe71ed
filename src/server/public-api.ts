// The public gRPC API on the client address: leaderd.v1.Cluster, gRPC health checking
// and server reflection. Answers come from the local node's state, never waiting on a
// quorum (GetLeader, GetStatus), after the node has caught up on missed ticks.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import type { Logger } from 'pino';
import type { ClusterHandlers } from '../gen/leaderd/v1/Cluster.js';
import type { LeaderInfo } from '../gen/leaderd/v1/LeaderInfo.js';
import type { SnapshotChunk } from '../gen/leaderd/v1/SnapshotChunk.js';
import { loadDefinition, loadPublicApi } from '../transport/protos.js';
import { NodeError, type LeaderdNode, type LeaderView } from './node.js';
import { parseAddress, parseId } from './config.js';
import type { CoordinationService } from './coordination.js';
import { DEFAULT_LIMITS } from './limits.js';
import { VERSION } from '../version.js';
import { toStatus } from '../api/errors.js';

const CLUSTER_SERVICE = 'leaderd.v1.Cluster';
/** Well under the client's 4 MiB default receive limit. */
const SNAPSHOT_CHUNK_BYTES = 1 << 20;

function toLeaderInfo(l: LeaderView): LeaderInfo {
  return { leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term };
}

/** The gRPC status for an error thrown by the node: the one error contract (src/api/errors.ts). */
/** A membership change waits at most until the call's deadline (60 s without one). */
function deadlineSignal(deadline: grpc.Deadline): AbortSignal {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  const ms = Number.isFinite(at) ? Math.max(0, at - Date.now()) : 60_000;
  return AbortSignal.timeout(Math.min(ms, 600_000));
}

function memberIdProblem(id: string): string | null {
  try {
    parseId(id, 'id');
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function addressProblem(address: string, what: string): string | null {
  try {
    parseAddress(address, what);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export function statusFor(err: unknown): grpc.StatusObject {
  return toStatus(err);
}

export interface PublicServerOptions {
  /** Listener credentials (TLS); plaintext when absent. */
  readonly credentials?: grpc.ServerCredentials;
  /** Run before every handler: authentication and roles (security/auth.ts). */
  readonly interceptors?: grpc.ServerInterceptor[];
  /** Serve gRPC server reflection; default true. */
  readonly reflection?: boolean;
}

export class PublicServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', [CLUSTER_SERVICE]: 'NOT_SERVING' });
  private readonly unsubscribe: () => void;
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, LeaderInfo>>();

  constructor(
    private readonly node: LeaderdNode,
    private readonly log: Logger,
    private readonly coordination: CoordinationService | null = null,
    private readonly opts: PublicServerOptions = {},
  ) {
    this.server = new grpc.Server({
      // Oversized requests are refused by gRPC itself with RESOURCE_EXHAUSTED.
      'grpc.max_receive_message_length': DEFAULT_LIMITS.maxRequestBytes,
      interceptors: opts.interceptors ?? [],
    });
    const api = loadPublicApi();
    const handlers: ClusterHandlers = {
      GetLeader: (_call, cb) => cb(null, toLeaderInfo(node.leader())),
      GetStatus: (_call, cb) => {
        const s = node.status();
        cb(null, { ...s, refusedPeers: [...s.refusedPeers], version: VERSION, ...coordination?.storeUse() });
      },
      ListMembers: (_call, cb) => cb(null, { members: node.members() }),
      WatchLeader: (call) => {
        let release = () => {};
        try {
          if (coordination) release = coordination.admitStream(call.getPeer());
        } catch (err) {
          call.emit('error', toStatus(err));
          return;
        }
        this.streams.add(call);
        const off = node.onLeaderChange((l) => call.write(toLeaderInfo(l)));
        const end = () => {
          off();
          release();
          this.streams.delete(call);
        };
        call.on('cancelled', end);
        call.on('close', end);
        call.on('error', end);
        call.write(toLeaderInfo(node.leader()));
      },
      TransferLeader: (call, cb) => {
        node
          .transferLeadership(call.request.targetId || undefined)
          .then((l) => cb(null, { leader: toLeaderInfo(l) }))
          .catch((err) => cb(statusFor(err)));
      },
      AddMember: (call, cb) => {
        const r = call.request;
        const bad =
          memberIdProblem(r.id) ?? addressProblem(r.peerAddress, 'peer_address') ?? addressProblem(r.clientAddress, 'client_address');
        if (bad !== null) return cb(statusFor(new NodeError('invalid', bad)));
        const rec = {
          peerAddress: r.peerAddress,
          clientAddress: r.clientAddress,
          ...(r.priority !== undefined ? { priority: r.priority } : {}),
        };
        node
          .addMember(r.id, rec, r.learner, deadlineSignal(call.getDeadline()))
          .then((members) => cb(null, { members }))
          .catch((err) => cb(statusFor(err)));
      },
      RemoveMember: (call, cb) => {
        const bad = memberIdProblem(call.request.id);
        if (bad !== null) return cb(statusFor(new NodeError('invalid', bad)));
        node
          .removeMember(call.request.id, deadlineSignal(call.getDeadline()))
          .then((members) => cb(null, { members }))
          .catch((err) => cb(statusFor(err)));
      },
      PromoteMember: (call, cb) => {
        const bad = memberIdProblem(call.request.id);
        if (bad !== null) return cb(statusFor(new NodeError('invalid', bad)));
        node
          .promoteMember(call.request.id, deadlineSignal(call.getDeadline()))
          .then((members) => cb(null, { members }))
          .catch((err) => cb(statusFor(err)));
      },
      UpdateMember: (call, cb) => {
        const r = call.request;
        const bad =
          memberIdProblem(r.id) ?? (r.priority === undefined && r.drained === undefined ? 'name a priority or drained to change' : null);
        if (bad !== null) return cb(statusFor(new NodeError('invalid', bad)));
        const change = {
          ...(r.priority !== undefined ? { priority: r.priority } : {}),
          ...(r.drained !== undefined ? { drained: r.drained } : {}),
        };
        node
          .updateMember(r.id, change, deadlineSignal(call.getDeadline()))
          .then((members) => cb(null, { members }))
          .catch((err) => cb(statusFor(err)));
      },
      Snapshot: (call) => {
        void this.sendSnapshot(call);
      },
    };
    this.server.addService(api.leaderd.v1.Cluster.service, handlers);
    coordination?.register(this.server);
    this.health.addToServer(this.server);
    if (opts.reflection ?? true) new ReflectionService(loadDefinition('leaderd/v1')).addToServer(this.server);
    this.unsubscribe = node.onLeaderChange((l) => this.setHealth(l));
    this.setHealth(node.leader());
  }

  private async sendSnapshot(call: grpc.ServerWritableStream<unknown, SnapshotChunk>): Promise<void> {
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    try {
      const snap = await this.node.captureSnapshot(AbortSignal.any([ac.signal, deadlineSignal(call.getDeadline())]));
      try {
        const total = snap.data.byteLength;
        const header = { clusterId: this.node.clusterId, index: snap.index, term: snap.term, totalBytes: total, sha256: snap.sha256 };
        let off = 0;
        do {
          if (ac.signal.aborted) return;
          // Read from the node's spool a chunk at a time; a slow reader holds one chunk here.
          const data = snap.data.subarray(off, Math.min(off + SNAPSHOT_CHUNK_BYTES, total));
          if (!call.write(off === 0 ? { ...header, data } : { data }))
            await new Promise<void>((resolve) => {
              call.once('drain', resolve);
              ac.signal.addEventListener('abort', () => resolve(), { once: true });
            });
          off += data.length;
        } while (off < total);
        call.end();
      } finally {
        snap.release();
      }
    } catch (err) {
      if (!ac.signal.aborted) call.emit('error', statusFor(err));
    }
  }

  private setHealth(l: LeaderView): void {
    const status = l.leaderId !== '' ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    this.health.setStatus(CLUSTER_SERVICE, status);
  }

  /** Bind to host:port; returns the bound port (port 0 picks one). */
  listen(address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, this.opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(new Error(`cannot listen on ${address} for clients: ${err.message}`));
        else resolve(port);
      });
    });
  }

  close(): Promise<void> {
    this.unsubscribe();
    this.coordination?.close();
    for (const s of this.streams) s.end();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
