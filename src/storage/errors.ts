// Why storage refused to open a data directory. Each kind is a different operator
// action, so callers (the CLI maps all of them to exit code 2 or 1) branch on `kind`,
// never on the message; the message names the directory and the problem for humans.

export type StorageRefusedKind =
  /** The directory holds another cluster's log: joining with it would mix two histories. */
  | 'wrong-cluster'
  /** The directory holds another member's log: its votes and log would be reused under a new name. */
  | 'wrong-node'
  /** Written by a newer leaderd whose record layout this build cannot interpret. */
  | 'newer-format'
  /** A checksum failed, a record is malformed, or the log has a hole. */
  | 'corrupt'
  /** Another process (or another handle in this one) has the directory open. */
  | 'locked';

export class StorageRefusedError extends Error {
  override readonly name = 'StorageRefusedError';
  readonly kind: StorageRefusedKind;
  readonly dir: string;

  constructor(kind: StorageRefusedKind, dir: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.dir = dir;
  }
}

// The refusals both identity checks make (the identity file, checked before LevelDB is
// opened, and the records inside LevelDB), worded the same way.
export function newerFormat(dir: string, version: number, supported: number): StorageRefusedError {
  return new StorageRefusedError(
    'newer-format',
    dir,
    `data dir ${dir} uses storage format ${version}; this leaderd reads formats up to ${supported} (upgrade leaderd)`,
  );
}

export function wrongCluster(dir: string, stored: string, wanted: string): StorageRefusedError {
  return new StorageRefusedError('wrong-cluster', dir, `data dir ${dir} belongs to cluster '${stored}', not '${wanted}'`);
}

export function wrongNode(dir: string, storedNode: string, storedCluster: string, wanted: string): StorageRefusedError {
  return new StorageRefusedError(
    'wrong-node',
    dir,
    `data dir ${dir} belongs to node '${storedNode}' of cluster '${storedCluster}', not '${wanted}'`,
  );
}
