// The table `leaderd drill` prints at the end: one row per measure, min to max, and the
// verdict lines an operator reads first.
import { describe, expect, it } from 'vitest';
import { drillTable } from '../../src/cli/drill.js';
import { summarizeTrials, type DrillResult, type DrillTrial } from '../../src/drill/result.js';

const trial = (index: number, rtoMs: number | null, extra: Partial<DrillTrial> = {}): DrillTrial => ({
  index,
  fault: 'kill',
  startedAtMs: index * 1000,
  detectionMs: rtoMs === null ? null : rtoMs - 200,
  newLeaderMs: rtoMs === null ? null : rtoMs - 100,
  rtoMs,
  writesLost: 0,
  leaseOverlap: false,
  oldLeader: 'n1',
  newLeader: 'n2',
  ...extra,
});

function result(trials: DrillTrial[]): DrillResult {
  return {
    version: 1,
    fault: 'kill',
    trials,
    startedAt: '2026-01-01T00:00:00.000Z',
    nodes: 3,
    settings: { heartbeatMs: 50, electionTimeoutMs: 300 },
    samples: [],
    leadership: [],
    summary: summarizeTrials(trials),
  };
}

describe('drill table', () => {
  it('prints min, median, p90, p99 and max of each measure and the verdicts', () => {
    const text = drillTable(result([trial(0, 400), trial(1, 600.4), trial(2, 500)]));
    const rows = text.split('\n');
    expect(rows[0]).toBe('leaderd drill --fault kill: 3 trials, 3 nodes, heartbeat 50 ms, election timeout 300 ms');
    expect(rows).toContain('MEASURE (ms)                MIN  MEDIAN  P90  P99  MAX');
    expect(rows).toContain('write unavailability (RTO)  400  500     600  600  600');
    expect(rows).toContain('new leader                  300  400     500  500  500');
    expect(rows).toContain('acknowledged writes lost (RPO): 0');
    expect(rows).toContain('trials with two leaders at once: 0');
  });

  it('names failed trials and shows losses and overlaps; a measure no trial had is a dash', () => {
    const text = drillTable(
      result([trial(0, null, { error: 'no new leader within 20000 ms' }), trial(1, null, { writesLost: 2, leaseOverlap: true })]),
    );
    expect(text).toContain('detection                   -    -       -    -    -');
    expect(text).toContain('acknowledged writes lost (RPO): 2');
    expect(text).toContain('trials with two leaders at once: 1');
    expect(text).toContain('trial 1 failed: no new leader within 20000 ms');
  });
});
