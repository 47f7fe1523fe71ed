// The simulator itself: it replays exactly, it drives the real runtime through every
// kind of fault, and it catches broken nodes.
import { describe, expect, it } from 'vitest';
import { grantsEveryVote, unknownAsNotApplied } from './broken.js';
import { runSeed } from './simulator.js';

describe('simulator', () => {
  it('a run is a pure function of its seed: same seed, same trace and totals', async () => {
    const traced = async (seed: number) => {
      const lines: string[] = [];
      const r = await runSeed({ seed, steps: 1500, onTrace: (l) => lines.push(l) });
      return { lines, stats: r.stats };
    };
    const a = await traced(4242);
    const b = await traced(4242);
    expect(a.lines.length).toBeGreaterThan(1000);
    expect(b.lines).toEqual(a.lines);
    expect(b.stats).toEqual(a.stats);
    expect((await runSeed({ seed: 4242, steps: 1500 })).stats).toEqual(a.stats);
    const c = await traced(4243);
    expect(c.lines).not.toEqual(a.lines);
  });

  it('a failing seed is replayed with its trace: the untraced run and the traced replay agree', async () => {
    let seed = 1;
    while ((await runSeed({ seed, broken: grantsEveryVote, traceSize: 0 })).violations.length === 0 && seed < 100) seed++;
    const traced: string[] = [];
    const live = await runSeed({ seed, broken: grantsEveryVote, onTrace: (l) => traced.push(l) });
    const report = await runSeed({ seed, broken: grantsEveryVote });
    expect(live.violations.length).toBeGreaterThan(0);
    expect(report.violations).toEqual(live.violations);
    expect(report.trace.length).toBe(200);
    expect(report.trace).toEqual(traced.slice(-200));
  });

  it('runs do real work through the runtime: elections, acknowledged writes, reads, faults, snapshots', async () => {
    const t = { commits: 0, acked: 0, notApplied: 0, reads: 0, crashes: 0, partitions: 0, confChanges: 0, transfers: 0, compactions: 0 };
    for (let seed = 1; seed <= 30; seed++) {
      const r = await runSeed({ seed });
      expect(r.violations).toEqual([]);
      expect(r.stats.elections).toBeGreaterThan(0);
      for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += r.stats[k];
    }
    expect(t.commits).toBeGreaterThan(30 * 50);
    expect(t.acked).toBeGreaterThan(30 * 50);
    for (const k of Object.keys(t) as (keyof typeof t)[]) expect(t[k], k).toBeGreaterThan(0);
  });

  it("disks slower than the network, with crashes: a leader's appends are acknowledged before its own write is durable, and every invariant holds", async () => {
    // The runtime sends appends in parallel with the leader's own write (thesis §10.2.1);
    // a leader that counted its own entry before the write completed would commit it
    // with one follower, crash, lose it and let a new leader overwrite it. With that
    // rule removed from the core, seed 31 of these settings fails Leader Completeness.
    let acked = 0;
    for (let seed = 21; seed <= 40; seed++) {
      const r = await runSeed({ seed, crash: 0.02, diskLatency: 200, traceSize: 0 });
      expect(r.violations, `seed ${seed}`).toEqual([]);
      acked += r.stats.acked;
    }
    expect(acked).toBeGreaterThan(1000);
  });

  it('detects a node that grants every vote: Election Safety fails within 100 seeds', async () => {
    const seen = new Map<string, number[]>();
    for (let seed = 1; seed <= 100; seed++) {
      const r = await runSeed({ seed, broken: grantsEveryVote, traceSize: 0 });
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
        'disruption',
        'log-matching',
        'state-machine-safety',
        'durability',
        'read-linearizability',
        'write-outcome',
      ]).toContain(k);
  });

  it("detects a runtime that reports an unknown write outcome as 'not-applied'", async () => {
    let found: number | null = null;
    for (let seed = 1; seed <= 200 && found === null; seed++) {
      const r = await runSeed({ seed, broken: unknownAsNotApplied, traceSize: 0 });
      if (r.violations[0]?.invariant === 'write-outcome') found = seed;
    }
    expect(found).not.toBeNull();
  });

  it('detects lease overlap on the runtime lease signal when clocks drift far beyond the lease margin', async () => {
    let found: string | null = null;
    // Rare even with this drift: `npm run sim -- --seeds 1500 --drift 0.45 --partition 0.05
    // --crash 0 --no-liveness` finds seeds 440, 527, 735 and 1287 since the leader
    // replicates in parallel with its own write (none below 400).
    for (let seed = 401; seed <= 800 && found === null; seed++) {
      // A campaign against the lease is what leads to the overlap; let it go on to it.
      const r = await runSeed({ seed, drift: 0.45, partition: 0.05, crash: 0, liveness: false, checkDisruption: false, traceSize: 0 });
      const v = r.violations[0];
      if (v?.invariant === 'lease-exclusivity') found = v.message;
    }
    expect(found).toMatch(/lease signal|isLeader/);
  });

  it('detects a campaign against a valid lease (no disruption) when clocks drift far beyond the lease margin', async () => {
    let found: string | null = null;
    // Seeds 1..800 of these settings: the first caught is 60.
    for (let seed = 41; seed <= 200 && found === null; seed++) {
      const r = await runSeed({ seed, drift: 0.45, partition: 0.05, crash: 0, liveness: false, traceSize: 0 });
      const v = r.violations[0];
      if (v?.invariant === 'disruption') found = v.message;
    }
    expect(found).toMatch(/campaigns in term \d+ while n\d, leader of term \d+, holds a valid lease/);
  });

  it('the adversary crashes leaders after partial replication, voters after a grant, clogs links, and every invariant holds', async () => {
    const t = { adversaryCrashes: 0, clogs: 0, partitions: 0, acked: 0, reads: 0 };
    for (let seed = 1; seed <= 20; seed++) {
      const r = await runSeed({ seed, adversary: true, traceSize: 0 });
      expect(r.violations, `seed ${seed}`).toEqual([]);
      expect(r.adversary).not.toBeNull();
      for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += r.stats[k];
    }
    for (const k of Object.keys(t) as (keyof typeof t)[]) expect(t[k], k).toBeGreaterThan(20);
    // Replays exactly, like any run; and without the option the schedule has no adversary.
    expect((await runSeed({ seed: 7, adversary: true, traceSize: 0 })).stats).toEqual((await runSeed({ seed: 7, adversary: true })).stats);
    const plain = await runSeed({ seed: 7, traceSize: 0 });
    expect(plain.adversary).toBeNull();
    expect(plain.stats.adversaryCrashes + plain.stats.clogs).toBe(0);
  });

  it('detects a voter counted after it lost its data dir, on a transport without the incarnation handshake', async () => {
    let found: number | null = null;
    for (let seed = 1; seed <= 200 && found === null; seed++) {
      const r = await runSeed({ seed, crash: 0.02, wipe: 1, handshake: false, liveness: false, traceSize: 0 });
      if (r.violations[0]?.invariant === 'lost-incarnation') found = seed;
    }
    expect(found).not.toBeNull();
  });
});
