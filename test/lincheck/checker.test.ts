// The checker is only worth running against a cluster if it demonstrably rejects the
// anomalies a broken replicated KV produces (stale reads, lost writes, split-brain CAS), and
// accepts every legal interleaving, including writes whose outcome the client never learned.
import { describe, expect, it } from 'vitest';
import { history } from './build.js';
import { checkLinearizable } from './checker.js';

describe('linearizable histories pass', () => {
  it('an empty history is linearizable', () => {
    const r = checkLinearizable([]);
    expect(r).toMatchObject({ ok: true, verdict: 'linearizable', operations: 0, keys: [] });
  });

  it('a sequential history of put, get and cas is linearizable', () => {
    const h = history()
      .get(1, 0, 1, null)
      .cas(1, 2, 3, 'a', 'x', false, { current: null })
      .put(1, 4, 5, 'a')
      .get(2, 6, 7, 'a')
      .cas(1, 8, 9, 'a', 'b', true)
      .get(2, 10, 11, 'b')
      .cas(3, 12, 13, 'a', 'c', false, { current: 'b' })
      .cas(3, 14, 15, null, 'c', false)
      .put(2, 16, 17, 'c')
      .get(1, 18, 19, 'c');
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('linearizable');
    expect(r.ok).toBe(true);
    expect(r.operations).toBe(10);
  });

  it('a get overlapping a put may return the old value or the new one', () => {
    const old = history().put(1, 0, 10, 'x').get(2, 5, 15, null);
    const fresh = history().put(1, 0, 10, 'x').get(2, 5, 15, 'x');
    expect(checkLinearizable(old.ops).verdict).toBe('linearizable');
    expect(checkLinearizable(fresh.ops).verdict).toBe('linearizable');
  });

  it('after two concurrent puts either value may win', () => {
    for (const winner of ['a', 'b']) {
      const h = history().put(1, 0, 10, 'a').put(2, 1, 11, 'b').get(3, 20, 30, winner).get(1, 31, 40, winner);
      expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
    }
  });

  it('exactly one of two racing CAS(absent -> x) succeeding is linearizable', () => {
    const h = history().cas(1, 0, 10, null, 'x', true).cas(2, 1, 12, null, 'y', false, { current: 'x' }).get(3, 20, 25, 'x');
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
    // The loser may even have been decided first in real time, as long as the intervals overlap.
    const h2 = history().cas(1, 0, 100, null, 'x', true).cas(2, 10, 20, null, 'y', false).get(3, 110, 120, 'x');
    expect(checkLinearizable(h2.ops).verdict).toBe('linearizable');
  });

  it('an unknown write may have taken effect (a later read sees it)', () => {
    const h = history().put(1, 0, 5, 'a').put(1, 10, null, 'b', { status: 'unknown' }).get(2, 20, 25, 'b');
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
  });

  it('an unknown write may never take effect (no read ever sees it)', () => {
    const h = history().put(1, 0, 5, 'a').put(1, 10, null, 'b', { status: 'unknown' }).get(2, 20, 25, 'a').get(2, 30, 35, 'a');
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
  });

  it('an unknown write may take effect long after its client gave up', () => {
    const h = history().put(1, 10, null, 'b', { status: 'unknown' }).put(1, 12, 13, 'c').get(2, 20, 25, 'c').get(2, 300, 305, 'b');
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
  });

  it('an unknown CAS may have swapped', () => {
    const h = history().cas(1, 0, null, null, 'x', true, { status: 'unknown' }).get(2, 10, 20, 'x');
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
  });

  it('fail writes and unknown gets are removed before checking', () => {
    const h = history().put(1, 0, 5, 'a', { status: 'fail' }).get(2, 10, 15, 'whatever', { status: 'unknown' }).get(2, 20, 25, null);
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('linearizable');
    expect(r.operations).toBe(1);
  });

  it('operations whose timestamps touch are treated as concurrent', () => {
    // performance.now() cannot order events in the same instant, so the checker must not.
    const h = history().put(1, 0, 10, 'x').get(2, 10, 20, null);
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
  });

  it('keys are independent: reads of one key are not constrained by writes to another', () => {
    const h = history().put(1, 0, 10, 'a', { key: 'x' }).get(2, 20, 30, null, { key: 'y' }).get(2, 31, 40, 'a', { key: 'x' });
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('linearizable');
    expect(r.keys.map((k) => [k.key, k.operations])).toEqual([
      ['x', 2],
      ['y', 1],
    ]);
  });
});

describe('non-linearizable histories are caught', () => {
  it('a stale read: a get after a completed put returns the older value', () => {
    const h = history().put(1, 0, 10, 'a').put(1, 20, 30, 'b').get(2, 40, 50, 'a');
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('not-linearizable');
    expect(r.ok).toBe(false);
  });

  it('a lost acknowledged write: a later get finds nothing', () => {
    const h = history().put(1, 0, 10, 'x').get(2, 20, 30, null);
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('a lost acknowledged write: a later get returns the previous value, with no other writer', () => {
    const h = history().put(1, 0, 10, 'old').get(2, 11, 12, 'old').put(1, 20, 30, 'new').get(2, 40, 45, 'old');
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('two concurrent CAS(absent -> a) and CAS(absent -> b) cannot both succeed', () => {
    const h = history().cas(1, 0, 10, null, 'a', true).cas(2, 0, 10, null, 'b', true);
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('a CAS cannot fail while the register holds the expected value', () => {
    const h = history().put(1, 0, 10, 'a').cas(2, 20, 30, 'a', 'b', false);
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('a failed CAS cannot report a current value the register does not hold', () => {
    const h = history().put(1, 0, 10, 'a').cas(2, 20, 30, 'z', 'b', false, { current: 'q' });
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('a read of a value that was never written', () => {
    const h = history().put(1, 0, 10, 'a').get(2, 5, 15, 'ghost');
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('a fail write whose value is later read (fail means never applied)', () => {
    const h = history().put(1, 0, 10, 'a', { status: 'fail' }).get(2, 20, 30, 'a');
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('non-monotonic reads: new then old by sequential readers, with no write in between', () => {
    // The put is still in flight for both reads, so either read alone is fine; together
    // they would need the register to go back from b to a.
    const h = history().put(1, 0, 5, 'a').put(1, 10, 100, 'b').get(2, 30, 40, 'b').get(3, 50, 60, 'a');
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('an unknown write seen by one read and then unseen by a later one', () => {
    const h = history().put(1, 0, 5, 'a').put(1, 10, null, 'b', { status: 'unknown' }).get(2, 20, 25, 'b').get(2, 30, 35, 'a');
    expect(checkLinearizable(h.ops).verdict).toBe('not-linearizable');
  });

  it('a violation on one key fails the history while the other keys pass', () => {
    const h = history()
      .put(1, 0, 10, 'a', { key: 'good' })
      .get(2, 20, 30, 'a', { key: 'good' })
      .put(1, 0, 10, 'a', { key: 'bad' })
      .get(2, 20, 30, null, { key: 'bad' });
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('not-linearizable');
    expect(r.keys.map((k) => [k.key, k.verdict])).toEqual([
      ['bad', 'not-linearizable'],
      ['good', 'linearizable'],
    ]);
  });

  it('the explanation names the linearizable prefix and the operation that cannot follow it', () => {
    const h = history().put(1, 0, 10, 'a').put(1, 20, 30, 'b').get(2, 40, 50, 'a');
    const k = checkLinearizable(h.ops).keys[0]!;
    expect(k.verdict).toBe('not-linearizable');
    const text = k.explanation!;
    expect(text).toContain('longest linearizable prefix: 2 of 3 operations');
    expect(text).toContain('#1 client 1 put "a" on "k" [0, 10] ok');
    expect(text).toContain('#2 client 1 put "b" on "k" [20, 30] ok');
    expect(text).toContain('register after that prefix: "b"');
    expect(text).toContain('#3 client 2 get on "k" [40, 50] read "a": read "a" but the register holds "b"');
  });
});

describe('search budget', () => {
  // Ten writes all overlapping and a read of a value none of them wrote: refuting it
  // needs every subset of the writes, far more than 100 steps.
  const wide = history();
  for (let c = 0; c < 10; c++) wide.put(c, c, 1000, `v${c}`);
  wide.get(99, 2000, 2001, 'never');

  it('an exhausted budget gives verdict unknown, never a pass', () => {
    const r = checkLinearizable(wide.ops, { maxSteps: 100 });
    expect(r.verdict).toBe('unknown');
    expect(r.ok).toBe(false);
    expect(r.keys[0]!.explanation).toContain('budget of 100 steps exhausted');
  });

  it('the same history is refuted within the default budget', () => {
    const r = checkLinearizable(wide.ops);
    expect(r.verdict).toBe('not-linearizable');
  });

  it('a definite violation on one key outranks an exhausted budget on another', () => {
    const bad = history().put(1, 0, 10, 'a', { key: 'bad' }).get(2, 20, 30, null, { key: 'bad' });
    const ops = [...wide.ops, ...bad.ops.map((o) => ({ ...o, id: o.id + 1000 }))];
    const r = checkLinearizable(ops, { maxSteps: 100 });
    expect(r.verdict).toBe('not-linearizable');
    expect(r.keys.map((k) => k.verdict)).toEqual(['not-linearizable', 'unknown']);
  });
});

describe('unknown writes left behind by failovers', () => {
  // Forty timed-out writes, none ever observed, all still "in flight" for the whole history:
  // without dropping them the search would try their 2^40 subsets.
  function withLostWrites(): ReturnType<typeof history> {
    const h = history();
    for (let c = 0; c < 40; c++) h.put(c, c, null, `lost${c}`, { status: 'unknown' });
    return h;
  }

  it('many unobserved unknown writes do not blow up a passing check', () => {
    const h = withLostWrites().put(100, 50, 60, 'a').get(101, 70, 80, 'a').cas(100, 90, 95, 'a', 'b', true).get(101, 96, 99, 'b');
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('linearizable');
    expect(r.operations).toBe(44);
    expect(r.keys[0]!.steps).toBeLessThan(100);
  });

  it('many unobserved unknown writes do not hide or slow down a violation', () => {
    const h = withLostWrites().put(100, 50, 60, 'a').get(101, 70, 80, null);
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('not-linearizable');
    expect(r.keys[0]!.steps).toBeLessThan(100);
  });

  it('identical unknown writes are searched as a count, not as subsets', () => {
    // Thirty clients retried the same write and all lost the answer; a read saw it, so they
    // stay in the search, but which of them took effect cannot matter.
    const h = history();
    for (let c = 0; c < 30; c++) h.put(c, c, null, 'a', { status: 'unknown' });
    h.get(100, 50, 60, 'a').put(101, 70, 80, 'b').get(100, 90, 95, null);
    const r = checkLinearizable(h.ops);
    expect(r.verdict).toBe('not-linearizable');
    expect(r.keys[0]!.steps).toBeLessThan(10_000);
  });

  it('an unknown write is kept when a CAS expected its value', () => {
    const h = history().put(1, 0, 10, 'a').put(1, 20, null, 'v', { status: 'unknown' }).cas(2, 30, 40, 'v', 'w', true).get(2, 50, 60, 'w');
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
  });

  it('an unknown write is kept when a failed CAS did not report the current value', () => {
    // Only the lost write explains why CAS(a -> b) failed at all.
    const h = history().put(1, 0, 10, 'a').put(1, 20, null, 'v', { status: 'unknown' }).cas(2, 30, 40, 'a', 'b', false);
    expect(checkLinearizable(h.ops).verdict).toBe('linearizable');
    const reported = history()
      .put(1, 0, 10, 'a')
      .put(1, 20, null, 'v', { status: 'unknown' })
      .cas(2, 30, 40, 'a', 'b', false, { current: 'v' });
    expect(checkLinearizable(reported.ops).verdict).toBe('linearizable');
  });
});

describe('malformed histories are rejected rather than guessed at', () => {
  it('an ok operation without a return time', () => {
    const h = history().put(1, 0, 10, 'a');
    expect(() => checkLinearizable([{ ...h.ops[0]!, ret: null }])).toThrow(/status ok but ret is null/);
  });

  it('duplicate ids', () => {
    const h = history().put(1, 0, 10, 'a');
    expect(() => checkLinearizable([h.ops[0]!, h.ops[0]!])).toThrow(/duplicate id/);
  });

  it('a return before the call', () => {
    const h = history().put(1, 10, 5, 'a');
    expect(() => checkLinearizable(h.ops)).toThrow(/returns before its call/);
  });

  it('a cas without an expected value', () => {
    const h = history().cas(1, 0, 10, null, 'a', true);
    const op = h.ops[0]!;
    expect(() => checkLinearizable([{ ...op, input: { value: 'a' } }])).toThrow(/without input.expected/);
  });
});
