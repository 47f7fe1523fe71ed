// The coordination API's limits and their defaults, apart from the checks (limits.ts) so
// that the CLI can list the flags without loading gRPC.

export interface Limits {
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** Whole request, enforced by gRPC itself (grpc.max_receive_message_length). */
  readonly maxRequestBytes: number;
  readonly maxTxnOps: number;
  readonly minLeaseTtlMs: number;
  readonly maxLeaseTtlMs: number;
  readonly maxNameBytes: number;
  /** Watch streams (KV.Watch, Election.Observe, Cluster.WatchLeader) one node serves at once (--max-watches). */
  readonly maxWatches: number;
  /** ... and over one client connection (--max-watches-per-connection). */
  readonly maxWatchesPerConnection: number;
  /** Live leases in the cluster; Lease.Grant is refused beyond (--max-leases). */
  readonly maxLeases: number;
  /** Campaign or Lock calls waiting on one election or lock name at once (--max-waiters-per-name). */
  readonly maxWaitersPerName: number;
  /** Keep-alive requests received on one Lease.KeepAlive stream and not yet answered (--max-keepalive-inflight). */
  readonly maxKeepAliveInflight: number;
  /**
   * Unary calls one client connection may have in progress at this node
   * (--max-inflight-per-connection); more wait their turn, in order, up to their deadline,
   * and at most 16 times as many wait before the next is refused.
   */
  readonly maxInflightPerConnection: number;
  /** How long Campaign or Lock waits when the call has no deadline of its own (--grant-timeout-ms). */
  readonly grantTimeoutMs: number;
  /**
   * Storage quota in bytes (--quota-bytes): keys and values as counted by kvBytes. A write
   * that would grow the store past it is refused; reads, deletes and revokes still work.
   */
  readonly quotaBytes: number;
  /** Payload bytes a leader may hold uncommitted before refusing proposals as overloaded (--max-uncommitted-bytes). */
  readonly maxUncommittedBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxKeyBytes: 4096,
  maxValueBytes: 1 << 20,
  maxRequestBytes: (3 << 20) / 2,
  maxTxnOps: 128,
  minLeaseTtlMs: 500,
  maxLeaseTtlMs: 24 * 3600 * 1000,
  maxNameBytes: 512,
  maxWatches: 10_000,
  maxWatchesPerConnection: 1_000,
  maxLeases: 100_000,
  maxWaitersPerName: 1_000,
  maxKeepAliveInflight: 64,
  maxInflightPerConnection: 256,
  grantTimeoutMs: 60_000,
  // etcd's default backend quota; the state lives in memory, so leave it below RAM.
  quotaBytes: 2 * 1024 ** 3,
  maxUncommittedBytes: 64 << 20,
};

/**
 * The largest snapshot a node accepts from its leader (RaftConfig.maxSnapshotBytes), so a
 * faulty or forged transfer cannot make it buffer without bound. A snapshot holds the
 * keys and values the quota counts plus, per key, its revisions and lease, and the
 * leases, sessions and member records: twice the quota and 256 MiB covers those with
 * room, and never refuses a snapshot of a state the quota admitted.
 */
export function maxSnapshotBytesFor(quotaBytes: number): number {
  return Math.min(2 ** 32, 2 * quotaBytes + (256 << 20));
}

/** The limits `leaderd start` takes as flags (and config file keys): setting name -> field and help. */
export const LIMIT_FLAGS = {
  'max-watches': { field: 'maxWatches', help: 'watch streams (Watch, Observe, WatchLeader) this node serves at once' },
  'max-watches-per-connection': { field: 'maxWatchesPerConnection', help: 'watch streams over one client connection' },
  'max-leases': { field: 'maxLeases', help: 'live leases in the cluster; Lease.Grant is refused beyond' },
  'max-waiters-per-name': { field: 'maxWaitersPerName', help: 'Campaign/Lock calls waiting on one name at this node' },
  'max-keepalive-inflight': { field: 'maxKeepAliveInflight', help: 'unanswered requests on one Lease.KeepAlive stream' },
  'max-inflight-per-connection': {
    field: 'maxInflightPerConnection',
    help: 'unary calls one client connection has in progress at this node; more wait their turn',
  },
  'grant-timeout-ms': { field: 'grantTimeoutMs', help: 'how long Campaign/Lock wait when the call sets no deadline' },
  'max-uncommitted-bytes': {
    field: 'maxUncommittedBytes',
    help: 'payload a leader holds uncommitted before refusing writes (retryable RESOURCE_EXHAUSTED)',
  },
  'quota-bytes': { field: 'quotaBytes', help: 'storage quota: writes that would grow keys+values past it are refused' },
} as const satisfies Record<string, { field: keyof Limits; help: string }>;
export type LimitFlag = keyof typeof LIMIT_FLAGS;

/** The flag that sets a limit, for messages that tell the operator what to raise. */
export function flagOf(field: keyof Limits): string {
  const e = Object.entries(LIMIT_FLAGS).find(([, f]) => f.field === field);
  return e ? `--${e[0]}` : field;
}
