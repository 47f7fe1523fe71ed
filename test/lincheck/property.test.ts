// Property: every history produced by a real register with linearization points chosen
// inside each operation's interval passes; corrupting one read to a value nobody wrote
// (which no linearization can explain) is always caught. fast-check drives the simulator
// through a list of choices, so a failure shrinks to a short schedule.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkLinearizable } from './checker.js';
import type { Operation } from './history.js';
import { type Chooser, simulateHistory, type SimulateOptions } from './simulate.js';

/** Reads choices in order; 0 once they run out (every action still makes progress). */
function chooser(choices: readonly number[]): Chooser {
  let i = 0;
  return { int: (n) => (n <= 1 ? 0 : (choices[i++] ?? 0) % n) };
}

const scenario = fc.record({
  choices: fc.array(fc.nat(), { maxLength: 600, size: 'max' }),
  clients: fc.integer({ min: 1, max: 4 }),
  keys: fc.integer({ min: 1, max: 2 }),
  opsPerClient: fc.integer({ min: 1, max: 10 }),
  values: fc.integer({ min: 0, max: 3 }),
  failPercent: fc.integer({ min: 0, max: 20 }),
  unknownPercent: fc.integer({ min: 0, max: 20 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function generate(s: Scenario): Operation[] {
  const o: SimulateOptions = { ...s, keys: ['a', 'b'].slice(0, s.keys) };
  return simulateHistory(chooser(s.choices), o);
}

describe('generated histories', () => {
  it('a register with linearization points inside every interval always checks linearizable', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const h = generate(s);
        const r = checkLinearizable(h);
        expect(r.verdict, r.keys.map((k) => k.explanation ?? '').join('\n')).toBe('linearizable');
      }),
      { numRuns: 300 },
    );
  });

  it('one read corrupted to a value never written is always caught, on its key only', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), (s, pick) => {
        const h = generate(s);
        const reads = h.filter((op) => op.kind === 'get' && op.status === 'ok');
        fc.pre(reads.length > 0);
        const victim = reads[pick % reads.length]!;
        const mutated = h.map((op) => (op === victim ? { ...op, output: { found: true, value: 'never-written' } } : op));
        const r = checkLinearizable(mutated);
        expect(r.verdict).toBe('not-linearizable');
        for (const k of r.keys) expect(k.verdict).toBe(k.key === victim.key ? 'not-linearizable' : 'linearizable');
        const bad = r.keys.find((k) => k.key === victim.key)!;
        expect(bad.explanation).toContain(`#${victim.id} `);
      }),
      { numRuns: 300 },
    );
  });
});
