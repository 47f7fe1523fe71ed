// The options of a one-voter node on loopback that the runtime tests start: one place for
// the fixed parts (ids, timing, a silent logger), so each test states only what it varies.
import pino from 'pino';
import type { NodeOptions } from '../../src/server/node.js';
import { NullStateMachine } from '../../src/server/node.js';

export function singleNodeOptions(dataDir: string, peer: string, overrides: Partial<NodeOptions> = {}): NodeOptions {
  return {
    id: 'a',
    clusterId: 'c',
    dataDir,
    listenPeer: peer,
    advertisePeer: peer,
    advertiseClient: '127.0.0.1:1',
    peers: new Map([['a', peer]]),
    heartbeatMs: 50,
    electionTimeoutMs: 300,
    logger: pino({ level: 'silent' }),
    stateMachine: new NullStateMachine(),
    ...overrides,
  };
}
