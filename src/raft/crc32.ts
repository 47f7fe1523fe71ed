// CRC-32 (IEEE 802.3, the zlib/PNG polynomial), table-driven and pure: the core's
// default snapshot checksum, and the fallback of storage's record checksums on a Node
// without zlib.crc32. A running value lets a checksum cover bytes that arrive in pieces
// (snapshot chunks, a record's key then its payload) without concatenating them.

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of `data`, continuing from the checksum `value` of preceding bytes (0 to start). */
export function crc32Portable(data: Uint8Array, value = 0): number {
  let crc = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) {
    // The index is always in 0..255 and the table has 256 entries.
    crc = (TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)) >>> 0;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
