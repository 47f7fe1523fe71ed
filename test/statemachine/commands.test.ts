import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, encodeCommandV1, type Envelope } from '../../src/statemachine/commands.js';

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);

const envelopes: [string, Envelope][] = [
  ['put', { cmd: { type: 'put', key: 'k', value: bytes(3), lease: 0 }, session: { id: 4, seq: 9, firstIncomplete: 8 }, quota: 1 << 30 }],
  ['an empty value', { cmd: { type: 'put', key: 'k', value: new Uint8Array(0), lease: 12 } }],
  ['prefix delete', { cmd: { type: 'delete', key: 'a/', prefix: true } }],
  [
    'txn with a value compare and puts on both branches',
    {
      cmd: {
        type: 'txn',
        compare: [
          { key: 'c', target: 'VALUE', result: 'EQUAL', value: bytes(5, 1) },
          { key: 'd', target: 'VERSION', result: 'GREATER', number: 2 },
        ],
        success: [
          { type: 'put', key: 'x', value: bytes(10_000, 2), lease: 0 },
          { type: 'get', key: 'y' },
        ],
        failure: [
          { type: 'put', key: 'z', value: bytes(2, 3), lease: 5 },
          { type: 'delete', key: 'w', prefix: false },
        ],
      },
    },
  ],
  ['lease grant', { cmd: { type: 'leaseGrant', ttlMs: 5000 } }],
  ['session expiry', { cmd: { type: 'sessionExpire', id: 3 } }],
  ['a pre-session write', { cmd: { type: 'put', key: 'k', value: bytes(1), lease: 0 }, clientId: 'old', seq: 2 }],
];

/** The envelope as plain data, values as arrays, so a view and a copy compare equal. */
const plain = (e: Envelope) => JSON.parse(JSON.stringify(e, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v))) as unknown;

describe('log entry encoding', () => {
  it.each(envelopes)('%s: format 2 decodes to what was encoded', (_name, env) => {
    expect(plain(decodeCommand(encodeCommand(env)))).toEqual(plain(env));
  });

  it.each(envelopes)('%s: format 1 entries (already in logs) still decode', (_name, env) => {
    const v1 = encodeCommandV1(env);
    expect(v1[0]).toBe('{'.charCodeAt(0));
    expect(plain(decodeCommand(v1))).toEqual(plain(env));
  });

  it('a 1 MiB put is a 1 MiB entry whose value the store can keep as a view of it (no base64, no second copy)', () => {
    const value = bytes(1 << 20, 9);
    const entry = encodeCommand({ cmd: { type: 'put', key: 'big', value, lease: 0 } });
    expect(entry.byteLength).toBeLessThan((1 << 20) + 200);
    expect(encodeCommandV1({ cmd: { type: 'put', key: 'big', value, lease: 0 } }).byteLength).toBeGreaterThan(1.33 * (1 << 20));
    const got = decodeCommand(entry).cmd;
    if (got.type !== 'put') throw new Error('not a put');
    expect(got.value.buffer).toBe(entry.buffer);
    expect(Buffer.from(got.value).equals(Buffer.from(value))).toBe(true);
  });

  it('a small value, or a large one that is a small part of the buffer under it, is copied rather than pinning that buffer', () => {
    const small = decodeCommand(encodeCommand({ cmd: { type: 'put', key: 's', value: bytes(100), lease: 0 } })).cmd;
    const entry = encodeCommand({ cmd: { type: 'put', key: 'm', value: bytes(8192), lease: 0 } });
    // As a follower receives it: inside a message buffer eight times its size.
    const message = new Uint8Array(entry.byteLength * 8);
    message.set(entry, 1000);
    const inMessage = decodeCommand(message.subarray(1000, 1000 + entry.byteLength)).cmd;
    if (small.type !== 'put' || inMessage.type !== 'put') throw new Error('not a put');
    expect(small.value.buffer.byteLength).toBe(100);
    expect(inMessage.value.buffer).not.toBe(message.buffer);
    expect(inMessage.value.byteLength).toBe(8192);
  });

  it('refuses a truncated header or a value reference past the entry, with a message naming it', () => {
    const entry = encodeCommand({ cmd: { type: 'put', key: 'k', value: bytes(64), lease: 0 } });
    expect(() => decodeCommand(entry.subarray(0, 3))).toThrow(/truncated header/);
    expect(() => decodeCommand(entry.subarray(0, 20))).toThrow(/truncated header/);
    expect(() => decodeCommand(entry.subarray(0, entry.byteLength - 1))).toThrow(/past the entry/);
    const header = new TextEncoder().encode(JSON.stringify({ v: 2, cmd: { type: 'put', key: 'k', value: [-1, 2], lease: 0 } }));
    const forged = new Uint8Array(5 + header.byteLength);
    forged[0] = 2;
    new DataView(forged.buffer).setUint32(1, header.byteLength);
    forged.set(header, 5);
    expect(() => decodeCommand(forged)).toThrow(/\[offset, length\]/);
  });
});
