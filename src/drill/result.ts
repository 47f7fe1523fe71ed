// The result of one `leaderd drill` run: what the CLI prints with --json, saves under
// <data dir>/drills/<timestamp>.json, and what the HTML report and the dashboard render.
// The shape is shared with the report renderer: fields may be added, never renamed.

export type DrillFault = 'kill' | 'pause' | 'isolate' | 'transfer' | 'restart-follower';

export const DRILL_FAULTS: readonly DrillFault[] = ['kill', 'pause', 'isolate', 'transfer', 'restart-follower'];

export interface DrillTrial {
  index: number;
  fault: DrillFault;
  /** Milliseconds since the drill started (the same clock as samples and leadership spans). */
  startedAtMs: number;
  /** Fault → first node whose status shows no leader or a newer term. */
  detectionMs: number | null;
  /** Fault → a node other than the old leader (or the old one in a newer term) leads. */
  newLeaderMs: number | null;
  /** Write unavailability: last acknowledged write before the fault → first one after it. */
  rtoMs: number | null;
  /**
   * Acknowledged writes that the read-back after this trial no longer found and that no
   * earlier trial had already counted (so the trials sum to the drill's distinct losses).
   */
  writesLost: number;
  /** Two nodes claimed to lead at once with overlapping lease windows during this trial. */
  leaseOverlap: boolean;
  oldLeader: string | null;
  newLeader: string | null;
  /** What the overlap detector found, one line each (present only when leaseOverlap). */
  overlaps?: string[];
  error?: string;
}

export interface DrillSample {
  atMs: number;
  /** null = the write failed (not acknowledged). */
  latencyMs: number | null;
}

export interface DrillLeaderSpan {
  fromMs: number;
  toMs: number;
  leader: string | null;
  term: number;
}

export interface DrillStats {
  min: number;
  median: number;
  p90: number;
  p99: number;
  max: number;
}

export interface DrillResult {
  version: 1;
  fault: DrillFault;
  trials: DrillTrial[];
  /** ISO 8601 wall-clock time of the drill's start (atMs 0). */
  startedAt: string;
  nodes: number;
  settings: Record<string, number>;
  samples: DrillSample[];
  leadership: DrillLeaderSpan[];
  summary: {
    trials: number;
    writesLost: number;
    leaseOverlaps: number;
    rtoMs: DrillStats | null;
    newLeaderMs: DrillStats | null;
    detectionMs: DrillStats | null;
  };
}

/**
 * Nearest-rank percentiles: every figure is a value that was actually observed, so a
 * drill of 20 trials reports its worst trial as p99 rather than an interpolated value
 * no trial had. Non-finite values are ignored; null when nothing remains.
 */
export function drillStats(xs: readonly number[]): DrillStats | null {
  const s = Float64Array.from(xs.filter((x) => Number.isFinite(x))).sort();
  if (s.length === 0) return null;
  const rank = (p: number): number => s[Math.max(0, Math.ceil(p * s.length) - 1)]!;
  return { min: s[0]!, median: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: s[s.length - 1]! };
}

/** The summary of a drill from its trials; trials that measured nothing (null) are left out of the stats. */
export function summarizeTrials(trials: readonly DrillTrial[]): DrillResult['summary'] {
  const present = (pick: (t: DrillTrial) => number | null): number[] => trials.map(pick).filter((x): x is number => x !== null);
  return {
    trials: trials.length,
    writesLost: trials.reduce((sum, t) => sum + t.writesLost, 0),
    leaseOverlaps: trials.filter((t) => t.leaseOverlap).length,
    rtoMs: drillStats(present((t) => t.rtoMs)),
    newLeaderMs: drillStats(present((t) => t.newLeaderMs)),
    detectionMs: drillStats(present((t) => t.detectionMs)),
  };
}

/**
 * At most `limit` samples, evenly picked, for the plot: a 20-trial drill at a few hundred
 * writes a second yields far more points than a browser plot needs. Failed writes are kept
 * in preference (they are the gaps the plot exists to show), up to the limit.
 */
export function downsampleSamples(samples: readonly DrillSample[], limit: number): DrillSample[] {
  if (samples.length <= limit) return samples.slice();
  const failed = samples.filter((s) => s.latencyMs === null);
  if (failed.length >= limit) return pickEvenly(failed, limit);
  const ok = samples.filter((s) => s.latencyMs !== null);
  const kept = [...failed, ...pickEvenly(ok, limit - failed.length)];
  return kept.sort((a, b) => a.atMs - b.atMs);
}

function pickEvenly<T>(xs: readonly T[], n: number): T[] {
  if (n <= 0) return [];
  if (xs.length <= n) return xs.slice();
  const out: T[] = [];
  const step = xs.length / n;
  for (let i = 0; i < n; i++) out.push(xs[Math.floor(i * step)]!);
  return out;
}
