// Runs the simulator of one build (build.ts) seed after seed until a seed violates an
// invariant: the first catching seed and the checker that caught it.
import type * as SimModule from '../sim/simulator.js';
import type { SimOptions } from '../sim/simulator.js';

export type Sim = typeof SimModule;

export interface Catch {
  readonly seed: number;
  /** How many seeds it took (seed - from + 1). */
  readonly seeds: number;
  readonly invariant: string;
  readonly message: string;
}

export async function loadSim(url: string): Promise<Sim> {
  return (await import(url)) as Sim;
}

export interface HuntOptions {
  readonly from: number;
  readonly budget: number;
  /** Per-seed options on top of the seed: by default those of `npm run sim -- --adversary`. */
  readonly options?: Omit<SimOptions, 'seed'>;
  readonly onSeed?: (seed: number) => void;
}

/** The first seed in [from, from + budget) with a violation, or null if the mutant survives them all. */
export async function hunt(sim: Sim, o: HuntOptions): Promise<Catch | null> {
  for (let seed = o.from; seed < o.from + o.budget; seed++) {
    const r = await sim.runSeed({ adversary: true, ...o.options, seed, traceSize: 0 });
    o.onSeed?.(seed);
    const v = r.violations[0];
    if (v !== undefined) return { seed, seeds: seed - o.from + 1, invariant: v.invariant, message: v.message };
  }
  return null;
}
