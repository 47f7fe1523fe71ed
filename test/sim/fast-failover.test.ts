// Kill -9 failover in the simulator: a crash that is a process exit gives the peers
// linked to it proof that it is gone (RuntimeTransport.onPeerGone), and they replace
// the leader without waiting out the election timeout. Lease Exclusivity stays checked
// throughout, and a transport that takes a cut link for such proof is caught.
import { describe, expect, it } from 'vitest';
import { partitionProvesGone } from './broken.js';
import { runSeed, type SimOptions } from './simulator.js';

/** Leader crashes in seeds 1..40 and the mean ticks without a leader after each. */
async function leaderless(o: Partial<SimOptions>): Promise<{ crashes: number; meanTicks: number; proofs: number }> {
  let crashes = 0;
  let ticks = 0;
  let proofs = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = await runSeed({ seed, crash: 0.01, partition: 0, drop: 0, steps: 2000, traceSize: 0, ...o });
    expect(r.violations, `seed ${seed}`).toEqual([]);
    crashes += r.stats.leaderCrashes;
    ticks += r.stats.leaderlessTicks;
    proofs += r.stats.goneProofs;
  }
  return { crashes, meanTicks: ticks / Math.max(1, crashes), proofs };
}

describe('fast failover (simulator)', () => {
  it('process exits prove the leader gone: a new leader comes sooner than without the proof, and every invariant holds', async () => {
    const timeout = await leaderless({ processExits: 0 });
    const fast = await leaderless({ processExits: 1 });
    const off = await leaderless({ processExits: 1, fastFailover: false });
    expect(timeout.crashes).toBeGreaterThan(10);
    expect(fast.crashes).toBeGreaterThan(10);
    expect(fast.proofs).toBeGreaterThan(fast.crashes);
    // Measured: 27.6 ticks without the proof, 17.7 with it (the simulator's network is
    // slow and lossy next to its ticks; on loopback the gap is far larger).
    expect(fast.meanTicks).toBeLessThan(0.8 * timeout.meanTicks);
    // With the option off the runtime ignores every proof: failover waits the timeout.
    expect(off.proofs).toBeGreaterThan(off.crashes);
    expect(off.meanTicks).toBeGreaterThan(0.9 * timeout.meanTicks);
  });

  it('proofs under partitions, lossy links and the adversary keep every invariant', async () => {
    for (let seed = 1; seed <= 15; seed++) {
      const r = await runSeed({ seed, processExits: 1, crash: 0.01, adversary: seed % 2 === 0, traceSize: 0 });
      expect(r.violations, `seed ${seed}`).toEqual([]);
    }
  });

  it('detects a transport that takes a cut link for a process exit: Lease Exclusivity fails', async () => {
    let found: string | null = null;
    for (let seed = 1; seed <= 40 && found === null; seed++) {
      // A campaign against the lease is what leads to the overlap; let it go on to it.
      const r = await runSeed({
        seed,
        broken: partitionProvesGone,
        checkDisruption: false,
        partition: 0.02,
        liveness: false,
        traceSize: 0,
      });
      const v = r.violations[0];
      if (v?.invariant === 'lease-exclusivity') found = v.message;
    }
    expect(found).toMatch(/lease signal|isLeader/);
  });
});
