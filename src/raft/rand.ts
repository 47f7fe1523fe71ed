// The only source of randomness the core sees (STYLE.md principle 2): a seeded PRNG,
// so a simulator run is a pure function of its seed.
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
