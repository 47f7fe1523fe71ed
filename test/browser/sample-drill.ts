// A drill result as `leaderd drill` makes one, for the report's tests and the README screenshot.
import { summarizeTrials, type DrillResult, type DrillSample, type DrillTrial } from '../../src/drill/result.js';

export const HOSTILE = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

/** A 3-trial kill drill: writes every 10 ms, failing for a few hundred ms after each fault. */
export function sampleDrill(): DrillResult {
  const trials: DrillTrial[] = [0, 1, 2].map((i) => ({
    index: i + 1,
    fault: 'kill',
    startedAtMs: 1000 + i * 2000,
    detectionMs: 310 + i * 20,
    newLeaderMs: 420 + i * 30,
    rtoMs: 480 + i * 30,
    writesLost: 0,
    leaseOverlap: false,
    oldLeader: `n${i + 1}`,
    newLeader: `n${((i + 1) % 3) + 1}`,
    ...(i === 2 ? { error: HOSTILE } : {}),
  }));
  const samples: DrillSample[] = [];
  for (let atMs = 0; atMs < 7000; atMs += 10) {
    const down = trials.some((t) => atMs >= t.startedAtMs && atMs < t.startedAtMs + t.rtoMs!);
    samples.push({ atMs, latencyMs: down ? null : 2 + ((atMs / 10) % 7) });
  }
  return {
    version: 1,
    fault: 'kill',
    trials,
    startedAt: '2026-11-30T05:00:00.000Z',
    nodes: 3,
    settings: { heartbeatMs: 50, electionTimeoutMs: 300 },
    samples,
    leadership: [
      { fromMs: 0, toMs: 1000, leader: 'n1', term: 1 },
      { fromMs: 1000, toMs: 1420, leader: null, term: 1 },
      { fromMs: 1420, toMs: 3000, leader: 'n2', term: 2 },
      { fromMs: 3000, toMs: 3450, leader: null, term: 2 },
      { fromMs: 3450, toMs: 5000, leader: 'n3', term: 3 },
      { fromMs: 5000, toMs: 5480, leader: null, term: 3 },
      { fromMs: 5480, toMs: 7000, leader: 'n1', term: 4 },
    ],
    summary: summarizeTrials(trials),
  };
}
