// `leaderd recover`: after a majority of the members is lost for good, turn one survivor's
// data dir into a one-member cluster that the others then join (etcd's
// --force-new-cluster, Consul's peers.json).
//
// Scenario: a 3-node cluster loses two machines. The survivor cannot commit anything
// (one of three is no majority) and cannot remove the dead members, since removing them
// is itself a change that needs a majority (thesis §4.1). Only an operator, who knows the
// two are gone, may break that rule; this does it offline, on the stopped survivor:
//
// - every entry in its log is kept and declared committed, those past its commit index
//   included (they may have been acknowledged by a leader whose majority is gone, and
//   keeping them loses less than dropping them);
// - removals of every other member (and the promotion of this one, if it was a learner)
//   are appended as committed configuration entries in a new term, so the member
//   records and the configuration say the same on every later replica;
// - what the lost members had committed that never reached this log is lost: writes
//   acknowledged to clients may be missing. That is why the operator is told to pick the
//   survivor with the most recent log (--dry-run prints it) and is warned loudly.
//
// The cluster id stays (clients and configurations keep working); the other members must
// come back on empty data dirs with --join and be added again, never with their old data.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { encodeConfChange } from '../raft/conf-change.js';
import { RaftNode } from '../raft/raft.js';
import { seededRandom } from '../raft/rand.js';
import type { Entry, NodeId } from '../raft/types.js';
import { IDENTITY_FILE } from '../storage/identity.js';
import { LevelStorage } from '../storage/leveldb-storage.js';
import { readFileSync } from 'node:fs';
import { BOOTSTRAP_META, decodeBootstrap } from './member-registry.js';

export class RecoverError extends Error {
  override readonly name = 'RecoverError';
}

export interface RecoverReport {
  readonly dataDir: string;
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** The log as found: compare these across survivors and recover the one with the highest (lastTerm, lastIndex). */
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly commitIndex: number;
  readonly term: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Entries past the commit index that recovery declares committed. */
  readonly uncommittedKept: number;
  /** Members removed by the recovery (all but this one). */
  readonly removed: readonly NodeId[];
  /** False for --dry-run: nothing was written. */
  readonly applied: boolean;
}

function readIdentity(dataDir: string): { clusterId: string; nodeId: string } {
  const path = join(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) throw new RecoverError(`${dataDir} is not a leaderd data dir (no ${IDENTITY_FILE}): nothing to recover`);
  let raw: { clusterId?: unknown; nodeId?: unknown };
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as typeof raw;
  } catch (err) {
    throw new RecoverError(`${path} is unreadable (${(err as Error).message}): the data dir is corrupt`);
  }
  if (typeof raw.clusterId !== 'string' || typeof raw.nodeId !== 'string')
    throw new RecoverError(`${path} lacks clusterId or nodeId: the data dir is corrupt`);
  return { clusterId: raw.clusterId, nodeId: raw.nodeId };
}

/** Inspect (dryRun) or recover the stopped member whose data dir is `dataDir`. */
export async function recoverDataDir(dataDir: string, opts: { dryRun: boolean }): Promise<RecoverReport> {
  const { clusterId, nodeId } = readIdentity(dataDir);
  if (!existsSync(join(dataDir, 'raft'))) throw new RecoverError(`${dataDir} holds no log (no raft/ directory): nothing to recover`);
  const storage = await LevelStorage.open({ dir: join(dataDir, 'raft'), clusterId, nodeId });
  try {
    if (storage.isNew) throw new RecoverError(`${dataDir} holds an empty log: nothing to recover`);
    const bootMeta = storage.getMeta(BOOTSTRAP_META);
    const boot = bootMeta === undefined ? null : decodeBootstrap(bootMeta);
    const confInLog = boot === null || boot.join || boot.inLog;
    const initial = storage.initialState({ voters: confInLog ? [] : [...boot.members.keys()], learners: [] });
    // The core reads the configuration and the log positions exactly as a starting node would.
    const core = new RaftNode(
      {
        id: nodeId,
        clusterId,
        heartbeatTick: 1,
        electionTick: 10,
        leaseDriftTicks: 1,
        leaseReads: false,
        maxInflight: 1,
        maxMsgBytes: 1,
        snapshotChunkBytes: 1,
        random: seededRandom(1),
      },
      initial,
    );
    const st = core.status();
    const lastTerm = core.termAt(st.lastLogIndex) ?? 0;
    const conf = st.conf;
    if (!conf.voters.includes(nodeId) && !conf.learners.includes(nodeId))
      throw new RecoverError(
        `${nodeId} is not a member in its own log (members: ${[...conf.voters, ...conf.learners].join(', ') || 'none'}): recover another survivor`,
      );
    const removed = [...conf.voters, ...conf.learners].filter((id) => id !== nodeId);
    const report: RecoverReport = {
      dataDir,
      clusterId,
      nodeId,
      lastIndex: st.lastLogIndex,
      lastTerm,
      commitIndex: st.commitIndex,
      term: st.term,
      voters: conf.voters,
      learners: conf.learners,
      uncommittedKept: st.lastLogIndex - st.commitIndex,
      removed,
      applied: !opts.dryRun,
    };
    if (opts.dryRun) return report;
    const term = Math.max(st.term, lastTerm) + 1;
    const changes = [
      ...(conf.learners.includes(nodeId) ? [{ op: 'promoteLearner' as const, nodeId }] : []),
      ...removed.map((id) => ({ op: 'removeVoter' as const, nodeId: id })),
    ];
    const entries: Entry[] = changes.map((cc, i) => ({ index: st.lastLogIndex + 1 + i, term, type: 'conf', data: encodeConfChange(cc) }));
    const commit = st.lastLogIndex + entries.length;
    await storage.persist({ hardState: { term, votedFor: null, commit }, entries, snapshot: null }, true);
    return report;
  } finally {
    await storage.close();
  }
}
