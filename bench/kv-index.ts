// Complexity of the KvStore index: each operation timed on a large store and, in the same
// run, on a store 100 times smaller. With an O(log n + k) index the two times are close
// (ratio near 1); with the former sorted array a prefix delete of k keys cost O(k·n), so its
// ratio grew with n (shown beside it by the same splice loop on a plain array).
// npm run bench:index   (BENCH_KEYS=200000 by default)
import { KvStore } from '../src/statemachine/kv-store.js';
import { encodeCommand, type Command } from '../src/statemachine/commands.js';

const BIG = Number(process.env['BENCH_KEYS'] ?? 200_000);
const SMALL = Math.max(1000, Math.floor(BIG / 100));
const K = 1000;

function store(n: number): { s: KvStore; apply: (c: Command) => void } {
  const s = new KvStore();
  let index = 0;
  const apply = (cmd: Command) => void s.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand({ cmd }) });
  const v = new Uint8Array(8);
  // Filler keys on both sides of the prefixes under test.
  for (let i = 0; i < n; i++) apply({ type: 'put', key: `fill/${String(i).padStart(7, '0')}`, value: v, lease: 0 });
  return { s, apply };
}

function time(f: () => void, reps = 5): number {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

function prefixDeleteTimed(n: number): number {
  const { apply } = store(n);
  const v = new Uint8Array(8);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    for (let i = 0; i < K; i++) apply({ type: 'put', key: `del/${i}`, value: v, lease: 0 });
    const t0 = process.hrtime.bigint();
    apply({ type: 'delete', key: 'del/', prefix: true });
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

/** The former index: a sorted array of keys, one splice per deleted key. */
function sortedArrayPrefixDelete(n: number): number {
  const keys: string[] = [];
  for (let i = 0; i < K; i++) keys.push(`del/${i}`);
  for (let i = 0; i < n; i++) keys.push(`fill/${String(i).padStart(7, '0')}`);
  keys.sort();
  const doomed = keys.filter((k) => k.startsWith('del/'));
  const t0 = process.hrtime.bigint();
  for (const k of doomed) {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    keys.splice(lo, 1);
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function rangeLimit(n: number): number {
  const { s } = store(n);
  // All n keys are under 'fill/': a limit of 10 must not visit the other n - 10.
  return (
    time(() => {
      for (let i = 0; i < 100; i++) s.range('fill/', 10, `fill/${String(i * 7).padStart(7, '0')}`);
    }) / 100
  );
}

/** The former first(): every key of the queue listed, the least create revision kept. */
function scanHolder(n: number): number {
  const { s, apply } = store(0);
  for (let i = 0; i < n; i++)
    apply({ type: 'put', key: `_leaderd/lock/job/${(n - i).toString(16).padStart(16, '0')}`, value: new Uint8Array(0), lease: 0 });
  return (
    time(() => {
      for (let i = 0; i < 100; i++) {
        let best = Infinity;
        for (const kv of s.range('_leaderd/lock/job/').kvs) best = Math.min(best, kv.createRevision);
        if (best === Infinity) throw new Error('no holder');
      }
    }) / 100
  );
}

function oldestHolder(n: number): number {
  const { s, apply } = store(0);
  for (let i = 0; i < n; i++)
    apply({ type: 'put', key: `_leaderd/lock/job/${(n - i).toString(16).padStart(16, '0')}`, value: new Uint8Array(0), lease: 0 });
  return (
    time(() => {
      for (let i = 0; i < 100; i++) if (s.oldest('_leaderd/lock/job/') === null) throw new Error('no holder');
    }) / 100
  );
}

const rows: [string, number, number, string][] = [];
const row = (what: string, f: (n: number) => number, big = BIG, small = SMALL) => {
  const b = f(big);
  const sm = f(small);
  rows.push([what, sm, b, (b / Math.max(sm, 1e-6)).toFixed(2)]);
};
row(`prefix delete of ${K} keys`, prefixDeleteTimed);
row(`sorted array (former index): ${K} deletes`, sortedArrayPrefixDelete);
row('Range limit 10 (per call)', rangeLimit, BIG / 2, SMALL / 2);
row('holder of a lock queue: oldest() (per call)', oldestHolder, Math.min(BIG, 100_000), Math.min(SMALL, 1000));
row('holder of a lock queue: scan (former first())', scanHolder, Math.min(BIG, 100_000), Math.min(SMALL, 1000));

console.log(`KvStore index, best of 5, small store = large / 100 (large: ${BIG} keys; Range and queue rows use fewer)`);
console.log('| operation | small store (ms) | large store (ms) | large/small |');
console.log('|---|---:|---:|---:|');
for (const [what, sm, b, ratio] of rows) console.log(`| ${what} | ${sm.toFixed(3)} | ${b.toFixed(3)} | ${ratio} |`);
