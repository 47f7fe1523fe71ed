// The backup file format: what `snapshot restore` accepts and the one line it gives for
// everything it refuses. Every byte position is tried for a flip, and every length for a
// truncation, on a small file.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKUP_MAGIC, BackupFileError, decodeBackup, encodeBackup, writeFileAtomic } from '../../src/cli/snapshot-file.js';

const meta = { clusterId: 'prod', index: 1234, term: 7, createdAt: '2026-01-01T00:00:00.000Z', leaderdVersion: '0.1.0' };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function problem(bytes: Uint8Array): string {
  try {
    decodeBackup(bytes, 'backup.snap');
  } catch (err) {
    if (err instanceof BackupFileError) return `${err.kind}: ${err.message}`;
    throw err;
  }
  return 'accepted';
}

describe('backup file', () => {
  it('round-trips the header fields and the data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(), fc.nat(), (data, index, term) => {
        const { bytes } = encodeBackup({ ...meta, index, term }, data);
        const { header, data: out } = decodeBackup(bytes);
        expect(header).toMatchObject({ version: 1, clusterId: 'prod', index, term, dataBytes: data.length });
        expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
      }),
      { seed: 10, numRuns: 200 },
    );
  });

  it('refuses a flipped bit at any position, header and magic included, as corrupt or not a backup', () => {
    const { bytes } = encodeBackup(meta, Buffer.from('some key-value state '.repeat(5)));
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i]! ^= 0x10;
      const p = problem(bad);
      expect(p, `flip at ${i}`).toMatch(i < BACKUP_MAGIC.length ? /^not-a-backup: / : /^(corrupt|truncated|newer-version): /);
    }
  });

  it('refuses every truncation as truncated, and extra bytes as corrupt', () => {
    const { bytes } = encodeBackup(meta, Buffer.from('x'.repeat(100)));
    for (let n = 0; n < bytes.length; n++)
      expect(problem(bytes.subarray(0, n)), `length ${n}`).toMatch(/^truncated: backup.snap is truncated/);
    expect(problem(Buffer.concat([bytes, Buffer.from([0])]))).toMatch(/^corrupt: /);
  });

  it('refuses a file of another kind, and a newer format version', () => {
    expect(problem(Buffer.from('{"not":"a backup"}\n'))).toBe(
      'not-a-backup: backup.snap is not a leaderd snapshot file (no leaderd backup signature at its start)',
    );
    const header = Buffer.from(JSON.stringify({ version: 2, clusterId: 'x', index: 1, term: 1, dataBytes: 0, sha256: '' }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length);
    expect(problem(Buffer.concat([BACKUP_MAGIC, len, header, Buffer.alloc(32)]))).toMatch(/^newer-version: .*version 2/);
  });

  it('writes atomically: the file is whole, and no temp file is left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leaderd-backup-'));
    dirs.push(dir);
    const { bytes } = encodeBackup(meta, Buffer.from('state'));
    writeFileAtomic(join(dir, 'b.snap'), bytes);
    writeFileAtomic(join(dir, 'b.snap'), bytes);
    expect(readdirSync(dir)).toEqual(['b.snap']);
    expect(readFileSync(join(dir, 'b.snap')).equals(bytes)).toBe(true);
  });
});
