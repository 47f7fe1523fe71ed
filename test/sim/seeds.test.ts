// A fixed set of seeds with every fault on must pass every invariant, safety phase and
// liveness phase. Any seed that fails here replays exactly: npm run sim -- --seed N --trace.
import { describe, expect, it } from 'vitest';
import { formatFailure, runSeed } from './simulator.js';

// Each seed runs the whole node runtime (promises, waiters, listeners) rather than the bare
// core, about 6x the cost of a core-only run: 2 x 200 seeds keep `npm test` fast; the
// full sweep (npm run sim -- --seeds 100000) is run by hand.
const SEEDS_PER_SIZE = 200;

async function failures(voters: 3 | 5, from: number): Promise<string[]> {
  const out: string[] = [];
  for (let seed = from; seed < from + SEEDS_PER_SIZE; seed++) {
    const r = await runSeed({ seed, voters, steps: 4000 });
    if (r.violations.length > 0) out.push(formatFailure(r));
  }
  return out;
}

describe('fixed seeds with faults', () => {
  it(`3 voters: ${SEEDS_PER_SIZE} seeds hold every invariant and converge after faults stop`, async () => {
    const f = await failures(3, 1);
    expect(f.slice(0, 1).join('\n'), `${f.length} seeds failed`).toBe('');
  });

  it(`5 voters: ${SEEDS_PER_SIZE} seeds hold every invariant and converge after faults stop`, async () => {
    const f = await failures(5, 100_001);
    expect(f.slice(0, 1).join('\n'), `${f.length} seeds failed`).toBe('');
  });

  // The regression: with the bootstrap voters only at index 0, a joiner sent the log from
  // index 1 rebuilt its configuration without them and elected itself beside the leader.
  it('a member started with --join on an empty data dir (seed 183 found two leaders in term 4)', async () => {
    const r = await runSeed({ seed: 183, joinEmpty: true });
    expect(r.violations.map((v) => v.message)).toEqual([]);
    expect(r.stats.confChanges).toBeGreaterThan(0);
  });

  it('members that lose their data dir (a minority) are never counted again: 100 seeds, safety phase', async () => {
    const f: string[] = [];
    let wipes = 0;
    for (let seed = 301; seed <= 400; seed++) {
      const r = await runSeed({ seed, wipe: 0.5, liveness: false, traceSize: 50 });
      wipes += r.stats.wipes;
      if (r.violations.length > 0) f.push(formatFailure(r));
    }
    expect(f.slice(0, 1).join('\n'), `${f.length} seeds failed`).toBe('');
    expect(wipes).toBeGreaterThan(20);
  });
});
