// The one error contract of leaderd's public API, shared by every service (KV, Lease,
// Election, Lock, Cluster), by the forwarder and by the client. Each error kind maps to
// exactly one gRPC status and travels as the trailing metadata `leaderd-error: <kind>`;
// `leaderd-outcome` says whether a failed write may have taken effect.
//
// Why one table: when two places mapped the same kind differently (not-leader was
// FAILED_PRECONDITION without a label from Cluster, UNAVAILABLE with one from KV), the
// client retried one and threw the other. Decisions are made from the kind, never from
// the message text.
import * as grpc from '@grpc/grpc-js';

export const ERROR_KIND_KEY = 'leaderd-error';
export const OUTCOME_KEY = 'leaderd-outcome';

export type Outcome = 'not-applied' | 'unknown';

/**
 * When `leaderd-outcome` is sent, and with what value:
 * - 'not-applied' / 'unknown': always that value (the kind alone decides);
 * - 'reported': the value the failing layer knew (a refusal before proposing is
 *   not-applied; a write lost after it entered the log is unknown);
 * - 'none': not about a write (reads, streams), no outcome is sent.
 */
export type OutcomeRule = Outcome | 'reported' | 'none';

export type ErrorKind =
  /** This node is not (or no longer) the leader; another node can serve the request. */
  | 'not-leader'
  /** No leader known, no quorum, or the node is stopping: transient. */
  | 'unavailable'
  /** A leadership transfer is in progress. */
  | 'transferring'
  /** A membership change is still pending. */
  | 'conf-change-pending'
  /** The leader has not yet applied everything its predecessors committed. */
  | 'catching-up'
  /** A snapshot replaced the log before the write applied here. */
  | 'superseded'
  /** The deadline passed before the outcome was known. */
  | 'timeout'
  | 'invalid-argument'
  /** The node named is not a member. */
  | 'not-in-config'
  /** A write that could reach the keys under `_leaderd/` (Election and Lock own them). */
  | 'reserved-key'
  /** A request carrying the retired bare `client_id` (sessions replaced it). */
  | 'legacy-client-id'
  | 'too-large'
  | 'lease-not-found'
  /** The key of a campaign or lock disappeared (its lease ended) before it was granted. */
  | 'grant-lost'
  /** The write's session is unknown or expired: refused now and forever. */
  | 'session-expired'
  /** A write re-sent with a seq the client already said it has seen answered. */
  | 'stale-sequence'
  /** Proclaim by a candidate that no longer holds the election. */
  | 'not-holder'
  /** A watch start revision no longer retained, or gone from this node (compacted, replaced by a snapshot install). */
  | 'compacted'
  /** A watch whose client read so slowly that the retained history moved past it. */
  | 'too-slow'
  /** A per-connection, per-node or per-name limit (watches, leases, waiters, in-flight keep-alives); the message names the flag. */
  | 'limit-exceeded'
  /** The leader holds as many uncommitted bytes as it may (the followers lag): retry after a back-off. */
  | 'overloaded'
  /** A write that would grow the store past its storage quota (--quota-bytes); deletes still work. */
  | 'quota-exceeded'
  | 'cancelled'
  /** No valid credentials (bearer token, client certificate): refused before any handler ran. */
  | 'unauthenticated'
  /** The caller's role or key prefixes do not allow this method or key. */
  | 'permission-denied'
  | 'internal';

export interface KindSpec {
  readonly code: grpc.status;
  readonly outcome: OutcomeRule;
  /** The same request may succeed on another node or later: the client retries it (within its deadline). */
  readonly transient: boolean;
}

const S = grpc.status;

export const ERROR_CONTRACT: Readonly<Record<ErrorKind, KindSpec>> = Object.freeze({
  'not-leader': { code: S.UNAVAILABLE, outcome: 'reported', transient: true },
  unavailable: { code: S.UNAVAILABLE, outcome: 'reported', transient: true },
  transferring: { code: S.UNAVAILABLE, outcome: 'not-applied', transient: true },
  'conf-change-pending': { code: S.UNAVAILABLE, outcome: 'not-applied', transient: true },
  'catching-up': { code: S.UNAVAILABLE, outcome: 'not-applied', transient: true },
  superseded: { code: S.UNAVAILABLE, outcome: 'unknown', transient: true },
  timeout: { code: S.DEADLINE_EXCEEDED, outcome: 'unknown', transient: true },
  'invalid-argument': { code: S.INVALID_ARGUMENT, outcome: 'not-applied', transient: false },
  'not-in-config': { code: S.INVALID_ARGUMENT, outcome: 'not-applied', transient: false },
  'reserved-key': { code: S.INVALID_ARGUMENT, outcome: 'not-applied', transient: false },
  'legacy-client-id': { code: S.INVALID_ARGUMENT, outcome: 'not-applied', transient: false },
  'too-large': { code: S.RESOURCE_EXHAUSTED, outcome: 'not-applied', transient: false },
  'lease-not-found': { code: S.NOT_FOUND, outcome: 'reported', transient: false },
  'grant-lost': { code: S.NOT_FOUND, outcome: 'unknown', transient: false },
  'session-expired': { code: S.FAILED_PRECONDITION, outcome: 'not-applied', transient: false },
  'stale-sequence': { code: S.FAILED_PRECONDITION, outcome: 'not-applied', transient: false },
  'not-holder': { code: S.FAILED_PRECONDITION, outcome: 'not-applied', transient: false },
  compacted: { code: S.OUT_OF_RANGE, outcome: 'none', transient: false },
  'too-slow': { code: S.RESOURCE_EXHAUSTED, outcome: 'none', transient: false },
  'limit-exceeded': { code: S.RESOURCE_EXHAUSTED, outcome: 'not-applied', transient: false },
  // Refused at the leader before proposing, or applied as a refusal on every replica (the
  // quota travels in the entry): either way the write changed nothing.
  'quota-exceeded': { code: S.RESOURCE_EXHAUSTED, outcome: 'not-applied', transient: false },
  // Refused before entering the log; the same write succeeds once followers catch up.
  overloaded: { code: S.RESOURCE_EXHAUSTED, outcome: 'not-applied', transient: true },
  cancelled: { code: S.CANCELLED, outcome: 'unknown', transient: false },
  unauthenticated: { code: S.UNAUTHENTICATED, outcome: 'not-applied', transient: false },
  'permission-denied': { code: S.PERMISSION_DENIED, outcome: 'not-applied', transient: false },
  internal: { code: S.INTERNAL, outcome: 'unknown', transient: false },
});

export function isErrorKind(s: string | undefined): s is ErrorKind {
  return s !== undefined && Object.hasOwn(ERROR_CONTRACT, s);
}

/** A failure of the public API, typed by its kind; the status and metadata follow from the contract. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** Whether the write may have taken effect; null for no outcome (rule 'none'). */
  readonly outcome: Outcome | null;
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** Only for kinds whose outcome rule is 'reported'; ignored otherwise. Default not-applied. */
    reported: Outcome = 'not-applied',
  ) {
    super(message);
    const rule = ERROR_CONTRACT[kind].outcome;
    this.outcome = rule === 'none' ? null : rule === 'reported' ? reported : rule;
  }

  get code(): grpc.status {
    return ERROR_CONTRACT[this.kind].code;
  }
}

/** The shape of errors thrown by the node runtime (NodeError), matched structurally so this module imports no server code. */
interface KindedError {
  readonly kind: string;
  readonly message: string;
  readonly outcome?: Outcome;
}

function isKinded(err: unknown): err is KindedError {
  return typeof err === 'object' && err !== null && typeof (err as { kind?: unknown }).kind === 'string';
}

const NODE_KIND: Readonly<Record<string, ErrorKind>> = {
  'not-leader': 'not-leader',
  transferring: 'transferring',
  'conf-change-pending': 'conf-change-pending',
  invalid: 'invalid-argument',
  'not-in-config': 'not-in-config',
  unavailable: 'unavailable',
  stopped: 'unavailable',
  timeout: 'timeout',
  superseded: 'superseded',
  overloaded: 'overloaded',
};

/** Any failure as an ApiError: runtime errors by their kind, anything unrecognised as internal. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = (err as Error)?.message ?? String(err);
  if ((err as Error)?.name === 'CompactedError') return new ApiError('compacted', message);
  if (isKinded(err)) {
    const kind = NODE_KIND[err.kind] ?? (isErrorKind(err.kind) ? err.kind : undefined);
    if (kind) return new ApiError(kind, message, err.outcome ?? 'not-applied');
  }
  return new ApiError('internal', message);
}

/** The gRPC status, details and trailing metadata for any failure. */
export function toStatus(err: unknown): grpc.StatusObject {
  const e = toApiError(err);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_KIND_KEY, e.kind);
  if (e.outcome) metadata.set(OUTCOME_KEY, e.outcome);
  return { code: e.code, details: e.message, metadata };
}

function firstString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.toString('utf8');
}

/** The kind and outcome a received status carries (from another leaderd node, or null for a bare status). */
export function readStatus(err: { code?: number; metadata?: grpc.Metadata }): { kind: ErrorKind | null; outcome: Outcome | null } {
  const label = firstString(err.metadata, ERROR_KIND_KEY);
  const o = firstString(err.metadata, OUTCOME_KEY);
  return { kind: isErrorKind(label) ? label : null, outcome: o === 'not-applied' || o === 'unknown' ? o : null };
}

/** The kind of a status without a leaderd label (transport failures, other servers): by code only. */
export function kindOfCode(code: grpc.status): ErrorKind {
  switch (code) {
    case S.UNAVAILABLE:
      return 'unavailable';
    case S.DEADLINE_EXCEEDED:
      return 'timeout';
    case S.INVALID_ARGUMENT:
      return 'invalid-argument';
    case S.RESOURCE_EXHAUSTED:
      return 'too-large';
    case S.NOT_FOUND:
      return 'lease-not-found';
    case S.OUT_OF_RANGE:
      return 'compacted';
    case S.CANCELLED:
      return 'cancelled';
    case S.UNAUTHENTICATED:
      return 'unauthenticated';
    case S.PERMISSION_DENIED:
      return 'permission-denied';
    default:
      return 'internal';
  }
}
