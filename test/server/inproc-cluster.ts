// A cluster of real nodes in this process: LevelDB in temp dirs, the gRPC peer transport
// and the public gRPC API on loopback (the same classes `leaderd start` wires together),
// with two test-only controls: each node's peer links can be cut and healed (messages
// dropped both ways, as a partition would), and the KvStore and coordination limits are
// chosen by the test. For tests that must watch a node install a snapshot, or measure a
// node's own memory and latency under a flood.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { INCARNATION_META, LeaderdNode } from '../../src/server/node.js';
import { PublicServer } from '../../src/server/public-api.js';
import { CoordinationService } from '../../src/server/coordination.js';
import { KvStore, type KvStoreOptions } from '../../src/statemachine/kv-store.js';
import { LevelStorage } from '../../src/storage/leveldb-storage.js';
import { GrpcTransport } from '../../src/transport/grpc-transport.js';
import { systemClock, type RuntimeTransport } from '../../src/server/runtime-ports.js';
import type { HandshakePolicy } from '../../src/transport/handshake.js';
import type { Message } from '../../src/raft/types.js';
import type { Limits } from '../../src/server/limits.js';
import { NodeMetrics } from '../../src/server/metrics.js';
import { freePort, waitFor } from '../e2e/cluster.js';

/** A transport whose links can be cut: while cut, nothing is sent and nothing received. */
class CuttableTransport implements RuntimeTransport {
  cut = false;
  constructor(private readonly inner: GrpcTransport) {}
  start() {
    return this.inner.start();
  }
  send(msg: Message): void {
    if (!this.cut) this.inner.send(msg);
  }
  onMessage(handler: (msg: Message) => void): void {
    this.inner.onMessage((m) => {
      if (!this.cut) handler(m);
    });
  }
  setHandshake(policy: HandshakePolicy): void {
    this.inner.setHandshake(policy);
  }
  setPeers(peers: ReadonlyMap<string, string>): void {
    this.inner.setPeers(peers);
  }
  peerClientAddress(id: string): string | undefined {
    return this.inner.peerClientAddress(id);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface InprocNode {
  readonly id: string;
  readonly node: LeaderdNode;
  readonly store: KvStore;
  readonly client: string;
  readonly server: PublicServer;
  readonly transport: CuttableTransport;
  /** The node's metrics (no process metrics), as `/metrics` would show them. */
  readonly metrics: NodeMetrics;
}

export interface InprocCluster {
  readonly nodes: InprocNode[];
  leader(): Promise<InprocNode>;
  close(): Promise<void>;
}

export async function startInprocCluster(
  opts: { size?: number; snapshotEntries?: number; store?: KvStoreOptions; limits?: Limits } = {},
): Promise<InprocCluster> {
  const size = opts.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'leaderd-inproc-'));
  const ids = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  const peers = new Map<string, string>();
  const clients = new Map<string, string>();
  for (const id of ids) {
    peers.set(id, `127.0.0.1:${await freePort()}`);
    clients.set(id, `127.0.0.1:${await freePort()}`);
  }
  const logger = pino({ level: 'silent' });
  const nodes: InprocNode[] = [];
  const close = async () => {
    for (const n of nodes) {
      await n.server.close().catch(() => {});
      await n.node.stop({ transfer: false }).catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const id of ids) {
      const storage = await LevelStorage.open({
        dir: join(dir, id),
        clusterId: 'inproc',
        nodeId: id,
        initialMeta: new Map([[INCARNATION_META, new TextEncoder().encode(randomBytes(16).toString('hex'))]]),
      });
      const transport = new CuttableTransport(
        new GrpcTransport({
          nodeId: id,
          clusterId: 'inproc',
          listenPeer: peers.get(id)!,
          advertisePeer: peers.get(id)!,
          advertiseClient: clients.get(id)!,
          logger,
          keepaliveMs: 150,
          keepaliveTimeoutMs: 1000,
          minBackoffMs: 20,
          maxBackoffMs: 150,
        }),
      );
      const store = new KvStore(opts.store);
      const metrics = new NodeMetrics({ nodeId: id, heartbeatMs: 50, processMetrics: false });
      const node = await LeaderdNode.fromParts(
        {
          id,
          clusterId: 'inproc',
          advertisePeer: peers.get(id)!,
          advertiseClient: clients.get(id)!,
          peers,
          heartbeatMs: 50,
          electionTimeoutMs: 300,
          logger,
          stateMachine: store,
          observer: metrics,
          onFatal: (err) => logger.error({ err }, 'fatal'),
          ...(opts.snapshotEntries ? { snapshotEntries: opts.snapshotEntries } : {}),
        },
        { storage, transport, clock: systemClock },
      );
      const server = new PublicServer(
        node,
        logger,
        new CoordinationService(node, store, { electionTimeoutMs: 300, logger, ...(opts.limits ? { limits: opts.limits } : {}) }),
      );
      nodes.push({ id, node, store, client: clients.get(id)!, server, transport, metrics });
      await server.listen(clients.get(id)!);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    nodes,
    leader: () =>
      waitFor(
        'a leader caught up on its log',
        () => nodes.find((n) => !n.transport.cut && n.node.isLeader() && n.node.isLeaderCaughtUp()),
        15_000,
      ),
    close,
  };
}
