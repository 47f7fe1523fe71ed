// What every client command shares: the endpoints (--endpoints, else LEADERD_ENDPOINTS,
// else the local cluster's), one LeaderdClient, output helpers, and turning a failed call
// into lines an operator can act on (which endpoint, what failed, what to do).
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { ClientSecurity } from '../security/client-credentials.js';
import { LeaderdClient, LeaderdError } from '../client/leaderd-client.js';
import { parseAddress } from '../server/config.js';
import { CliError, EXIT_RUNTIME, EXIT_UNAVAILABLE, EXIT_USAGE, UsageError } from './usage.js';
import { LOCAL_CLIENT_ENDPOINTS } from './local-ports.js';

import { DEFAULT_TIMEOUT_MS, ENDPOINTS_ENV } from './client-defaults.js';

export { DEFAULT_TIMEOUT_MS, ENDPOINTS_ENV };

export interface ClientFlags {
  endpoints?: string;
  json?: boolean;
  timeoutMs?: string;
  /** TLS and token (or LEADERD_CACERT, LEADERD_CERT, LEADERD_CERT_KEY, LEADERD_TOKEN). */
  cacert?: string;
  cert?: string;
  certKey?: string;
  token?: string;
}

function readPemFlag(path: string | undefined, flag: string): Buffer | undefined {
  if (path === undefined || path === '') return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** TLS and token from --cacert/--cert/--key/--token (or their LEADERD_* variables). */
export function clientSecurity(flags: ClientFlags): ClientSecurity {
  const ca = readPemFlag(flags.cacert, '--cacert');
  const cert = readPemFlag(flags.cert, '--cert');
  const key = readPemFlag(flags.certKey, '--cert-key');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --cert-key go together');
  if (cert !== undefined && ca === undefined) throw new UsageError('--cert needs --cacert (client certificates are sent over TLS)');
  return { ca, cert, key, token: flags.token === '' ? undefined : flags.token };
}

export function parseEndpoints(value: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  let what = '--endpoints';
  if (value === undefined) {
    const fromEnv = env[ENDPOINTS_ENV];
    if (fromEnv === undefined || fromEnv.trim() === '') return LOCAL_CLIENT_ENDPOINTS;
    value = fromEnv;
    what = ENDPOINTS_ENV;
  }
  const list = value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (list.length === 0) throw new UsageError(`${what} is empty`);
  try {
    return list.map((e) => parseAddress(e, `${what} entry`));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function parseTimeout(flags: ClientFlags): number {
  if (flags.timeoutMs === undefined) return DEFAULT_TIMEOUT_MS;
  const ms = Number(flags.timeoutMs);
  if (!Number.isInteger(ms) || ms < 1) throw new UsageError(`--timeout-ms must be a positive whole number, got '${flags.timeoutMs}'`);
  return ms;
}

export function makeClient(flags: ClientFlags): LeaderdClient {
  const timeoutMs = parseTimeout(flags);
  return new LeaderdClient({
    endpoints: parseEndpoints(flags.endpoints),
    timeoutMs,
    security: clientSecurity(flags),
    // A paused node must not use up the whole deadline: leave time for another endpoint.
    retry: { attemptTimeoutMs: Math.max(100, Math.min(2000, Math.floor(timeoutMs / 2))) },
  });
}

/** Run `f` with a client made from `flags`, closed afterwards; a failed call becomes a CliError. */
export async function withClient<T>(flags: ClientFlags, f: (c: LeaderdClient) => Promise<T>): Promise<T> {
  const c = makeClient(flags);
  try {
    return await f(c);
  } catch (err) {
    throw await explain(err, c, parseTimeout(flags), clientSecurity(flags));
  } finally {
    c.close();
  }
}

/**
 * A signal for a command that streams until Ctrl-C: it aborts on SIGINT, SIGTERM or
 * `signal`; dispose() removes the handlers (a later signal then ends the process as usual).
 */
export function untilInterrupted(signal?: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  signal?.addEventListener('abort', stop, { once: true });
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      signal?.removeEventListener('abort', stop);
    },
  };
}

export function out(line: string): void {
  process.stdout.write(line + '\n');
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The server's own words for a failed call (gRPC's details), without the status prefix. */
export function detailsOf(err: unknown): string {
  const cause = (err as { cause?: { details?: unknown } })?.cause;
  if (typeof cause?.details === 'string' && cause.details !== '') return cause.details;
  const d = (err as { details?: unknown })?.details;
  if (typeof d === 'string' && d !== '') return d;
  return (err as Error)?.message ?? String(err);
}

/** Connect to host:port over plain TCP: null when it connects, else the errno (or 'timeout'). */
export function tcpProblem(address: string, timeoutMs: number): Promise<string | null> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const sock = connect({ host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) });
    const done = (r: string | null) => {
      clearTimeout(t);
      sock.destroy();
      resolve(r);
    };
    const t = setTimeout(() => done('timeout'), timeoutMs);
    sock.once('connect', () => done(null));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/**
 * What went wrong talking to `endpoint`, in a few words, and what to do about it.
 * grpc-js reports a failed connection as UNAVAILABLE with ~300 characters of text whose
 * socket error is often "null" (its subchannels are shared between clients), so a plain
 * TCP connection tells what happened instead.
 */
export async function describeFailure(err: unknown, endpoint: string, attemptMs: number): Promise<string> {
  const tcp = await tcpProblem(endpoint, Math.min(attemptMs, 1000));
  switch (tcp) {
    case null:
      break;
    case 'ECONNREFUSED':
      return 'connection refused: is a leaderd node running there? (check --endpoints or LEADERD_ENDPOINTS)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host: check the host name in --endpoints';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable: check the address and the network';
    case 'timeout':
      return `no TCP connection within ${Math.min(attemptMs, 1000)} ms: is the host down or a firewall in the way?`;
    default:
      return `cannot connect (${tcp})`;
  }
  if (err instanceof LeaderdError && err.kind === 'deadline')
    return `accepts connections but gave no answer within ${attemptMs} ms: is the node paused or overloaded? (raise --timeout-ms)`;
  const details = detailsOf(err);
  if (/^No connection established|Connection dropped|Protocol error|RST_STREAM|ECONNRESET/i.test(details))
    return 'accepts connections but does not answer gRPC: is this a leaderd client address (--listen-client)?';
  return details.length > 160 ? `${details.slice(0, 157)}...` : details;
}

/**
 * Ask each endpoint for its status, at once and in parallel, so that a failed call can be
 * reported endpoint by endpoint: which are down and why, which answer and what they see.
 */
async function diagnose(endpoints: readonly string[], timeoutMs: number, security?: ClientSecurity): Promise<string[]> {
  const probeMs = Math.min(timeoutMs, 1500);
  const probe = new LeaderdClient({ endpoints, timeoutMs: probeMs, ...(security ? { security } : {}) });
  try {
    return await Promise.all(
      endpoints.map(async (e) => {
        try {
          const s = await probe.status(e);
          const leader =
            s.leaderId === '' ? 'knows no leader (has the cluster lost its quorum? see leaderd status)' : `leader ${s.leaderId}`;
          return `${e}: answers (${s.nodeId}, ${s.role}, term ${s.term}); ${leader}`;
        } catch (err) {
          return `${e}: ${await describeFailure(err, e, probeMs)}`;
        }
      }),
    );
  } finally {
    probe.close();
  }
}

/** Turn anything a client command threw into a CliError with the right exit code. */
export async function explain(err: unknown, c: LeaderdClient, timeoutMs: number, security?: ClientSecurity): Promise<unknown> {
  if (!(err instanceof LeaderdError)) return err;
  switch (err.kind) {
    case 'unavailable':
    case 'deadline':
    case 'not-leader': {
      const head = `${detailsOf(err).split('\n')[0]!.slice(0, 160)}`;
      const lines = await diagnose(c.endpoints, timeoutMs, security);
      const any = lines.some((l) => / answers \(/.test(l));
      return new CliError(any ? [head, ...lines] : [`no endpoint answered within ${timeoutMs} ms`, ...lines], EXIT_UNAVAILABLE);
    }
    case 'invalid-argument':
      return new CliError([detailsOf(err)], EXIT_USAGE);
    case 'not-found':
    case 'failed-precondition':
    case 'session-expired':
    case 'out-of-range':
    case 'resource-exhausted':
    case 'internal':
    case 'cancelled':
    case 'closed':
    case 'unauthenticated':
    case 'permission-denied':
      return new CliError([detailsOf(err)], EXIT_RUNTIME);
    default: {
      const never: never = err.kind;
      return never;
    }
  }
}
