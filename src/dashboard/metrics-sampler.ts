// One point a second from the serving node's own metrics, for the dashboard's live charts:
// the write rate (applied entries per second) and, per interval, the mean and p99 of the
// proposal→commit and fsync histograms. The p99 comes from the difference of two bucket
// snapshots, interpolated inside its bucket (the buckets double, so it is within a factor
// of two); the mean is exact (sum/count). Points are kept in a ring of fixed size, so an
// idle node holds the same memory as a busy one.
import type { MetricValueWithName, Registry } from 'prom-client';
import type { SeriesPoint } from './snapshot.js';

export const PROPOSAL_COMMIT_METRIC = 'leaderd_proposal_commit_seconds';
export const FSYNC_METRIC = 'leaderd_fsync_seconds';

/** Cumulative counts of one histogram at one moment. */
export interface HistogramReading {
  /** Upper bounds (seconds), ascending, +Infinity last, with their cumulative counts. */
  readonly buckets: readonly { le: number; count: number }[];
  readonly sum: number;
  readonly count: number;
}

export interface SamplerSources {
  appliedIndex(): number;
  histogram(name: string): Promise<HistogramReading | null>;
}

/** 5 minutes of one-second points. */
export const SERIES_CAPACITY = 300;

export class MetricsSampler {
  private readonly points: SeriesPoint[] = [];
  private readonly listeners = new Set<(p: SeriesPoint) => void>();
  private timer: NodeJS.Timeout | null = null;
  private prev: { at: number; applied: number; commit: HistogramReading | null; fsync: HistogramReading | null } | null = null;
  private sampling = false;

  constructor(
    private readonly sources: SamplerSources,
    private readonly opts: { intervalMs?: number; capacity?: number; now?: () => number } = {},
  ) {}

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /** The kept points, oldest first. */
  series(): readonly SeriesPoint[] {
    return this.points;
  }

  onPoint(listener: (p: SeriesPoint) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Take one reading; from the second on, append the interval's point. Exported for tests. */
  async sample(): Promise<SeriesPoint | null> {
    if (this.sampling) return null;
    this.sampling = true;
    try {
      const at = (this.opts.now ?? Date.now)();
      const [commit, fsync] = await Promise.all([this.sources.histogram(PROPOSAL_COMMIT_METRIC), this.sources.histogram(FSYNC_METRIC)]);
      const cur = { at, applied: this.sources.appliedIndex(), commit, fsync };
      const prev = this.prev;
      this.prev = cur;
      if (prev === null || at <= prev.at) return null;
      const seconds = (at - prev.at) / 1000;
      const c = intervalStats(prev.commit, commit);
      const f = intervalStats(prev.fsync, fsync);
      const point: SeriesPoint = {
        t: Math.round(at / 1000),
        writesPerSec: Math.max(0, cur.applied - prev.applied) / seconds,
        commitMeanMs: c?.meanMs ?? null,
        commitP99Ms: c?.p99Ms ?? null,
        fsyncMeanMs: f?.meanMs ?? null,
        fsyncP99Ms: f?.p99Ms ?? null,
      };
      this.points.push(point);
      if (this.points.length > (this.opts.capacity ?? SERIES_CAPACITY)) this.points.shift();
      for (const l of this.listeners) l(point);
      return point;
    } finally {
      this.sampling = false;
    }
  }
}

/** Mean and p99 (ms) of what a histogram observed between two readings; null when nothing was. */
export function intervalStats(before: HistogramReading | null, after: HistogramReading | null): { meanMs: number; p99Ms: number } | null {
  if (after === null) return null;
  const count = after.count - (before?.count ?? 0);
  // A reset (the histogram was recreated) shows as a negative count: skip that interval.
  if (count <= 0) return null;
  const meanMs = ((after.sum - (before?.sum ?? 0)) / count) * 1000;
  const target = 0.99 * count;
  let lower = 0;
  let below = 0;
  for (const b of after.buckets) {
    const inBucket = b.count - (before?.buckets.find((x) => x.le === b.le)?.count ?? 0);
    if (inBucket >= target) {
      // The +Inf bucket has no upper bound: report its lower one, the largest we can name.
      if (!Number.isFinite(b.le)) return { meanMs, p99Ms: lower * 1000 };
      const within = inBucket - below;
      const frac = within > 0 ? (target - below) / within : 1;
      return { meanMs, p99Ms: (lower + (b.le - lower) * frac) * 1000 };
    }
    lower = b.le;
    below = inBucket;
  }
  return { meanMs, p99Ms: lower * 1000 };
}

/** Read a prom-client histogram's cumulative buckets, sum and count (the label-less series). */
export async function readHistogram(registry: Registry, name: string): Promise<HistogramReading | null> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return null;
  const { values } = await metric.get();
  const buckets: { le: number; count: number }[] = [];
  let sum = 0;
  let count = 0;
  for (const v of values as MetricValueWithName<string>[]) {
    if (v.metricName === `${name}_bucket`) {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      buckets.push({ le, count: v.value });
    } else if (v.metricName === `${name}_sum`) sum = v.value;
    else if (v.metricName === `${name}_count`) count = v.value;
  }
  buckets.sort((a, b) => a.le - b.le);
  return { buckets, sum, count };
}
