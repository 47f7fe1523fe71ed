import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry, EntryType, HardState } from '../../src/raft/types.js';
import {
  CodecError,
  decodeEntry,
  decodeHardState,
  decodeSnapshotRecord,
  decodeSnapshotV1,
  encodeEntry,
  encodeHardState,
  encodeSnapshotRecord,
  encodeSnapshotV1,
  entryKey,
  parseKey,
} from '../../src/storage/codec.js';
import { crc32, crc32Portable } from '../../src/storage/crc32.js';

const u53 = fc.maxSafeInteger().filter((n) => n >= 0);
const smallIndex = fc.integer({ min: 1, max: 2 ** 40 });
const nodeId = fc.string({ minLength: 1, maxLength: 12 });
const bytes = fc.uint8Array({ maxLength: 64 });

const entryArb: fc.Arbitrary<Entry> = fc.record({
  index: fc.oneof(
    smallIndex,
    u53.filter((n) => n >= 1),
  ),
  term: u53,
  type: fc.constantFrom<EntryType>('normal', 'noop', 'conf'),
  data: bytes,
});

describe('crc32', () => {
  it('matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('the portable fallback equals zlib, including when continued from a previous value', () => {
    const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
    fc.assert(
      fc.property(bytes, bytes, (a, b) => {
        const whole = Uint8Array.from([...a, ...b]);
        expect(crc32Portable(b, crc32Portable(a))).toBe(crc32Portable(whole));
        if (native !== undefined) expect(crc32Portable(whole)).toBe(native(whole) >>> 0);
      }),
    );
  });
});

describe('codec', () => {
  it('entries round-trip', () => {
    fc.assert(
      fc.property(entryArb, (e) => {
        const back = decodeEntry(e.index, encodeEntry(e));
        expect({ ...back, data: Array.from(back.data) }).toEqual({ ...e, data: Array.from(e.data) });
      }),
    );
  });

  it('hard states round-trip', () => {
    const hs: fc.Arbitrary<HardState> = fc.record({ term: u53, votedFor: fc.option(nodeId, { nil: null }), commit: u53 });
    fc.assert(
      fc.property(hs, (h) => {
        expect(decodeHardState(encodeHardState(h))).toEqual(h);
      }),
    );
  });

  const snapMeta = fc.record({
    index: u53,
    term: u53,
    conf: fc.record({ voters: fc.array(nodeId, { maxLength: 5 }), learners: fc.array(nodeId, { maxLength: 3 }) }),
  });

  it('snapshot records (format 2: meta and the file that holds the bytes) round-trip', () => {
    const file = fc.record({ name: fc.stringMatching(/^[0-9a-z][0-9a-z.-]{0,40}$/), size: u53, checksum: fc.nat({ max: 2 ** 32 - 1 }) });
    fc.assert(
      fc.property(snapMeta, file, (meta, f) => {
        expect(decodeSnapshotRecord(encodeSnapshotRecord(meta, f))).toEqual({ meta, file: f });
      }),
    );
  });

  it('a snapshot record naming a file outside the snapshot directory is refused', () => {
    const meta = { index: 5, term: 2, conf: { voters: ['a'], learners: [] } };
    for (const name of ['../leaderd.json', '/etc/passwd', '.', '..', 'a/b.snap', '']) {
      expect(() => decodeSnapshotRecord(encodeSnapshotRecord(meta, { name, size: 1, checksum: 0 }))).toThrow(CodecError);
    }
  });

  it('format 1 snapshots (bytes inline) round-trip', () => {
    fc.assert(
      fc.property(snapMeta, bytes, (meta, data) => {
        const back = decodeSnapshotV1(encodeSnapshotV1({ meta, data }));
        expect({ ...back, data: Array.from(back.data) }).toEqual({ meta, data: Array.from(data) });
      }),
    );
  });

  it('any single flipped bit in an entry value is detected', () => {
    fc.assert(
      fc.property(entryArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (e, at, bit) => {
        const value = encodeEntry(e);
        const pos = at % value.length;
        value[pos]! ^= 1 << bit;
        expect(() => decodeEntry(e.index, value)).toThrow(CodecError);
      }),
    );
  });

  it('entry keys sort bytewise in index order and parse back to their index', () => {
    const cmp = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);
    fc.assert(
      fc.property(u53, u53, (a, b) => {
        expect(Math.sign(cmp(entryKey(a), entryKey(b)))).toBe(Math.sign(a - b));
        expect(parseKey(entryKey(a))).toEqual({ kind: 'entry', index: a });
      }),
    );
  });
});
