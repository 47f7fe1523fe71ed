// Request limits and validation for the coordination API. Each check throws an
// ApiError carrying the gRPC status to answer with; nothing was proposed yet, so every
// such failure is `not-applied`.
import { ApiError } from '../api/errors.js';

export { ApiError };

export interface Limits {
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** Whole request, enforced by gRPC itself (grpc.max_receive_message_length). */
  readonly maxRequestBytes: number;
  readonly maxTxnOps: number;
  readonly minLeaseTtlMs: number;
  readonly maxLeaseTtlMs: number;
  readonly maxNameBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxKeyBytes: 4096,
  maxValueBytes: 1 << 20,
  maxRequestBytes: (3 << 20) / 2,
  maxTxnOps: 128,
  minLeaseTtlMs: 500,
  maxLeaseTtlMs: 24 * 3600 * 1000,
  maxNameBytes: 512,
};

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

export function checkClientSeq(clientId: string, seq: number): void {
  if (clientId === '') return;
  if (clientId.length > 128) throw new ApiError('invalid-argument', 'client_id is longer than 128 characters');
  if (!Number.isSafeInteger(seq) || seq < 1)
    throw new ApiError('invalid-argument', `seq must be a positive integer when client_id is set, got ${seq}`);
}
