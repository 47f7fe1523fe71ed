import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { KeyIndex, NONE } from '../../src/statemachine/key-index.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (u: Uint8Array) => new TextDecoder().decode(u);

/** Puts `key` = `value` as the store does (the key's current row replaced). */
function put(ix: KeyIndex, key: string, value: string, rev: number): number {
  return ix.put(key, ix.find(key), enc(value), rev, rev, 1, 0);
}

function keysOf(ix: KeyIndex, rows: Iterable<number>): string[] {
  return [...rows].map((r) => ix.key(r));
}

describe('KeyIndex', () => {
  it('orders keys by UTF-16 code unit, as JavaScript compares strings, across one- and two-byte storage', () => {
    const keys = ['', 'a', 'a\u0000', 'ab', '\u00e9', '\u00ff', '\u0100', '\u{1f600}', '\ue000', '\uffff', '\uffff\uffff', 'z\u0100z'];
    const ix = new KeyIndex();
    const shuffled = [...keys].sort(() => 0.5 - Math.random());
    shuffled.forEach((k, i) => put(ix, k, `v${k}`, i + 1));
    expect(keysOf(ix, ix.rowsFrom(''))).toEqual([...keys].sort());
    for (const k of keys) {
      const row = ix.find(k);
      expect(row).not.toBe(NONE);
      expect(ix.key(row)).toBe(k);
      expect(dec(ix.value(row))).toBe(`v${k}`);
      expect(ix.keyLength(row)).toBe(k.length);
    }
    expect(ix.find('\u00e8')).toBe(NONE);
    expect(ix.find('a\u0001')).toBe(NONE);
    expect(keysOf(ix, ix.rowsFrom('\u00f0'))).toEqual([...keys].sort().filter((k) => k >= '\u00f0'));
    const wide = ix.find('z\u0100z');
    expect(ix.hasPrefix(wide, 'z\u0100')).toBe(true);
    expect(ix.hasPrefix(wide, 'z\u0101')).toBe(false);
    expect(ix.hasPrefix(ix.find('a'), 'ab')).toBe(false);
  });

  it('reuses the rows it lets go, but none a capture may still read until the capture ends', () => {
    const ix = new KeyIndex();
    for (let i = 0; i < 10; i++) put(ix, `k${i}`, 'first', 1);
    for (let round = 2; round < 100; round++) for (let i = 0; i < 10; i++) put(ix, `k${i}`, `round ${round}`, round);
    // Each overwrite let go of the row it replaced, and the next took it.
    expect(ix.heldRows).toBe(10);

    const capture = ix.capture();
    for (let round = 100; round < 150; round++) for (let i = 0; i < 10; i++) put(ix, `k${i}`, `round ${round}`, round);
    for (let i = 0; i < 5; i++) ix.remove(ix.find(`k${i}`));
    expect(ix.heldRows).toBe(10 + 50 * 10);
    const captured = [...capture.rows()].map((r) => [ix.key(r), dec(ix.value(r)), ix.modRevision(r)]);
    expect(captured).toEqual(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'round 99', 99]));
    expect(capture.size).toBe(10);
    capture.end();
    capture.end();
    expect(ix.heldRows).toBe(5);
    expect(ix.size).toBe(5);
    for (let i = 0; i < 5; i++) put(ix, `k${i}`, 'back', 200);
    expect(ix.heldRows).toBe(10);
  });

  it('a capture dropped without end() lets its deferred rows go once it is collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const ix = new KeyIndex();
    put(ix, 'k', 'v0', 1);
    ((c) => void [...c.rows()])(ix.capture());
    for (let i = 1; i <= 100; i++) put(ix, 'k', `v${i}`, i + 1);
    expect(ix.heldRows).toBe(101);
    for (let tries = 0; tries < 50 && ix.heldRows > 1; tries++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(ix.heldRows).toBe(1);
  });

  it('keeps versions and lease ids past 32 bits exactly, and forgets them with their row', () => {
    const ix = new KeyIndex();
    const big = [2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER];
    const rows = big.map((n, i) => ix.put(`k${i}`, NONE, enc('v'), 1, 2, n, big[big.length - 1 - i]!));
    rows.forEach((row, i) => {
      expect(ix.version(row)).toBe(big[i]);
      expect(ix.lease(row)).toBe(big[big.length - 1 - i]);
    });
    // A row reused after one with a wide version holds its own, narrow one.
    ix.remove(rows[3]!);
    const again = ix.put('k3', NONE, enc('v'), 3, 3, 1, 0);
    expect(again).toBe(rows[3]);
    expect([ix.version(again), ix.lease(again)]).toEqual([1, 0]);
  });

  it('removes a range of keys by their bounds, and every key when the range is open', () => {
    const ix = new KeyIndex();
    for (const k of ['a', 'b/1', 'b/2', 'b/3', 'c']) put(ix, k, k, 1);
    const rows = [ix.find('b/1'), ix.find('b/2'), ix.find('b/3')];
    ix.removeRange('b/', 'b0', rows);
    expect(keysOf(ix, ix.rowsFrom(''))).toEqual(['a', 'c']);
    expect(ix.heldRows).toBe(2);
    ix.removeRange('', null, [ix.find('a'), ix.find('c')]);
    expect(ix.size).toBe(0);
    expect(ix.heldRows).toBe(0);
  });
});
