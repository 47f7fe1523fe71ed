// Exponential backoff with jitter. The jitter keeps many clients that lost the same
// leader at the same moment from retrying in lockstep against the new one.

export interface BackoffOptions {
  /** First delay, ms (default 50). */
  readonly backoffMs: number;
  /** Cap, ms (default 1000). */
  readonly maxBackoffMs: number;
}

/**
 * The delay before retry number `attempt` (0 = the first retry): uniformly drawn from
 * [d/2, d] where d = min(max, base * 2^attempt). `random` returns [0, 1).
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number): number {
  const d = Math.min(opts.maxBackoffMs, opts.backoffMs * 2 ** Math.min(attempt, 30));
  return d / 2 + random() * (d / 2);
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
