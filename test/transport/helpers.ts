import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { AppendRequest, Message, NodeId } from '../../src/raft/types.js';
import { GrpcTransport, type TransportOptions } from '../../src/transport/grpc-transport.js';

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** A pino logger whose JSON lines are kept in memory so tests can assert on them. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      }
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

export interface TestNode {
  readonly id: NodeId;
  readonly transport: GrpcTransport;
  readonly port: number;
  readonly address: string;
  readonly received: Message[];
  readonly lines: LogLine[];
}

/** Every transport a test starts, so afterEach can close them even when the test failed. */
export class Nodes {
  private readonly all: GrpcTransport[] = [];

  async start(id: NodeId, opts: Partial<Omit<TransportOptions, 'nodeId' | 'logger'>> = {}): Promise<TestNode> {
    const { logger, lines } = captureLogger();
    const transport = new GrpcTransport({
      nodeId: id,
      clusterId: 'test-cluster',
      listenPeer: '127.0.0.1:0',
      advertisePeer: '',
      advertiseClient: `${id}.client.test:7000`,
      logger,
      // Looser than the 300 ms default so a CPU-starved CI machine running test files in
      // parallel does not tear streams down mid-test; keepalive.test.ts pins the tight setting.
      keepaliveMs: 1000,
      ...opts,
    });
    this.all.push(transport);
    const received: Message[] = [];
    transport.onMessage((m) => received.push(m));
    const { port } = await transport.start();
    return { id, transport, port, address: `127.0.0.1:${port}`, received, lines };
  }

  async closeAll(): Promise<void> {
    const all = this.all.splice(0);
    await Promise.all(all.map((t) => t.close()));
  }
}

/** Connects every node to every other. */
export function mesh(nodes: readonly TestNode[]): void {
  const peers = new Map(nodes.map((n) => [n.id, n.address] as const));
  for (const n of nodes) n.transport.setPeers(peers);
}

/** Polls `cond` until true; fails after `timeoutMs` with `what`. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One message of every type from `from` to `to`, with distinguishable field values. */
export function everyMessageType(clusterId: string, from: NodeId, to: NodeId, term: number): Message[] {
  const b = { clusterId, from, to, term };
  const conf = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
  return [
    { ...b, type: 'vote', preVote: true, lastLogIndex: 7, lastLogTerm: 3, transfer: false },
    { ...b, type: 'voteResp', preVote: false, granted: true },
    {
      ...b,
      type: 'app',
      prevLogIndex: 9,
      prevLogTerm: 2,
      entries: [
        { index: 10, term: 2, type: 'normal', data: new Uint8Array([1, 2, 3]) },
        { index: 11, term: term, type: 'noop', data: new Uint8Array() },
        { index: 12, term: term, type: 'conf', data: new TextEncoder().encode('add n4') },
      ],
      leaderCommit: 9,
      round: 41,
    },
    { ...b, type: 'app', prevLogIndex: 12, prevLogTerm: term, entries: [], leaderCommit: 12, round: 42 },
    { ...b, type: 'appResp', success: false, matchIndex: 0, rejectHint: 5, rejectTerm: 1, round: 42 },
    {
      ...b,
      type: 'snap',
      meta: { index: 100, term: 4, conf },
      offset: 65536,
      data: new Uint8Array(1000).fill(7),
      done: true,
      round: 43,
      totalSize: 66536,
      checksum: 0xdeadbeef,
    },
    { ...b, type: 'snapResp', snapIndex: 100, nextOffset: 66536, done: true, matchIndex: 100, round: 43, refused: false },
    { ...b, type: 'snapResp', snapIndex: 100, nextOffset: 0, done: false, matchIndex: 0, round: 44, refused: true },
    { ...b, type: 'timeoutNow' },
    { ...b, type: 'readIndex', requestId: 'req-1' },
    { ...b, type: 'readIndexResp', requestId: 'req-1', index: -1 },
    { ...b, type: 'readIndexResp', requestId: 'req-2', index: 12 },
  ];
}

/** An empty append (a heartbeat) of term 5 from `from` to `to`, in heartbeat round `round`. */
export function heartbeat(from: NodeId, to: NodeId, round: number, clusterId = 'test-cluster'): AppendRequest {
  return { clusterId, from, to, term: 5, type: 'app', prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, round };
}
