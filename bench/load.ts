// Closed-loop load: `concurrency` callers, each issuing its next call as soon as the last
// one answered, for a fixed time. Latency is measured per call on the monotonic clock;
// the client's own CPU per call comes from process.cpuUsage() over the run, so a ratio of
// two servers' figures can be read next to what the shared client cost.
import { performance } from 'node:perf_hooks';
import { cpuSeconds, stats, type Stats } from './procs.js';

export interface LoadResult {
  readonly concurrency: number;
  readonly calls: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly seconds: number;
  readonly perSecond: number;
  /** Latency of successful calls, ms. */
  readonly latency: Stats | undefined;
  /** Client (this process) CPU time per successful call, µs. */
  readonly clientCpuUsPerCall: number;
  /** Server CPU over the run, in % of one core, per watched process. */
  readonly serverCpuPercent: Record<string, number>;
}

export async function closedLoop(
  op: (seq: number) => Promise<unknown>,
  concurrency: number,
  seconds: number,
  watch: Record<string, number | undefined> = {},
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let seq = 0;
  const cpu0 = process.cpuUsage();
  const srv0 = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, pid === undefined ? undefined : cpuSeconds(pid)]));
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      try {
        await op(seq++);
        latencies.push(performance.now() - s);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const serverCpuPercent: Record<string, number> = {};
  for (const [k, pid] of Object.entries(watch)) {
    const a = srv0[k];
    const b = pid === undefined ? undefined : cpuSeconds(pid);
    if (a !== undefined && b !== undefined) serverCpuPercent[k] = (100 * (b - a)) / wall;
  }
  return {
    concurrency,
    calls: latencies.length,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    seconds: wall,
    perSecond: latencies.length / wall,
    latency: stats(latencies),
    clientCpuUsPerCall: latencies.length === 0 ? 0 : (cpu.user + cpu.system) / latencies.length,
    serverCpuPercent,
  };
}
