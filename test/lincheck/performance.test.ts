// A cluster test records a few hundred operations per run; checking must stay a small part of
// its time, including the failover debris (unknown and failed writes). The histories use the
// recording discipline the cluster tests should follow: every write a fresh value, and a
// failed CAS records the current value leaderd's CompareAndSwapResponse reports. (With values
// reused across writes AND unknown writes, the search can grow exponentially in the number of
// lost writes; the checker then answers 'unknown' when its budget runs out, never a pass.)
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/raft/rand.js';
import { checkLinearizable } from './checker.js';
import type { CheckResult, Operation } from './history.js';
import { simulateHistory, type SimulateOptions } from './simulate.js';

const SHAPE = { clients: 5, keys: ['k0', 'k1', 'k2'], opsPerClient: 200, reportCurrent: 'always' } as const;

function timed(h: readonly Operation[]): { r: CheckResult; ms: number; steps: number } {
  const t0 = performance.now();
  const r = checkLinearizable(h);
  const ms = performance.now() - t0;
  return { r, ms, steps: r.keys.reduce((k, x) => k + x.steps, 0) };
}

function measure(o: SimulateOptions, label: string): void {
  const rows: string[] = [];
  for (let seed = 1; seed <= 5; seed++) {
    const h = simulateHistory(seededRandom(seed), o);
    expect(h).toHaveLength(1000);
    const pass = timed(h);
    expect(pass.r.verdict).toBe('linearizable');
    // The same history with its last successful read corrupted: refuting it means exhausting
    // every linearization of the key, the expensive direction.
    const victim = [...h].reverse().find((op) => op.kind === 'get' && op.status === 'ok')!;
    const refute = timed(h.map((op) => (op === victim ? { ...op, output: { found: true, value: 'never-written' } } : op)));
    expect(refute.r.verdict).toBe('not-linearizable');
    expect(pass.ms).toBeLessThan(1000);
    expect(refute.ms).toBeLessThan(1000);
    rows.push(
      `  seed ${seed}: ${pass.r.operations} ops checked; pass ${pass.ms.toFixed(1)} ms / ${pass.steps} steps; ` +
        `refute ${refute.ms.toFixed(1)} ms / ${refute.steps} steps`,
    );
  }
  console.log(`lincheck, 5 clients x 200 ops on 3 keys, ${label}:\n${rows.join('\n')}`);
}

describe('performance: 5 clients x 200 operations on 3 keys', () => {
  it('with 5% failed and 5% unknown writes, each history checks and refutes in under a second', () => {
    measure({ ...SHAPE, values: 0, failPercent: 5, unknownPercent: 5 }, 'fresh values, 5% fail, 5% unknown');
  });

  it('with values reused across writes and no lost writes, each history checks and refutes in under a second', () => {
    measure({ ...SHAPE, values: 4, failPercent: 5, unknownPercent: 0 }, '4 values per key, 5% fail');
  });
});
