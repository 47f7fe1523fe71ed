// The only source of randomness the core sees: the core is a pure, deterministic state
// machine, so its randomness must be injected. A seeded PRNG makes a simulator run a pure
// function of its seed, which is what lets any failing run be replayed exactly.
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { Random } from './types.js';

export function seededRandom(seed: number): Random {
  const rng = xoroshiro128plus(seed | 0);
  return {
    int(maxExclusive: number): number {
      if (maxExclusive <= 1) return 0;
      return uniformInt(rng, 0, maxExclusive - 1);
    },
  };
}
