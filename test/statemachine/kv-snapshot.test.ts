import { describe, expect, it } from 'vitest';
import { KvStore } from '../../src/statemachine/kv-store.js';
import { PIECE_BYTES, PIECE_KEYS } from '../../src/statemachine/kv-snapshot.js';
import { applier, enc, expectFormat1Restored, FORMAT_1_SNAPSHOT } from './kv-fixtures.js';

/** The pieces, each copied before the next is asked for (the store reuses their buffers). */
function pieces(s: KvStore): Uint8Array[] {
  const out: Uint8Array[] = [];
  const it = s.snapshotPieces();
  for (let r = it.next(); r.done !== true; r = it.next()) out.push(Uint8Array.from(r.value));
  return out;
}

const concat = (ps: Uint8Array[]) => Buffer.concat(ps.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));

/** Restores `parts` through restoreFromPieces, running finish's slices to the end. */
function restoreParts(r: KvStore, parts: Uint8Array[]): void {
  const restore = r.restoreFromPieces();
  for (const p of parts) restore.push(p);
  const steps = restore.finish();
  while (steps.next().done !== true);
}

/** A small store with everything a snapshot carries: a lease and its key, a session's cached answer, queue keys, odd keys and values. */
function smallStore(): KvStore {
  const s = new KvStore();
  const apply = applier();
  apply(s, { type: 'leaseGrant', ttlMs: 5000 });
  apply(s, { type: 'put', key: 'leased', value: enc('L'), lease: 1 });
  apply(s, { type: 'put', key: 'ключ/😀', value: enc(''), lease: 0 });
  apply(s, { type: 'put', key: '_leaderd/election/e1/a', value: enc('cand-a'), lease: 0 });
  apply(s, { type: 'put', key: '_leaderd/election/e1/b', value: enc('cand-b'), lease: 0 });
  apply(s, { type: 'put', key: 'bin', value: new Uint8Array([0, 255, 1, 254]), lease: 0 });
  apply(s, { type: 'sessionOpen', ttlMs: 10_000 });
  apply(s, { cmd: { type: 'put', key: 'bin', value: enc('again'), lease: 0 }, session: { id: 1, seq: 1, firstIncomplete: 1 } });
  return s;
}

/** Everything a reader can observe of a store, as comparable bytes. */
const state = (s: KvStore) => Buffer.from(s.snapshot());

/** A store holding one key of its own, and its state: what a refused restore must leave as it was. */
function storeWithOldKey(): { r: KvStore; before: Buffer } {
  const r = new KvStore();
  applier()(r, { type: 'put', key: 'old', value: enc('x'), lease: 0 });
  return { r, before: state(r) };
}

describe('KvStore snapshot in pieces', () => {
  it('the pieces concatenate to snapshot() byte for byte, and restoring them gives the same state', () => {
    const s = smallStore();
    const whole = state(s);
    const ps = pieces(s);
    expect(concat(ps).equals(whole)).toBe(true);
    const r = new KvStore();
    restoreParts(r, ps);
    expect(state(r).equals(whole)).toBe(true);
    expect(r.get('ключ/😀')).toMatchObject({ value: enc(''), version: 1 });
    expect(r.leaseInfo(1)).toEqual({ ttlMs: 5000, keys: ['leased'] });
    expect(r.oldest('_leaderd/election/e1/')?.key).toBe('_leaderd/election/e1/a');
    expect(r.bytes).toBe(s.bytes);
    expect(r.sessions.size).toBe(1);
  });

  it('restores from pieces split at every byte, and from one byte at a time', () => {
    const s = smallStore();
    const whole = state(s);
    for (let cut = 0; cut <= whole.length; cut++) {
      const r = new KvStore();
      restoreParts(r, [whole.subarray(0, cut), whole.subarray(cut)]);
      expect(state(r).equals(whole), `split at byte ${cut}`).toBe(true);
    }
    const r = new KvStore();
    restoreParts(
      r,
      [...whole].map((b) => new Uint8Array([b])),
    );
    expect(state(r).equals(whole)).toBe(true);
  });

  it('keeps nothing of a piece: values survive the pieces being overwritten after push', () => {
    const s = smallStore();
    const apply = applier();
    apply(s, { type: 'put', key: 'big', value: new Uint8Array(100_000).fill(7), lease: 0 });
    const whole = state(s);
    const r = new KvStore();
    const restore = r.restoreFromPieces();
    for (let at = 0; at < whole.length; at += 333) {
      const piece = new Uint8Array(whole.subarray(at, at + 333));
      restore.push(piece);
      piece.fill(0xee);
    }
    const steps = restore.finish();
    while (steps.next().done !== true);
    expect(state(r).equals(whole)).toBe(true);
    expect(r.get('big')!.value.every((b) => b === 7)).toBe(true);
  });

  it('a truncated stream, cut at any byte, throws at finish and changes nothing', () => {
    const s = smallStore();
    const whole = state(s);
    const { r, before } = storeWithOldKey();
    for (let cut = 0; cut < whole.length; cut++) {
      const restore = r.restoreFromPieces();
      restore.push(whole.subarray(0, cut));
      expect(() => restore.finish(), `cut at byte ${cut}`).toThrow();
      expect(state(r).equals(before)).toBe(true);
    }
  });

  it('trailing garbage, a corrupt length or count, a duplicated key: refused, nothing changed', () => {
    const s = smallStore();
    const whole = state(s);
    const { r, before } = storeWithOldKey();
    const refused = (data: Uint8Array, split = 7) => {
      const restore = r.restoreFromPieces();
      let threw = false;
      try {
        restore.push(data.subarray(0, split));
        restore.push(data.subarray(split));
        restore.finish().next();
      } catch {
        threw = true;
        // A refused stream stays refused: nothing more is taken.
        expect(() => restore.push(new Uint8Array(1))).toThrow();
      }
      expect(state(r).equals(before)).toBe(true);
      return threw;
    };
    expect(refused(Buffer.concat([whole, Buffer.from([0])]))).toBe(true);
    expect(refused(Buffer.concat([whole, whole]), whole.length)).toBe(true);
    const headerLength = whole.readUInt32BE(8);
    const countAt = 12 + headerLength;
    const corrupt = (at: number, patch: (b: Buffer) => void) => {
      const b = Buffer.from(whole);
      patch(b.subarray(at));
      return b;
    };
    expect(refused(corrupt(0, (b) => b.write('LDKX', 'latin1')))).toBe(true); // not the magic: parsed as JSON
    expect(refused(corrupt(4, (b) => b.writeUInt32BE(3)))).toBe(true); // unknown version
    expect(refused(corrupt(8, (b) => b.writeUInt32BE(headerLength - 1)))).toBe(true); // header cut short
    expect(refused(corrupt(countAt, (b) => b.writeDoubleBE(s.size + 1)))).toBe(true); // one key missing
    expect(refused(corrupt(countAt, (b) => b.writeDoubleBE(s.size - 1)))).toBe(true); // one key too many
    expect(refused(corrupt(countAt, (b) => b.writeDoubleBE(0.5)))).toBe(true);
    expect(refused(corrupt(countAt + 8, (b) => b.writeUInt32BE(0xffffffff)))).toBe(true); // first key's length
    // The first record repeated in place of the second: the same key twice.
    const firstLength = 8 + whole.readUInt32BE(countAt + 8) + whole.readUInt32BE(countAt + 12 + whole.readUInt32BE(countAt + 8)) + 32;
    const first = whole.subarray(countAt + 8, countAt + 8 + firstLength);
    const twice = Buffer.concat([whole.subarray(0, countAt + 8), first, first, whole.subarray(countAt + 8 + firstLength)]);
    expect(refused(twice)).toBe(true);
    // Any single byte changed anywhere: refused with nothing changed, or a store that
    // snapshots to exactly the corrupted bytes (a value's byte; checksums catch those).
    for (let at = 0; at < whole.length; at++) {
      const b = Buffer.from(whole);
      b[at] = b[at]! ^ 0x5a;
      const { r: t } = storeWithOldKey();
      try {
        restoreParts(t, [b.subarray(0, at), b.subarray(at)]);
      } catch {
        expect(state(t).equals(before), `byte ${at} changed`).toBe(true);
        continue;
      }
      expect(state(t).equals(b), `byte ${at} changed`).toBe(true);
    }
  });

  it('pieces stay within PIECE_BYTES and PIECE_KEYS, values larger than a piece included', () => {
    const s = new KvStore();
    const apply = applier();
    for (let i = 0; i < 20_000; i++) apply(s, { type: 'put', key: `k/${i}`, value: enc(`v${i}`), lease: 0 });
    for (let i = 0; i < 3; i++)
      apply(s, { type: 'put', key: `big/${i}`, value: new Uint8Array(PIECE_BYTES + 12_345).fill(i + 1), lease: 0 });
    for (let i = 0; i < 4; i++) apply(s, { type: 'put', key: `mid/${i}`, value: new Uint8Array(1 << 20).fill(9), lease: 0 });
    const ps = pieces(s);
    for (const p of ps) expect(p.length).toBeLessThanOrEqual(PIECE_BYTES);
    const whole = state(s);
    expect(concat(ps).equals(whole)).toBe(true);
    // Records ending in each piece (walking the format): at most PIECE_KEYS.
    const ends: number[] = [];
    let at = 12 + whole.readUInt32BE(8) + 8;
    while (at < whole.length) {
      const keyLength = whole.readUInt32BE(at);
      at += 8 + keyLength + whole.readUInt32BE(at + 4 + keyLength) + 32;
      ends.push(at);
    }
    expect(ends.length).toBe(s.size);
    let pieceEnd = 0;
    let e = 0;
    for (const p of ps) {
      pieceEnd += p.length;
      let n = 0;
      for (; e < ends.length && ends[e]! <= pieceEnd; e++) n++;
      expect(n).toBeLessThanOrEqual(PIECE_KEYS);
    }
    expect(ps.length).toBeGreaterThanOrEqual(Math.ceil(20_000 / PIECE_KEYS) + 3);
    const r = new KvStore();
    restoreParts(r, ps);
    expect(r.size).toBe(s.size);
    expect(r.get('big/2')!.value.length).toBe(PIECE_BYTES + 12_345);
    expect(r.get('big/2')!.value.every((b) => b === 3)).toBe(true);
    expect(r.bytes).toBe(s.bytes);
  });

  it('pieces are written into a few buffers in turn, each piece intact until the next is asked for', () => {
    const s = new KvStore();
    const apply = applier();
    for (let i = 0; i < 40; i++) apply(s, { type: 'put', key: `mid/${i}`, value: new Uint8Array(1 << 20).fill(i), lease: 0 });
    apply(s, { type: 'put', key: 'zbig', value: new Uint8Array(3 * PIECE_BYTES).fill(7), lease: 0 });
    for (let i = 0; i < 20_000; i++) apply(s, { type: 'put', key: `z/${i}`, value: enc(`v${i}`), lease: 0 });
    const buffers = new Set<ArrayBufferLike>();
    const copies: Uint8Array[] = [];
    const it = s.snapshotPieces();
    for (let r = it.next(); r.done !== true; r = it.next()) {
      buffers.add(r.value.buffer);
      copies.push(Uint8Array.from(r.value));
    }
    expect(copies.length).toBeGreaterThan(15);
    // ~56 MiB in 4 MiB buffers: 14 fresh ones without reuse. With it, the 12 MiB value (whose
    // record spans four buffers within one step) and one more.
    expect(buffers.size).toBeLessThanOrEqual(5);
    expect(concat(copies).equals(state(s))).toBe(true);
  });

  it('pieces are of the state at the call: writes, deletes and leases applied between pieces do not reach them', () => {
    const s = new KvStore();
    const apply = applier();
    for (let i = 0; i < 10_000; i++) apply(s, { type: 'put', key: `k/${String(i).padStart(5, '0')}`, value: enc(`v${i}`), lease: 0 });
    const expected = state(s);
    const it = s.snapshotPieces();
    const ps: Uint8Array[] = [];
    for (let r = it.next(), n = 0; r.done !== true; r = it.next(), n++) {
      ps.push(Uint8Array.from(r.value));
      apply(s, { type: 'put', key: `k/${String(n * 97).padStart(5, '0')}`, value: enc('changed'), lease: 0 });
      apply(s, { type: 'delete', key: `k/${String(9999 - n).padStart(5, '0')}`, prefix: false });
      apply(s, { type: 'put', key: `new/${n}`, value: enc('n'), lease: 0 });
      apply(s, { type: 'leaseGrant', ttlMs: 1000 });
    }
    expect(ps.length).toBeGreaterThanOrEqual(3);
    expect(concat(ps).equals(expected)).toBe(true);
  });

  it('the old state is served until the last step of finish, which swaps the new one in at once', () => {
    const s = smallStore();
    const r = new KvStore();
    const apply = applier();
    apply(r, { type: 'leaseGrant', ttlMs: 100 });
    apply(r, { type: 'put', key: 'old', value: enc('x'), lease: 1 });
    const events: string[] = [];
    r.onLeaseChange((c) => events.push(`${c.type}:${c.id}`));
    r.onRestore(() => events.push('restored'));
    const restore = r.restoreFromPieces();
    for (const p of pieces(s)) {
      restore.push(p);
      expect(r.get('old')?.value).toEqual(enc('x'));
    }
    const steps = restore.finish();
    expect(r.get('leased')).toBeNull();
    expect(events).toEqual([]);
    while (steps.next().done !== true) expect(r.get('old')).not.toBeNull();
    expect(r.get('old')).toBeNull();
    expect(r.get('leased')?.value).toEqual(enc('L'));
    expect(r.revision).toBe(s.revision);
    expect(r.oldestRetained).toBe(s.revision + 1);
    // Lease 1 exists on both sides (another TTL now): it is granted again, then the restore is announced.
    expect(events).toEqual(['granted:1', 'restored']);
  });

  it('restores a JSON snapshot of format 1 fed in pieces', () => {
    const v1 = FORMAT_1_SNAPSHOT;
    const r = new KvStore();
    restoreParts(r, [v1.subarray(0, 2), v1.subarray(2, 3), v1.subarray(3, 40), v1.subarray(40)]);
    expectFormat1Restored(r);
  });
});
