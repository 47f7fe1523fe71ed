// The options of a one-voter node on loopback that the runtime tests start: one place for
// the fixed parts (ids, timing, a silent logger), so each test states only what it varies.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach } from 'vitest';
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

/**
 * Temp data dirs and shutdown steps for one test file: every directory made by tempDir()
 * and every cleanup registered is undone after each test, even a failed one.
 */
export function perTestResources(prefix: string): { tempDir(): string; cleanups: (() => Promise<void>)[] } {
  const dirs: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c().catch(() => {});
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return {
    tempDir: () => {
      const d = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    cleanups,
  };
}
