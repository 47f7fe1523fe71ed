// Who a data dir belongs to, in a small file beside the LevelDB directory, checked
// *before* LevelDB is opened. Opening a LevelDB rewrites its own files (it replays the
// write-ahead log into a table and writes a new MANIFEST) even when every record is left
// as it was; a node refusing a data dir of another cluster or node must not touch it at all.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageRefusedError, newerFormat, wrongCluster, wrongNode } from './errors.js';
import { FORMAT_VERSION } from './leveldb-storage.js';

export const IDENTITY_FILE = 'leaderd-identity.json';

export interface Identity {
  readonly clusterId: string;
  readonly nodeId: string;
}

/**
 * Refuse (StorageRefusedError, nothing written) when `dataDir` belongs to another cluster
 * or node, or was written by a newer format. Returns false when there is no identity file
 * yet (a new data dir, or one from before the file existed: LevelDB's own records decide).
 */
export function checkIdentity(dataDir: string, want: Identity): boolean {
  const path = join(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) return false;
  let raw: { format?: unknown; clusterId?: unknown; nodeId?: unknown };
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as typeof raw;
  } catch (err) {
    throw new StorageRefusedError(
      'corrupt',
      dataDir,
      `data dir ${dataDir} is corrupt: ${IDENTITY_FILE} is unreadable (${(err as Error).message})`,
      { cause: err },
    );
  }
  if (typeof raw.format !== 'number' || typeof raw.clusterId !== 'string' || typeof raw.nodeId !== 'string') {
    throw new StorageRefusedError('corrupt', dataDir, `data dir ${dataDir} is corrupt: ${IDENTITY_FILE} lacks format, clusterId or nodeId`);
  }
  if (raw.format > FORMAT_VERSION) throw newerFormat(dataDir, raw.format, FORMAT_VERSION);
  if (raw.clusterId !== want.clusterId) throw wrongCluster(dataDir, raw.clusterId, want.clusterId);
  if (raw.nodeId !== want.nodeId) throw wrongNode(dataDir, raw.nodeId, raw.clusterId, want.nodeId);
  return true;
}

/** Record the identity durably (write a temporary file, fsync, rename over, fsync the directory). */
export function writeIdentity(dataDir: string, id: Identity): void {
  const path = join(dataDir, IDENTITY_FILE);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify({ format: FORMAT_VERSION, clusterId: id.clusterId, nodeId: id.nodeId }) + '\n');
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
  const dfd = openSync(dataDir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
