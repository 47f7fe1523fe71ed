// Memory a KvStore holds per small key: N keys written through apply() as bench:state
// writes them (Txns of --batch puts, key `small/<8 digits>`, an 8-byte value), measured as
// heapUsed + external + arrayBuffers after a full GC, before and after. Reported for the
// store that applied the writes (with its watch history, bounded by revisions and bytes)
// and for a store restored from its snapshot (no history: what a restarted or re-added
// follower holds), and for the snapshot's pieces written and restored. Then the time one
// restoreFromPieces push takes (the runtime's longest stretch without yielding while it
// installs) for pieces of 4 MiB, 1 MiB and 256 KiB.
//
//   npm run bench:kv-memory                        # 1,000,000 keys, Txns of 128
//   npm run bench:kv-memory -- --keys 200000 --batch 1
import { KvStore } from '../src/statemachine/kv-store.js';
import { encodeCommand, type Op } from '../src/statemachine/commands.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 1) {
    process.stderr.write(`bench:kv-memory: --${name} must be a positive integer\n`);
    process.exit(2);
  }
  return v;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('bench:kv-memory: run node with --expose-gc (npm run bench:kv-memory does)\n');
  process.exit(2);
}

/** Memory held: V8's heap and all of it (arrayBuffers is part of external; each byte counts once). */
function held(): { heap: number; total: number } {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, total: m.heapUsed + m.external };
}
const minus = (a: { heap: number; total: number }, b: { heap: number; total: number }) => ({
  heap: a.heap - b.heap,
  total: a.total - b.total,
});

const keys = flag('keys', 1_000_000);
const batch = flag('batch', 128);
const smallKey = (i: number) => `small/${String(i).padStart(8, '0')}`;

const base = held();
const s = new KvStore();
let index = 0;
const t0 = performance.now();
for (let i = 0; i < keys; i += batch) {
  const success: Op[] = [];
  for (let j = i; j < Math.min(keys, i + batch); j++) {
    const value = Buffer.alloc(8);
    value.writeDoubleBE(j);
    success.push({ type: 'put', key: smallKey(j), value, lease: 0 });
  }
  s.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand({ cmd: { type: 'txn', compare: [], success, failure: [] } }) });
}
const applyMs = performance.now() - t0;
const applied = minus(held(), base);

const t1 = performance.now();
const pieces: Uint8Array[] = [];
const it = s.snapshotPieces();
for (let r = it.next(); r.done !== true; r = it.next()) pieces.push(Uint8Array.from(r.value));
const snapshotMs = performance.now() - t1;
const snapshotBytes = pieces.reduce((n, p) => n + p.length, 0);

/** Restores a store from `ps` and measures memory while it is alive; it is dropped on return. */
function restoreAndMeasure(ps: Uint8Array[]): { ms: number; size: number; heldWith: ReturnType<typeof held> } {
  const t = performance.now();
  const store = new KvStore();
  const restore = store.restoreFromPieces();
  for (const p of ps) restore.push(p);
  const steps = restore.finish();
  while (steps.next().done !== true);
  const ms = performance.now() - t;
  ps.length = 0;
  return { ms, size: store.size, heldWith: held() };
}
const { ms: restoreMs, size: restoredKeys, heldWith } = restoreAndMeasure(pieces);
// What the restored store holds: the memory that goes when it goes.
const restored = minus(heldWith, held());

const perKey = (b: { heap: number; total: number }) =>
  `${(b.total / keys).toFixed(0)} bytes/key (${(b.heap / keys).toFixed(0)} of them V8 heap)`;
console.log(`bench:kv-memory: ${keys} keys of ${smallKey(0).length} chars + 8-byte values, Txns of ${batch}`);
console.log(
  `  applied store:  ${perKey(applied)}, ${(applied.total / 2 ** 20).toFixed(0)} MiB with watch history, apply ${applyMs.toFixed(0)} ms`,
);
console.log(
  `  restored store: ${perKey(restored)}, ${(restored.total / 2 ** 20).toFixed(0)} MiB without history, restore ${restoreMs.toFixed(0)} ms`,
);
console.log(`  snapshot: ${snapshotBytes} bytes (${(snapshotBytes / keys).toFixed(0)}/key), in pieces ${snapshotMs.toFixed(0)} ms`);

/** Times each push of the snapshot cut in `size` pieces into a fresh store (dropped afterwards). */
function pushTimes(whole: Buffer, size: number): number[] {
  const restore = new KvStore().restoreFromPieces();
  const times: number[] = [];
  for (let at = 0; at < whole.length; at += size) {
    const t = performance.now();
    restore.push(whole.subarray(at, at + size));
    times.push(performance.now() - t);
  }
  const steps = restore.finish();
  while (steps.next().done !== true);
  return times.sort((a, b) => a - b);
}
const whole = Buffer.concat([
  ...(function* () {
    const it = s.snapshotPieces();
    for (let r = it.next(); r.done !== true; r = it.next()) yield Buffer.from(r.value);
  })(),
]);
for (const size of [4 << 20, 1 << 20, 256 << 10]) {
  const times = pushTimes(whole, size);
  const q = (f: number) => times[Math.min(times.length - 1, Math.floor(times.length * f))]!.toFixed(1);
  console.log(`  restoreFromPieces push of ${size >> 10} KiB: median ${q(0.5)} ms, p90 ${q(0.9)}, max ${q(1)} (${times.length} pushes)`);
}
if (restoredKeys !== keys || s.size !== keys)
  throw new Error(`bench:kv-memory: ${restoredKeys} keys restored, ${s.size} applied, of ${keys}`);
