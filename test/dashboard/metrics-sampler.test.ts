// The dashboard's per-second latency figures come from the difference of two histogram
// readings: the mean exactly, the p99 interpolated inside its bucket.
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { intervalStats, MetricsSampler, readHistogram, type HistogramReading } from '../../src/dashboard/metrics-sampler.js';

const BUCKETS = [0.001, 0.002, 0.004, 0.008];

async function reading(
  observe: number[],
  registry = new Registry(),
  h?: Histogram,
): Promise<{ r: HistogramReading; registry: Registry; h: Histogram }> {
  h ??= new Histogram({ name: 'x_seconds', help: 'x', buckets: BUCKETS, registers: [registry] });
  for (const v of observe) h.observe(v);
  return { r: (await readHistogram(registry, 'x_seconds'))!, registry, h };
}

describe('metrics sampler', () => {
  it('takes the mean and p99 of only what was observed between two readings', async () => {
    const first = await reading(Array(100).fill(0.0075)); // slow, before the interval
    const before = first.r;
    // 99 fast (0.5 ms) and 1 slow (3 ms): p99 lands in the 1 ms bucket.
    const after = (await reading([...Array(99).fill(0.0005), 0.003], first.registry, first.h)).r;
    const s = intervalStats(before, after)!;
    expect(s.meanMs).toBeCloseTo((99 * 0.5 + 3) / 100, 6);
    expect(s.p99Ms).toBeGreaterThan(0);
    expect(s.p99Ms).toBeLessThanOrEqual(1);
    // 10 slow in 100: p99 in the 4 ms bucket (2..4 ms), not the 1 ms one.
    const later = (await reading([...Array(90).fill(0.0005), ...Array(10).fill(0.003)], first.registry, first.h)).r;
    const s2 = intervalStats(after, later)!;
    expect(s2.p99Ms).toBeGreaterThan(2);
    expect(s2.p99Ms).toBeLessThanOrEqual(4);
  });

  it('reports nothing for an interval without observations, or after a reset', async () => {
    const a = await reading([0.001]);
    expect(intervalStats(a.r, a.r)).toBeNull();
    const fresh = (await reading([])).r;
    expect(intervalStats(a.r, fresh)).toBeNull();
  });

  it('a value beyond the last bucket reports the last bound, not infinity', async () => {
    const a = await reading([]);
    const b = (await reading([5], a.registry, a.h)).r;
    expect(intervalStats(a.r, b)!.p99Ms).toBe(8);
  });

  it('turns applied-index growth into writes per second and keeps a bounded ring of points', async () => {
    let applied = 0;
    let now = 1_000_000;
    const s = new MetricsSampler({ appliedIndex: () => applied, histogram: async () => null }, { capacity: 3, now: () => now });
    await s.sample();
    for (let i = 0; i < 5; i++) {
      applied += 200;
      now += 2000;
      await s.sample();
    }
    expect(s.series()).toHaveLength(3);
    expect(s.series().every((p) => p.writesPerSec === 100 && p.commitMeanMs === null)).toBe(true);
  });
});
