// Fencing at the gRPC boundary of a protected resource: a server interceptor that lets a
// call reach its handler only if it carries a fencing token that is not stale, and a
// client-side helper to attach the token. The check happens when the request metadata
// arrives, before any message is handed to the handler.
import * as grpc from '@grpc/grpc-js';
import { type FencingVerifier, toToken } from './verifier.js';

export const FENCING_METADATA_KEY = 'leaderd-fencing-token';
/** Trailing metadata on a refusal: the highest token the resource has accepted (decimal). */
export const FENCING_HIGHEST_METADATA_KEY = 'leaderd-fencing-highest';
/** The resource name used when no resourceOf is given: the whole server is one resource. */
export const DEFAULT_FENCING_RESOURCE = 'default';

export interface FencedCall {
  /** The full method path, "/package.Service/Method". */
  readonly method: string;
  readonly metadata: grpc.Metadata;
}

export interface FencingInterceptorOptions {
  /** Metadata key carrying the token, decimal (default 'leaderd-fencing-token'). */
  readonly metadataKey?: string;
  /** Which resource a call writes to (default: one resource for the whole server). */
  readonly resourceOf?: (call: FencedCall) => string;
  /** Methods (full paths) that need no token, e.g. reads or health checks. */
  readonly exempt?: (method: string) => boolean;
}

function parseToken(raw: grpc.MetadataValue | undefined): bigint | undefined {
  if (raw === undefined) return undefined;
  const s = (typeof raw === 'string' ? raw : raw.toString('utf8')).trim();
  if (!/^[0-9]{1,30}$/.test(s)) return undefined;
  return BigInt(s);
}

/**
 * A grpc-js server interceptor (`new grpc.Server({ interceptors: [fencingInterceptor(v)] })`)
 * that refuses, with FAILED_PRECONDITION, a call whose token is missing, malformed, or
 * lower than the highest the verifier accepted for its resource; the refusal names the
 * token and the highest seen, and carries the highest in trailing metadata.
 */
export function fencingInterceptor(verifier: FencingVerifier, opts: FencingInterceptorOptions = {}): grpc.ServerInterceptor {
  const key = (opts.metadataKey ?? FENCING_METADATA_KEY).toLowerCase();
  const resourceOf = opts.resourceOf ?? (() => DEFAULT_FENCING_RESOURCE);
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (opts.exempt?.(method.path)) return mdNext(metadata);
            const refuse = (details: string, highest: bigint | undefined) => {
              const trailers = new grpc.Metadata();
              if (highest !== undefined) trailers.set(FENCING_HIGHEST_METADATA_KEY, highest.toString());
              call.sendStatus({ code: grpc.status.FAILED_PRECONDITION, details, metadata: trailers });
            };
            let resource: string;
            try {
              resource = resourceOf({ method: method.path, metadata });
            } catch (err) {
              call.sendStatus({ code: grpc.status.INTERNAL, details: `fencing: resourceOf failed: ${(err as Error).message}` });
              return;
            }
            const raw = metadata.get(key)[0];
            const token = parseToken(raw);
            if (token === undefined) {
              const highest = verifier.highest(resource);
              const what = raw === undefined ? 'missing' : `malformed (${String(raw).slice(0, 40)})`;
              refuse(`fencing token ${what} for resource ${resource}; highest seen ${highest ?? 'none'}`, highest);
              return;
            }
            const verdict = verifier.check(resource, token);
            if (!verdict.ok) {
              refuse(`stale fencing token ${token} for resource ${resource}: highest seen ${verdict.highest}`, verdict.highest);
              return;
            }
            mdNext(metadata);
          },
        });
      },
    });
}

/** Metadata carrying `token` (added to `into` when given). */
export function fencingMetadata(token: number | bigint, opts: { metadataKey?: string; into?: grpc.Metadata } = {}): grpc.Metadata {
  const md = opts.into ?? new grpc.Metadata();
  md.set(opts.metadataKey ?? FENCING_METADATA_KEY, toToken(token).toString());
  return md;
}

/**
 * A grpc-js client interceptor that attaches the current token (from `tokenOf`, e.g.
 * `() => leadership.token`) to every call; a call is sent without a token when it returns undefined.
 */
export function fencingClientInterceptor(
  tokenOf: () => number | bigint | undefined,
  opts: { metadataKey?: string } = {},
): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        const t = tokenOf();
        if (t !== undefined) fencingMetadata(t, { into: metadata, ...(opts.metadataKey ? { metadataKey: opts.metadataKey } : {}) });
        next(metadata, listener);
      },
    });
}
