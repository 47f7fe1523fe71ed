// An embedded node that hits a fatal error, or is stopped, must stop saying it leads
// before it stops answering: work guarded by runWhileLeader would otherwise go on while
// another node is elected a few hundred ms later (issue 7, scenario 7).
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Message, NodeId, Snapshot } from '../../src/raft/types.js';
import { LeaderdNode, NullStateMachine } from '../../src/server/node.js';
import type { RuntimeStorage, RuntimeTransport } from '../../src/server/runtime-ports.js';
import { systemClock } from '../../src/server/runtime-ports.js';
import { LevelStorage, type PersistInput } from '../../src/storage/leveldb-storage.js';
import { GrpcTransport } from '../../src/transport/grpc-transport.js';
import { createNode, type EmbeddedNode, type Entry, type StateMachine } from '../../src/index.js';
import { freePort, waitFor } from '../e2e/cluster.js';
import { perTestResources } from './single-node.js';

const { tempDir, cleanups } = perTestResources('leaderd-fatal-');

/** Real LevelDB, whose writes fail from the moment `broken` is set (a disk that went away). */
class BreakableStorage implements RuntimeStorage {
  broken = false;
  constructor(private readonly inner: LevelStorage) {}
  get isNew() {
    return this.inner.isNew;
  }
  initialState(c: Parameters<LevelStorage['initialState']>[0]) {
    return this.inner.initialState(c);
  }
  persist(p: PersistInput, sync: boolean) {
    return this.broken ? Promise.reject(new Error('EIO: injected disk failure')) : this.inner.persist(p, sync);
  }
  compact(s: Snapshot) {
    return this.inner.compact(s);
  }
  openSnapshotSink() {
    return this.inner.openSnapshotSink();
  }
  getMeta(k: string) {
    return this.inner.getMeta(k);
  }
  putMeta(k: string, v: Uint8Array) {
    return this.broken ? Promise.reject(new Error('EIO: injected disk failure')) : this.inner.putMeta(k, v);
  }
  close() {
    return this.inner.close();
  }
}

/** The real gRPC transport, noting when it was closed (the node stops answering peers then). */
class WatchedTransport implements RuntimeTransport {
  closed = false;
  constructor(private readonly inner: GrpcTransport) {}
  start() {
    return this.inner.start();
  }
  send(m: Message) {
    this.inner.send(m);
  }
  onMessage(h: (m: Message) => void) {
    this.inner.onMessage(h);
  }
  setPeers(p: ReadonlyMap<NodeId, string>) {
    this.inner.setPeers(p);
  }
  peerClientAddress(id: NodeId) {
    return this.inner.peerClientAddress(id);
  }
  close() {
    this.closed = true;
    return this.inner.close();
  }
}

async function leaderOnBreakableDisk() {
  const dir = tempDir();
  const peer = `127.0.0.1:${await freePort()}`;
  const logger = pino({ level: 'silent' });
  const storage = new BreakableStorage(await LevelStorage.open({ dir: join(dir, 'raft'), clusterId: 'c', nodeId: 'a' }));
  const transport = new WatchedTransport(
    new GrpcTransport({ nodeId: 'a', clusterId: 'c', listenPeer: peer, advertisePeer: peer, advertiseClient: '', logger }),
  );
  const fatal: Error[] = [];
  const node = await LeaderdNode.fromParts(
    {
      id: 'a',
      clusterId: 'c',
      advertisePeer: peer,
      advertiseClient: '127.0.0.1:1',
      peers: new Map([['a', peer]]),
      heartbeatMs: 50,
      electionTimeoutMs: 300,
      logger,
      stateMachine: new NullStateMachine(),
      onFatal: (e) => fatal.push(e),
    },
    { storage, transport, clock: systemClock },
  );
  cleanups.push(() => node.stop({ transfer: false }));
  await waitFor('leader', () => (node.isLeader() ? true : undefined), 5000);
  // What every lease signal saw when it fired: was the node still answering, and what did isLeader() say?
  const seen: { valid: boolean; transportClosed: boolean; isLeader: boolean }[] = [];
  node.onLeaseChange((valid) => seen.push({ valid, transportClosed: transport.closed, isLeader: node.isLeader() }));
  return { node, storage, transport, fatal, seen };
}

describe('leadership signals end before the node stops answering', () => {
  it('a storage failure on the leader: the lease signal fires (isLeader() false) while the transport is still open', async () => {
    const { node, storage, transport, fatal, seen } = await leaderOnBreakableDisk();
    storage.broken = true;
    await node.propose(new Uint8Array([1])).catch(() => {});
    await waitFor('fatal error reported', () => (fatal.length > 0 ? true : undefined), 5000);
    expect(fatal[0]!.message).toMatch(/injected disk failure/);
    expect(seen.filter((x) => !x.valid)[0]).toEqual({ valid: false, transportClosed: false, isLeader: false });
    expect(transport.closed).toBe(true);
    expect(node.isLeader()).toBe(false);
  });

  it('stop(): the lease signal fires before the transport closes', async () => {
    const { node, transport, seen } = await leaderOnBreakableDisk();
    const stopping = node.stop({ transfer: false });
    expect(seen.filter((x) => !x.valid)).toEqual([{ valid: false, transportClosed: false, isLeader: false }]);
    await stopping;
    expect(transport.closed).toBe(true);
  });

  it('runWhileLeader: a fatal error on the leader aborts the work and ends the loop', async () => {
    class Poisonable implements StateMachine {
      apply(e: Entry): unknown {
        if (new TextDecoder().decode(e.data) === 'poison') throw new Error('cannot apply');
        return null;
      }
      snapshot(): Uint8Array {
        return new Uint8Array(0);
      }
      restore(): void {}
    }
    const peer = `127.0.0.1:${await freePort()}`;
    const n: EmbeddedNode = await createNode({
      id: 'a',
      dataDir: tempDir(),
      listenPeer: peer,
      peers: { a: peer },
      stateMachine: new Poisonable(),
      logger: pino({ level: 'silent' }),
    });
    cleanups.push(() => n.close());
    let aborted: unknown = null;
    let started = false;
    const loop = n.runWhileLeader(async (signal) => {
      started = true;
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted = signal.reason;
    });
    await waitFor('work started on the leader', () => (started ? true : undefined), 5000);
    await n.propose(new TextEncoder().encode('poison')).catch(() => {});
    await waitFor('work aborted', () => (aborted !== null ? true : undefined), 5000);
    expect(n.isLeader()).toBe(false);
    await expect(Promise.race([loop.then(() => 'ended'), new Promise((r) => setTimeout(() => r('still running'), 3000))])).resolves.toBe(
      'ended',
    );
  });
});
