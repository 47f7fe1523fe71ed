// Typed client errors with a closed set of kinds. Retry decisions are made from the gRPC
// status code and the server's machine-readable trailing metadata only, never from a
// message text (mongodb's error labels are the model: the label decides, not the prose).
import * as grpc from '@grpc/grpc-js';
import { ERROR_CONTRACT, ERROR_KIND_KEY, OUTCOME_KEY, isErrorKind } from '../api/errors.js';

/** Trailing metadata on a failed write: may it have taken effect? */
export const OUTCOME_METADATA_KEY = OUTCOME_KEY;
/** Trailing metadata naming the error kind of the one error contract (src/api/errors.ts). */
export const ERROR_KIND_METADATA_KEY = ERROR_KIND_KEY;

/**
 * Trailing metadata on a Watch that ended because the revision it owed is gone (OUT_OF_RANGE:
 * compacted, or replaced by a snapshot install; RESOURCE_EXHAUSTED: the client read too slowly):
 * the oldest revision still available.
 */
export const OLDEST_REVISION_METADATA_KEY = 'leaderd-oldest-revision';

export type WriteOutcome = 'not-applied' | 'unknown';

export type LeaderdErrorKind =
  /** No leader / no quorum / connection failure: transient. */
  | 'unavailable'
  /** The node answering cannot serve this request; another node (the leader) can. */
  | 'not-leader'
  /** The call's deadline passed before an answer. */
  | 'deadline'
  | 'invalid-argument'
  | 'not-found'
  | 'failed-precondition'
  /** The write's session expired or is unknown: it was refused and never will be applied. */
  | 'session-expired'
  | 'out-of-range'
  | 'resource-exhausted'
  /** Cancelled by the caller (AbortSignal) or by close(). */
  | 'cancelled'
  /** No valid token or client certificate (UNAUTHENTICATED): not retried. */
  | 'unauthenticated'
  /** The token's role or prefixes do not allow the call (PERMISSION_DENIED): not retried. */
  | 'permission-denied'
  /** The client was closed. */
  | 'closed'
  /** Anything else the server or transport reported (INTERNAL, UNKNOWN, ...). */
  | 'internal';

export class LeaderdError extends Error {
  override readonly name = 'LeaderdError';
  /** For a watch that cannot continue (kind out-of-range or resource-exhausted): the oldest revision still available. */
  readonly oldestRevision: number | undefined;
  constructor(
    readonly kind: LeaderdErrorKind,
    /** The gRPC status code of the last attempt. */
    readonly code: grpc.status,
    message: string,
    /** For a failed write: whether it may have taken effect; undefined for reads and unknown cases. */
    readonly outcome: WriteOutcome | undefined,
    /** Transient: the same request may succeed later (the client already retried within its deadline). */
    readonly retryable: boolean,
    /** The endpoint of the last attempt, if any. */
    readonly endpoint?: string,
    options?: { cause?: unknown; oldestRevision?: number },
  ) {
    super(message, options);
    this.oldestRevision = options?.oldestRevision;
  }
}

export type LeaseLostReason =
  /** The client could no longer prove the lease alive: validUntil passed on the monotonic clock. */
  | 'expired'
  /** The server said the lease no longer exists (keep-alive answered ttl_ms = 0). */
  | 'gone'
  /** revoke() was called. */
  | 'revoked'
  /** The client was closed. */
  | 'closed';

/** The reason an abort signal of a lease (and what depends on it) carries. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(
    readonly leaseId: number,
    readonly reason: LeaseLostReason,
    /** Monotonic time (the client's clock) until which the lease was proven alive. */
    readonly validUntil: number,
    /** The monotonic time at which the loss was detected. */
    readonly detectedAt: number,
  ) {
    super(`lease ${leaseId} lost (${reason}): proven valid until ${validUntil.toFixed(1)} ms, detected at ${detectedAt.toFixed(1)} ms`);
  }
}

export type LeadershipLostReason = 'lease-lost' | 'superseded' | 'resigned' | 'unlocked' | 'closed';

/** The reason an abort signal of a Leadership or LockHandle carries. */
export class LeadershipLostError extends Error {
  override readonly name = 'LeadershipLostError';
  constructor(
    readonly reason: LeadershipLostReason,
    readonly key: string,
    readonly token: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What the retry loop does with a failed attempt. */
export interface Classification {
  readonly kind: LeaderdErrorKind;
  readonly retryable: boolean;
  /** The leader hint is stale: ask again before the next attempt. */
  readonly rediscover: boolean;
}

/**
 * Classify a failed attempt by the error contract: the `leaderd-error` label decides
 * whether it is transient; a status without a label (transport failures, other servers)
 * is transient only when UNAVAILABLE or DEADLINE_EXCEEDED. `idempotent` says whether
 * re-sending is safe even if the failed attempt took effect: true for writes carrying
 * session + seq (the server applies a pair at most once, Raft thesis §6.3) and for
 * naturally idempotent requests (reads, Resign, Unlock, Proclaim, keep-alives).
 */
export function classify(
  code: grpc.status,
  outcome: WriteOutcome | undefined,
  errorKind: string | undefined,
  idempotent: boolean,
): Classification {
  const label = isErrorKind(errorKind) ? errorKind : null;
  const kind = clientKind(code, label);
  const transient = label ? ERROR_CONTRACT[label].transient : code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
  if (!transient) return { kind, retryable: false, rediscover: false };
  // A request that may have been applied is re-sent only if doing it twice is harmless.
  return { kind, retryable: outcome === 'unknown' ? idempotent : outcome === 'not-applied' || idempotent, rediscover: true };
}

function clientKind(code: grpc.status, label: string | null): LeaderdErrorKind {
  if (label === 'not-leader') return 'not-leader';
  if (label === 'session-expired') return 'session-expired';
  switch (code) {
    case grpc.status.UNAVAILABLE:
      return 'unavailable';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'deadline';
    case grpc.status.FAILED_PRECONDITION:
      return 'failed-precondition';
    case grpc.status.INVALID_ARGUMENT:
      return 'invalid-argument';
    case grpc.status.NOT_FOUND:
      return 'not-found';
    case grpc.status.OUT_OF_RANGE:
      return 'out-of-range';
    case grpc.status.RESOURCE_EXHAUSTED:
      return 'resource-exhausted';
    case grpc.status.CANCELLED:
      return 'cancelled';
    case grpc.status.UNAUTHENTICATED:
      return 'unauthenticated';
    case grpc.status.PERMISSION_DENIED:
      return 'permission-denied';
    default:
      return 'internal';
  }
}

function firstString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.toString('utf8');
}

export function outcomeOf(err: Partial<grpc.ServiceError>): WriteOutcome | undefined {
  const v = firstString(err.metadata, OUTCOME_METADATA_KEY);
  return v === 'not-applied' || v === 'unknown' ? v : undefined;
}

export function errorKindOf(err: Partial<grpc.ServiceError>): string | undefined {
  return firstString(err.metadata, ERROR_KIND_METADATA_KEY);
}

/** The status code of anything thrown by a grpc-js call (a non-gRPC error counts as UNKNOWN). */
export function codeOf(err: unknown): grpc.status {
  const c = (err as { code?: unknown })?.code;
  return typeof c === 'number' ? (c as grpc.status) : grpc.status.UNKNOWN;
}

/**
 * grpc-js fails a call with this when the channel has no connection to send it on (the
 * address refuses, or nothing was ever reached): the request never left this process, so
 * a write, even one unsafe to repeat (a membership change), may go to the next endpoint.
 * Without this, `members add` with a dead member first in its endpoints gave up at once.
 */
function neverSent(code: grpc.status, details: string | undefined): boolean {
  return code === grpc.status.UNAVAILABLE && (details ?? '').startsWith('No connection established');
}

/**
 * The LeaderdError for a failed call. `isWrite`: a write that failed without the server
 * saying otherwise (connection lost, deadline) has an unknown outcome.
 */
export function toLeaderdError(err: unknown, isWrite: boolean, idempotent: boolean, endpoint?: string): LeaderdError {
  if (err instanceof LeaderdError) return err;
  const se = err as Partial<grpc.ServiceError>;
  const code = codeOf(err);
  const outcome = outcomeOf(se) ?? (isWrite ? (neverSent(code, se.details) ? 'not-applied' : 'unknown') : undefined);
  const c = classify(code, outcome, errorKindOf(se), idempotent);
  const details = se.details || (err as Error)?.message || String(err);
  const oldest = Number(firstString(se.metadata, OLDEST_REVISION_METADATA_KEY));
  return new LeaderdError(
    c.kind,
    code,
    `${grpc.status[code] ?? code}${endpoint ? ` from ${endpoint}` : ''}: ${details}`,
    outcome,
    c.retryable,
    endpoint,
    Number.isSafeInteger(oldest) && oldest > 0 ? { cause: err, oldestRevision: oldest } : { cause: err },
  );
}
