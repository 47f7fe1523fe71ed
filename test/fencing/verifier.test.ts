import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FencingVerifier } from '../../src/fencing/verifier.js';

describe('FencingVerifier', () => {
  it('refuses a token lower than the highest accepted, and names the highest', () => {
    const v = new FencingVerifier();
    expect(v.check('db', 7)).toEqual({ ok: true });
    expect(v.check('db', 6)).toEqual({ ok: false, highest: 7n });
    expect(v.highest('db')).toBe(7n);
  });

  it('accepts a newer token, after which the previous holder is refused', () => {
    const v = new FencingVerifier();
    expect(v.check('db', 3)).toEqual({ ok: true });
    expect(v.check('db', 9)).toEqual({ ok: true });
    expect(v.check('db', 3)).toEqual({ ok: false, highest: 9n });
  });

  it('accepts the same token again (one holder writing repeatedly)', () => {
    const v = new FencingVerifier();
    expect(v.check('db', 5n)).toEqual({ ok: true });
    expect(v.check('db', 5)).toEqual({ ok: true });
  });

  it('keeps resources independent', () => {
    const v = new FencingVerifier();
    expect(v.check('a', 100)).toEqual({ ok: true });
    expect(v.check('b', 1)).toEqual({ ok: true });
    expect(v.check('b', 0)).toEqual({ ok: false, highest: 1n });
    expect(v.check('a', 99)).toEqual({ ok: false, highest: 100n });
  });

  it('compares tokens beyond 2^53 exactly as bigints', () => {
    const v = new FencingVerifier();
    expect(v.check('db', 2n ** 60n + 1n)).toEqual({ ok: true });
    expect(v.check('db', 2n ** 60n)).toEqual({ ok: false, highest: 2n ** 60n + 1n });
  });

  it('rejects tokens that are not non-negative integers', () => {
    const v = new FencingVerifier();
    expect(() => v.check('db', -1)).toThrow(RangeError);
    expect(() => v.check('db', 1.5)).toThrow(RangeError);
    expect(() => v.check('db', Number.MAX_SAFE_INTEGER + 2)).toThrow(RangeError);
  });

  it('restores the highest tokens it is constructed with (persisted state)', () => {
    const a = new FencingVerifier();
    a.check('db', 12);
    const b = new FencingVerifier(a.entries());
    expect(b.check('db', 11)).toEqual({ ok: false, highest: 12n });
  });

  it('property: per resource, the accepted tokens form a non-decreasing sequence and each refusal names a higher accepted token', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.bigInt({ min: 0n, max: 50n })), { maxLength: 200 }), (ops) => {
        const v = new FencingVerifier();
        const accepted = new Map<string, bigint[]>();
        for (const [r, t] of ops) {
          const res = v.check(r, t);
          const seq = accepted.get(r) ?? [];
          // Oracle: accept iff t >= max of what was accepted before.
          const max = seq.length ? seq.reduce((x, y) => (x > y ? x : y)) : -1n;
          expect(res.ok).toBe(t >= max);
          if (res.ok) seq.push(t);
          else expect(res.highest).toBe(max);
          accepted.set(r, seq);
        }
        for (const seq of accepted.values()) for (let i = 1; i < seq.length; i++) expect(seq[i]! >= seq[i - 1]!).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
