// `leaderd snapshot save FILE` and `leaderd snapshot restore FILE ...`: back up a live
// cluster, and seed a new cluster from a backup after a disaster.
import { existsSync, readdirSync, renameSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { VERSION } from '../version.js';
import { parseId, parsePeers, ConfigError } from '../server/config.js';
import { CliError, EXIT_REFUSED, UsageError } from './usage.js';
import { out, untilInterrupted, withClient, type ClientFlags } from './client-context.js';
import { BackupFileError, openBackup, saveBackupFile, type BackupHeader, type OpenBackup } from './snapshot-file.js';

/** 128 + SIGINT, as a shell reports a command stopped by Ctrl-C. */
const EXIT_INTERRUPTED = 130;

const isErrno = (err: unknown): err is NodeJS.ErrnoException & { code: string } =>
  err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && !('kind' in err);

export async function runSnapshotSave(file: string, flags: ClientFlags): Promise<void> {
  const path = resolve(file);
  if (!existsSync(dirname(path))) throw new UsageError(`cannot write ${file}: directory ${dirname(path)} does not exist`);
  let saved: { header: BackupHeader; bytes: number };
  // Ctrl-C cancels the stream, so the half-written temp file is removed like any failed save's.
  const interrupt = untilInterrupted();
  try {
    saved = await saveBackupFile(path, { createdAt: new Date().toISOString(), leaderdVersion: VERSION }, async (sink) => {
      await withClient(flags, (c) => c.snapshotInto(sink, { signal: interrupt.signal }));
    });
  } catch (err) {
    // A file system error (errno code) is the file's; anything else is the cluster's, reported as such.
    if (isErrno(err)) throw new CliError([`cannot write ${file}: ${err.code}`], 1);
    if (interrupt.signal.aborted) throw new CliError([`interrupted: ${file} was not written`], EXIT_INTERRUPTED);
    throw err;
  } finally {
    interrupt.dispose();
  }
  const { header, bytes } = saved;
  const summary = {
    file: path,
    clusterId: header.clusterId,
    index: header.index,
    term: header.term,
    bytes,
    sha256: header.sha256,
  };
  out(
    flags.json
      ? JSON.stringify(summary)
      : `saved ${file}: cluster ${header.clusterId}, index ${header.index}, term ${header.term}, ${bytes} bytes, sha256 ${header.sha256}`,
  );
}

export interface RestoreFlags {
  dataDir?: string;
  name?: string;
  id?: string;
  peers?: string;
  clusterId?: string;
  json?: boolean;
}

export async function runSnapshotRestore(file: string, flags: RestoreFlags): Promise<void> {
  const id = flags.name ?? flags.id;
  if (id === undefined) throw new UsageError('snapshot restore needs --name ID (the member this data dir is for)');
  if (flags.name !== undefined && flags.id !== undefined && flags.name !== flags.id)
    throw new UsageError('--name and --id differ; give one');
  if (flags.dataDir === undefined) throw new UsageError('snapshot restore needs --data-dir DIR (a new, empty directory)');
  if (flags.peers === undefined) throw new UsageError('snapshot restore needs --peers id=host:port,... (the members of the new cluster)');
  if (flags.clusterId === undefined) throw new UsageError("snapshot restore needs --cluster-id ID (the new cluster's id)");
  let peers: Map<string, string>;
  try {
    parseId(id, '--name');
    parseId(flags.clusterId, '--cluster-id');
    peers = parsePeers(flags.peers);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  if (!peers.has(id)) throw new UsageError(`--peers must include this member (${id})`);
  let backup: OpenBackup;
  try {
    backup = openBackup(file, file);
  } catch (err) {
    if (err instanceof BackupFileError) throw new CliError([`refusing to restore: ${err.message}`], EXIT_REFUSED);
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    await restoreFrom(file, backup, id, peers, { ...flags, dataDir: flags.dataDir, clusterId: flags.clusterId, peers: flags.peers });
  } catch (err) {
    if (err instanceof BackupFileError) throw new CliError([`refusing to restore: ${err.message}`], EXIT_REFUSED);
    throw err;
  } finally {
    backup.close();
  }
}

async function restoreFrom(
  file: string,
  backup: OpenBackup,
  id: string,
  peers: Map<string, string>,
  flags: RestoreFlags & { dataDir: string; clusterId: string; peers: string },
): Promise<void> {
  const { header, data } = backup;
  if (header.clusterId === flags.clusterId)
    throw new UsageError(
      `--cluster-id ${flags.clusterId} is the backed-up cluster's own id: a restore seeds a new cluster, so its members must never talk to the old one's; choose another id`,
    );
  const dir = resolve(flags.dataDir);
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0))
    throw new CliError([`refusing to restore into ${flags.dataDir}: it exists and is not an empty directory`], EXIT_REFUSED);
  // Built beside the target and renamed into place at the end: a restore that fails half
  // way leaves no data dir that would start as an empty cluster of the new id.
  const tmp = `${dir}.restoring-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const { seedDataDir } = await import('../server/node.js');
  try {
    await seedDataDir({ dataDir: tmp, clusterId: flags.clusterId, id, peers, snapshot: { index: header.index, term: header.term, data } });
    if (existsSync(dir)) rmdirSync(dir);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const summary = { dataDir: dir, id, clusterId: flags.clusterId, members: [...peers.keys()], index: header.index, term: header.term };
  out(
    flags.json
      ? JSON.stringify(summary)
      : `restored ${file} (cluster ${header.clusterId}, index ${header.index}) into ${flags.dataDir} as ${id} of new cluster ${flags.clusterId} (members ${[...peers.keys()].join(', ')}); start it with: leaderd start --id ${id} --data-dir ${flags.dataDir} --cluster-id ${flags.clusterId} --peers ${flags.peers} ...`,
  );
}
