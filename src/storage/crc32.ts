// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for record checksums.
//
// Node gained zlib.crc32 in 20.15 / 22.2; package.json allows any Node 20, so older
// runtimes fall back to the core's table-driven implementation, which yields identical
// values (checked against zlib's in test/storage/crc32.test.ts). Both accept a running
// value so a checksum can cover a record's key and its payload without concatenating them.

import * as zlib from 'node:zlib';
import { crc32Portable } from '../raft/crc32.js';

export { crc32Portable };

type Crc32Fn = (data: Uint8Array, value?: number) => number;

const native: Crc32Fn | undefined =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (zlib as unknown as { crc32: Crc32Fn }).crc32 : undefined;

/** CRC-32 of `data`, continuing from the checksum `value` of preceding bytes (0 to start). */
export function crc32(data: Uint8Array, value = 0): number {
  return native !== undefined ? native(data, value) >>> 0 : crc32Portable(data, value);
}
