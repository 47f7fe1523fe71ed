// The ordered index behind KvStore, checked against a dumb oracle (a Map scanned and
// sorted on every question): prefix ranges with limit and paging, prefix deletes, and
// the creation-order "oldest key" that elects a leader or grants a lock.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvStore, prefixEnd } from '../../src/statemachine/kv-store.js';
import { encodeCommand, type Command, type KeyValue } from '../../src/statemachine/commands.js';

function applier(store: KvStore) {
  let index = 0;
  return (cmd: Command) => store.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand({ cmd }) });
}

// Few distinct characters so prefixes overlap often; U+FFFF and an astral character
// probe the end of a prefix range in code-unit order.
const keyArb = fc
  .array(fc.constantFrom('a', 'b', '/', '\uffff', '\u00e9', '\u{1f600}'), { minLength: 1, maxLength: 4 })
  .map((cs) => cs.join(''));
const prefixArb = fc.oneof(fc.constant(''), keyArb);

type Step =
  | { op: 'put'; key: string }
  | { op: 'delete'; key: string; prefix: boolean }
  | { op: 'range'; prefix: string; limit: number; startAfter: string };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('put' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb, prefix: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('range' as const), prefix: prefixArb, limit: fc.nat(4), startAfter: prefixArb }),
  },
);

function oracleRange(m: Map<string, number>, prefix: string, limit: number, startAfter: string) {
  const all = [...m.keys()].filter((k) => k.startsWith(prefix) && k > startAfter).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const take = limit > 0 ? all.slice(0, limit) : all;
  return { keys: take, more: take.length < all.length };
}

describe('KvStore index', () => {
  it('prefix end is the least string above every string with the prefix', () => {
    expect(prefixEnd('a/')).toBe('a0');
    expect(prefixEnd('a\uffff')).toBe('b');
    expect(prefixEnd('\uffff\uffff')).toBeNull();
    expect(prefixEnd('')).toBeNull();
    fc.assert(
      fc.property(keyArb, keyArb, (prefix, s) => {
        const end = prefixEnd(prefix);
        if (s.startsWith(prefix)) expect(end === null || s < end).toBe(true);
        else if (s > prefix && end !== null) expect(s >= end).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('puts, deletes and ranges with limit and startAfter agree with a naive model (property)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 60 }), (steps) => {
        const s = new KvStore();
        const apply = applier(s);
        const model = new Map<string, number>();
        for (const st of steps) {
          switch (st.op) {
            case 'put':
              apply({ type: 'put', key: st.key, value: new Uint8Array(0), lease: 0 });
              model.set(st.key, s.revision);
              break;
            case 'delete': {
              const gone = [...model.keys()].filter((k) => (st.prefix ? k.startsWith(st.key) : k === st.key));
              for (const k of gone) model.delete(k);
              expect(apply({ type: 'delete', key: st.key, prefix: st.prefix })).toMatchObject({ deleted: gone.length });
              break;
            }
            case 'range': {
              const got = s.range(st.prefix, st.limit, st.startAfter);
              const want = oracleRange(model, st.prefix, st.limit, st.startAfter);
              expect({ keys: got.kvs.map((kv) => kv.key), more: got.more }).toEqual(want);
              break;
            }
          }
          expect(s.size).toBe(model.size);
          for (const [k, rev] of model) expect(s.get(k)?.modRevision).toBe(rev);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('the oldest key of a queue is the one created first, through deletes, re-creates and a snapshot restore (property)', () => {
    const dirs = ['_leaderd/lock/a/', '_leaderd/lock/b/', 'user/q/'];
    const keyIn = fc.tuple(fc.constantFrom(...dirs), fc.constantFrom('1', '2', '3', '4', 'x/1')).map(([d, l]) => d + l);
    const step = fc.oneof(
      fc.record({ op: fc.constant('put' as const), key: keyIn }),
      fc.record({ op: fc.constant('delete' as const), key: keyIn }),
      fc.record({ op: fc.constant('deletePrefix' as const), key: fc.constantFrom(...dirs, '_leaderd/') }),
    );
    const oracleOldest = (m: Map<string, KeyValue>, dir: string) => {
      let best: KeyValue | null = null;
      for (const kv of m.values())
        if (kv.key.startsWith(dir) && !kv.key.slice(dir.length).includes('/') && (!best || kv.createRevision < best.createRevision))
          best = kv;
      return best?.key ?? null;
    };
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), fc.nat(40), (steps, cut) => {
        let s = new KvStore();
        let apply = applier(s);
        steps.forEach((st, i) => {
          if (i === cut) {
            const r = new KvStore();
            r.restore(s.snapshot());
            s = r;
            apply = applier(s);
          }
          if (st.op === 'put') apply({ type: 'put', key: st.key, value: new Uint8Array(0), lease: 0 });
          else apply({ type: 'delete', key: st.key, prefix: st.op === 'deletePrefix' });
          const model = new Map(s.range('').kvs.map((kv) => [kv.key, kv]));
          for (const d of dirs) expect(s.oldest(d)?.key ?? null).toBe(oracleOldest(model, d));
        });
      }),
      { numRuns: 200 },
    );
  });

  it('a lease ending deletes its keys from the queue index too', () => {
    const s = new KvStore();
    const apply = applier(s);
    apply({ type: 'leaseGrant', ttlMs: 1000 });
    apply({ type: 'leaseGrant', ttlMs: 1000 });
    apply({ type: 'put', key: '_leaderd/election/e/1', value: new Uint8Array(0), lease: 1 });
    apply({ type: 'put', key: '_leaderd/election/e/2', value: new Uint8Array(0), lease: 2 });
    expect(s.oldest('_leaderd/election/e/')?.key).toBe('_leaderd/election/e/1');
    apply({ type: 'leaseExpire', id: 1 });
    expect(s.oldest('_leaderd/election/e/')?.key).toBe('_leaderd/election/e/2');
    apply({ type: 'leaseRevoke', id: 2 });
    expect(s.oldest('_leaderd/election/e/')).toBeNull();
  });
});
