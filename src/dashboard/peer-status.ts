// How the serving node asks another member for its status: the public Cluster.GetStatus
// RPC on the member's client address, with a short deadline. A node knows other members'
// state only this way; a dead or partitioned member must show as unreachable on the page,
// never hold it up, so every call is bounded and a member is never asked twice at once.
import * as grpc from '@grpc/grpc-js';
import type { ClusterClient as GrpcClusterClient } from '../gen/leaderd/v1/Cluster.js';
import type { NodeStatus__Output } from '../gen/leaderd/v1/NodeStatus.js';
import { loadPublicApi } from '../transport/protos.js';

export type PeerStatus = NodeStatus__Output;

export type PeerStatusError = { readonly kind: 'unreachable' | 'refused'; readonly message: string };

export interface PeerStatusSource {
  /** The member's status, or why it could not be had; never rejects, resolves within about `timeoutMs`. */
  getStatus(address: string, timeoutMs: number): Promise<PeerStatus | PeerStatusError>;
  close(): void;
}

export function isPeerStatusError(x: PeerStatus | PeerStatusError): x is PeerStatusError {
  return 'kind' in x && 'message' in x && !('nodeId' in x);
}

/** Channels to other members' client listeners, with the credentials a follower forwards with. */
export class GrpcPeerStatusSource implements PeerStatusSource {
  private readonly clients = new Map<string, GrpcClusterClient>();

  constructor(
    private readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    private readonly channelOptions: grpc.ChannelOptions = {},
  ) {}

  getStatus(address: string, timeoutMs: number): Promise<PeerStatus | PeerStatusError> {
    let c = this.clients.get(address);
    if (!c) {
      const Ctor = loadPublicApi().leaderd.v1.Cluster;
      c = new Ctor(address, this.credentials, {
        ...this.channelOptions,
        // A restarted member is found again within half a second of coming back.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 500,
      });
      this.clients.set(address, c);
    }
    return new Promise((resolve) => {
      c.GetStatus({}, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) {
          const refused = err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED;
          resolve({ kind: refused ? 'refused' : 'unreachable', message: err.details || err.message });
        } else resolve(res!);
      });
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
