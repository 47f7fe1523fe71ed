// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for record checksums.
//
// Node gained zlib.crc32 in 20.15 / 22.2; package.json allows any Node 20, so older
// runtimes fall back to a table-driven implementation that yields identical values
// (checked against zlib's in test/storage/crc32.test.ts). Both accept a running value
// so a checksum can cover a record's key and its payload without concatenating them.

import * as zlib from 'node:zlib';

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Table-driven CRC-32; exported so tests can hold it against zlib's. */
export function crc32Portable(data: Uint8Array, value = 0): number {
  let crc = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) {
    // The index is always in 0..255 and the table has 256 entries.
    crc = (TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)) >>> 0;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

type Crc32Fn = (data: Uint8Array, value?: number) => number;

const native: Crc32Fn | undefined =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (zlib as unknown as { crc32: Crc32Fn }).crc32 : undefined;

/** CRC-32 of `data`, continuing from the checksum `value` of preceding bytes (0 to start). */
export function crc32(data: Uint8Array, value = 0): number {
  return native !== undefined ? native(data, value) >>> 0 : crc32Portable(data, value);
}
