import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { KvStore, CompactedError } from '../../src/statemachine/kv-store.js';
import { encodeCommand, decodeCommand, kvBytes, type Command, type Envelope } from '../../src/statemachine/commands.js';
import { applier, enc, expectFormat1Restored, FORMAT_1_SNAPSHOT } from './kv-fixtures.js';

const dec = (u: Uint8Array) => new TextDecoder().decode(u);

describe('KvStore', () => {
  it('every change gets the next revision; keys keep create/mod revision and version', () => {
    const s = new KvStore();
    const apply = applier();
    expect(apply(s, { type: 'put', key: 'a', value: enc('1'), lease: 0 })).toMatchObject({ ok: true, revision: 1 });
    expect(apply(s, { type: 'put', key: 'b', value: enc('1'), lease: 0 })).toMatchObject({ ok: true, revision: 2 });
    expect(apply(s, { type: 'put', key: 'a', value: enc('2'), lease: 0 })).toMatchObject({ ok: true, revision: 3 });
    expect(s.get('a')).toMatchObject({ createRevision: 1, modRevision: 3, version: 2 });
    // Deleting nothing is not a change.
    expect(apply(s, { type: 'delete', key: 'zzz', prefix: false })).toMatchObject({ ok: true, revision: 3, deleted: 0 });
    expect(apply(s, { type: 'delete', key: '', prefix: true })).toMatchObject({ ok: true, revision: 4, deleted: 2 });
    expect(s.get('a')).toBeNull();
  });

  it('a transaction runs the success or failure branch atomically, as one revision', () => {
    const s = new KvStore();
    const apply = applier();
    apply(s, { type: 'put', key: 'x', value: enc('1'), lease: 0 });
    const r = apply(s, {
      type: 'txn',
      compare: [{ key: 'x', target: 'VALUE', result: 'EQUAL', value: enc('1') }],
      success: [
        { type: 'put', key: 'x', value: enc('2'), lease: 0 },
        { type: 'put', key: 'y', value: enc('2'), lease: 0 },
        { type: 'get', key: 'x' },
      ],
      failure: [{ type: 'delete', key: 'x', prefix: false }],
    });
    expect(r).toMatchObject({ ok: true, type: 'txn', succeeded: true, revision: 2 });
    expect(s.get('y')!.modRevision).toBe(2);
    const f = apply(s, {
      type: 'txn',
      compare: [{ key: 'x', target: 'VERSION', result: 'GREATER', number: 5 }],
      success: [],
      failure: [{ type: 'delete', key: 'y', prefix: false }],
    });
    expect(f).toMatchObject({ succeeded: false, revision: 3 });
    expect(s.get('y')).toBeNull();
  });

  it('an absent key fails a value comparison but matches create revision 0', () => {
    const s = new KvStore();
    const apply = applier();
    const cas = (cmp: 'VALUE' | 'CREATE_REVISION') =>
      apply(s, {
        type: 'txn',
        compare: [{ key: 'k', target: cmp, result: 'EQUAL', ...(cmp === 'VALUE' ? { value: enc('') } : { number: 0 }) }],
        success: [{ type: 'put', key: 'k', value: enc('v'), lease: 0 }],
        failure: [],
      });
    expect(cas('VALUE')).toMatchObject({ succeeded: false });
    expect(cas('CREATE_REVISION')).toMatchObject({ succeeded: true });
  });

  it('keys attached to a lease go with it, all in one revision; a put with an unknown lease changes nothing', () => {
    const s = new KvStore();
    const apply = applier();
    const g = apply(s, { type: 'leaseGrant', ttlMs: 1000 }) as { id: number };
    apply(s, { type: 'put', key: 'l1', value: enc('v'), lease: g.id });
    apply(s, { type: 'put', key: 'l2', value: enc('v'), lease: g.id });
    apply(s, { type: 'put', key: 'keep', value: enc('v'), lease: 0 });
    const before = s.revision;
    expect(apply(s, { type: 'put', key: 'z', value: enc('v'), lease: 999 })).toMatchObject({ ok: false, error: 'lease-not-found' });
    expect(s.revision).toBe(before);
    const events: string[] = [];
    s.watchFrom(0, (h) => events.push(`${h.revision}:${h.events.map((e) => `${e.type} ${e.kv.key}`).join(',')}`));
    apply(s, { type: 'leaseExpire', id: g.id });
    expect(events).toEqual([`${before + 1}:DELETE l1,DELETE l2`]);
    expect(s.get('keep')).not.toBeNull();
    expect(s.leaseInfo(g.id)).toBeNull();
    // A second expiry (or one racing a revoke) is harmless; revoking a gone lease is an error.
    expect(apply(s, { type: 'leaseExpire', id: g.id })).toMatchObject({ ok: true });
    expect(apply(s, { type: 'leaseRevoke', id: g.id })).toMatchObject({ ok: false, error: 'lease-not-found' });
  });

  it('replays a log entry of the retired client-id scheme as it applied then: a retry gets the first answer, an older seq is refused', () => {
    const s = new KvStore();
    const apply = applier();
    const put = (seq: number, v: string) => apply(s, { cmd: { type: 'put', key: 'k', value: enc(v), lease: 0 }, clientId: 'c', seq });
    const first = put(1, 'a');
    expect(put(1, 'a')).toEqual(first);
    expect(s.get('k')!.version).toBe(1);
    put(2, 'b');
    expect(put(1, 'a')).toMatchObject({ ok: false, error: 'stale-sequence' });
    expect(dec(s.get('k')!.value)).toBe('b');
  });

  it('a watch from a revision no longer retained fails with a clear error', () => {
    const s = new KvStore({ historyRevisions: 3 });
    const apply = applier();
    for (let i = 0; i < 10; i++) apply(s, { type: 'put', key: `k${i}`, value: enc('v'), lease: 0 });
    expect(() => s.watchFrom(2, () => {})).toThrow(CompactedError);
    expect(() => s.watchFrom(2, () => {})).toThrow(/revision 2 is no longer retained; the oldest revision a watch can start from is 8/);
    expect(s.watchFrom(8, () => {}).backlog.map((h) => h.revision)).toEqual([8, 9, 10]);
  });

  it('a keyed watch wakes only for revisions that change its key or prefix, once per revision, and not after cancel', () => {
    const s = new KvStore();
    const apply = applier();
    const seen: Record<string, number[]> = { exact: [], dir: [], all: [], other: [] };
    const off = {
      exact: s.watchKeys('a/1', false, (h) => seen['exact']!.push(h.revision)),
      dir: s.watchKeys('a/', true, (h) => seen['dir']!.push(h.revision)),
      all: s.watchKeys('', true, (h) => seen['all']!.push(h.revision)),
      other: s.watchKeys('b', true, (h) => seen['other']!.push(h.revision)),
    };
    expect(s.counts().watchers).toBe(4);
    apply(s, { type: 'put', key: 'a/1', value: enc('v'), lease: 0 }); // 1
    apply(s, { type: 'put', key: 'a/2', value: enc('v'), lease: 0 }); // 2
    apply(s, { type: 'put', key: 'a', value: enc('v'), lease: 0 }); // 3: 'a' is not under 'a/', nor the key 'a/1'
    apply(s, { type: 'put', key: 'c', value: enc('v'), lease: 0 }); // 4
    apply(s, { type: 'delete', key: 'a/', prefix: true }); // 5: two events, one wake each
    off.dir();
    off.dir(); // cancelling twice is harmless
    apply(s, { type: 'put', key: 'a/3', value: enc('v'), lease: 0 }); // 6
    expect(seen).toEqual({ exact: [1, 5], dir: [1, 2, 5], all: [1, 2, 3, 4, 5, 6], other: [] });
    expect(s.counts().watchers).toBe(3);
    // A listener cancelled by another woken by the same revision is not called.
    const calls: string[] = [];
    let offSecond: () => void = () => {};
    s.watchKeys('x', false, () => {
      calls.push('first');
      offSecond();
    });
    offSecond = s.watchKeys('x', true, () => calls.push('second'));
    apply(s, { type: 'put', key: 'x', value: enc('v'), lease: 0 });
    expect(calls).toEqual(['first']);
  });

  it('watch history is bounded by bytes as well as revisions', () => {
    const s = new KvStore({ historyBytes: 10_000 });
    const apply = applier();
    for (let i = 0; i < 20; i++) apply(s, { type: 'put', key: `k${i}`, value: new Uint8Array(1000), lease: 0 });
    const kept = s.watchFrom(s.revision, () => {}).backlog.length;
    expect(() => s.watchFrom(1, () => {})).toThrow(CompactedError);
    // Each revision counts its key and value (kvBytes) and 96 bytes for the event: 8 fit in 10,000.
    expect(Math.floor(10_000 / (kvBytes('k19', 1000) + 96))).toBe(8);
    const oldest = 20 - 8 + 1;
    expect(s.watchFrom(oldest, () => {}).backlog.map((h) => h.revision)[0]).toBe(oldest);
    expect(kept).toBe(1);
  });

  it('a revision evicted from the history is let go at once, not at the next compaction of the array', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const s = new KvStore({ historyRevisions: 4 });
    const apply = applier();
    apply(s, { type: 'put', key: 'blob', value: new Uint8Array(1000), lease: 0 });
    // Held only weakly here: what keeps revision 1's value alive after this is the store alone.
    const first = ((h) => new WeakRef(h.events[0]!.kv.value.buffer))(s.historyAt(1)!);
    for (let i = 0; i < 10; i++) apply(s, { type: 'put', key: 'blob', value: new Uint8Array(1000), lease: 0 });
    expect(s.oldestRetained).toBe(8);
    // The key's row, and one per retained revision (each holds the row it wrote).
    expect(s.heldRows).toBe(4);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(first.deref()).toBeUndefined();
  });

  it('retained watch events read as they were after their key is overwritten or deleted and its row reused', () => {
    const s = new KvStore();
    const apply = applier();
    apply(s, { type: 'put', key: 'k', value: enc('one'), lease: 0 });
    apply(s, { type: 'put', key: 'k', value: enc('two'), lease: 0 });
    apply(s, { type: 'delete', key: 'k', prefix: false });
    // New keys take whatever rows were let go.
    for (let i = 0; i < 50; i++) apply(s, { type: 'put', key: `other/${i}`, value: enc(`v${i}`), lease: 0 });
    apply(s, { type: 'delete', key: 'other/', prefix: true });
    for (let i = 0; i < 50; i++) apply(s, { type: 'put', key: `third/${i}`, value: enc(`w${i}`), lease: 0 });
    const seen = (rev: number) => s.historyAt(rev)!.events.map((e) => [e.type, e.kv.key, dec(e.kv.value), e.kv.version]);
    expect(seen(1)).toEqual([['PUT', 'k', 'one', 1]]);
    expect(seen(2)).toEqual([['PUT', 'k', 'two', 2]]);
    expect(seen(3)).toEqual([['DELETE', 'k', '', 0]]);
    expect(seen(4)).toEqual([['PUT', 'other/0', 'v0', 1]]);
    expect(seen(54).slice(0, 2)).toEqual([
      ['DELETE', 'other/0', '', 0],
      ['DELETE', 'other/1', '', 0],
    ]);
    expect(seen(54)).toHaveLength(50);
    expect(seen(55)).toEqual([['PUT', 'third/0', 'w0', 1]]);
    expect(s.get('k')).toBeNull();
    // Watch streams reading the same revision share its events while any of them holds them.
    const held = s.historyAt(54)!;
    expect(s.historyAt(54)).toBe(held);
  });

  it('counts the value bytes it keeps as views of their entries, and those it lets go (the log byte trigger)', () => {
    const s = new KvStore();
    const apply = applier();
    const put = (key: string, bytes: number) => apply(s, { type: 'put', key, value: new Uint8Array(bytes).fill(7), lease: 0 });
    put('big', 64 << 10);
    expect(s.sharedEntryBytes()).toBe(64 << 10);
    // Copied (a slab, or below the size kept as a view): the log holds their entries alone.
    put('small', 8);
    put('medium', 1000);
    expect(s.sharedEntryBytes()).toBe(64 << 10);
    // Replaced: the first value's entry, wherever it still is, is no longer shared.
    put('big', 32 << 10);
    expect(s.sharedEntryBytes()).toBe(32 << 10);
    put('other', 16 << 10);
    apply(s, { type: 'delete', key: 'big', prefix: false });
    expect(s.sharedEntryBytes()).toBe(16 << 10);
    apply(s, { type: 'delete', key: '', prefix: true });
    expect(s.sharedEntryBytes()).toBe(0);
  });

  it('range lists keys under a prefix in order, with limit and paging', () => {
    const s = new KvStore();
    const apply = applier();
    for (const k of ['b/2', 'a', 'b/1', 'b/3', 'c']) apply(s, { type: 'put', key: k, value: enc(k), lease: 0 });
    expect(s.range('b/').kvs.map((kv) => kv.key)).toEqual(['b/1', 'b/2', 'b/3']);
    expect(s.range('b/', 2)).toMatchObject({ more: true });
    expect(s.range('b/', 2, 'b/2').kvs.map((kv) => kv.key)).toEqual(['b/3']);
    expect(s.range('').kvs.length).toBe(5);
  });

  it('the same commands give the same state on every replica, and a snapshot restores it exactly (property)', () => {
    const keys = ['a', 'b', 'c', 'a/1', 'a/2'];
    const cmdArb: fc.Arbitrary<Envelope> = fc
      .oneof(
        fc.record({
          type: fc.constant('put' as const),
          key: fc.constantFrom(...keys),
          value: fc.uint8Array({ maxLength: 4 }),
          lease: fc.constantFrom(0, 1, 2),
        }),
        fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom(...keys, 'a'), prefix: fc.boolean() }),
        fc.record({ type: fc.constant('leaseGrant' as const), ttlMs: fc.constantFrom(500, 1000) }),
        fc.record({ type: fc.constant('leaseExpire' as const), id: fc.constantFrom(1, 2) }),
        fc.record({ type: fc.constant('sessionOpen' as const), ttlMs: fc.constant(1000) }),
        fc.record({ type: fc.constantFrom('sessionExpire' as const, 'sessionClose' as const), id: fc.constantFrom(1, 2, 3) }),
        fc.record({
          type: fc.constant('txn' as const),
          compare: fc.array(
            fc.record({
              key: fc.constantFrom(...keys),
              target: fc.constant('VERSION' as const),
              result: fc.constantFrom('EQUAL' as const, 'GREATER' as const),
              number: fc.nat(3),
            }),
            { maxLength: 2 },
          ),
          success: fc.array(
            fc.record({
              type: fc.constant('put' as const),
              key: fc.constantFrom(...keys),
              value: fc.uint8Array({ maxLength: 2 }),
              lease: fc.constant(0),
            }),
            { maxLength: 2 },
          ),
          failure: fc.array(fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom(...keys), prefix: fc.boolean() }), {
            maxLength: 2,
          }),
        }),
      )
      .chain((cmd) =>
        fc.oneof(
          fc.constant({ cmd } as Envelope),
          fc.record({ cmd: fc.constant(cmd as Command), clientId: fc.constantFrom('p', 'q'), seq: fc.integer({ min: 1, max: 6 }) }),
          fc
            .record({ id: fc.constantFrom(1, 2, 3), seq: fc.integer({ min: 1, max: 6 }), firstIncomplete: fc.nat(6) })
            .map((t) => ({ cmd: cmd as Command, session: { ...t, firstIncomplete: Math.min(t.firstIncomplete, t.seq) } })),
        ),
      );
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 40 }), fc.nat(40), (cmds, cut) => {
        const a = new KvStore();
        const b = new KvStore();
        const applyA = applier();
        const applyB = applier();
        const split = Math.min(cut, cmds.length);
        for (const c of cmds.slice(0, split)) expect(applyB(b, c)).toEqual(applyA(a, c));
        // b is replaced by a restore from a's snapshot mid-way; both then continue.
        const c2 = new KvStore();
        c2.restore(a.snapshot());
        expect(Buffer.from(c2.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
        const applyC = applier();
        for (const c of cmds.slice(split)) {
          const ra = applyA(a, c);
          expect(applyC(c2, c)).toEqual(ra);
        }
        // The same state whatever entries (numbered differently here) carried it.
        c2.appliedIndex = a.appliedIndex;
        expect(Buffer.from(c2.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('commands survive an encode/decode round trip', () => {
    const env: Envelope = {
      cmd: {
        type: 'txn',
        compare: [{ key: 'k', target: 'VALUE', result: 'EQUAL', value: enc('v') }],
        success: [{ type: 'put', key: 'k', value: enc('w'), lease: 3 }],
        failure: [{ type: 'get', key: 'k' }],
      },
      session: { id: 7, seq: 4, firstIncomplete: 2 },
    };
    expect(decodeCommand(encodeCommand(env))).toEqual(env);
    const legacy: Envelope = { cmd: { type: 'put', key: 'k', value: enc('v'), lease: 0 }, clientId: 'c', seq: 4 };
    expect(decodeCommand(encodeCommand(legacy))).toEqual(legacy);
    for (const cmd of [
      { type: 'sessionOpen', ttlMs: 5000 },
      { type: 'sessionClose', id: 3 },
      { type: 'sessionExpire', id: 4 },
    ] as const)
      expect(decodeCommand(encodeCommand({ cmd }))).toEqual({ cmd });
  });
});

describe('KvStore snapshot format', () => {
  it('restores a JSON snapshot of format 1 (data dirs written before the binary format)', () => {
    const s = new KvStore();
    s.restore(FORMAT_1_SNAPSHOT);
    expectFormat1Restored(s);
    expect(s.bytes).toBe(kvBytes('a', 5));
  });

  it('round-trips binary values and non-ASCII keys; a truncated snapshot is refused and changes nothing', () => {
    const s = new KvStore();
    const apply = applier();
    const big = new Uint8Array(3 << 20).map((_, i) => i % 251);
    apply(s, { type: 'put', key: 'blob', value: big, lease: 0 });
    apply(s, { type: 'put', key: 'ключ/😀', value: enc(''), lease: 0 });
    const snap = s.snapshot();
    const r = new KvStore();
    r.restore(snap);
    expect(Buffer.from(r.get('blob')!.value).equals(Buffer.from(big))).toBe(true);
    expect(r.get('ключ/😀')).toMatchObject({ value: enc(''), version: 1 });
    for (const cut of [3, 20, snap.length - 1]) {
      expect(() => r.restore(snap.subarray(0, cut))).toThrow();
      expect(r.size).toBe(2);
    }
  });

  it('snapshots in slices: the state as of the call, whatever is written, deleted or replaced between slices', () => {
    const s = new KvStore();
    const apply = applier();
    for (let i = 0; i < 10_000; i++) apply(s, { type: 'put', key: `k/${String(i).padStart(5, '0')}`, value: enc(`v${i}`), lease: 0 });
    const expected = s.snapshot();
    const steps = s.snapshotInSlices();
    let slices = 0;
    let r = steps.next();
    for (; r.done !== true; r = steps.next()) {
      // Writes between slices, touching keys already written out and keys still ahead.
      apply(s, { type: 'put', key: `k/${String(slices * 97).padStart(5, '0')}`, value: enc('changed'), lease: 0 });
      apply(s, { type: 'delete', key: `k/${String(9999 - slices).padStart(5, '0')}`, prefix: false });
      apply(s, { type: 'put', key: `new/${slices}`, value: enc('n'), lease: 0 });
      slices++;
    }
    expect(slices).toBeGreaterThanOrEqual(4);
    expect(Buffer.from(r.value).equals(Buffer.from(expected))).toBe(true);
    const back = new KvStore();
    back.restore(r.value);
    expect(back.size).toBe(10_000);
    expect(back.get('k/00097')?.value).toEqual(enc('v97'));
    expect(back.get('new/0')).toBeNull();
  });

  it('a snapshot written after a free prefix holds the same bytes after it, and the prefix is left to the caller', () => {
    const s = new KvStore();
    const apply = applier();
    for (let i = 0; i < 100; i++) apply(s, { type: 'put', key: `k${i}`, value: enc(`v${i}`), lease: 0 });
    const plain = s.snapshot();
    const steps = s.snapshotWithPrefix(11);
    let r = steps.next();
    while (r.done !== true) r = steps.next();
    expect(r.value.length).toBe(plain.length + 11);
    expect(Buffer.from(r.value.subarray(11)).equals(Buffer.from(plain))).toBe(true);
    const back = new KvStore();
    back.restore(r.value.subarray(11));
    expect(back.get('k42')?.value).toEqual(enc('v42'));
  });

  it('restores in slices of bounded work, the old state served unchanged until the last step swaps in the new', () => {
    const s = new KvStore();
    const apply = applier();
    for (let i = 0; i < 10_000; i++) apply(s, { type: 'put', key: `k/${String(i).padStart(5, '0')}`, value: enc(`v${i}`), lease: 0 });
    for (let i = 0; i < 5; i++) apply(s, { type: 'put', key: `big/${i}`, value: new Uint8Array(4 << 20).fill(i), lease: 0 });
    const snap = s.snapshot();
    const r = new KvStore();
    apply(r, { type: 'put', key: 'old', value: enc('x'), lease: 0 });
    const steps = r.restoreInSlices(snap);
    let slices = 0;
    while (steps.next().done !== true) {
      slices++;
      // Mid-restore, readers still see the whole old state and nothing of the new.
      expect(r.get('old')?.value).toEqual(enc('x'));
      expect(r.get('k/00000')).toBeNull();
      expect(r.revision).toBe(1);
    }
    // 10,005 keys and 20 MiB of values: several slices (4,096 keys or 8 MiB each) both to
    // decode and to index, not one stretch of the whole.
    expect(slices).toBeGreaterThanOrEqual(5);
    expect(r.get('old')).toBeNull();
    expect(r.size).toBe(10_005);
    expect(r.get('k/09999')?.value).toEqual(enc('v9999'));
    expect(Buffer.from(r.get('big/4')!.value).equals(Buffer.alloc(4 << 20, 4))).toBe(true);
    expect(r.revision).toBe(s.revision);
    expect(r.bytes).toBe(s.bytes);
    // A truncated snapshot fails at the slice that finds it, with the old state intact.
    const broken = r.restoreInSlices(snap.subarray(0, snap.length - 100));
    expect(() => {
      while (broken.next().done !== true);
    }).toThrow(/truncated/);
    expect(r.size).toBe(10_005);
  });
});

describe('KvStore storage quota', () => {
  const put = (key: string, n: number) => ({ type: 'put' as const, key, value: new Uint8Array(n), lease: 0 });

  it('a write that would grow the store past the quota in its entry is refused on apply; reads, deletes and shrinking writes still work', () => {
    const quota = kvBytes('a', 100) + kvBytes('b', 100);
    const replicas = [new KvStore(), new KvStore()];
    const appliers = replicas.map(() => applier());
    const both = (env: Envelope) => {
      const [ra, rb] = replicas.map((s, i) => appliers[i]!(s, env));
      expect(rb).toEqual(ra);
      return ra;
    };
    expect(both({ cmd: put('a', 100), quota })).toMatchObject({ ok: true, revision: 1 });
    expect(both({ cmd: put('b', 100), quota })).toMatchObject({ ok: true, revision: 2 });
    expect(replicas[0]!.bytes).toBe(quota);
    const refused = both({ cmd: put('c', 1), quota });
    expect(refused).toMatchObject({ ok: false, error: 'quota-exceeded' });
    expect((refused as { message: string }).message).toMatch(/--quota-bytes.*delete keys/);
    // A txn whose selected branch grows the store is refused as a whole, before any change.
    expect(both({ cmd: { type: 'txn', compare: [], success: [put('a', 1), put('d', 200)], failure: [] }, quota })).toMatchObject({
      ok: false,
      error: 'quota-exceeded',
    });
    expect(replicas[0]!.get('a')!.value.length).toBe(100);
    expect(replicas[0]!.revision).toBe(2);
    // Ways out: a smaller value, a delete; then there is room again.
    expect(both({ cmd: put('a', 10), quota })).toMatchObject({ ok: true, revision: 3 });
    expect(both({ cmd: { type: 'delete', key: 'b', prefix: false }, quota })).toMatchObject({ ok: true, deleted: 1 });
    expect(both({ cmd: put('c', 100), quota })).toMatchObject({ ok: true });
    // Entries without a quota (written before it existed) are never refused.
    expect(both({ cmd: put('e', 10_000) })).toMatchObject({ ok: true });
    expect(replicas[0]!.get('e')).not.toBeNull();
    // Admission at the leader gives the same answer before proposing.
    expect(replicas[0]!.quotaRefusal(put('f', 1), quota)).toMatch(/storage quota exceeded/);
    expect(replicas[0]!.quotaRefusal({ type: 'delete', key: '', prefix: true }, quota)).toBeNull();
  });

  it('the quota counter equals the keys and values held, never grows past a quota, and survives a snapshot (property)', () => {
    const keys = ['a', 'b', 'a/1', 'xyz'];
    const cmd: fc.Arbitrary<Command> = fc.oneof(
      fc.record({
        type: fc.constant('put' as const),
        key: fc.constantFrom(...keys),
        value: fc.uint8Array({ maxLength: 300 }),
        lease: fc.constant(0),
      }),
      fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom(...keys), prefix: fc.boolean() }),
      fc.record({
        type: fc.constant('txn' as const),
        compare: fc.constant([]),
        success: fc.array(
          fc.record({
            type: fc.constant('put' as const),
            key: fc.constantFrom(...keys),
            value: fc.uint8Array({ maxLength: 300 }),
            lease: fc.constant(0),
          }),
          { maxLength: 3 },
        ),
        failure: fc.constant([]),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ cmd, quota: fc.option(fc.integer({ min: 0, max: 1500 }), { nil: undefined }) }), { maxLength: 40 }),
        (envs) => {
          const s = new KvStore();
          const apply = applier();
          for (const env of envs) {
            const before = s.bytes;
            apply(s, env.quota === undefined ? { cmd: env.cmd } : env);
            if (env.quota !== undefined && s.bytes > before) expect(s.bytes).toBeLessThanOrEqual(env.quota);
            const held = s.range('').kvs.reduce((n, kv) => n + kvBytes(kv.key, kv.value.length), 0);
            expect(s.bytes).toBe(held);
          }
          const r = new KvStore();
          r.restore(s.snapshot());
          expect(r.bytes).toBe(s.bytes);
        },
      ),
      { numRuns: 500 },
    );
  });
});
