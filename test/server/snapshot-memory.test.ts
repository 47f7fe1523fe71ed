// A snapshot is never held whole in memory: three real nodes in this process (LevelDB,
// gRPC peers on loopback) with a state machine whose 48 MiB of state is generated on the
// fly, so every byte buffer of that size in the process would be a copy the runtime,
// the core or storage made. The leader takes a snapshot, compacts past a stopped
// follower, sends it the snapshot when it comes back; the follower spools it to a file
// and restores from it in pieces; a backup is taken the same way. Buffer memory
// (process.memoryUsage().arrayBuffers, after a full GC) is sampled at every piece and at
// the end, and must never rise by more than a few chunks above where it started.
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../src/raft/types.js';
import { LeaderdNode, type NodeOptions, type SnapshotRestore, type StateMachine } from '../../src/server/node.js';
import { freePort, waitFor } from '../e2e/cluster.js';
import { perTestResources } from './single-node.js';

const { tempDir, cleanups } = perTestResources('leaderd-snapmem-');

setFlagsFromString('--expose-gc');
// Freed buffers are counted until swept; swept on a background thread, a loaded machine
// would leave garbage in the count after gc() returns.
setFlagsFromString('--no-concurrent-array-buffer-sweeping');
const gc = runInNewContext('gc') as () => void;

const MIB = 1 << 20;
const STATE_MIB = 48;

/** Buffer memory of the process now, garbage collected first. */
function buffers(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

/**
 * State: `mib` MiB whose MiB k is all byte (seed + k) & 0xff, set by each entry
 * ("seed,mib"). It holds none of those bytes: snapshotPieces makes them a MiB at a time
 * in one reused buffer, and restoreFromPieces checks them as they come and keeps none.
 */
class GeneratedState implements StateMachine {
  seed = 0;
  mib = 0;
  restores = 0;
  private readonly piece = new Uint8Array(MIB);

  constructor(private readonly sample: () => void) {}

  apply(e: Entry): void {
    const [seed, mib] = new TextDecoder().decode(e.data).split(',').map(Number);
    this.seed = seed!;
    this.mib = mib!;
  }

  snapshot(): Uint8Array {
    throw new Error('the runtime asked for the snapshot whole');
  }

  restore(): void {
    throw new Error('the runtime restored from the snapshot whole');
  }

  *snapshotPieces(): Generator<Uint8Array, void, void> {
    const { seed, mib } = this;
    const head = new Uint8Array(8);
    new DataView(head.buffer).setUint32(0, seed);
    new DataView(head.buffer).setUint32(4, mib);
    yield head;
    for (let k = 0; k < mib; k++) {
      if (k % 8 === 0) this.sample();
      yield this.piece.fill((seed + k) & 0xff);
    }
  }

  restoreFromPieces(): SnapshotRestore {
    const head = new Uint8Array(8);
    let pos = 0;
    let seed = 0;
    let mib = 0;
    return {
      push: (piece) => {
        this.sample();
        for (let i = 0; i < piece.length; i++, pos++) {
          if (pos < 8) {
            head[pos] = piece[i]!;
            if (pos === 7) [seed, mib] = [new DataView(head.buffer).getUint32(0), new DataView(head.buffer).getUint32(4)];
          } else if (piece[i] !== ((seed + Math.floor((pos - 8) / MIB)) & 0xff)) throw new Error(`byte ${pos} is wrong`);
        }
      },
      finish: () => {
        if (pos !== 8 + mib * MIB) throw new Error(`restored ${pos} bytes, expected ${8 + mib * MIB}`);
        // One step: it swaps the new state in.
        return {
          next: () => {
            this.seed = seed;
            this.mib = mib;
            this.restores++;
            return { done: true, value: undefined };
          },
        };
      },
    };
  }
}

describe('snapshot memory', () => {
  it(`takes, sends and installs a ${STATE_MIB} MiB snapshot without a buffer of its size anywhere in the process`, async () => {
    const ids = ['a', 'b', 'c'];
    const ports = new Map<string, number>();
    for (const id of ids) ports.set(id, await freePort());
    const peers = new Map(ids.map((id) => [id, `127.0.0.1:${ports.get(id)}`]));
    let peak = 0;
    let where = '';
    const sample = () => {
      const b = buffers();
      // Where the peak was taken, for the failure message.
      if (b > peak) where = new Error().stack!.split('\n').slice(2, 4).join(' | ');
      peak = Math.max(peak, b);
    };
    const machines = new Map(ids.map((id) => [id, new GeneratedState(sample)]));
    const dirs = new Map(ids.map((id) => [id, tempDir()]));
    const options = (id: string): NodeOptions => ({
      id,
      clusterId: 'snapmem',
      dataDir: dirs.get(id)!,
      listenPeer: peers.get(id)!,
      advertisePeer: peers.get(id)!,
      advertiseClient: '127.0.0.1:1',
      peers,
      heartbeatMs: 50,
      electionTimeoutMs: 500,
      logger: pino({ level: 'silent' }),
      stateMachine: machines.get(id)!,
      // A snapshot every 4 entries, with no tail: a follower that missed them needs the snapshot.
      snapshotEntries: 4,
      snapshotTail: { entries: 0, bytes: 0 },
    });
    const nodes = new Map<string, LeaderdNode>();
    cleanups.push(async () => {
      for (const n of nodes.values()) await n.stop().catch(() => {});
    });
    for (const id of ids) nodes.set(id, await LeaderdNode.start(options(id)));
    const leaderOf = () => [...nodes.values()].find((n) => n.isLeader());
    const propose = (data: string) =>
      waitFor(`a leader to commit ${data}`, () => leaderOf()?.propose(new TextEncoder().encode(data)), 10_000);
    await propose('0,0');
    const behind = ids.find((id) => id !== leaderOf()?.status().nodeId)!;
    await nodes.get(behind)!.stop();
    nodes.delete(behind);

    const before = buffers();
    peak = before;
    for (let i = 1; i < 8; i++) await propose(`${i},1`);
    // The same write again until the leader's log is compacted past its first copy (a
    // snapshot every 4 entries, none started while one is being written): the follower
    // can then only catch up by the leader's snapshot of this 48 MiB state.
    const last = await propose(`8,${STATE_MIB}`);
    const snapshotIndex = () => (leaderOf() as unknown as { raft: { snapshotIndex(): number } } | undefined)?.raft.snapshotIndex() ?? 0;
    await waitFor(
      'the leader to compact past the last write',
      async () => (snapshotIndex() >= last.index ? true : (await propose(`8,${STATE_MIB}`), undefined)),
      20_000,
      100,
    );
    nodes.set(behind, await LeaderdNode.start(options(behind)));
    const m = machines.get(behind)!;
    // Past its own snapshot, read back at start-up: the next restore is the leader's.
    const restoredAtStart = m.restores;
    await waitFor(`${behind} installs the leader's snapshot`, () => (m.restores > restoredAtStart ? true : undefined), 30_000);
    expect([m.seed, m.mib]).toEqual([8, STATE_MIB]);
    sample();
    // The installed snapshot is a file of the whole state in the follower's data dir.
    const snapDir = join(dirs.get(behind)!, 'raft', 'snap');
    const files = readdirSync(snapDir).filter((n) => n.endsWith('.snap'));
    expect(files).toHaveLength(1);
    expect(statSync(join(snapDir, files[0]!)).size).toBeGreaterThan(STATE_MIB * MIB);
    // A backup (leaderd snapshot save) is a spool file too, hashed as it is written, and
    // gone once released.
    const { leaderNode, backup } = await waitFor('a backup from the leader', async () => {
      const l = leaderOf();
      return l === undefined ? undefined : { leaderNode: l, backup: await l.captureSnapshot() };
    });
    sample();
    expect(backup.data).not.toBeInstanceOf(Uint8Array);
    expect(backup.data.byteLength).toBe(8 + STATE_MIB * MIB);
    const sha = createHash('sha256');
    for (let off = 0; off < backup.data.byteLength; off += 4 * MIB) {
      sha.update(backup.data.subarray(off, Math.min(off + 4 * MIB, backup.data.byteLength)));
    }
    expect(Buffer.from(backup.sha256).toString('hex')).toBe(sha.digest('hex'));
    backup.release();
    const leaderSnapDir = join(dirs.get(leaderNode.status().nodeId)!, 'raft', 'snap');
    expect(readdirSync(leaderSnapDir).filter((n) => !n.endsWith('.snap'))).toEqual([]);
    // A whole copy anywhere (the core's, storage's, the runtime's) would add 48 MiB; the
    // chunks and pieces in flight (1 MiB chunks, 4 MiB pieces) stay well below half that.
    expect(peak - before, `buffer memory peaked at ${peak - before} bytes above the start, ${where}`).toBeLessThan((STATE_MIB / 2) * MIB);
  }, 60_000);
});
