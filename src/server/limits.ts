// Request limits and validation for the coordination API. Each check throws an
// ApiError carrying the gRPC status to answer with; nothing was proposed yet, so every
// such failure is `not-applied`.
import { ApiError } from '../api/errors.js';

export { ApiError };

export { DEFAULT_LIMITS, LIMIT_FLAGS, flagOf, type LimitFlag, type Limits } from './limit-defaults.js';
import { flagOf, type Limits } from './limit-defaults.js';

/**
 * Admission of watch streams, per node and per client connection (the peer address
 * grpc-js reports, one per TCP connection). Ten thousand streams opened by one client
 * would otherwise each hold a store subscription and gRPC buffers, and every revision
 * would visit all of them.
 */
export class StreamBudget {
  private total = 0;
  private readonly perConnection = new Map<string, number>();

  constructor(private readonly limits: Limits) {}

  get open(): number {
    return this.total;
  }

  /** One more stream from `connection`: its release (idempotent), or ApiError limit-exceeded. */
  admit(connection: string): () => void {
    const L = this.limits;
    if (this.total >= L.maxWatches)
      throw new ApiError(
        'limit-exceeded',
        `this node already serves ${L.maxWatches} watch streams (${flagOf('maxWatches')}); close unused watches or raise the limit`,
      );
    const n = this.perConnection.get(connection) ?? 0;
    if (n >= L.maxWatchesPerConnection)
      throw new ApiError(
        'limit-exceeded',
        `this connection already has ${L.maxWatchesPerConnection} watch streams open (${flagOf('maxWatchesPerConnection')}); ` +
          'watch a common prefix once instead of each key, or raise the limit',
      );
    this.total++;
    this.perConnection.set(connection, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const m = (this.perConnection.get(connection) ?? 1) - 1;
      if (m === 0) this.perConnection.delete(connection);
      else this.perConnection.set(connection, m);
    };
  }
}

/**
 * Unary calls in progress per client connection. One client with many calls in flight on
 * one connection (64 concurrent Lease.Grant, say) otherwise fills every queue on the way,
 * the forwarder's, the leader's proposals, each node's event loop, and every other
 * client's call waits behind all of them. Past the limit a call waits its turn in order;
 * it gives up at its deadline, and a connection with 16 times the limit already waiting
 * is refused (RESOURCE_EXHAUSTED) rather than queued without bound.
 */
export class ConnectionGate {
  private readonly conns = new Map<string, { running: number; waiting: (() => void)[] }>();

  constructor(private readonly limits: Limits) {}

  /** A slot for one call from `connection`: its release (idempotent) once the call may run. */
  async enter(connection: string, signal: AbortSignal): Promise<() => void> {
    const max = this.limits.maxInflightPerConnection;
    let c = this.conns.get(connection);
    if (!c) this.conns.set(connection, (c = { running: 0, waiting: [] }));
    const conn = c;
    if (conn.running >= max) {
      if (conn.waiting.length >= 16 * max)
        throw new ApiError(
          'limit-exceeded',
          `this connection already has ${max} calls in progress and ${16 * max} waiting (${flagOf('maxInflightPerConnection')}); ` +
            'wait for answers before sending more, or raise the limit',
        );
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const at = conn.waiting.indexOf(go);
          if (at >= 0) conn.waiting.splice(at, 1);
          reject(
            new ApiError(
              'timeout',
              `the call waited behind ${max} others of its connection (${flagOf('maxInflightPerConnection')}) until its deadline`,
            ),
          );
        };
        // A deadline already past would never fire 'abort' again: refuse now, not when a slot frees.
        if (signal.aborted) return onAbort();
        conn.waiting.push(go);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } else conn.running++;
    // A waiter that was let in took over the slot of the call that finished: `running` is unchanged.
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = conn.waiting.shift();
      if (next) return next();
      conn.running--;
      if (conn.running === 0) this.conns.delete(connection);
    };
  }

  /** Calls in progress on `connection` (tests, metrics). */
  running(connection: string): number {
    return this.conns.get(connection)?.running ?? 0;
  }
}

/** Keys under this prefix belong to Election and Lock; users may read them but not write them directly. */
export const RESERVED_PREFIX = '_leaderd/';

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

export function checkKey(key: string, limits: Limits, opts: { write: boolean; what?: string }): void {
  const what = opts.what ?? 'key';
  if (key === '') throw new ApiError('invalid-argument', `${what} is empty`);
  if (utf8Bytes(key) > limits.maxKeyBytes)
    throw new ApiError('too-large', `${what} is ${utf8Bytes(key)} bytes, more than the limit of ${limits.maxKeyBytes}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\ufffd]/.test(key))
    throw new ApiError('invalid-argument', `${what} contains a control character or invalid UTF-8`);
  if (opts.write && key.startsWith(RESERVED_PREFIX))
    throw new ApiError('reserved-key', `${what} '${key}' is under ${RESERVED_PREFIX}, which only Election and Lock may write`);
}

/**
 * The target of a write: a key, or with `prefix` every key starting with it. A prefix
 * reaches the reserved keys when it is itself under _leaderd/ or a beginning of it
 * ('', '_', '_leader'): `Delete { key: "_", prefix: true }` would otherwise delete every
 * election and lock key, and waiting campaigners would be granted while holders still run.
 */
export function checkWriteTarget(key: string, prefix: boolean, limits: Limits): void {
  if (prefix && (RESERVED_PREFIX.startsWith(key) || key.startsWith(RESERVED_PREFIX)))
    throw new ApiError(
      'reserved-key',
      `prefix '${key}' reaches the keys under ${RESERVED_PREFIX}, which only Election and Lock may write; use a longer prefix`,
    );
  checkKey(key, limits, { write: true });
}

export function checkPrefix(prefix: string, limits: Limits): void {
  if (prefix === '') return;
  checkKey(prefix, limits, { write: false, what: 'prefix' });
}

export function checkValue(value: Uint8Array, limits: Limits): void {
  if (value.length > limits.maxValueBytes)
    throw new ApiError('too-large', `value is ${value.length} bytes, more than the limit of ${limits.maxValueBytes}`);
}

export function checkLeaseId(id: number, what = 'lease'): void {
  if (!Number.isSafeInteger(id) || id < 0) throw new ApiError('invalid-argument', `${what} must be a non-negative integer, got ${id}`);
}

export function checkTtl(ttlMs: number, limits: Limits): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < limits.minLeaseTtlMs || ttlMs > limits.maxLeaseTtlMs) {
    throw new ApiError('invalid-argument', `ttl_ms must be from ${limits.minLeaseTtlMs} to ${limits.maxLeaseTtlMs}, got ${ttlMs}`);
  }
}

export function checkName(name: string, limits: Limits, what: string): void {
  if (name === '') throw new ApiError('invalid-argument', `${what} name is empty`);
  if (utf8Bytes(name) > limits.maxNameBytes) throw new ApiError('too-large', `${what} name is longer than ${limits.maxNameBytes} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[/\u0000-\u001f\u007f\ufffd]/.test(name))
    throw new ApiError('invalid-argument', `${what} name must not contain '/' or control characters`);
}

/**
 * The exactly-once fields of a write. A bare client_id (the retired scheme) is refused
 * rather than ignored: two processes using the same id would otherwise have their writes
 * deduplicated against each other's, and a restarted client's write acknowledged unapplied.
 */
export function checkSession(req: { clientId: string; session: number; seq: number; firstIncomplete: number }): void {
  if (req.clientId !== '')
    throw new ApiError(
      'legacy-client-id',
      'client_id is no longer supported: open a session with KV.OpenSession and send session + seq + first_incomplete instead',
    );
  if (req.session === 0) {
    if (req.seq !== 0 || req.firstIncomplete !== 0) throw new ApiError('invalid-argument', 'seq and first_incomplete need a session');
    return;
  }
  if (!Number.isSafeInteger(req.session) || req.session < 0)
    throw new ApiError('invalid-argument', `session must be a positive integer, got ${req.session}`);
  if (!Number.isSafeInteger(req.seq) || req.seq < 1)
    throw new ApiError('invalid-argument', `seq must be a positive integer with a session, got ${req.seq}`);
  if (!Number.isSafeInteger(req.firstIncomplete) || req.firstIncomplete < 0 || req.firstIncomplete > req.seq)
    throw new ApiError('invalid-argument', `first_incomplete must be from 0 to seq (${req.seq}), got ${req.firstIncomplete}`);
}
