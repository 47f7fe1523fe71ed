// The data dir's identity file: checked before LevelDB is opened, so a refused start
// leaves every file as it was.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IDENTITY_FILE, checkIdentity, writeIdentity } from '../../src/storage/identity.js';
import { StorageRefusedError } from '../../src/storage/errors.js';

let dir = '';
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const refusal = (f: () => unknown): StorageRefusedError => {
  try {
    f();
  } catch (err) {
    if (err instanceof StorageRefusedError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
};

describe('data dir identity', () => {
  it('a new dir has none; once written, the same node passes and any other is refused without a write', () => {
    dir = mkdtempSync(join(tmpdir(), 'leaderd-id-'));
    expect(checkIdentity(dir, { clusterId: 'a', nodeId: 'n1' })).toBe(false);
    writeIdentity(dir, { clusterId: 'a', nodeId: 'n1' });
    expect(checkIdentity(dir, { clusterId: 'a', nodeId: 'n1' })).toBe(true);
    const before = readFileSync(join(dir, IDENTITY_FILE), 'utf8');
    const cluster = refusal(() => checkIdentity(dir, { clusterId: 'b', nodeId: 'n1' }));
    expect(cluster.kind).toBe('wrong-cluster');
    expect(cluster.message).toMatch(/belongs to cluster 'a', not 'b'/);
    const node = refusal(() => checkIdentity(dir, { clusterId: 'a', nodeId: 'n2' }));
    expect(node.kind).toBe('wrong-node');
    expect(readFileSync(join(dir, IDENTITY_FILE), 'utf8')).toBe(before);
  });

  it('refuses a newer format and an unreadable file, naming the problem', () => {
    dir = mkdtempSync(join(tmpdir(), 'leaderd-id-'));
    writeFileSync(join(dir, IDENTITY_FILE), JSON.stringify({ format: 99, clusterId: 'a', nodeId: 'n1' }));
    const newer = refusal(() => checkIdentity(dir, { clusterId: 'a', nodeId: 'n1' }));
    expect(newer.kind).toBe('newer-format');
    expect(newer.message).toMatch(/format 99/);
    writeFileSync(join(dir, IDENTITY_FILE), '{not json');
    expect(refusal(() => checkIdentity(dir, { clusterId: 'a', nodeId: 'n1' })).kind).toBe('corrupt');
    writeFileSync(join(dir, IDENTITY_FILE), JSON.stringify({ clusterId: 'a' }));
    expect(refusal(() => checkIdentity(dir, { clusterId: 'a', nodeId: 'n1' })).message).toMatch(/lacks format, clusterId or nodeId/);
  });
});
