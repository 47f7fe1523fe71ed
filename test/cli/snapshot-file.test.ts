// The backup file format: what `snapshot restore` accepts and the one line it gives for
// everything it refuses. Every byte position is tried for a flip, and every length for a
// truncation, on a small file, through both readers (bytes in memory, and a file read a
// piece at a time). The streaming save writes exactly encodeBackup's bytes, leaves nothing
// when it fails, and neither it nor the reader holds a backup whole.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BACKUP_MAGIC,
  BackupFileError,
  decodeBackup,
  encodeBackup,
  openBackup,
  saveBackupFile,
  writeFileAtomic,
  type BackupSink,
} from '../../src/cli/snapshot-file.js';
import { piecesOf } from '../../src/storage/snapshot-pieces.js';

const meta = { clusterId: 'prod', index: 1234, term: 7, createdAt: '2026-01-01T00:00:00.000Z', leaderdVersion: '0.1.0' };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'leaderd-backup-'));
  dirs.push(dir);
  return dir;
}

/** The two ways a backup is read: whole bytes (decodeBackup), and a file checked a piece at a time (openBackup, what restore uses). */
const readers = {
  bytes: (bytes: Uint8Array) => {
    const { header, data } = decodeBackup(bytes, 'backup.snap');
    return { header, data: Buffer.from(data) };
  },
  file: (bytes: Uint8Array) => {
    const path = join(fileDir(), 'backup.snap');
    writeFileSync(path, bytes);
    const b = openBackup(path, 'backup.snap');
    try {
      return { header: b.header, data: Buffer.from(b.data.subarray(0, b.data.byteLength)) };
    } finally {
      b.close();
    }
  },
};
let shared: string | undefined;
const fileDir = () => (shared !== undefined && existsSync(shared) ? shared : (shared = scratchDir()));

describe.each(Object.entries(readers))('backup file read as %s', (_, read) => {
  function problem(bytes: Uint8Array): string {
    try {
      read(bytes);
    } catch (err) {
      if (err instanceof BackupFileError) return `${err.kind}: ${err.message}`;
      throw err;
    }
    return 'accepted';
  }

  it('round-trips the header fields and the data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(), fc.nat(), (data, index, term) => {
        const { bytes } = encodeBackup({ ...meta, index, term }, data);
        const { header, data: out } = read(bytes);
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

  it('tells a data checksum mismatch from a damaged file', () => {
    // A file whose trailing digest is right but whose data is not what the header says:
    // only the data's own checksum catches it.
    const { bytes, header } = encodeBackup(meta, Buffer.from('state'));
    const wrongHeader = Buffer.from(JSON.stringify({ ...header, sha256: '00'.repeat(32) }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(wrongHeader.length);
    const body = Buffer.concat([BACKUP_MAGIC, len, wrongHeader, Buffer.from('state')]);
    const file = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    expect(problem(file)).toBe('corrupt: backup.snap is corrupt (data checksum mismatch): do not restore from it');
    expect(problem(bytes)).toBe('accepted');
  });
});

describe('backup file writing', () => {
  it('writes atomically: the file is whole, and no temp file is left', () => {
    const dir = scratchDir();
    const { bytes } = encodeBackup(meta, Buffer.from('state'));
    writeFileAtomic(join(dir, 'b.snap'), bytes);
    writeFileAtomic(join(dir, 'b.snap'), bytes);
    expect(readdirSync(dir)).toEqual(['b.snap']);
    expect(readFileSync(join(dir, 'b.snap')).equals(bytes)).toBe(true);
  });
});

/** A producer as LeaderdClient.snapshotInto is: begin with the declared head, then the pieces. */
function producerOf(data: Uint8Array, pieceBytes: number, head = { clusterId: meta.clusterId, index: meta.index, term: meta.term }) {
  const declared = { ...head, dataBytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
  return async (sink: BackupSink) => {
    await sink.begin(declared);
    for (let off = 0; off < data.length; off += pieceBytes) await sink.write(data.subarray(off, off + pieceBytes));
  };
}

describe('streaming backup save', () => {
  const times = { createdAt: meta.createdAt, leaderdVersion: meta.leaderdVersion };

  it('writes from pieces exactly the bytes encodeBackup makes, and the summary size', async () => {
    const dir = scratchDir();
    for (const [size, piece] of [
      [0, 1],
      [1, 1],
      [100_000, 4096],
      [3 << 20, 1 << 20],
      [(3 << 20) + 17, 333_333],
    ] as const) {
      const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919) & 0xff));
      const path = join(dir, `b-${size}.snap`);
      const saved = await saveBackupFile(path, times, producerOf(data, piece));
      const expected = encodeBackup(meta, data);
      expect(readFileSync(path).equals(expected.bytes), `size ${size}`).toBe(true);
      expect(saved).toEqual({ header: expected.header, bytes: expected.bytes.length });
      expect(decodeBackup(readFileSync(path)).data.length).toBe(size);
    }
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('starts over when an attempt is restarted on another endpoint: only the last attempt is in the file', async () => {
    const dir = scratchDir();
    const first = Buffer.alloc(5000, 1);
    const second = Buffer.from('the state as the second endpoint had it');
    const path = join(dir, 'b.snap');
    await saveBackupFile(path, times, async (sink) => {
      await producerOf(first, 1000, { clusterId: 'prod', index: 9, term: 2 })({
        begin: (h) => sink.begin(h),
        write: async (c) => {
          await sink.write(c);
          if (c[0] === 1) throw new Error('stream broke');
        },
      }).catch(() => undefined);
      await producerOf(second, 7)(sink);
    });
    expect(readFileSync(path).equals(encodeBackup(meta, second).bytes)).toBe(true);
  });

  it('leaves neither the target nor its temp file when the stream fails half way, and an old target untouched', async () => {
    const dir = scratchDir();
    const path = join(dir, 'b.snap');
    const data = Buffer.alloc(4 << 20, 3);
    const failing = (sink: BackupSink) =>
      producerOf(
        data,
        1 << 20,
      )({
        begin: (h) => sink.begin(h),
        write: async (c) => {
          await sink.write(c);
          throw new Error('connection lost');
        },
      });
    await expect(saveBackupFile(path, times, failing)).rejects.toThrow('connection lost');
    expect(readdirSync(dir)).toEqual([]);
    // A stream that ends short of its declared length is refused too.
    const short = async (sink: BackupSink) => {
      await sink.begin({ ...meta, dataBytes: 10, sha256: '' });
      await sink.write(Buffer.alloc(4));
    };
    await expect(saveBackupFile(path, times, short)).rejects.toThrow('gave 4 of 10 bytes');
    expect(readdirSync(dir)).toEqual([]);
    writeFileSync(path, 'an older backup');
    await expect(saveBackupFile(path, times, failing)).rejects.toThrow('connection lost');
    expect(readdirSync(dir)).toEqual(['b.snap']);
    expect(readFileSync(path, 'utf8')).toBe('an older backup');
  });

  it('saves, checks and reads back a 64 MiB backup in far less than 64 MiB of buffers', async () => {
    const dir = scratchDir();
    const path = join(dir, 'big.snap');
    const PIECE = 1 << 20;
    const PIECES = 64;
    // The stream's pieces: one buffer refilled per piece (each gRPC chunk is a new buffer
    // the client drops; here reuse keeps the collector's timing out of the figure).
    const piece = Buffer.alloc(PIECE);
    const fill = (i: number) => piece.fill(i & 0xff).writeUInt32BE(i, 0);
    const whole = createHash('sha256');
    for (let i = 0; i < PIECES; i++) whole.update((fill(i), piece));
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sample = () => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - base));
    await saveBackupFile(path, times, async (sink) => {
      await sink.begin({ ...meta, dataBytes: PIECE * PIECES, sha256: whole.digest('hex') });
      for (let i = 0; i < PIECES; i++) {
        fill(i);
        await sink.write(piece);
        sample();
      }
    });
    const b = openBackup(path, 'big.snap');
    sample();
    try {
      expect(b.data.byteLength).toBe(PIECE * PIECES);
      let i = 0;
      for (const got of piecesOf(b.data, 0, b.data.byteLength, PIECE)) {
        fill(i++);
        expect(Buffer.compare(got, piece)).toBe(0);
        sample();
      }
      expect(i).toBe(PIECES);
    } finally {
      b.close();
    }
    expect(peak).toBeLessThan(16 << 20);
  });
});
