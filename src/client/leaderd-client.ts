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
import type { NodeStatus__Output } from '../gen/leaderd/v1/NodeStatus.js';
import type { Member__Output } from '../gen/leaderd/v1/Member.js';
import { LeaderdError, LeadershipLostError, LeaseLostError } from './errors.js';
import type { LeaseHandle } from './lease-handle.js';
import { LockRequest } from './lock-request.js';
import type { ClientSecurity } from '../security/client-credentials.js';
import { LockApi } from './lock-api.js';

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

/** What `LeaderdClient.snapshotInto()` returns: the snapshot's description, its data gone to the sink. */
export interface ClusterSnapshotHead {
  readonly clusterId: string;
  readonly index: number;
  readonly term: number;
  /** The data's length and hex SHA-256, as the node declared them and as the data was checked against. */
  readonly dataBytes: number;
  readonly sha256: string;
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

/**
 * The client: every service of leaderd.v1 over a list of endpoints (see the module
 * comment). Built from one module per service over one invoker.
 */
export class LeaderdClient extends LockApi {
  constructor(opts: LeaderdClientOptions) {
    super(opts);
  }
}

export { LeaderdError, LeaseLostError, LeadershipLostError };
export type { LeaderdErrorKind, WriteOutcome, LeaseLostReason, LeadershipLostReason } from './errors.js';
export type { LeaseHandle };
export { LockRequest };
export type { ClusterSnapshotSink } from './cluster-api.js';
export { textOf, jsonOf } from './values.js';
export type * from './types.js';
