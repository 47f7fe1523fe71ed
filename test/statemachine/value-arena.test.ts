import { describe, expect, it } from 'vitest';
import { SLAB_BYTES, SLAB_VALUE_BYTES, ValueArena } from '../../src/statemachine/value-arena.js';
import { KvStore } from '../../src/statemachine/kv-store.js';
import { encodeCommand, type Command, type Envelope } from '../../src/statemachine/commands.js';

describe('ValueArena', () => {
  it('small values share slabs without overlapping; large ones keep their own buffer', () => {
    const a = new ValueArena();
    const vs: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) {
      const v = a.keep(new Uint8Array(1 + (i % SLAB_VALUE_BYTES)).fill(i));
      vs.push(v);
    }
    // Every value still holds its own bytes after all the others were written.
    vs.forEach((v, i) => {
      expect(v.length).toBe(1 + (i % SLAB_VALUE_BYTES));
      expect(v.every((b) => b === i)).toBe(true);
      expect(v.buffer.byteLength).toBe(SLAB_BYTES);
    });
    const slabs = new Set(vs.map((v) => v.buffer));
    const total = vs.reduce((n, v) => n + v.length, 0);
    expect(slabs.size).toBeLessThanOrEqual(Math.ceil(total / (SLAB_BYTES - SLAB_VALUE_BYTES)));
    const big = new Uint8Array(SLAB_VALUE_BYTES + 1);
    expect(a.keep(big)).toBe(big);
    expect(a.alloc(0).length).toBe(0);
  });

  it('small values written side by side in a KvStore stay intact through deletes, overwrites and a snapshot', () => {
    const s = new KvStore();
    let index = 0;
    const apply = (cmd: Command) => s.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand({ cmd }) });
    const values = Array.from({ length: 300 }, (_, i) => new Uint8Array(8).fill(i % 256));
    values.forEach((value, i) => apply({ type: 'put', key: `k/${i}`, value, lease: 0 }));
    apply({ type: 'delete', key: 'k/1', prefix: true });
    for (let i = 0; i < 300; i += 7) apply({ type: 'put', key: `k/${i}`, value: new Uint8Array([i % 256]), lease: 0 });
    const r = new KvStore();
    r.restore(s.snapshot());
    for (const store of [s, r])
      for (let i = 0; i < 300; i++) {
        const kv = store.get(`k/${i}`);
        if (i % 7 === 0) expect([...kv!.value]).toEqual([i % 256]);
        else if (String(i).startsWith('1')) expect(kv).toBeNull();
        else expect([...kv!.value]).toEqual(new Array(8).fill(i % 256));
      }
  });

  it('a stored record reads as a KeyValue, and a cached answer holding one survives a snapshot with its value', () => {
    const s = new KvStore();
    let index = 0;
    const apply = (store: KvStore, env: Envelope) => store.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand(env) });
    const big = new Uint8Array(100_000).fill(3);
    apply(s, { cmd: { type: 'put', key: 'small', value: new Uint8Array([1, 2, 3]), lease: 0 } });
    apply(s, { cmd: { type: 'put', key: 'big', value: big, lease: 0 } });
    const kv = s.get('small')!;
    expect({ ...kv, value: kv.value }).toEqual({
      key: 'small',
      value: new Uint8Array([1, 2, 3]),
      createRevision: 1,
      modRevision: 1,
      version: 1,
      lease: 0,
    });
    expect(s.get('big')!.value).toEqual(big);
    apply(s, { cmd: { type: 'sessionOpen', ttlMs: 10_000 } });
    const txn: Envelope = {
      cmd: {
        type: 'txn',
        compare: [{ key: 'small', target: 'VERSION', result: 'EQUAL', number: 1 }],
        success: [
          { type: 'get', key: 'small' },
          { type: 'get', key: 'big' },
        ],
        failure: [],
      },
      session: { id: 1, seq: 1, firstIncomplete: 1 },
    };
    const first = apply(s, txn);
    const r = new KvStore();
    r.restore(s.snapshot());
    // The retry, on a replica that installed the snapshot, gets the first answer from the cache.
    for (const answer of [apply(s, txn), apply(r, txn)]) {
      expect(answer).toMatchObject({ ok: true, type: 'txn', succeeded: true });
      const responses = (answer as unknown as { responses: { kv: { value: Uint8Array } }[] }).responses;
      expect(responses.map((x) => [...x.kv.value.subarray(0, 3)])).toEqual([
        [1, 2, 3],
        [3, 3, 3],
      ]);
      expect(responses[1]!.kv.value.length).toBe(100_000);
    }
    expect(first).toMatchObject({ ok: true, type: 'txn', succeeded: true });
  });
});
