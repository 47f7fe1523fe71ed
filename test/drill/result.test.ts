// The drill's arithmetic: nearest-rank stats, the summary of trials, and the bounded
// sample set the report plots.
import { describe, expect, it } from 'vitest';
import { downsampleSamples, drillStats, summarizeTrials, type DrillSample, type DrillTrial } from '../../src/drill/result.js';

function trial(over: Partial<DrillTrial>): DrillTrial {
  return {
    index: 0,
    fault: 'kill',
    startedAtMs: 0,
    detectionMs: null,
    newLeaderMs: null,
    rtoMs: null,
    writesLost: 0,
    leaseOverlap: false,
    oldLeader: 'n1',
    newLeader: 'n2',
    ...over,
  };
}

describe('drill stats', () => {
  it('nearest-rank percentiles report values a trial actually had', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(drillStats(xs)).toEqual({ min: 1, median: 50, p90: 90, p99: 99, max: 100 });
    expect(drillStats([7])).toEqual({ min: 7, median: 7, p90: 7, p99: 7, max: 7 });
    // 20 trials: p99 is the worst trial, p90 the 18th.
    const twenty = Array.from({ length: 20 }, (_, i) => (i + 1) * 10);
    expect(drillStats(twenty)).toEqual({ min: 10, median: 100, p90: 180, p99: 200, max: 200 });
  });

  it('no measurement gives null, and non-finite values are ignored', () => {
    expect(drillStats([])).toBeNull();
    expect(drillStats([Number.NaN, Number.POSITIVE_INFINITY])).toBeNull();
    expect(drillStats([3, Number.NaN, 1])).toEqual({ min: 1, median: 1, p90: 3, p99: 3, max: 3 });
  });

  it('the summary counts losses and overlaps and leaves unmeasured trials out of the stats', () => {
    const s = summarizeTrials([
      trial({ index: 0, rtoMs: 400, newLeaderMs: 300, detectionMs: 200 }),
      trial({ index: 1, rtoMs: null, newLeaderMs: null, detectionMs: null, error: 'no new leader' }),
      trial({ index: 2, rtoMs: 600, newLeaderMs: 500, detectionMs: 250, writesLost: 2, leaseOverlap: true }),
      trial({ index: 3, rtoMs: 500, newLeaderMs: 350, detectionMs: 220, writesLost: 1 }),
    ]);
    expect(s.trials).toBe(4);
    expect(s.writesLost).toBe(3);
    expect(s.leaseOverlaps).toBe(1);
    expect(s.rtoMs).toEqual({ min: 400, median: 500, p90: 600, p99: 600, max: 600 });
    expect(s.newLeaderMs?.max).toBe(500);
    expect(s.detectionMs?.min).toBe(200);
    expect(summarizeTrials([]).rtoMs).toBeNull();
  });
});

describe('drill samples', () => {
  const series = (n: number, failEvery: number): DrillSample[] =>
    Array.from({ length: n }, (_, i) => ({ atMs: i, latencyMs: i % failEvery === 0 ? null : 2 }));

  it('keeps at most the limit, in time order, and keeps every failed write when it can', () => {
    const xs = series(100_000, 1000);
    const d = downsampleSamples(xs, 20_000);
    expect(d.length).toBe(20_000);
    expect(d.filter((s) => s.latencyMs === null).length).toBe(100);
    for (let i = 1; i < d.length; i++) expect(d[i]!.atMs).toBeGreaterThan(d[i - 1]!.atMs);
  });

  it('returns a short series unchanged and bounds one made only of failures', () => {
    const xs = series(10, 3);
    expect(downsampleSamples(xs, 100)).toEqual(xs);
    expect(downsampleSamples(series(1000, 1), 10).length).toBe(10);
  });
});
