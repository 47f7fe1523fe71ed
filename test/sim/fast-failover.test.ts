// Kill -9 failover in the simulator: a crash that is a process exit gives the peers
// linked to it proof that it is gone (RuntimeTransport.onPeerGone), and they replace
// the leader without waiting out the election timeout. Lease Exclusivity stays checked
// throughout, and a transport that takes a cut link for such proof is caught.
import { describe, expect, it } from 'vitest';
import { partitionProvesGone } from './broken.js';
import { runSeed, type SimOptions } from './simulator.js';

/** Over seeds 1..25: leader crashes, how many were replaced sooner than silence allows, and the proofs delivered. */
async function leaderCrashes(o: Partial<SimOptions>): Promise<{ crashes: number; fast: number; proofs: number }> {
  let crashes = 0;
  let fast = 0;
  let proofs = 0;
  for (let seed = 1; seed <= 25; seed++) {
    const r = await runSeed({ seed, crash: 0.02, partition: 0, drop: 0, steps: 2000, traceSize: 0, ...o });
    expect(r.violations, `seed ${seed}`).toEqual([]);
    crashes += r.stats.leaderCrashes;
    fast += r.stats.fastReplacements;
    proofs += r.stats.goneProofs;
  }
  return { crashes, fast, proofs };
}

describe('fast failover (simulator)', () => {
  it("process exits prove the leader gone: leaders are replaced before the followers' leases could run out, only with the proof", async () => {
    const timeout = await leaderCrashes({ processExits: 0 });
    const fast = await leaderCrashes({ processExits: 1 });
    const off = await leaderCrashes({ processExits: 1, fastFailover: false });
    for (const r of [timeout, fast, off]) expect(r.crashes).toBeGreaterThan(10);
    // Without the proof no follower may vote within electionTick of its last heartbeat:
    // no leader can be replaced that fast. Measured: 0 of 21 without it, 5 of 23 with it
    // (most of the rest are crashes that left no quorum up until a restart).
    expect(timeout.fast).toBe(0);
    expect(fast.proofs).toBeGreaterThan(fast.crashes);
    expect(fast.fast).toBeGreaterThanOrEqual(3);
    // With the option off the runtime ignores every proof.
    expect(off.proofs).toBeGreaterThan(off.crashes);
    expect(off.fast).toBe(0);
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
