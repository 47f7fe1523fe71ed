// The embedding API: a full leaderd node inside the user's own process. Either it
// replicates the user's own commands (pass a `stateMachine`), or it runs leaderd's
// coordination store and can serve the public gRPC API on `listenClient`.
import type { Logger } from 'pino';
import pino from 'pino';
import { LeaderdNode, NodeError, type LeaderView, type MemberView, type NodeStatusView, type StateMachine } from './server/node.js';
import { PublicServer } from './server/public-api.js';
import { CoordinationService } from './server/coordination.js';
import { KvStore } from './statemachine/kv-store.js';
import { DEFAULTS } from './server/config.js';
import { LeadershipLostError, type LeadershipLostReason } from './client/errors.js';

export interface CreateNodeOptions {
  readonly id: string;
  readonly dataDir: string;
  /** host:port for Raft traffic. */
  readonly listenPeer: string;
  readonly advertisePeer?: string;
  /** Every initial member's peer address, this node included (id -> host:port). */
  readonly peers: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
  readonly clusterId?: string;
  /** Serve the public gRPC API (Cluster, and KV/Lease/Election/Lock without a custom state machine) here. */
  readonly listenClient?: string;
  readonly advertiseClient?: string;
  readonly heartbeatMs?: number;
  readonly electionTimeoutMs?: number;
  /** Your replicated state machine; commands you propose() are applied to it on every node, in log order. */
  readonly stateMachine?: StateMachine;
  /** Snapshot the state machine and compact the log every this many applied entries; default 10,000. */
  readonly snapshotEntries?: number;
  readonly logger?: Logger;
}

export interface LeadershipChange {
  readonly leaderId: string;
  readonly term: number;
  /** True when this node is the new leader. */
  readonly self: boolean;
}

/** @deprecated The reason runWhileLeader's signal carries is a LeadershipLostError, the same class the client uses; `token` is the term. */
export const LeadershipLost = LeadershipLostError;

export interface EmbeddedNode {
  readonly id: string;
  /** The current term: also the fencing token of this node's leadership. */
  readonly term: number;
  /** True only while this node leads and its leader lease is valid (no other node can be leader meanwhile). */
  isLeader(): boolean;
  leader(): LeaderView;
  status(): NodeStatusView;
  members(): MemberView[];
  /** Every leadership change this node observes, from now on; none is dropped. Ends when `signal` aborts or the node closes. */
  leadershipChanges(signal?: AbortSignal): AsyncIterable<LeadershipChange>;
  /**
   * Run `work` each time this node becomes leader, with a signal that aborts as soon as
   * its lease is no longer valid (before any other node can be elected) and the term as
   * fencing token. Returns when `signal` aborts or the node closes.
   */
  runWhileLeader(work: (signal: AbortSignal, fencingToken: number) => Promise<void>, signal?: AbortSignal): Promise<void>;
  /** Propose a command for your state machine (leader only); resolves with its result once applied here. */
  propose(command: Uint8Array, signal?: AbortSignal): Promise<unknown>;
  /** Linearizable read barrier: afterwards, local state reflects every write committed before the call. */
  read(signal?: AbortSignal): Promise<void>;
  transferLeadership(target?: string): Promise<LeaderView>;
  /** Leave cleanly (a leader hands over first). */
  close(): Promise<void>;
}

export async function createNode(opts: CreateNodeOptions): Promise<EmbeddedNode> {
  const logger = opts.logger ?? pino({ level: 'warn' });
  const peers = opts.peers instanceof Map ? new Map(opts.peers) : new Map(Object.entries(opts.peers as Record<string, string>));
  const store = opts.stateMachine ? null : new KvStore();
  const electionTimeoutMs = opts.electionTimeoutMs ?? DEFAULTS['election-timeout-ms'];
  const closed = new AbortController();
  const node = await LeaderdNode.start({
    id: opts.id,
    clusterId: opts.clusterId ?? DEFAULTS['cluster-id'],
    dataDir: opts.dataDir,
    listenPeer: opts.listenPeer,
    advertisePeer: opts.advertisePeer ?? opts.listenPeer,
    advertiseClient: opts.advertiseClient ?? opts.listenClient ?? '',
    peers,
    heartbeatMs: opts.heartbeatMs ?? DEFAULTS['heartbeat-ms'],
    electionTimeoutMs,
    logger,
    stateMachine: opts.stateMachine ?? store!,
    // A fatal error ends every leadership loop (the node already aborted their signals).
    onFatal: () => closed.abort(),
    ...(opts.snapshotEntries !== undefined ? { snapshotEntries: opts.snapshotEntries } : {}),
  });
  let server: PublicServer | null = null;
  if (opts.listenClient) {
    server = new PublicServer(node, logger, store ? new CoordinationService(node, store, { electionTimeoutMs, logger }) : null);
    try {
      await server.listen(opts.listenClient);
    } catch (err) {
      await node.stop({ transfer: false });
      throw err;
    }
  }
  const leadershipChanges = (signal?: AbortSignal): AsyncIterable<LeadershipChange> => ({
    [Symbol.asyncIterator]() {
      const queue: LeadershipChange[] = [];
      let wake: (() => void) | null = null;
      const off = node.onLeaderChange((l) => {
        queue.push({ leaderId: l.leaderId, term: l.term, self: l.leaderId === node.id });
        wake?.();
      });
      const stop = () => wake?.();
      signal?.addEventListener('abort', stop, { once: true });
      closed.signal.addEventListener('abort', stop, { once: true });
      const done = () => signal?.aborted || closed.signal.aborted;
      return {
        async next(): Promise<IteratorResult<LeadershipChange>> {
          while (queue.length === 0 && !done()) await new Promise<void>((r) => (wake = r));
          wake = null;
          const v = queue.shift();
          if (v === undefined) {
            off();
            return { done: true, value: undefined };
          }
          return { done: false, value: v };
        },
        async return(): Promise<IteratorResult<LeadershipChange>> {
          off();
          return { done: true, value: undefined };
        },
      };
    },
  });

  const runWhileLeader = async (
    work: (signal: AbortSignal, fencingToken: number) => Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> => {
    const stopped = () => signal?.aborted || closed.signal.aborted;
    while (!stopped()) {
      // Wait until this node leads with a valid lease.
      if (!node.isLeader()) {
        await new Promise<void>((resolve) => {
          const off = node.onLeaseChange((valid) => {
            if (valid) done();
          });
          const done = () => {
            off();
            signal?.removeEventListener('abort', done);
            closed.signal.removeEventListener('abort', done);
            resolve();
          };
          signal?.addEventListener('abort', done, { once: true });
          closed.signal.addEventListener('abort', done, { once: true });
        });
        continue;
      }
      const term = node.status().term;
      const ac = new AbortController();
      const end = (reason: LeadershipLostReason, why: string) =>
        ac.abort(new LeadershipLostError(reason, '', term, `leadership of term ${term} lost: ${why}`));
      const leaseLost = () => end('lease-lost', 'lease no longer valid');
      const stop = () => end('closed', 'stopped (signal aborted or node closed)');
      const off = node.onLeaseChange((valid) => {
        if (!valid) leaseLost();
      });
      const offLeader = node.onLeaderChange((l) => {
        if (l.term !== term || l.leaderId !== node.id) end('superseded', `${l.leaderId || 'no node'} leads in term ${l.term}`);
      });
      signal?.addEventListener('abort', stop, { once: true });
      closed.signal.addEventListener('abort', stop, { once: true });
      if (!node.isLeader()) leaseLost();
      try {
        await work(ac.signal, term);
      } catch (err) {
        if (!ac.signal.aborted) throw err;
      } finally {
        off();
        offLeader();
        signal?.removeEventListener('abort', stop);
        closed.signal.removeEventListener('abort', stop);
      }
      if (!ac.signal.aborted) {
        // The work returned while still leader: wait for this leadership to end before running it again.
        await new Promise<void>((resolve) => {
          const off2 = node.onLeaseChange((valid) => !valid && finish());
          const finish = () => {
            off2();
            signal?.removeEventListener('abort', finish);
            closed.signal.removeEventListener('abort', finish);
            resolve();
          };
          signal?.addEventListener('abort', finish, { once: true });
          closed.signal.addEventListener('abort', finish, { once: true });
          if (!node.isLeader()) finish();
        });
      }
    }
  };

  return {
    id: node.id,
    get term() {
      return node.status().term;
    },
    isLeader: () => node.isLeader(),
    leader: () => node.leader(),
    status: () => node.status(),
    members: () => node.members(),
    leadershipChanges,
    runWhileLeader,
    async propose(command, signal) {
      if (!opts.stateMachine)
        throw new NodeError('invalid', 'propose() is for nodes created with your own stateMachine; use the KV API otherwise');
      return (await node.propose(command, signal)).result;
    },
    read: (signal) => node.readBarrier(signal),
    transferLeadership: (target) => node.transferLeadership(target),
    async close() {
      closed.abort();
      await node.stop();
      await server?.close();
    },
  };
}
