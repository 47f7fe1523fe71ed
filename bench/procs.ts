// Small process and timing utilities shared by the benchmarks and the e2e harness:
// free loopback ports, sleeping and polling with a bound, per-process memory and CPU from
// /proc, and percentiles over observed values.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { drillStats } from '../src/drill/result.js';

/** Whether host:port can be bound right now. */
export async function portFree(address: string): Promise<boolean> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(Number(address.slice(i + 1)), address.slice(0, i), () => s.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();

/**
 * A loopback port that is free now, for a server started a moment later. Drawn from
 * 10000-19999, below Linux's ephemeral range (32768+): a port the kernel picked for us
 * (listen on 0) can be taken again as the source port of any outgoing connection before
 * our server binds it, and then the server fails to start (EADDRINUSE). It also stays
 * apart from freeBasePort's 20000-32000, and this process never hands a port out twice.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * 10_000);
    if (handedOut.has(port)) continue;
    if (await portFree(`127.0.0.1:${port}`)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port found in 10000-19999 after 500 tries');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `f` until it returns a value that is not undefined, or fail after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
}

/**
 * Poll `f` every `everyMs` until it returns a value or `limitMs` passed; errors count as
 * "not yet". Returns the value and the monotonic time of the answer that showed it.
 */
export async function pollUntil<T>(
  f: () => Promise<T | undefined>,
  limitMs: number,
  everyMs: number,
): Promise<{ value: T; at: number } | undefined> {
  const deadline = performance.now() + limitMs;
  while (performance.now() < deadline) {
    const started = performance.now();
    try {
      const v = await f();
      if (v !== undefined) return { value: v, at: performance.now() };
    } catch {
      // a member that is starting or just died: try again
    }
    await sleep(Math.max(0, everyMs - (performance.now() - started)));
  }
  return undefined;
}

/** Resident set size of a process in bytes (Linux /proc), or undefined if it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process used so far, in seconds (Linux /proc), or undefined if it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return undefined;
  }
}

export interface Stats {
  readonly n: number;
  readonly min: number;
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles (the drill's arithmetic): every figure is a value that was actually observed. */
export function stats(xs: readonly number[]): Stats | undefined {
  const d = drillStats(xs);
  return d === null ? undefined : { n: xs.filter((x) => Number.isFinite(x)).length, ...d };
}
