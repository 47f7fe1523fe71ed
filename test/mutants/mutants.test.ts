// The mutation suite's small CI version (the full one: npm run sim:mutants). It proves
// the mechanism: the table still applies to the sources, a stale entry fails loudly,
// and a few mutants are caught at a seed where the unmutated build passes.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMutant, MutantBuilder, MutantNotApplicable } from './build.js';
import { loadSim, type Sim } from './hunt.js';
import { MUTANTS, type Mutant } from './mutants.js';

/** Seeds at which `npm run sim:mutants` first caught these mutants, and the checker that did. */
const KNOWN: readonly { readonly id: string; readonly seed: number; readonly invariant: string }[] = [
  { id: 'figure-8', seed: 7, invariant: 'commit-rule' },
  { id: 'leader-counts-unpersisted', seed: 188, invariant: 'leader-completeness' },
  { id: 'prevote-in-lease', seed: 7, invariant: 'disruption' },
  { id: 'no-noop', seed: 7, invariant: 'liveness' },
  { id: 'shorter-log-vote', seed: 3, invariant: 'leader-completeness' },
  { id: 'read-before-own-commit', seed: 26, invariant: 'read-linearizability' },
];

const byId = (id: string): Mutant => MUTANTS.find((m) => m.id === id)!;

describe('mutants table', () => {
  it('every mutant applies to the current sources exactly once', () => {
    const b = new MutantBuilder();
    for (const m of MUTANTS) expect(() => b.check(m), m.id).not.toThrow();
    expect(new Set(MUTANTS.map((m) => m.id)).size).toBe(MUTANTS.length);
  });

  it('a mutant the simulator cannot reach names an existing test that catches it instead', () => {
    const masked = MUTANTS.filter((m) => m.masked !== undefined);
    expect(masked.map((m) => m.id)).toEqual(['commit-past-append']);
    for (const m of masked) expect(existsSync(m.masked!.caughtBy.split(' ')[0]!), m.id).toBe(true);
  });

  it('a snippet that is missing or occurs twice fails loudly', () => {
    const m: Mutant = { id: 'x', bug: '', file: 'src/raft/raft.ts', find: 'a + b', replace: 'a - b' };
    expect(applyMutant(m, 'f(a + b)')).toBe('f(a - b)');
    expect(() => applyMutant(m, 'f(a * b)')).toThrow(MutantNotApplicable);
    expect(() => applyMutant(m, 'f(a + b, a + b)')).toThrow(/more than once/);
    expect(() => new MutantBuilder().check({ ...m, file: 'src/raft/nope.ts' })).toThrow(MutantNotApplicable);
  });
});

describe('the simulator catches known Raft bugs', () => {
  const builder = new MutantBuilder();
  let control: Sim;
  beforeAll(async () => {
    control = await loadSim(builder.build(null));
  });
  afterAll(() => builder.clean());

  for (const k of KNOWN) {
    it(`${k.id}: caught at seed ${k.seed} by ${k.invariant}; the unmutated build passes that seed`, async () => {
      const sim = await loadSim(builder.build(byId(k.id)));
      const r = await sim.runSeed({ seed: k.seed, adversary: true, traceSize: 0 });
      expect(r.violations[0]?.invariant).toBe(k.invariant);
      const ok = await control.runSeed({ seed: k.seed, adversary: true, traceSize: 0 });
      expect(ok.violations).toEqual([]);
    });
  }
});
