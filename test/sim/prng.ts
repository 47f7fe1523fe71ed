// The simulator's own randomness (scheduling, faults, workload). Separate from the
// core's PRNG so that changing how the simulator draws numbers never changes what a
// node draws, and vice versa. mulberry32: tiny, fast, and good enough for a scheduler;
// what matters is that a run is a pure function of its seed.

export class SimRandom {
  private state: number;

  constructor(seed: number) {
    // Mix the seed once so that consecutive seeds start far apart.
    this.state = mix32(seed >>> 0) || 0x9e3779b9;
  }

  /** A 32-bit unsigned integer. */
  next32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next32() / 4294967296;
  }

  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    if (maxExclusive <= 1) return 0;
    return Math.floor(this.float() * maxExclusive);
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.int(items.length)];
  }

  /** A new independent seed, for a sub-stream (a node's core PRNG, a phase). */
  fork(): number {
    return this.next32();
  }
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}
