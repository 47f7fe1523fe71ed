// The simulator itself: it replays exactly, and it catches a broken core.
import { describe, expect, it } from 'vitest';
import { grantsEveryVote } from './broken.js';
import { runSeed } from './simulator.js';

describe('simulator', () => {
  it('a run is a pure function of its seed: same seed, same trace and totals', () => {
    const a = runSeed({ seed: 4242, steps: 1500 });
    const b = runSeed({ seed: 4242, steps: 1500 });
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
    const c = runSeed({ seed: 4243, steps: 1500 });
    expect(c.trace).not.toEqual(a.trace);
  });

  it('runs do real work: elections, commits, faults and reads happen', () => {
    let commits = 0;
    let crashes = 0;
    let partitions = 0;
    let confChanges = 0;
    let compactions = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const r = runSeed({ seed });
      expect(r.stats.elections).toBeGreaterThan(0);
      commits += r.stats.commits;
      crashes += r.stats.crashes;
      partitions += r.stats.partitions;
      confChanges += r.stats.confChanges;
      compactions += r.stats.compactions;
    }
    expect(commits).toBeGreaterThan(30 * 50);
    expect(crashes).toBeGreaterThan(0);
    expect(partitions).toBeGreaterThan(0);
    expect(confChanges).toBeGreaterThan(0);
    expect(compactions).toBeGreaterThan(0);
  });

  it('detects a node that grants every vote: Election Safety fails within 100 seeds', () => {
    const seen = new Map<string, number[]>();
    for (let seed = 1; seed <= 100; seed++) {
      const r = runSeed({ seed, wrapNode: grantsEveryVote });
      const v = r.violations[0];
      if (v) seen.set(v.invariant, [...(seen.get(v.invariant) ?? []), seed]);
    }
    expect([...seen.keys()]).toContain('election-safety');
    // The damage shows up only as safety violations, never as anything unexplained.
    for (const k of seen.keys())
      expect([
        'election-safety',
        'leader-completeness',
        'lease-exclusivity',
        'log-matching',
        'state-machine-safety',
        'durability',
      ]).toContain(k);
  });

  it('detects lease overlap when clocks drift far beyond the lease margin', () => {
    let found: number | null = null;
    for (let seed = 1; seed <= 400 && found === null; seed++) {
      const r = runSeed({ seed, drift: 0.45, partition: 0.05, crash: 0, campaign: 0 });
      if (r.violations[0]?.invariant === 'lease-exclusivity') found = seed;
    }
    expect(found).not.toBeNull();
  });
});
